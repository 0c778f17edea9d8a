"""ImageNet-1k (ILSVRC 2012) validation set: 50,000 labelled images.

Layouts under `root` (setting `images`, default "val", is the image folder):
  folders: val/<wnid>/*.JPEG (torchvision's ImageFolder layout, after valprep.sh)
  flat:    val/ILSVRC2012_val_00000001.JPEG ... with Kaggle's LOC_val_solution.csv beside
           (setting `labels_csv`): columns ImageId, PredictionString, whose first token is the wnid
The layout is told by the image folder: subfolders mean `folders`.

Classes: without `wnids_path`, class i is the i-th of the sorted wnids present (the standard
index when all 1000 are); names are open_clip's IMAGENET_CLASSNAMES when all 1000 are present,
else the first name on each wnid's line of root/LOC_synset_mapping.txt ("n01440764 tench, Tinca
tinca"). `wnids_path` (a file in that format, wnids in class order) overrides both.

Split: ImageNet ships labels for train and val only, and this reads val: a seeded random split.
Text rows: class prompts (`vlmsae.datasets.image_prompts`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vlmsae.datasets import SOURCES
from vlmsae.datasets.common import RandomSplit
from vlmsae.datasets.image_prompts import (
    ClassPromptSettings,
    class_prompt_dataset,
    imagenet_class_names,
)
from vlmsae.datasets.raw import (
    FileMedia,
    RawDataset,
    SkipReport,
    existing_files,
    require,
    seeded_split,
)
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
MAPPING_FILE = "LOC_synset_mapping.txt"
N_CLASSES = 1000


@dataclass(frozen=True, kw_only=True)
class ImageNetSettings(ClassPromptSettings, RandomSplit):
    """Config section `datasets.X.imagenet`."""

    root: str = setting(description="the folder holding the image folder (and its label files)")
    images: str = setting("val", "image folder relative to root (Kaggle's ILSVRC/Data/CLS-LOC/val)")
    labels_csv: str = setting(
        "LOC_val_solution.csv",
        "flat layout: csv with ImageId, PredictionString (first token = wnid)",
    )
    wnids_path: str | None = setting(
        None,
        "file of wnids in class order, 'n01440764 tench, Tinca tinca' per line; sets class order "
        "and names. Without it: sorted wnids present; names from open_clip when all 1000, else "
        "root/LOC_synset_mapping.txt",
    )


def _folders_layout(images: Path, skipped: SkipReport) -> dict[Path, str]:
    labelled = {}
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                labelled[path] = folder.name
            else:
                skipped.add("not an image file", str(path))
    return labelled


def _flat_layout(images: Path, csv_path: Path, skipped: SkipReport) -> dict[Path, str]:
    import pandas as pd

    require(csv_path, "ImageNet validation labels", "set `labels_csv`, or use val/<wnid>/ folders")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = {"ImageId", "PredictionString"} - set(table.columns)
    if missing:
        raise InputFileError(
            str(csv_path),
            f"columns {sorted(missing)} missing (has {list(table.columns)})",
            "use Kaggle's LOC_val_solution.csv (ImageId, PredictionString)",
        )
    paths = [images / f"{image_id}.JPEG" for image_id in table["ImageId"]]
    found = existing_files(paths)
    labelled = {}
    for path, predictions, exists in zip(paths, table["PredictionString"], found, strict=True):
        if not exists:
            skipped.add("image file missing", str(path))
        elif not predictions.split():
            skipped.add("row without a wnid", f"{csv_path}: {path.stem}")
        else:
            labelled[path] = predictions.split()[0]
    listed = set(table["ImageId"])
    for path in sorted(images.iterdir()):
        if path.stem not in listed and path.suffix.lower() in IMAGE_SUFFIXES:
            skipped.add(f"image without a row in {csv_path.name}", str(path))
    return labelled


def _mapping(path: Path) -> tuple[list[str], list[str | None]]:
    """(wnids, first names) of a LOC_synset_mapping.txt-style file; a bare wnid has no name."""
    wnids, names = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            wnid, _, text = line.strip().partition(" ")
            wnids.append(wnid)
            names.append(text.split(",")[0].strip() or None)
    return wnids, names


def _classes(
    wnids_path: str | None, root: Path, present: set[str]
) -> tuple[list[str], list[str], str]:
    """(wnids in class order, class names, where the names came from)."""
    if wnids_path:
        path = require(root / wnids_path, "wnid list (setting wnids_path)")
        wnids, names = _mapping(path)
        if None not in names:
            return wnids, names, str(path)
        if len(wnids) == N_CLASSES:
            return wnids, imagenet_class_names(), "open_clip IMAGENET_CLASSNAMES"
        raise InputFileError(
            str(path),
            f"lists {len(wnids)} wnids and not all lines name their class",
            'write "wnid name, other names" on every line (as LOC_synset_mapping.txt does)',
        )
    wnids = sorted(present)
    if len(wnids) == N_CLASSES:
        return wnids, imagenet_class_names(), "open_clip IMAGENET_CLASSNAMES"
    path = root / MAPPING_FILE
    fix = f"put Kaggle's {MAPPING_FILE} in root, or set wnids_path to a file naming the classes"
    if not path.exists():
        raise InputFileError(
            str(path), f"not found: class names of {len(wnids)} of the 1000 classes unknown", fix
        )
    table = dict(zip(*_mapping(path), strict=True))
    unnamed = [wnid for wnid in wnids if not table.get(wnid)]
    if unnamed:
        raise InputFileError(str(path), f"no class name for {unnamed[:5]}", fix)
    return wnids, [table[wnid] for wnid in wnids], str(path)


@SOURCES.register(
    "imagenet",
    ImageNetSettings,
    "ImageNet-1k validation set (val/<wnid>/*.JPEG, or flat val/ + Kaggle LOC_val_solution.csv); "
    "seeded random split; text = class prompts.",
    kind="raw",
    modality="image",
)
def read(settings: ImageNetSettings) -> RawDataset:
    """ImageNet's validation images with class-prompt texts (see the module docstring)."""
    import numpy as np

    root = Path(settings.root)
    images = require(root / settings.images, "ImageNet validation image folder")
    skipped = SkipReport()
    # scandir knows an entry's type without a stat per file (50,000 of them in the flat layout).
    with os.scandir(images) as entries:
        has_folders = any(entry.is_dir() for entry in entries)
    if has_folders:
        labelled = _folders_layout(images, skipped)
    else:
        csv_path = root / settings.labels_csv
        labelled = _flat_layout(images, csv_path, skipped)
    wnids, class_names, names_source = _classes(settings.wnids_path, root, set(labelled.values()))
    index = {wnid: i for i, wnid in enumerate(wnids)}
    paths = []
    # By file name (the validation index), so that both layouts give the same rows.
    for path in sorted(labelled, key=lambda path: (path.name, path)):
        if labelled[path] in index:
            paths.append(path)
        else:
            skipped.add("wnid not in wnids_path", str(path))
    label = np.array([index[labelled[path]] for path in paths], dtype=np.int64)
    split, split_source = seeded_split(len(paths), settings)
    attrs = {
        "root": str(root),
        "layout": "val/<wnid>/ folders" if has_folders else "flat val/ + LOC_val_solution.csv",
        "split_source": f"{split_source} (only the validation set is read)",
        "wnids": wnids,
        "class_names_source": names_source,
    }
    return class_prompt_dataset(
        FileMedia(paths), label, class_names, split, settings, attrs, skipped
    )
