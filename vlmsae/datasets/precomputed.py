"""Precomputed paired embeddings from .npy / .npz files (row i of image pairs with row i of text).

Optional: labels_path (.npy [N] int class of each image) and class_prompts_path (.npy [C, T, d],
text embeddings of T prompt templates per class) enable zero-shot classification from codes.
File settings carry `format: file`: the config check makes them absolute and checks they exist.

Accepted layouts:
  path: one .npy of shape [2, N, d] (image first, text second; the layout of Liang et al.'s
        Modality-Gap features), or one .npz holding `image_key` and `text_key` arrays;
  image_path + text_path: two .npy files of shape [N, d].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlmsae.datasets import SOURCES
from vlmsae.datasets.common import EvalShare
from vlmsae.errors import InputFileError
from vlmsae.registry import setting
from vlmsae.store import assign_pair_splits

NORM_TOLERANCE = 1e-3


@dataclass(frozen=True, kw_only=True)
class PrecomputedSettings(EvalShare):
    """Config section `datasets.X.precomputed`."""

    path: str | None = setting(
        None, ".npy [2, N, d] (image rows, then text rows) or .npz of both", format="file"
    )
    image_path: str | None = setting(None, ".npy [N, d] image rows (with text_path)", format="file")
    text_path: str | None = setting(None, ".npy [N, d] text rows (with image_path)", format="file")
    image_key: str = setting("image", "array of image rows in the .npz")
    text_key: str = setting("text", "array of text rows in the .npz")
    labels_path: str | None = setting(
        None, ".npy [N] class of each image (zero-shot)", format="file"
    )
    class_prompts_path: str | None = setting(
        None, ".npy [classes, templates, d] prompt embeddings (zero-shot)", format="file"
    )
    split_seed: int = setting(0, "seed of the random split", minimum=0)

    def check(self) -> None:
        # The message names its key ("path=") for vlmsae.registry.parse_settings.
        if self.path is None and (self.image_path is None or self.text_path is None):
            raise ValueError(
                "path=None and image_path and text_path are not both set; name the .npy/.npz "
                "file(s) of paired embeddings"
            )


def _load_npy(path: Path) -> np.ndarray:
    if not path.exists():
        raise InputFileError(str(path), "file not found", "check the path in the config")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise InputFileError(
            str(path),
            f"not a readable .npy/.npz file ({error})",
            "write it with numpy.save/numpy.savez",
        ) from error


def load_pairs(settings: PrecomputedSettings) -> tuple[np.ndarray, np.ndarray, str]:
    """(image [N, d], text [N, d], description of the source files)."""
    if settings.path is not None:
        path = Path(settings.path)
        loaded = _load_npy(path)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            keys = (settings.image_key, settings.text_key)
            missing = [k for k in keys if k not in loaded.files]
            if missing:
                raise InputFileError(
                    str(path),
                    f"arrays {missing} not found (has {loaded.files})",
                    "set precomputed.image_key / text_key in the config",
                )
            image, text = loaded[keys[0]], loaded[keys[1]]
        elif loaded.ndim == 3 and loaded.shape[0] == 2:
            image, text = loaded[0], loaded[1]
        else:
            raise InputFileError(
                str(path),
                f"expected shape [2, N, d], got {list(loaded.shape)}",
                "stack image and text rows, or give image_path and text_path",
            )
        source = str(path)
    else:
        image_path, text_path = Path(settings.image_path), Path(settings.text_path)
        image, text = _load_npy(image_path), _load_npy(text_path)
        source = f"{image_path} + {text_path}"
    if image.ndim != 2 or image.shape != text.shape:
        raise InputFileError(
            source,
            f"image {list(image.shape)} and text {list(text.shape)} rows "
            "must be paired one to one with the same dimension",
            "give [N, d] arrays with row i of each forming a pair",
        )
    return image.astype(np.float32), text.astype(np.float32), source


def row_paired_arrays(image: np.ndarray, text: np.ndarray, split: np.ndarray) -> dict:
    """The core arrays of a store whose row i of `image` pairs with row i of `text`: rows
    L2-normalised in place, identity pairs, the same split on both sides."""
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return {
        "image": image,
        "text": text,
        "pairs": np.stack([np.arange(len(image))] * 2, axis=1),
        "image_split": split,
        "text_split": split,
    }


@SOURCES.register(
    "precomputed",
    PrecomputedSettings,
    "Paired embeddings on disk (.npy [2, N, d], .npz, or two .npy [N, d]).",
    kind="embedding",
)
def build(settings: PrecomputedSettings) -> dict:
    """Arrays and attrs for `write_store` (rows L2-normalised, a seeded eval split)."""
    image, text, source = load_pairs(settings)
    was_normalised = bool(
        np.all(np.abs(np.linalg.norm(image, axis=1) - 1) < NORM_TOLERANCE)
        and np.all(np.abs(np.linalg.norm(text, axis=1) - 1) < NORM_TOLERANCE)
    )
    n_pairs = image.shape[0]
    split = assign_pair_splits(n_pairs, settings.eval_fraction, settings.split_seed)
    optional = {}
    if settings.labels_path is not None:
        optional["label"] = _load_npy(Path(settings.labels_path))
        if optional["label"].shape != (n_pairs,):
            raise InputFileError(
                settings.labels_path,
                f"expected shape [{n_pairs}], got {list(optional['label'].shape)}",
                "give one label per image row",
            )
    if settings.class_prompts_path is not None:
        optional["class_prompts"] = _load_npy(Path(settings.class_prompts_path))
        if (
            optional["class_prompts"].ndim != 3
            or optional["class_prompts"].shape[2] != image.shape[1]
        ):
            raise InputFileError(
                settings.class_prompts_path,
                f"expected shape [classes, templates, {image.shape[1]}]",
                "embed every prompt of every class",
            )
    return {
        **optional,
        **row_paired_arrays(image, text, split),
        "attrs": {
            "source": "precomputed",
            "files": source,
            "normalised": True,
            "input_was_normalised": was_normalised,
            "dtype": "float32",
        },
    }
