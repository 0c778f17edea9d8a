import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import vlmsae
from vlmsae.errors import InputFileError
from vlmsae.faults import FAULT_EXIT, FAULT_VARIABLE
from vlmsae.stores.embedding_store import (
    SPLITS,
    EmbeddingStore,
    SparseCodes,
    TrueStructure,
    ValSplit,
    assign_pair_splits,
    write_store,
)


def _arrays(n=10, d=4, seed=0):
    rng = np.random.default_rng(seed)
    image, text = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    split = (np.arange(n) % 5 == 0).astype(np.int8)
    return {
        "image": image,
        "text": text,
        "pairs": np.stack([np.arange(n)] * 2, axis=1),
        "image_split": split,
        "text_split": split,
    }


def test_round_trip(tmp_path):
    arrays = _arrays()
    truth = TrueStructure(
        dictionary=np.eye(4, dtype=np.float32),
        atom_kind=np.array(["bimodal", "bimodal", "image", "text"]),
        atom_concept=np.arange(4),
        codes={
            "image": SparseCodes(np.zeros((10, 1), np.int32), np.ones((10, 1), np.float32)),
            "text": SparseCodes(np.ones((10, 1), np.int32), np.ones((10, 1), np.float32)),
        },
    )
    write_store(
        tmp_path / "s.zarr", **arrays, attrs={"dataset": "x"}, truth=truth, label=np.arange(10)
    )
    store = EmbeddingStore(tmp_path / "s.zarr")
    np.testing.assert_allclose(store.rows("image"), arrays["image"].astype(np.float32))
    np.testing.assert_allclose(
        store.rows("text", np.array([3, 1])), arrays["text"][[3, 1]], rtol=1e-6
    )
    assert store.dim == 4 and store.attrs["dataset"] == "x" and store.attrs["complete"] is True
    np.testing.assert_array_equal(store.split_rows("image", "eval"), [0, 5])
    np.testing.assert_array_equal(store.split_pairs("eval"), [[0, 0], [5, 5]])
    np.testing.assert_array_equal(store.root["label"][...], np.arange(10))
    loaded = store.truth()
    assert list(loaded.atom_kind) == ["bimodal", "bimodal", "image", "text"]
    np.testing.assert_array_equal(loaded.codes["text"].to_csr(4).toarray()[:, 1], 1.0)
    assert store.attrs["splits"] == list(SPLITS)
    assert "zarr" in store.attrs["package_versions"]


@pytest.mark.parametrize(
    "index",
    [[0, 2, 5, 9], [9, 0, 5, 2], [5, 5, 0, 5], list(range(10)), [3]],
    ids=["ascending", "shuffled", "repeated", "every row", "one row"],
)
def test_rows_come_in_the_order_asked_repeats_included(tmp_path, index):
    arrays = _arrays()
    write_store(tmp_path / "s.zarr", **arrays, attrs={"dataset": "x"})
    store = EmbeddingStore(tmp_path / "s.zarr")
    np.testing.assert_array_equal(
        store.rows("image", np.array(index)), arrays["image"].astype(np.float32)[index]
    )


def test_incomplete_store_is_refused(tmp_path):
    write_store(tmp_path / "s.zarr", **_arrays(), attrs={})
    group = zarr.open_group(tmp_path / "s.zarr", mode="r+")
    group.attrs["complete"] = False
    with pytest.raises(InputFileError, match="incomplete"):
        EmbeddingStore(tmp_path / "s.zarr")


def test_missing_store_names_the_path(tmp_path):
    with pytest.raises(InputFileError, match="nope.zarr: embedding store not found"):
        EmbeddingStore(tmp_path / "nope.zarr")


def test_interrupted_write_leaves_no_store(tmp_path, monkeypatch):
    import vlmsae.stores.embedding_store as store_module

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "package_versions", fail)
    with pytest.raises(KeyboardInterrupt):
        write_store(tmp_path / "s.zarr", **_arrays(), attrs={})
    assert not (tmp_path / "s.zarr").exists()
    # A later write replaces the partial folder and succeeds.
    monkeypatch.undo()
    write_store(tmp_path / "s.zarr", **_arrays(), attrs={})
    assert EmbeddingStore(tmp_path / "s.zarr").attrs["complete"]
    assert not (tmp_path / "s.zarr.partial").exists()


def _pair_sets(store: EmbeddingStore) -> dict[str, set[tuple[int, int]]]:
    return {split: {tuple(pair) for pair in store.split_pairs(split)} for split in SPLITS}


def test_tiny_synthetic_store_has_three_disjoint_splits_covering_every_pair(tiny_store):
    by_split = _pair_sets(tiny_store)
    sizes = {split: len(pairs) for split, pairs in by_split.items()}
    assert sum(sizes.values()) == len(tiny_store.pairs) == len(set().union(*by_split.values()))
    val_fraction = tiny_store.attrs["val_fraction"]
    assert sizes["val"] == pytest.approx(val_fraction * (sizes["train"] + sizes["val"]), abs=1)
    assert sizes["eval"] == pytest.approx(0.2 * len(tiny_store.pairs), abs=1)
    # Text rows carry the split of their image.
    for split in SPLITS:
        texts = tiny_store.split_pairs(split)[:, 1]
        assert set(tiny_store.split_rows("text", split)) == set(texts)


def _captioned(n_images=200, captions=5, seed=0):
    """Arrays of a store whose every image has `captions` text rows, a seeded 20 % eval."""
    rng = np.random.default_rng(seed)
    image_split = assign_pair_splits(n_images, 0.2, seed)
    pairs = np.stack(
        [np.repeat(np.arange(n_images), captions), np.arange(n_images * captions)], axis=1
    )
    return {
        "image": rng.standard_normal((n_images, 4)),
        "text": rng.standard_normal((n_images * captions, 4)),
        "pairs": pairs,
        "image_split": image_split,
        "text_split": image_split[pairs[:, 0]],
    }


def test_val_is_carved_from_train_items_with_their_captions_and_reproducibly(tmp_path):
    arrays = _captioned()
    val = ValSplit(fraction=0.25, seed=3)
    for name in ("a", "b"):
        write_store(tmp_path / f"{name}.zarr", **arrays, attrs={}, val=val)
    store = EmbeddingStore(tmp_path / "a.zarr")
    image_split = store.root["image_split"][...]
    # Eval is untouched; val takes a quarter of the train images.
    np.testing.assert_array_equal(image_split == SPLITS.index("eval"), arrays["image_split"] == 1)
    n_train_before = int((arrays["image_split"] == 0).sum())
    assert len(store.split_rows("image", "val")) == round(0.25 * n_train_before)
    # Every caption of a val image is in val, and only those.
    val_images = set(store.split_rows("image", "val"))
    val_texts = {text for image, text in store.pairs if image in val_images}
    assert set(store.split_rows("text", "val")) == val_texts
    assert len(val_texts) == 5 * len(val_images)
    assert store.attrs["val_fraction"] == 0.25 and store.attrs["val_seed"] == 3
    # The same items and seed give the same val rows; another seed other ones.
    again = EmbeddingStore(tmp_path / "b.zarr")
    np.testing.assert_array_equal(again.root["image_split"][...], image_split)
    other = ValSplit(fraction=0.25, seed=4).carve(arrays["image_split"])
    assert not np.array_equal(other, image_split)


def test_val_split_of_a_dataset_entry():
    synthetic = {"source": "synthetic", "synthetic": {"seed": 7}}
    assert ValSplit.of_dataset(synthetic) == ValSplit(0.1, 7)
    spec = {"source": "precomputed", "val_fraction": 0.3, "precomputed": {"split_seed": 2}}
    assert ValSplit.of_dataset(spec) == ValSplit(0.3, 2)
    assert ValSplit.of_dataset({"source": "coco", "coco": {"root": "/data"}}) == ValSplit(0.1, 0)
    with pytest.raises(ValueError, match="val_fraction"):
        ValSplit(fraction=0.0)


def test_a_store_without_val_is_refused_by_name(tmp_path):
    write_store(tmp_path / "s.zarr", **_arrays(), attrs={})
    group = zarr.open_group(tmp_path / "s.zarr", mode="r+")
    group.attrs["splits"] = ["train", "eval"]  # as written before val existed
    store = EmbeddingStore(tmp_path / "s.zarr")
    assert len(store.split_pairs("eval")) == 2
    with pytest.raises(InputFileError, match="no 'val' split"):
        store.split_pairs("val")


# A child process replaces the store at `path` (seed 1's arrays over seed 0's) and is killed at a
# fault point (vlmsae.faults).
KILLED_WRITE = """
import sys
sys.path.insert(0, {tests!r})
from test_store import _arrays
from vlmsae.stores.embedding_store import write_store
write_store({path!r}, **_arrays(seed=1), attrs={{}})
"""


@pytest.mark.parametrize(
    "point", ["publish:old-moved-aside", "publish:renamed", "remove:half-deleted"]
)
def test_a_kill_while_a_store_is_replaced_leaves_a_whole_store(tmp_path, point):
    path = tmp_path / "s.zarr"
    write_store(path, **_arrays(seed=0), attrs={})
    code = KILLED_WRITE.format(tests=str(Path(__file__).parent), path=str(path))
    package_root = str(Path(vlmsae.__file__).resolve().parents[1])
    env = {**os.environ, FAULT_VARIABLE: point, "PYTHONPATH": package_root}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == FAULT_EXIT
    if path.exists():  # the old store or the new one, never a part of either
        EmbeddingStore(path).verify()
    write_store(path, **_arrays(seed=1), attrs={})
    rows = EmbeddingStore(path, verify=True).rows("image")
    expected = _arrays(seed=1)["image"]
    np.testing.assert_allclose(rows, expected, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
