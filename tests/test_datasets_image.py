"""Image–text dataset adapters on fixtures written in the datasets' real layouts.

Expected values are derived from the files the fixtures wrote (json, tars, pickles, csv), read
here independently of the adapters.
"""

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlmsae.datasets import read_raw, source_settings
from vlmsae.datasets.celeba import phrase
from vlmsae.datasets.raw import RawDataset, first_rows
from vlmsae.errors import ConfigError, InputFileError
from vlmsae.fixtures import image_datasets as fx
from vlmsae.stores.embedding_store import SPLITS

TRAIN, EVAL = SPLITS.index("train"), SPLITS.index("eval")


def read(source: str, section: dict) -> RawDataset:
    """The RawDataset of a config section, read as the embed stage reads it."""
    return read_raw(source, source_settings(source, section, f"datasets.test.{source}"))


def image_at(raw, row: int) -> Image.Image:
    item = raw.media.read(row)
    image = item if isinstance(item, Image.Image) else Image.open(io.BytesIO(item))
    image.load()
    return image


def texts_of(raw, row: int) -> list[str]:
    return [raw.texts[t] for m, t in raw.pairs if m == row]


def media_names(raw) -> list[str]:
    return [Path(raw.media.describe(i)).name for i in range(len(raw.media))]


@pytest.fixture(scope="module")
def all_datasets(tmp_path_factory) -> dict[str, dict]:
    return fx.write_all(tmp_path_factory.mktemp("image_datasets"))


@pytest.mark.parametrize(
    "source", ["coco", "cc3m", "laion", "cifar10", "cifar100", "imagenet", "celeba", "fashioniq"]
)
def test_every_source_reads_pairs_that_decode(all_datasets, source):
    raw = read(source, all_datasets[source])
    assert raw.modality == "image" and raw.skipped.total == 0
    assert 8 <= len(raw.media) <= 30
    # Every text row is paired with exactly one media row.
    assert sorted(raw.pairs[:, 1].tolist()) == list(range(len(raw.texts)))
    assert set(np.unique(raw.media_split)) == {TRAIN, EVAL}
    sizes = {image_at(raw, i).size for i in range(len(raw.media))}
    assert all(w > 0 and h > 0 for w, h in sizes)
    json.dumps(raw.attrs)
    assert "root" in raw.attrs and "split_source" in raw.attrs


@pytest.mark.parametrize("source", ["coco", "cc3m", "cifar10", "celeba", "fashioniq"])
def test_max_items_keeps_the_first_items_of_each_split(all_datasets, source):
    full = read(source, all_datasets[source])
    cut = read(source, {**all_datasets[source], "max_items": 5})
    assert len(cut.media) == 5 and cut.attrs["max_items"] == 5
    assert set(cut.media_split.tolist()) == {TRAIN, EVAL}
    rows = []
    for code in (TRAIN, EVAL):
        in_split = np.flatnonzero(full.media_split == code)
        rows += in_split[: (cut.media_split == code).sum()].tolist()
    rows.sort()
    for cut_row, full_row in enumerate(rows):
        assert np.array_equal(
            np.asarray(image_at(cut, cut_row)), np.asarray(image_at(full, full_row))
        )
        assert cut.media_split[cut_row] == full.media_split[full_row]
        assert texts_of(cut, cut_row) == texts_of(full, full_row)
    if full.triplets is not None:
        kept = {full_row: cut_row for cut_row, full_row in enumerate(rows)}
        expected = {
            (kept[r], full.texts[t], kept[g])
            for r, t, g in full.triplets
            if r in kept and g in kept
        }
        assert {(r, cut.texts[t], g) for r, t, g in cut.triplets} == expected


def test_first_rows_takes_a_prefix_of_each_split_in_proportion():
    split = np.array([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    rows = first_rows(split, 6)
    assert len(rows) == 6 and list(rows) == sorted(rows)
    for code in (0, 1):
        in_split = np.flatnonzero(split == code)
        kept = rows[split[rows] == code]
        assert list(kept) == list(in_split[: len(kept)])
    assert (split[rows] == 1).sum() == 1  # 3 of 20 items are eval: 6 × 3/20 rounds to 1


# COCO


def coco_expected(root: Path, year: int = 2017) -> list[tuple[str, int, list[str]]]:
    expected = []
    for name, code in (("train", TRAIN), ("val", EVAL)):
        document = json.loads((root / "annotations" / f"captions_{name}{year}.json").read_text())
        annotations = sorted(document["annotations"], key=lambda a: a["id"])
        for image in sorted(document["images"], key=lambda image: image["file_name"]):
            captions = [a["caption"] for a in annotations if a["image_id"] == image["id"]]
            expected.append((str(root / f"{name}{year}" / image["file_name"]), code, captions))
    return expected


def test_coco_keeps_every_caption_with_its_image_and_the_dataset_split(tmp_path):
    raw = read("coco", fx.write_coco(tmp_path, year=2014))
    expected = coco_expected(tmp_path, 2014)
    assert [raw.media.describe(i) for i in range(len(raw.media))] == [e[0] for e in expected]
    assert raw.media_split.tolist() == [e[1] for e in expected]
    assert [texts_of(raw, i) for i in range(len(raw.media))] == [e[2] for e in expected]
    assert len(raw.texts) == 12 * 5
    assert raw.media.read(3) == Path(expected[3][0]).read_bytes()
    assert raw.attrs["split_source"] == "train2014→train, val2014→eval"


def test_coco_reads_only_the_chosen_splits(tmp_path):
    raw = read("coco", {**fx.write_coco(tmp_path), "splits": ["val"]})
    assert len(raw.media) == 4 and set(raw.media_split.tolist()) == {EVAL}


def test_coco_skips_and_counts_a_missing_image_and_its_captions(tmp_path):
    raw = read("coco", fx.write_coco(tmp_path, missing_image=True))
    listed = coco_expected(tmp_path)
    missing = [e for e in listed if not Path(e[0]).exists()]
    assert len(missing) == 1
    assert raw.skipped.counts["image file missing"] == 1
    assert raw.skipped.examples["image file missing"] == [missing[0][0]]
    assert raw.skipped.counts["caption of a missing image"] == len(missing[0][2]) == 5
    assert len(raw.media) == 11 and len(raw.texts) == 55
    assert not set(missing[0][2]) & set(raw.texts)


@pytest.mark.parametrize("case", ["only val read", "every train image missing"])
def test_coco_without_train_pairs_is_refused_before_embedding(tmp_path, monkeypatch, case):
    """A store needs MIN_SPLIT_PAIRS train and eval pairs: one that has none is refused before
    the model loads, not built for training to fail on."""
    from test_embedding import ThumbnailEncoder

    from vlmsae import models
    from vlmsae.stores.build import build_store

    monkeypatch.setattr(models, "load", lambda spec, device: ThumbnailEncoder())
    section = fx.write_coco(tmp_path / "coco", n_train=3, n_val=2, captions_per_image=1)
    if case == "only val read":
        section["splits"] = ["val"]
    else:
        for image in (tmp_path / "coco" / "train2017").iterdir():
            image.unlink()
    spec = {"source": "coco", "coco": section}
    embed = {"batch_size": 2, "num_workers": 0, "device": "cpu"}
    path = tmp_path / "store.zarr"
    with pytest.raises(InputFileError, match=r"dataset 'd' has 0 train pairs") as error:
        build_store("d", "clip-vit-b-32", spec, path, embed=embed)
    message = str(error.value)
    assert "\n" not in message and "datasets.d.coco" in message and "fix:" in message
    assert not path.exists() and not path.with_name("store.zarr.partial").exists()


def test_coco_names_a_missing_or_broken_annotation_file(tmp_path):
    options = fx.write_coco(tmp_path)
    annotation = tmp_path / "annotations" / "captions_val2017.json"
    annotation.write_text(annotation.read_text()[:500])
    with pytest.raises(InputFileError, match="not a COCO caption file") as error:
        read("coco", options)
    assert error.value.path == str(annotation)
    annotation.unlink()
    with pytest.raises(InputFileError, match="captions_val2017.json") as error:
        read("coco", options)
    assert error.value.path == str(annotation)


# CC3M and LAION


def shard_samples(shard: Path) -> list[tuple[str, bytes, str]]:
    with tarfile.open(shard) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    keys = sorted({name.split(".")[0] for name in members})
    return [(key, members.get(f"{key}.jpg"), members.get(f"{key}.txt")) for key in keys]


def test_cc3m_webdataset_pairs_each_image_with_its_caption(tmp_path):
    raw = read("cc3m", fx.write_cc3m(tmp_path))
    expected = [
        (image, caption.decode(), code)
        for folder, code in (("train", TRAIN), ("val", EVAL))
        for shard in sorted((tmp_path / folder).glob("*.tar"))
        for _, image, caption in shard_samples(shard)
    ]
    assert [raw.media.read(i) for i in range(len(raw.media))] == [e[0] for e in expected]
    assert [texts_of(raw, i) for i in range(len(raw.media))] == [[e[1]] for e in expected]
    assert raw.media_split.tolist() == [e[2] for e in expected]
    assert raw.attrs["split_source"] == "train/*.tar→train, val/*.tar→eval"


def test_cc3m_webdataset_skips_samples_without_caption_or_image(tmp_path):
    raw = read("cc3m", fx.write_cc3m(tmp_path, missing_caption=True, missing_image=True))
    shard = tmp_path / "train" / "00000.tar"
    incomplete = {key: (image, caption) for key, image, caption in shard_samples(shard)}
    no_caption = [k for k, (image, caption) in incomplete.items() if caption is None]
    no_image = [k for k, (image, caption) in incomplete.items() if image is None]
    assert raw.skipped.examples["sample without a caption"] == [f"{shard}:{no_caption[0]}"]
    assert raw.skipped.examples["sample without an image"] == [f"{shard}:{no_image[0]}"]
    assert len(raw.media) == len(raw.texts) == 14 - 2


def test_cc3m_tsv_reads_open_clip_csv_files(tmp_path):
    options = fx.write_cc3m(tmp_path, layout="tsv", missing_image=True)
    raw = read("cc3m", options)
    expected = []
    for name, code in (("cc3m_train.tsv", TRAIN), ("cc3m_val.tsv", EVAL)):
        table = pd.read_csv(tmp_path / name, sep="\t")
        for path, title in sorted(zip(table["filepath"], table["title"], strict=True)):
            expected.append((str(tmp_path / path), title, code))
    missing = [e for e in expected if not Path(e[0]).exists()]
    kept = [e for e in expected if Path(e[0]).exists()]
    assert raw.skipped.examples["image file missing"] == [missing[0][0]]
    assert [raw.media.describe(i) for i in range(len(raw.media))] == [e[0] for e in kept]
    assert [texts_of(raw, i) for i in range(len(raw.media))] == [[e[1]] for e in kept]
    assert raw.media_split.tolist() == [e[2] for e in kept]


def test_cc3m_tsv_errors_name_the_file(tmp_path):
    options = fx.write_cc3m(tmp_path, layout="tsv")
    with pytest.raises(InputFileError, match="no column 'caption'") as error:
        read("cc3m", {**options, "caption_key": "caption"})
    assert error.value.path == str(tmp_path / "cc3m_train.tsv")
    (tmp_path / "cc3m_val.tsv").unlink()
    with pytest.raises(InputFileError) as error:
        read("cc3m", options)
    assert error.value.path == str(tmp_path / "cc3m_val.tsv")
    with pytest.raises(ConfigError, match="format"):
        read("cc3m", {**options, "train": "cc3m_train.txt", "eval": None})


def test_laion_webdataset_split_is_random_and_seeded(tmp_path):
    options = fx.write_laion(tmp_path)
    raw = read("laion", options)
    # img2dataset's metadata parquet files beside the shards are not items.
    assert len(raw.media) == 16 and raw.attrs["layout"] == "webdataset"
    assert (raw.media_split == EVAL).sum() == round(0.2 * 16)
    assert raw.attrs["split_source"] == "random eval_fraction=0.2 seed=0"
    again, other = read("laion", options), read("laion", {**options, "seed": 1})
    assert np.array_equal(raw.media_split, again.media_split)
    assert not np.array_equal(raw.media_split, other.media_split)
    with pytest.raises(InputFileError, match="no file matches"):
        read("laion", {**options, "train": "shards/*.tar"})


@pytest.mark.parametrize("image_column, caption_column", [("jpg", "caption"), ("image", "TEXT")])
def test_laion_parquet_reads_image_bytes_lazily(tmp_path, image_column, caption_column):
    options = fx.write_laion(
        tmp_path, layout="parquet", image_column=image_column, caption_column=caption_column
    )
    raw = read("laion", {**options, "eval": None})
    table = pq.read_table(sorted(tmp_path.glob("*.parquet"))[1])
    column = table.column(image_column).to_pylist()
    expected = [(v["bytes"] if isinstance(v, dict) else v) for v in column]
    # The second file's rows follow the first file's 8; read across row groups, backwards.
    assert [raw.media.read(i) for i in range(15, 7, -1)] == expected[::-1]
    assert [texts_of(raw, i)[0] for i in range(8, 16)] == table.column(caption_column).to_pylist()
    copy = pickle.loads(pickle.dumps(raw.media))
    assert copy._cached is None and copy.read(8) == expected[0]


def test_laion_parquet_skips_rows_without_image_and_names_bad_columns(tmp_path):
    options = fx.write_laion(tmp_path, layout="parquet", null_image=True)
    raw = read("laion", options)
    assert raw.skipped.examples["row without image bytes"] == [
        f"{tmp_path / '00000.parquet'}: row group 0, row 1"
    ]
    assert len(raw.media) == 15
    with pytest.raises(InputFileError, match="no column 'TEXT'") as error:
        read("laion", {**options, "caption_column": "TEXT"})
    assert error.value.path == str(tmp_path / "00000.parquet")


# CIFAR


def cifar_expected(folder: Path, batches, label_key: bytes):
    pixels, labels, split = [], [], []
    for name, code in batches:
        batch = pickle.loads((folder / name).read_bytes())
        pixels.append(batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels += batch[label_key]
        split += [code] * len(batch[label_key])
    return np.concatenate(pixels), labels, split


def test_cifar10_images_labels_and_class_prompts(tmp_path):
    raw = read("cifar10", fx.write_cifar10(tmp_path))
    folder = tmp_path / "cifar-10-batches-py"
    batches = [(f"data_batch_{i}", TRAIN) for i in range(1, 6)] + [("test_batch", EVAL)]
    pixels, labels, split = cifar_expected(folder, batches, b"labels")
    assert raw.label.tolist() == labels and raw.media_split.tolist() == split
    assert all(np.array_equal(np.asarray(image_at(raw, i)), pixels[i]) for i in range(len(labels)))
    assert raw.class_names == list(fx.CIFAR10_CLASSES) and raw.templates == ["a photo of a {}."]
    assert raw.texts == [f"a photo of a {fx.CIFAR10_CLASSES[label]}." for label in labels]


def test_cifar100_fine_and_coarse_labels(tmp_path):
    options = fx.write_cifar100(tmp_path)
    folder = tmp_path / "cifar-100-python"
    batches = [("train", TRAIN), ("test", EVAL)]
    for label in ("fine", "coarse"):
        raw = read("cifar100", {**options, "label": label})
        meta = pickle.loads((folder / "meta").read_bytes())
        names = [n.decode().replace("_", " ") for n in meta[f"{label}_label_names".encode()]]
        _, labels, split = cifar_expected(folder, batches, f"{label}_labels".encode())
        assert raw.class_names == names and raw.label.tolist() == labels
        assert raw.media_split.tolist() == split
        assert ("aquarium fish" if label == "fine" else "fruit and vegetables") in names


def test_class_prompt_templates_are_seeded_per_image(tmp_path):
    options = fx.write_cifar10(tmp_path, per_batch=4)
    templates = ["a blurry photo of a {}.", "a drawing of the {}."]
    raw = read("cifar10", {**options, "templates": templates})
    prompts = [[t.replace("{}", raw.class_names[c]) for t in templates] for c in raw.label]
    choice = [p.index(text) for p, text in zip(prompts, raw.texts, strict=True)]
    assert set(choice) == {0, 1} and raw.templates == templates
    same = read("cifar10", {**options, "templates": templates})
    other = read("cifar10", {**options, "templates": templates, "seed": 1})
    assert same.texts == raw.texts and other.texts != raw.texts
    simple = read("cifar10", {**options, "templates": "simple"})
    openai = read("cifar10", {**options, "templates": "openai"})
    assert len(simple.templates) == 7 and simple.templates[0] == "itap of a {}."
    assert len(openai.templates) == 80 and openai.templates[0] == "a bad photo of a {}."
    with pytest.raises(ConfigError, match="templates"):
        read("cifar10", {**options, "templates": ["a photo"]})


def test_cifar_names_a_missing_or_broken_batch(tmp_path):
    options = fx.write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(InputFileError, match="not a readable pickle") as error:
        read("cifar10", options)
    assert error.value.path == str(batch)
    batch.unlink()
    with pytest.raises(InputFileError, match="CIFAR pickle not found") as error:
        read("cifar10", options)
    assert error.value.path == str(batch)


# ImageNet


def imagenet_expected(root: Path, layout: str) -> dict[str, str]:
    """{image file name: wnid} from the fixture's files."""
    if layout == "folders":
        return {path.name: path.parent.name for path in (root / "val").glob("*/*.JPEG")}
    table = pd.read_csv(root / "LOC_val_solution.csv")
    return {
        f"{image}.JPEG": prediction.split()[0]
        for image, prediction in zip(table["ImageId"], table["PredictionString"], strict=True)
        if (root / "val" / f"{image}.JPEG").exists()
    }


@pytest.mark.parametrize("layout", ["folders", "flat"])
def test_imagenet_labels_follow_sorted_wnids(tmp_path, layout):
    raw = read(
        "imagenet", fx.write_imagenet(tmp_path, layout=layout, missing_image=layout == "flat")
    )
    expected = imagenet_expected(tmp_path, layout)
    wnids = sorted(set(expected.values()))
    names = sorted(expected)
    assert media_names(raw) == names
    assert raw.label.tolist() == [wnids.index(expected[name]) for name in names]
    assert raw.class_names == ["tench", "goldfish", "great white shark", "tiger shark"]
    assert raw.texts == [f"a photo of a {raw.class_names[c]}." for c in raw.label]
    assert (raw.media_split == EVAL).sum() == round(0.2 * len(names))
    if layout == "flat":
        missing = str(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
        assert raw.skipped.examples["image file missing"] == [missing]


def test_imagenet_wnids_path_sets_class_order_and_names(tmp_path):
    options = fx.write_imagenet(tmp_path)
    lines = fx.IMAGENET_SYNSETS[::-1]
    (tmp_path / "classes.txt").write_text("\n".join(lines))
    raw = read("imagenet", {**options, "wnids_path": "classes.txt"})
    expected = imagenet_expected(tmp_path, "folders")
    order = [line.split()[0] for line in lines]
    assert raw.label.tolist() == [order.index(expected[name]) for name in media_names(raw)]
    assert raw.class_names[0] == "electric ray" and len(raw.class_names) == 6


def test_imagenet_with_all_classes_uses_open_clip_names(tmp_path):
    for i in range(1000):
        folder = tmp_path / "val" / f"n{i:08d}"
        folder.mkdir(parents=True)
        (folder / f"ILSVRC2012_val_{i:08d}.JPEG").touch()
    raw = read("imagenet", {"root": str(tmp_path)})
    assert len(raw.class_names) == 1000 and raw.class_names[:2] == ["tench", "goldfish"]
    assert raw.label[:3].tolist() == [0, 1, 2]


def test_imagenet_without_class_names_says_where_to_find_them(tmp_path):
    options = fx.write_imagenet(tmp_path, mapping=False)
    with pytest.raises(InputFileError, match="wnids_path") as error:
        read("imagenet", options)
    assert error.value.path == str(tmp_path / "LOC_synset_mapping.txt")


# CelebA


def test_celeba_attributes_captions_and_partition(tmp_path):
    raw = read("celeba", fx.write_celeba(tmp_path))
    lines = (tmp_path / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines[2:]}
    partition = dict(line.split() for line in (tmp_path / "list_eval_partition.txt").open())
    files = media_names(raw)
    assert files == sorted(rows) and raw.attribute_names == names
    assert raw.attributes.tolist() == [[int(v == 1) for v in rows[f]] for f in files]
    assert raw.media_split.tolist() == [TRAIN if partition[f] == "0" else EVAL for f in files]
    assert set(partition.values()) == {"0", "1", "2"}
    caption_of = dict(zip(files, (texts_of(raw, i)[0] for i in range(len(files))), strict=True))
    assert caption_of["000002.jpg"] == "a photo of a person with black hair, smiling, wearing a hat"
    assert caption_of["000003.jpg"] == "a photo of a person"
    for file, values in rows.items():
        present = [n for n, v in zip(names, values, strict=True) if v == 1 and n != "No_Beard"]
        assert all(phrase(n) in caption_of[file] for n in present)
        assert "no beard" not in caption_of[file]


def test_celeba_attribute_file_shorter_than_its_header(tmp_path):
    options = fx.write_celeba(tmp_path, short_attributes=True)
    with pytest.raises(InputFileError, match="13 image rows, its header says 14") as error:
        read("celeba", options)
    assert error.value.path == str(tmp_path / "list_attr_celeba.txt")


def test_celeba_skips_a_missing_image_and_names_a_missing_partition(tmp_path):
    options = fx.write_celeba(tmp_path, missing_image=True)
    raw = read("celeba", options)
    missing = str(tmp_path / "img_align_celeba" / "000005.jpg")
    assert raw.skipped.examples["image file missing"] == [missing]
    assert len(raw.media) == 13 and "000005.jpg" not in media_names(raw)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(InputFileError, match="list_eval_partition.txt"):
        read("celeba", options)


# FashionIQ


def fashioniq_expected(root: Path, splits=("train", "val")):
    images, triplets = {}, []
    for split in splits:
        for category in fx.FASHIONIQ_CATEGORIES:
            for image in json.loads(
                (root / f"image_splits/split.{category}.{split}.json").read_text()
            ):
                images[image] = TRAIN if split == "train" else EVAL
            caption_file = root / f"captions/cap.{category}.{split}.json"
            for t in json.loads(caption_file.read_text()):
                first, second = t["captions"]
                triplets.append((t["candidate"], f"{first.rstrip('.')} and {second}", t["target"]))
    return images, triplets


def triplet_ids(raw) -> set[tuple[str, str, str]]:
    stem = [Path(raw.media.describe(i)).stem for i in range(len(raw.media))]
    return {(stem[r], raw.texts[t], stem[g]) for r, t, g in raw.triplets}


def test_fashioniq_triplets_pair_the_text_with_the_target(tmp_path):
    raw = read("fashioniq", fx.write_fashioniq(tmp_path))
    images, triplets = fashioniq_expected(tmp_path)
    stems = [Path(name).stem for name in media_names(raw)]
    assert stems == sorted(images, key=lambda i: (images[i], i))
    assert raw.media_split.tolist() == [images[i] for i in stems]
    assert triplet_ids(raw) == set(triplets) and len(raw.triplets) == len(triplets)
    assert np.array_equal(raw.pairs, raw.triplets[:, [2, 1]])
    assert any(name.endswith(".jpg") for name in media_names(raw))


def test_fashioniq_skips_triplets_of_a_missing_image(tmp_path):
    raw = read("fashioniq", fx.write_fashioniq(tmp_path, missing_image=True))
    images, triplets = fashioniq_expected(tmp_path)
    on_disk = {path.stem for path in (tmp_path / "images").iterdir()}
    missing = [i for i in images if i not in on_disk]
    assert len(missing) == 1
    assert raw.skipped.examples["image file missing"] == [
        str(tmp_path / f"images/{missing[0]}.png")
    ]
    broken = [t for t in triplets if missing[0] in (t[0], t[2])]
    assert raw.skipped.counts["triplet whose image is missing"] == len(broken) == 2
    assert triplet_ids(raw) == set(triplets) - set(broken)


def test_fashioniq_test_split_has_no_targets(tmp_path):
    raw = read("fashioniq", {**fx.write_fashioniq(tmp_path), "splits": ["test"]})
    assert len(raw.media) == 9 and len(raw.triplets) == 0 and len(raw.texts) == 0
    assert raw.skipped.counts["triplet without a target (test split)"] == 9


def test_coco_fixture_corrupt_image_is_kept_but_does_not_decode(tmp_path):
    raw = read("coco", fx.write_coco(tmp_path, corrupt_image=True))
    assert len(raw.media) == 12 and raw.skipped.total == 0
    failures = []
    for row in range(len(raw.media)):
        try:
            image_at(raw, row)
        except OSError:
            failures.append(row)
    assert len(failures) == 1
