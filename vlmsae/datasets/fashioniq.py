"""FashionIQ: composed image retrieval triplets (reference image, modification text, target).

Layout under `root` (the github.com/XiaoxiaoGuo/fashion-iq release, images downloaded beside):
  captions/cap.{dress,shirt,toptee}.{train,val,test}.json
      [{"target": "B008BHCT58", "candidate": "B003FGW7MK", "captions": ["is solid", "..."]}]
      (the test files have no "target")
  image_splits/split.{category}.{split}.json   ["B008BHCT58", ...]
  images/B008BHCT58.png (or .jpg)

Splits: train → train, val and test → eval (setting `splits`, default train and val: the test
triplets have no target).
Media rows: every image of the selected image splits. Text rows: one per triplet, its captions
joined with " and ", paired with the target image; `triplets` = (reference row, text row, target).
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
    limit_media,
    require,
)
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import SPLITS

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.

CATEGORIES = ("dress", "shirt", "toptee")
FASHIONIQ_SPLITS = {"train": TRAIN, "val": EVAL, "test": EVAL}
IMAGE_SUFFIXES = (".png", ".jpg")
FASHIONIQ_FIX = "take the file from github.com/XiaoxiaoGuo/fashion-iq"


@dataclass(frozen=True, kw_only=True)
class FashionIQSettings(MaxItems):
    """Config section `datasets.X.fashioniq`."""

    root: str = setting(description="the folder holding captions/, image_splits/ and images/")
    categories: list[Literal["dress", "shirt", "toptee"]] = setting(
        list(CATEGORIES), "garment categories read", minItems=1
    )
    splits: list[Literal["train", "val", "test"]] = setting(
        ["train", "val"],
        "train → train, val/test → eval (test triplets have no target and are skipped)",
        minItems=1,
    )


def _json_list(path: Path, what: str) -> list:
    require(path, what, f"check `root`, `categories` and `splits`, or {FASHIONIQ_FIX}")
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputFileError(str(path), f"not valid JSON ({error})", FASHIONIQ_FIX) from error
    if not isinstance(value, list):
        raise InputFileError(str(path), f"expected a JSON list, got {type(value)}", FASHIONIQ_FIX)
    return value


def _images(root: Path, categories: list[str], splits: list[str], skipped: SkipReport):
    """{image id: (path, split code)} of the selected image splits, images missing skipped."""
    folder = require(root / "images", "FashionIQ image folder")
    on_disk = {
        path.stem: path
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    }
    images = {}
    for split in splits:
        for category in categories:
            path = root / "image_splits" / f"split.{category}.{split}.json"
            for image_id in _json_list(path, "FashionIQ image split"):
                if image_id in images:
                    continue
                if image_id in on_disk:
                    images[image_id] = (on_disk[image_id], FASHIONIQ_SPLITS[split])
                else:
                    skipped.add("image file missing", str(folder / f"{image_id}.png"))
    return images


def _text(triplet: dict) -> str:
    # Annotators' captions often end in "." or ","; the join reads as one sentence without them.
    return " and ".join(caption.strip().strip(".,") for caption in triplet["captions"])


def _triplets(root: Path, categories: list[str], splits: list[str], skipped: SkipReport):
    """[(reference id, text, target id)] of the selected caption files; unusable ones skipped."""
    triplets = []
    for split in splits:
        for category in categories:
            path = root / "captions" / f"cap.{category}.{split}.json"
            for number, triplet in enumerate(_json_list(path, "FashionIQ caption file")):
                where = f"{path}[{number}]"
                if not isinstance(triplet, dict) or "candidate" not in triplet:
                    raise InputFileError(
                        where, "expected {candidate, target, captions}", FASHIONIQ_FIX
                    )
                if "target" not in triplet:
                    skipped.add("triplet without a target (test split)", where)
                elif not triplet.get("captions") or not _text(triplet):
                    skipped.add("triplet without captions", where)
                else:
                    triplets.append(
                        (triplet["candidate"], _text(triplet), triplet["target"], where)
                    )
    return triplets


@SOURCES.register(
    "fashioniq",
    FashionIQSettings,
    "FashionIQ triplets (captions/cap.*.json, image_splits/, images/); text paired with the "
    "target; triplets = (reference, text, target).",
    kind="raw",
    modality="image",
)
def read(settings: FashionIQSettings) -> RawDataset:
    """FashionIQ images and modification-text triplets (see the module docstring)."""
    import numpy as np

    root = Path(settings.root)
    # In release order, whatever order the config lists them in.
    categories = [name for name in CATEGORIES if name in settings.categories]
    splits = [name for name in FASHIONIQ_SPLITS if name in settings.splits]
    skipped = SkipReport()
    images = _images(root, categories, splits, skipped)
    ids = sorted(images, key=lambda image_id: (images[image_id][1], image_id))
    row = {image_id: i for i, image_id in enumerate(ids)}
    texts, table = [], []
    for reference, text, target, where in _triplets(root, categories, splits, skipped):
        if reference in row and target in row:
            table.append((row[reference], len(texts), row[target]))
            texts.append(text)
        else:
            skipped.add("triplet whose image is missing", where)
    triplets = np.array(table, dtype=np.int64).reshape(-1, 3)
    raw = RawDataset(
        modality="image",
        media=FileMedia([images[image_id][0] for image_id in ids]),
        texts=texts,
        pairs=triplets[:, [2, 1]],
        media_split=[images[image_id][1] for image_id in ids],
        triplets=triplets,
        attrs={
            "root": str(root),
            "layout": "captions/cap.{category}.{split}.json + image_splits/ + images/",
            "categories": categories,
            "split_source": ", ".join(f"{s}→{SPLITS[FASHIONIQ_SPLITS[s]]}" for s in splits),
        },
        skipped=skipped,
    )
    return limit_media(raw, settings.max_items)
