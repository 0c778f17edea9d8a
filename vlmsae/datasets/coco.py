"""MS-COCO captions (2014 or 2017 release).

Layout under `root` (as cocodataset.org's zips extract):
  annotations/captions_train2017.json, annotations/captions_val2017.json
      {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "id", "caption"}]}
  train2017/000000000009.jpg ..., val2017/...

Splits: train → train, val → eval (setting `splits` picks which are read).
Text rows: every caption (about 5 per image), paired with its image, in annotation-id order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlmsae.datasets import SOURCES
from vlmsae.datasets.common import MaxItems
from vlmsae.datasets.raw import (
    EVAL,
    TRAIN,
    FileMedia,
    RawDataset,
    SkipReport,
    existing_files,
    limit_media,
    require,
)
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import SPLITS

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.

COCO_SPLITS = {"train": TRAIN, "val": EVAL}
COCO_FIX = "re-extract annotations_trainval{year}.zip from cocodataset.org"


@dataclass(frozen=True, kw_only=True)
class CocoSettings(MaxItems):
    """Config section `datasets.X.coco`."""

    root: str = setting(description="folder holding annotations/ and the train/val image folders")
    year: Literal[2014, 2017] = setting(2017, "release (file and folder suffix)")
    splits: list[Literal["train", "val"]] = setting(
        ["train", "val"], "splits read; train → train, val → eval", minItems=1
    )


def _load(path: Path, year: int) -> tuple[dict[int, str], list[dict]]:
    """({image id: file name}, caption annotations) of one captions_*.json."""
    require(path, "COCO caption file", f"check `root` and `year`, or {COCO_FIX.format(year=year)}")
    try:
        data = json.loads(path.read_text())
        images = {image["id"]: image["file_name"] for image in data["images"]}
        captions = [
            {"image_id": a["image_id"], "id": a["id"], "caption": a["caption"]}
            for a in data["annotations"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputFileError(
            str(path),
            f"not a COCO caption file ({type(error).__name__}: {error})",
            COCO_FIX.format(year=year),
        ) from error
    if len(images) != len(data["images"]):
        ids = [image["id"] for image in data["images"]]
        repeated = next(image_id for image_id in ids if ids.count(image_id) > 1)
        raise InputFileError(
            str(path),
            f"image id {repeated} is listed {ids.count(repeated)} times (ids must be unique)",
            "fix the file's images list, or download it again",
        )
    return images, captions


def _read_split(root: Path, name: str, year: int, skipped: SkipReport) -> list[tuple[Path, list]]:
    """[(image path, its captions)] of one split, by file name, images missing on disk skipped."""
    annotation_path = root / "annotations" / f"captions_{name}{year}.json"
    images, captions = _load(annotation_path, year)
    by_image: dict[int, list[dict]] = {image_id: [] for image_id in images}
    for annotation in sorted(captions, key=lambda a: a["id"]):
        if annotation["image_id"] in by_image:
            by_image[annotation["image_id"]].append(annotation)
        else:
            where = f"{annotation_path}: annotation {annotation['id']}"
            skipped.add("caption of an image not in the file's images", where)
    image_ids = sorted(images, key=lambda image_id: images[image_id])
    paths = [root / f"{name}{year}" / images[image_id] for image_id in image_ids]
    items = []
    for image_id, path, exists in zip(image_ids, paths, existing_files(paths), strict=True):
        if exists:
            items.append((path, [a["caption"].strip() for a in by_image[image_id]]))
            continue
        skipped.add("image file missing", str(path))
        for annotation in by_image[image_id]:
            skipped.add(
                "caption of a missing image", f"{annotation_path}: annotation {annotation['id']}"
            )
    return items


@SOURCES.register(
    "coco",
    CocoSettings,
    "MS-COCO captions (annotations/captions_{split}{year}.json + {split}{year}/ images); one text "
    "row per caption.",
    kind="raw",
    modality="image",
)
def read(settings: CocoSettings) -> RawDataset:
    """COCO images and captions (see the module docstring)."""
    import numpy as np

    root, year = Path(settings.root), settings.year
    # In release order, whatever order the config lists them in.
    names = [name for name in COCO_SPLITS if name in settings.splits]
    skipped = SkipReport()
    paths, media_split, texts, media_of_text = [], [], [], []
    for name in names:
        for path, captions in _read_split(root, name, year, skipped):
            texts.extend(captions)
            media_of_text.extend([len(paths)] * len(captions))
            paths.append(path)
            media_split.append(COCO_SPLITS[name])
    raw = RawDataset(
        modality="image",
        media=FileMedia(paths),
        texts=texts,
        pairs=np.stack([media_of_text, np.arange(len(texts))], axis=1),
        media_split=media_split,
        attrs={
            "root": str(root),
            "layout": f"annotations/captions_{{split}}{year}.json + {{split}}{year}/",
            "year": year,
            "split_source": ", ".join(
                f"{name}{year}→{SPLITS[COCO_SPLITS[name]]}" for name in names
            ),
        },
        skipped=skipped,
    )
    return limit_media(raw, settings.max_items)
