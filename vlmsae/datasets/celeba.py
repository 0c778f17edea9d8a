"""CelebA (aligned and cropped faces) with its 40 binary attributes.

Layout under `root` (torchvision's; the Google Drive release keeps the same files under Img/,
Anno/ and Eval/: point the settings `images`, `attributes_file`, `partition_file` there):
  img_align_celeba/000001.jpg ...
  list_attr_celeba.txt     line 1: image count; line 2: the 40 attribute names;
                           then "000001.jpg  -1  1 ..." (1 present, -1 absent)
  list_eval_partition.txt  "000001.jpg 0": 0 train, 1 valid, 2 test

Splits: 0 → train; 1 (valid) and 2 (test) → eval.
Text rows: one caption per image, made from its positive attributes (`caption`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

CELEBA_FIX = "re-extract the file from CelebA's Anno/ (or Eval/) folder"
PARTITION_SPLIT = {"0": TRAIN, "1": EVAL, "2": EVAL}
# Attributes whose phrase is not their lower-cased name with spaces. An absence (No_Beard) says
# nothing a caption listing what is there needs, so it has none.
PHRASES = {
    "5_o_Clock_Shadow": "five o'clock shadow",
    "No_Beard": None,
    "Eyeglasses": "wearing eyeglasses",
    "Wearing_Hat": "wearing a hat",
    "Wearing_Necklace": "wearing a necklace",
    "Wearing_Necktie": "wearing a necktie",
}
# Attributes that describe the person rather than something the person has: they follow the
# "with ..." list instead of joining it.
DESCRIPTORS = {"Attractive", "Bald", "Blurry", "Chubby", "Male", "Smiling", "Young"}


@dataclass(frozen=True, kw_only=True)
class CelebASettings(MaxItems):
    """Config section `datasets.X.celeba`."""

    root: str = setting(description="the folder holding the images and the annotation files")
    images: str = setting("img_align_celeba", "image folder relative to root")
    attributes_file: str = setting(
        "list_attr_celeba.txt", "attribute file relative to root (the 40 attributes of each image)"
    )
    partition_file: str = setting(
        "list_eval_partition.txt", "partition file relative to root (0 train, 1 valid, 2 test)"
    )


def phrase(attribute: str) -> str | None:
    """Caption phrase of an attribute: lower case, underscores → spaces, unless in PHRASES."""
    return PHRASES.get(attribute, attribute.lower().replace("_", " "))


def caption(attribute_names: list[str], present: np.ndarray) -> str:
    """ "a photo of a person with <features>, <descriptors>, <wearing ...>", in attribute-file
    order within each part; "a photo of a person" when nothing is present.

    Features are what the person has (black hair, big nose); descriptors are DESCRIPTORS
    (smiling, young); "wearing" phrases come last. E.g. Black_Hair, Smiling, Wearing_Hat →
    "a photo of a person with black hair, smiling, wearing a hat".
    """
    features, descriptors, wearing = [], [], []
    for name, on in zip(attribute_names, present, strict=True):
        text = phrase(name) if on else None
        if text is None:
            continue
        part = descriptors if name in DESCRIPTORS else wearing if "wearing" in text else features
        part.append(text)
    text = "a photo of a person"
    if features:
        text += " with " + ", ".join(features)
    return ", ".join([text, *descriptors, *wearing])


def _attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, image file names, [N, A] int8 0/1) of list_attr_celeba.txt."""
    import numpy as np

    lines = require(path, "CelebA attribute file").read_text().splitlines()
    try:
        count = int(lines[0].split()[0])
        names = lines[1].split()
    except (IndexError, ValueError) as error:
        raise InputFileError(
            str(path), "expected an image count on line 1 and attribute names on line 2", CELEBA_FIX
        ) from error
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) < count:
        raise InputFileError(
            str(path), f"has {len(rows)} image rows, its header says {count}", CELEBA_FIX
        )
    for number, row in enumerate(rows, start=3):
        if len(row) != len(names) + 1 or any(value not in ("1", "-1") for value in row[1:]):
            raise InputFileError(
                f"{path}:{number}",
                f"expected a file name and {len(names)} values of 1 or -1",
                CELEBA_FIX,
            )
    values = np.array([row[1:] for row in rows], dtype=np.int8).reshape(len(rows), len(names))
    return names, [row[0] for row in rows], (values > 0).astype(np.int8)


def _partition(path: Path) -> dict[str, int]:
    """{image file name: split code} of list_eval_partition.txt."""
    split = {}
    for number, line in enumerate(require(path, "CelebA partition file").read_text().splitlines()):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in PARTITION_SPLIT:
            raise InputFileError(
                f"{path}:{number + 1}", 'expected "000001.jpg 0" (partition 0, 1 or 2)', CELEBA_FIX
            )
        split[parts[0]] = PARTITION_SPLIT[parts[1]]
    return split


@SOURCES.register(
    "celeba",
    CelebASettings,
    "CelebA aligned faces, 40 attributes; partition 0 → train, 1/2 → eval; text = caption of the "
    "positive attributes.",
    kind="raw",
    modality="image",
)
def read(settings: CelebASettings) -> RawDataset:
    """CelebA's aligned images, attributes and attribute captions (see the module docstring)."""
    import numpy as np

    root = Path(settings.root)
    images = require(root / settings.images, "CelebA image folder")
    attribute_path = root / settings.attributes_file
    partition_path = root / settings.partition_file
    names, files, attributes = _attributes(attribute_path)
    partition = _partition(partition_path)
    order = np.argsort(files, kind="stable")
    paths = [images / files[i] for i in order]
    found = existing_files(paths)
    skipped, keep = SkipReport(), []
    for i, path, exists in zip(order, paths, found, strict=True):
        if not exists:
            skipped.add("image file missing", str(path))
        elif files[i] not in partition:
            skipped.add(f"image not in {partition_path.name}", str(path))
        else:
            keep.append(i)
    kept = attributes[keep]
    rows = np.arange(len(keep))
    raw = RawDataset(
        modality="image",
        media=FileMedia([images / files[i] for i in keep]),
        texts=[caption(names, present) for present in kept],
        pairs=np.stack([rows, rows], axis=1),
        media_split=np.array([partition[files[i]] for i in keep], dtype=np.int8),
        attributes=kept,
        attribute_names=names,
        attrs={
            "root": str(root),
            "layout": "img_align_celeba/ + list_attr_celeba.txt + list_eval_partition.txt",
            "split_source": f"{partition_path.name}: 0→train, 1 (valid) and 2 (test)→eval",
            "caption": "vlmsae.datasets.celeba.caption of the positive attributes",
        },
        skipped=skipped,
    )
    return limit_media(raw, settings.max_items)
