"""CIFAR-10 and CIFAR-100, "python version" (the pickles of cifar-{10,100}-python.tar.gz).

Layout under `root` (the folder the archive was extracted into, as for torchvision):
  cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta (b"label_names")
  cifar-100-python/train, test, meta (b"fine_label_names", b"coarse_label_names")
Each batch is a pickled dict with b"data" [N, 3072] uint8 (channel-major 32×32 RGB) and
b"labels" (CIFAR-10) or b"fine_labels" / b"coarse_labels" (CIFAR-100).

Splits: the training batches → train, the test batch → eval. Text rows: class prompts
(`vlmsae.datasets.image_prompts`); class names are the meta file's, underscores → spaces.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vlmsae.datasets import SOURCES
from vlmsae.datasets.image_prompts import ClassPromptSettings, class_prompt_dataset
from vlmsae.datasets.raw import EVAL, TRAIN, ArrayMedia, RawDataset, require
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR_FIX = "extract the 'python version' archive from https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True, kw_only=True)
class Cifar10Settings(ClassPromptSettings):
    """Config section `datasets.X.cifar10`."""

    root: str = setting(description=f"folder holding {CIFAR10_FOLDER}/")


@dataclass(frozen=True, kw_only=True)
class Cifar100Settings(ClassPromptSettings):
    """Config section `datasets.X.cifar100`."""

    root: str = setting(description=f"folder holding {CIFAR100_FOLDER}/")
    label: Literal["fine", "coarse"] = setting("fine", "100 fine classes or 20 superclasses")


def _unpickle(path: Path) -> dict:
    require(path, "CIFAR pickle", f"check `root`, then {CIFAR_FIX}")
    try:
        with open(path, "rb") as handle:
            # The pickles were written by Python 2: their str keys load as bytes.
            return pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise InputFileError(str(path), f"not a readable pickle ({error})", CIFAR_FIX) from error


def _entry(batch: dict, key: bytes, path: Path):
    if key not in batch:
        raise InputFileError(str(path), f"no {key!r} entry (has {sorted(batch)})", CIFAR_FIX)
    return batch[key]


def _batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(pixels [N, 32, 32, 3] uint8, labels [N]) of one batch file."""
    import numpy as np

    batch = _unpickle(path)
    data = np.asarray(_entry(batch, b"data", path), dtype=np.uint8)
    labels = np.asarray(_entry(batch, label_key, path), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise InputFileError(
            str(path),
            f"data has shape {list(data.shape)} for {len(labels)} labels, expected [N, 3072]",
            CIFAR_FIX,
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read(
    settings: Cifar10Settings | Cifar100Settings,
    folder: str,
    batches: dict[int, list[str]],
    meta: tuple[str, bytes],
    label_key: bytes,
) -> RawDataset:
    import numpy as np

    base = Path(settings.root) / folder
    meta_path = base / meta[0]
    class_names = [
        name.decode().replace("_", " ") for name in _entry(_unpickle(meta_path), meta[1], meta_path)
    ]
    pixels, labels, split = [], [], []
    for code, names in batches.items():
        for name in names:
            batch_pixels, batch_labels = _batch(base / name, label_key)
            pixels.append(batch_pixels)
            labels.append(batch_labels)
            split.append(np.full(len(batch_labels), code, dtype=np.int8))
    label = np.concatenate(labels)
    if len(label) and (label.min() < 0 or label.max() >= len(class_names)):
        raise InputFileError(
            str(base),
            f"labels span [{label.min()}, {label.max()}] but {meta_path.name} names "
            f"{len(class_names)} classes",
            CIFAR_FIX,
        )
    attrs = {
        "root": str(settings.root),
        "layout": folder,
        "split_source": f"{', '.join(batches[TRAIN])}→train, {', '.join(batches[EVAL])}→eval",
        "label": label_key.decode(),
    }
    return class_prompt_dataset(
        ArrayMedia(np.concatenate(pixels), str(base)),
        label,
        class_names,
        np.concatenate(split),
        settings,
        attrs,
    )


@SOURCES.register(
    "cifar10",
    Cifar10Settings,
    f"CIFAR-10 python pickles (root/{CIFAR10_FOLDER}); data_batch_1..5 → train, test_batch → "
    "eval; text = class prompts.",
    kind="raw",
    modality="image",
)
def read_cifar10(settings: Cifar10Settings) -> RawDataset:
    """CIFAR-10 from `root`/cifar-10-batches-py (see the module docstring)."""
    batches = {TRAIN: [f"data_batch_{i}" for i in range(1, 6)], EVAL: ["test_batch"]}
    return _read(settings, CIFAR10_FOLDER, batches, ("batches.meta", b"label_names"), b"labels")


@SOURCES.register(
    "cifar100",
    Cifar100Settings,
    f"CIFAR-100 python pickles (root/{CIFAR100_FOLDER}); train → train, test → eval; text = "
    "class prompts.",
    kind="raw",
    modality="image",
)
def read_cifar100(settings: Cifar100Settings) -> RawDataset:
    """CIFAR-100 from `root`/cifar-100-python; setting `label`: "fine" (100 classes, default)
    or "coarse" (20 superclasses)."""
    batches = {TRAIN: ["train"], EVAL: ["test"]}
    meta = ("meta", f"{settings.label}_label_names".encode())
    return _read(settings, CIFAR100_FOLDER, batches, meta, f"{settings.label}_labels".encode())
