"""The embedding stage: store layout, skipped items, deduplicated texts, resume after a kill.

A small deterministic encoder (a fixed random projection of 8×8 thumbnails and of hashed
character trigrams) stands in for a model here; tests/test_models.py runs the real libraries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from PIL import Image

import vlmsae
from vlmsae import embedding
from vlmsae.datasets.raw import FileMedia, RawDataset
from vlmsae.embedding import EmbedSettings, embed_dataset
from vlmsae.errors import InputFileError
from vlmsae.faults import FAULT_EXIT, FAULT_VARIABLE
from vlmsae.models.base import Encoder, ModelSpec
from vlmsae.stores.embedding_store import SPLITS, EmbeddingStore, ValSplit

DIM = 8


def _thumbnail(image: Image.Image) -> torch.Tensor:
    pixels = np.asarray(image.resize((8, 8)), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).flatten()


class ThumbnailEncoder(Encoder):
    """Media: a fixed projection of an 8×8 thumbnail. Text: one of trigram hashes."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.spec = ModelSpec(name="thumbnail", family="test", checkpoint="none", dim=DIM)
        self.image_projection = torch.randn(192, DIM, generator=generator)
        self.text_projection = torch.randn(64, DIM, generator=generator)
        self.device = torch.device("cpu")

    def media_transform(self):
        return _thumbnail

    def encode_media(self, batch: torch.Tensor) -> torch.Tensor:
        return batch @ self.image_projection

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        counts = torch.zeros(len(texts), 64)
        for row, text in enumerate(texts):
            for start in range(max(1, len(text) - 2)):
                counts[row, zlib.crc32(text[start : start + 3].encode()) % 64] += 1
        return counts @ self.text_projection + 0.01

    def to(self, device):
        return self


def _photos(folder, n: int, corrupt: tuple[int, ...] = ()) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.jpg"
        if i in corrupt:
            path.write_bytes(b"not a jpeg")
        else:
            pixels = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths


def _raw(tmp_path, n: int = 11, corrupt: tuple[int, ...] = ()) -> RawDataset:
    paths = _photos(tmp_path, n, corrupt)
    # Two captions per image; captions of images 0 and 1 repeat a shared string.
    texts = []
    for i in range(n):
        texts += ["a shared caption" if i < 2 else f"photo number {i}", f"second caption {i}"]
    pairs = np.stack([np.repeat(np.arange(n), 2), np.arange(2 * n)], axis=1)
    split = np.array([SPLITS.index("eval") if i % 4 == 0 else 0 for i in range(n)], np.int8)
    return RawDataset(
        modality="image",
        media=FileMedia(paths),
        texts=texts,
        pairs=pairs,
        media_split=split,
        label=np.arange(n) % 3,
        class_names=["cat", "dog", "bird"],
        templates=["a photo of a {}.", "a drawing of a {}."],
        attrs={"root": str(tmp_path)},
    )


SETTINGS = EmbedSettings(batch_size=3, text_batch_size=4, num_workers=0, write_rows=4)


def _arrays(path) -> dict:
    root = zarr.open_group(path, mode="r")
    return {name: array[...] for name, array in root.arrays()}


def assert_same_arrays(first, second) -> None:
    """The two stores hold the same arrays, item sources compared by file name (the stores may
    come from copies of the dataset in two folders)."""
    a, b = _arrays(first), _arrays(second)
    assert a.keys() == b.keys()
    for name in a:
        if name == "image_source":
            a[name], b[name] = ([Path(p).name for p in store[name]] for store in (a, b))
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _killed_at_the_first_block(raw, path, monkeypatch) -> None:
    """Start building `path` and die before the first block is written."""

    def dying_write(*args):
        raise Killed

    monkeypatch.setattr(embedding, "_write_block", dying_write)
    with pytest.raises(Killed):
        embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {})
    monkeypatch.undo()


def test_store_layout_and_values(tmp_path):
    raw = _raw(tmp_path)
    encoder = ThumbnailEncoder()
    path = tmp_path / "store.zarr"
    embed_dataset(raw, encoder, path, SETTINGS, {"dataset": "d", "model": "thumbnail"})
    store = EmbeddingStore(path)
    image, text = store.rows("image"), store.rows("text")
    assert image.shape == (11, DIM) and text.shape == (22, DIM)
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1, atol=1e-6)
    # Each row is the encoder's output for that item, normalised.
    expected = encoder.encode_media(_thumbnail(Image.open(raw.media.paths[5])).unsqueeze(0))
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()[0]
    np.testing.assert_allclose(image[5], expected, atol=1e-6)
    expected_text = torch.nn.functional.normalize(encoder.encode_text([raw.texts[7]]), dim=-1)
    np.testing.assert_allclose(text[7], expected_text.numpy()[0], atol=1e-6)
    np.testing.assert_array_equal(text[0], text[2])  # the repeated caption, encoded once
    np.testing.assert_array_equal(store.pairs, raw.pairs)
    np.testing.assert_array_equal(store.split_rows("image", "eval"), [0, 4, 8])
    np.testing.assert_array_equal(store.split_rows("text", "eval"), [0, 1, 8, 9, 16, 17])
    assert list(store.optional("text_caption")) == raw.texts
    assert list(store.optional("image_source")) == raw.media.paths
    np.testing.assert_array_equal(store.optional("label"), np.arange(11) % 3)
    prompts = store.optional("class_prompts")
    assert prompts.shape == (3, 2, DIM)
    direct = torch.nn.functional.normalize(encoder.encode_text(["a drawing of a dog."]), dim=-1)
    np.testing.assert_allclose(prompts[1, 1], direct.numpy()[0], atol=1e-6)
    attrs = store.attrs
    assert attrs["complete"] and attrs["normalised"] and attrs["modalities"] == ["image", "text"]
    assert attrs["skipped_total"] == 0 and attrs["class_names"] == ["cat", "dog", "bird"]
    assert "progress" not in attrs and "fingerprint" not in attrs
    assert not (tmp_path / "store.zarr.partial").exists()
    assert not (path / "progress.json").exists()


def test_undecodable_items_are_skipped_counted_and_their_pairs_dropped(tmp_path):
    raw = _raw(tmp_path, corrupt=(2, 9))
    path = tmp_path / "store.zarr"
    embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {})
    store = EmbeddingStore(path)
    assert store.array("image").shape[0] == 9
    assert store.array("text").shape[0] == 18  # the captions of the two bad images go too
    kept = [i for i in range(11) if i not in (2, 9)]
    assert list(store.optional("image_source")) == [raw.media.paths[i] for i in kept]
    captions = list(store.optional("text_caption"))
    assert "second caption 2" not in captions and "second caption 3" in captions
    # Pairs still join each image with its own captions after the rows moved.
    pairs = store.pairs
    assert len(pairs) == 18
    for media_row, text_row in pairs:
        assert captions[text_row].endswith(str(kept[media_row])) or kept[media_row] < 2
    np.testing.assert_array_equal(store.optional("label"), np.array(kept) % 3)
    np.testing.assert_array_equal(store.split_rows("image", "eval"), [0, 3, 7])  # items 0, 4, 8
    skipped = store.attrs["skipped"]
    assert store.attrs["skipped_total"] == 6  # 2 images and their 4 captions
    assert skipped["cannot identify image file"]["count"] == 2
    assert skipped["cannot identify image file"]["examples"] == [
        raw.media.paths[2],
        raw.media.paths[9],
    ]
    captions = skipped["caption of an undecodable image"]
    assert captions["count"] == 4
    assert captions["examples"][1] == "text row 5: second caption 2"


def _val_sources(store: EmbeddingStore) -> list[str]:
    return list(store.optional("image_source")[store.split_rows("image", "val")])


def test_val_is_carved_from_train_images_and_their_captions_follow(tmp_path):
    val = ValSplit(fraction=0.25, seed=1)
    raw = _raw(tmp_path)
    path = tmp_path / "store.zarr"
    embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {}, val=val)
    store = EmbeddingStore(path)
    val_images = store.split_rows("image", "val")
    assert len(val_images) == 2  # a quarter of the 8 train images
    np.testing.assert_array_equal(store.split_rows("image", "eval"), [0, 4, 8])  # as released
    assert not set(val_images) & {0, 4, 8}
    # Both captions of each val image are in val, and no other caption is.
    val_texts = {text for image, text in store.pairs if image in set(val_images)}
    assert set(store.split_rows("text", "val")) == val_texts and len(val_texts) == 4
    assert store.attrs["val_fraction"] == 0.25 and store.attrs["val_seed"] == 1
    # An undecodable train item leaves the other items' val membership as it was.
    carved = val.carve(raw.media_split)
    bad = int(np.flatnonzero(carved == SPLITS.index("train"))[0])
    (tmp_path / "bad").mkdir()
    with_bad = tmp_path / "bad" / "store.zarr"
    embed_dataset(
        _raw(tmp_path / "bad", corrupt=(bad,)), ThumbnailEncoder(), with_bad, SETTINGS, {}, val=val
    )
    names = [Path(source).name for source in _val_sources(store)]
    assert [Path(source).name for source in _val_sources(EmbeddingStore(with_bad))] == names


def test_adapter_skips_are_reported_with_decode_failures(tmp_path):
    raw = _raw(tmp_path, corrupt=(3,))
    raw.skipped.add("image file missing", "/data/missing.jpg")
    path = tmp_path / "store.zarr"
    embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {})
    skipped = EmbeddingStore(path).attrs["skipped"]
    assert skipped["image file missing"] == {"count": 1, "examples": ["/data/missing.jpg"]}
    assert EmbeddingStore(path).attrs["skipped_total"] == 4  # and the bad image's 2 captions


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_after", [1, 3, 6])
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, monkeypatch, kill_after):
    # 13 images in 4 blocks of 4, then 25 distinct captions in 7 blocks: kills after 1 and 3
    # blocks stop the image stage, a kill after 6 the caption stage.
    raw = _raw(tmp_path, n=13, corrupt=(6,))
    whole = tmp_path / "whole.zarr"
    embed_dataset(raw, ThumbnailEncoder(), whole, SETTINGS, {})

    marks = {"n": 0}
    real_mark = embedding._PartialStore.mark_block

    def dying_mark(self, *args):
        if marks["n"] == kill_after:
            raise Killed
        marks["n"] += 1
        real_mark(self, *args)

    monkeypatch.setattr(embedding._PartialStore, "mark_block", dying_mark)
    resumed = tmp_path / "resumed.zarr"
    with pytest.raises(Killed):
        embed_dataset(raw, ThumbnailEncoder(), resumed, SETTINGS, {})
    monkeypatch.undo()
    assert not resumed.exists()
    state = json.loads((tmp_path / "resumed.zarr.partial" / "progress.json").read_text())
    assert state["progress"]["image"] == min(kill_after, 4)

    encoder = ThumbnailEncoder()
    forwarded = []
    real_encode = encoder.encode_media
    encoder.encode_media = lambda batch: forwarded.append(len(batch)) or real_encode(batch)
    embed_dataset(raw, encoder, resumed, SETTINGS, {})
    # Only the blocks not done are embedded again (item 6, in block 1, is undecodable).
    remaining = [i for i in range(4 * min(kill_after, 4), 13) if i != 6]
    assert sum(forwarded) == len(remaining)
    assert_same_arrays(whole, resumed)
    assert EmbeddingStore(resumed).attrs["skipped"] == EmbeddingStore(whole).attrs["skipped"]


def test_partial_store_of_other_settings_is_discarded(tmp_path, monkeypatch):
    raw = _raw(tmp_path)
    path = tmp_path / "store.zarr"
    _killed_at_the_first_block(raw, path, monkeypatch)
    other = EmbedSettings(batch_size=2, text_batch_size=4, num_workers=0, write_rows=4)
    embed_dataset(raw, ThumbnailEncoder(), path, other, {})
    reference = tmp_path / "reference.zarr"
    embed_dataset(raw, ThumbnailEncoder(), reference, other, {})
    np.testing.assert_array_equal(
        EmbeddingStore(path).rows("image"), EmbeddingStore(reference).rows("image")
    )


def test_dataloader_workers_give_the_same_store(tmp_path):
    raw = _raw(tmp_path, corrupt=(4,))
    serial, parallel = tmp_path / "serial.zarr", tmp_path / "parallel.zarr"
    embed_dataset(raw, ThumbnailEncoder(), serial, SETTINGS, {})
    workers = EmbedSettings(batch_size=3, text_batch_size=4, num_workers=2, write_rows=4)
    embed_dataset(raw, ThumbnailEncoder(), parallel, workers, {})
    assert_same_arrays(serial, parallel)


def test_block_batches_never_straddle_a_block():
    batches = embedding._block_batches(4, 15, block=4, batch=3)
    assert batches == [[4, 5, 6], [7], [8, 9, 10], [11], [12, 13, 14]]


def test_precision_needs_cuda_for_half_types():
    with pytest.raises(ValueError, match="needs CUDA"):
        EmbedSettings(precision="bf16").resolved_precision(torch.device("cpu"))
    assert EmbedSettings().resolved_precision(torch.device("cpu")) == "fp32"


def test_a_file_gone_since_the_layout_was_read_is_skipped(tmp_path):
    raw = _raw(tmp_path)
    Path(raw.media.paths[7]).unlink()
    path = tmp_path / "store.zarr"
    embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {})
    skipped = EmbeddingStore(path).attrs["skipped"]
    assert skipped["unreadable file (FileNotFoundError)"]["examples"] == [raw.media.paths[7]]
    assert EmbeddingStore(path).array("image").shape[0] == 10


def test_a_corrupt_progress_file_restarts_cleanly(tmp_path, monkeypatch):
    raw = _raw(tmp_path)
    path = tmp_path / "store.zarr"
    _killed_at_the_first_block(raw, path, monkeypatch)
    (tmp_path / "store.zarr.partial" / "progress.json").write_text('{"fingerpr')
    embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {})
    reference = tmp_path / "reference.zarr"
    embed_dataset(raw, ThumbnailEncoder(), reference, SETTINGS, {})
    assert_same_arrays(path, reference)


def test_no_usable_pair_is_an_error_naming_the_root(tmp_path):
    raw = _raw(tmp_path, n=3, corrupt=(0, 1, 2))
    path = tmp_path / "store.zarr"
    with pytest.raises(InputFileError, match=r"no usable image–text pairs \(skipped: 3 cannot"):
        embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {})
    assert not path.exists()
    empty = _raw(tmp_path, n=2)
    empty.pairs = empty.pairs[:0]
    with pytest.raises(InputFileError, match=str(tmp_path)):
        embed_dataset(empty, ThumbnailEncoder(), path, SETTINGS, {})


def test_build_store_embeds_a_raw_source_with_its_model(tmp_path, monkeypatch):
    from vlmsae import models
    from vlmsae.errors import ConfigError
    from vlmsae.fixtures.image_datasets import write_coco
    from vlmsae.stores.build import build_store

    monkeypatch.setattr(models, "load", lambda spec, device: ThumbnailEncoder())
    section = {**write_coco(tmp_path / "coco"), "max_items": 8}
    spec = {"source": "coco", "coco": section, "val_fraction": 0.25}
    embed = {"batch_size": 3, "num_workers": 0, "write_rows": 4, "device": "cpu"}
    path = build_store("d", "clip-vit-b-32", spec, tmp_path / "store.zarr", embed=embed)
    store = EmbeddingStore(path)
    assert (store.attrs["dataset"], store.attrs["model"], store.attrs["source"]) == (
        "d",
        "clip-vit-b-32",
        "coco",
    )
    assert len(store.rows("image")) == 8 and len(store.rows("text")) == 8 * 5
    assert store.attrs["val_fraction"] == 0.25 and len(store.split_rows("image", "val")) > 0
    with pytest.raises(ConfigError, match="'datasets.d.models': 'clap' embeds audio but coco"):
        build_store("d", "clap", spec, tmp_path / "other.zarr", embed=embed)


# A child process builds the store of `_raw(data, n=13, corrupt=(6,))` and is killed at a fault
# point (vlmsae.faults): os._exit, so nothing of the process's own clean-up runs.
KILLED_BUILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_embedding import SETTINGS, ThumbnailEncoder, _raw
from vlmsae.embedding import embed_dataset
raw = _raw(Path({data!r}), n=13, corrupt=(6,))
embed_dataset(raw, ThumbnailEncoder(), {path!r}, SETTINGS, {{}})
"""


def _build_killed_at(point: str, data: Path, path: Path) -> int:
    code = KILLED_BUILD.format(tests=str(Path(__file__).parent), data=str(data), path=str(path))
    package_root = str(Path(vlmsae.__file__).resolve().parents[1])
    env = {
        **os.environ,
        FAULT_VARIABLE: point,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode


@pytest.fixture(scope="module")
def whole_and_older(tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted build of the 13-image dataset, and a store of other data (5 images)."""
    folder = tmp_path_factory.mktemp("reference")
    whole, older = folder / "whole.zarr", folder / "older.zarr"
    (folder / "data").mkdir()
    embed_dataset(
        _raw(folder / "data", n=13, corrupt=(6,)), ThumbnailEncoder(), whole, SETTINGS, {}
    )
    (folder / "other").mkdir()
    embed_dataset(_raw(folder / "other", n=5), ThumbnailEncoder(), older, SETTINGS, {})
    return whole, older


KILLS = [(point, True) for point in embedding.FINALISE_POINTS] + [
    ("remove:moved-aside", False),  # with no older store, the first removal is the partial's
    ("remove:half-deleted", False),
]


@pytest.mark.parametrize(("point", "replaces_older"), KILLS)
def test_a_kill_at_any_finalisation_point_then_a_rerun_equals_an_uninterrupted_run(
    tmp_path, whole_and_older, point, replaces_older
):
    whole, older = whole_and_older
    data, path = tmp_path / "data", tmp_path / "store.zarr"
    data.mkdir()
    if replaces_older:
        shutil.copytree(older, path)
    assert _build_killed_at(point, data, path) == FAULT_EXIT
    # Whatever the kill left under the store's name is a whole store, old or new.
    if path.exists():
        EmbeddingStore(path).verify()
    embed_dataset(_raw(data, n=13, corrupt=(6,)), ThumbnailEncoder(), path, SETTINGS, {})
    assert_same_arrays(whole, path)
    EmbeddingStore(path).verify()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "store.zarr"]


def _killed_after_every_block(raw, path) -> None:
    """Build `path` and die just before finalisation: every block done."""
    real = embedding._finalise

    def dying(*args, **kwargs):
        raise Killed

    embedding._finalise = dying
    try:
        with pytest.raises(Killed):
            embed_dataset(raw, ThumbnailEncoder(), path, SETTINGS, {})
    finally:
        embedding._finalise = real


@pytest.mark.parametrize("damage", ["chunk deleted", "chunk garbled", "flags deleted"])
def test_damaged_blocks_of_a_partial_store_are_embedded_again_never_read_as_zeros(
    tmp_path, whole_and_older, damage
):
    raw = _raw(tmp_path, n=13, corrupt=(6,))
    path = tmp_path / "store.zarr"
    _killed_after_every_block(raw, path)
    partial = tmp_path / "store.zarr.partial"
    if damage == "chunk deleted":
        (partial / "image" / "c" / "1" / "0").unlink()
    elif damage == "chunk garbled":
        chunk = partial / "_text_unique" / "c" / "2" / "0"
        chunk.write_bytes(chunk.read_bytes()[:-5])
    else:
        shutil.rmtree(partial / "_ok_image")
    encoder = ThumbnailEncoder()
    forwarded = []
    real_encode = encoder.encode_media
    encoder.encode_media = lambda batch: forwarded.append(len(batch)) or real_encode(batch)
    embed_dataset(raw, encoder, path, SETTINGS, {})
    assert_same_arrays(whole_and_older[0], path)
    whole_skipped = EmbeddingStore(whole_and_older[0]).attrs["skipped"]
    counts = {reason: entry["count"] for reason, entry in whole_skipped.items()}
    skipped = EmbeddingStore(path).attrs["skipped"]
    assert {reason: entry["count"] for reason, entry in skipped.items()} == counts
    # Only what the damage reached is embedded again: images from block 1 on, or every image.
    expected = {"chunk deleted": 8, "chunk garbled": 0, "flags deleted": 12}[damage]
    assert sum(forwarded) == expected
