"""Precomputed paired embeddings from .npy / .npz files (row i of image pairs with row i of text).

Optional: labels_path (.npy [N] int class of each image) and class_prompts_path (.npy [C, T, d],
text embeddings of T prompt templates per class) enable zero-shot classification from codes;
groups_path (.npy [N] int, one group id per text row, i.e. per pair) marks interchangeable texts
for retrieval (stored as `text_group`; identical text rows are grouped without it).
File settings carry `format: file`: the config check makes them absolute and checks they exist.

Accepted layouts:
  path: one .npy of shape [2, N, d] (image first, text second; the layout of Liang et al.'s
        Modality-Gap features), or one .npz holding `image_key` and `text_key` arrays;
  image_path + text_path: two .npy files of shape [N, d].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.datasets import SOURCES
from vlmsae.datasets.common import EvalShare
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import assign_pair_splits, check_embedding_array, invalid_rows

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

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
    groups_path: str | None = setting(
        None,
        ".npy [N] int group id of each text row (pair): texts of one group are interchangeable "
        "in retrieval",
        format="file",
    )
    split_seed: int = setting(0, "seed of the random split", minimum=0)
    drop_bad_pairs: bool = setting(
        False,
        "drop pairs with a NaN/Inf or zero-norm row, and repeats of an earlier pair, counting "
        "them in the store's attrs (skipped), instead of stopping with an error",
    )

    def check(self) -> None:
        # The message names its key ("path=") for vlmsae.registry_base.parse_settings.
        if self.path is None and (self.image_path is None or self.text_path is None):
            raise ValueError(
                "path=None and image_path and text_path are not both set; name the .npy/.npz "
                "file(s) of paired embeddings"
            )
        if self.class_prompts_path is not None and self.labels_path is None:
            raise ValueError(
                "class_prompts_path is set but labels_path is not; zero-shot needs both: add "
                "labels_path (.npy [N], each image's class)"
            )


NUMPY_SUFFIXES = (".npy", ".npz")


def _load_npy(path: Path, archive: bool = False) -> np.ndarray | np.lib.npyio.NpzFile:
    """The array in a .npy file (or, with `archive`, a .npz archive); InputFileError naming the
    file for anything else (a missing file, a PyTorch .pt file, an archive where an array is
    expected)."""
    import numpy as np

    if not path.exists():
        raise InputFileError(str(path), "file not found", "check the path in the config")
    if path.suffix not in NUMPY_SUFFIXES:
        raise InputFileError(
            str(path),
            f"a '{path.suffix}' file; embeddings are read from .npy or .npz files",
            "save the array with numpy.save (a torch tensor: numpy.save(path, t.numpy()))",
        )
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputFileError(
            str(path),
            f"not a readable .npy/.npz file ({error})",
            "write it with numpy.save/numpy.savez",
        ) from error
    if isinstance(loaded, np.lib.npyio.NpzFile) and not archive:
        raise InputFileError(
            str(path),
            f"a .npz archive (arrays {loaded.files}) where one array is expected",
            "give the archive as `path` with image_key/text_key, or save each array with "
            "numpy.save",
        )
    return loaded


def load_pairs(settings: PrecomputedSettings) -> tuple[np.ndarray, np.ndarray, str]:
    """(image [N, d], text [N, d], description of the source files)."""
    import numpy as np

    if settings.path is not None:
        path = Path(settings.path)
        loaded = _load_npy(path, archive=True)
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
    check_embedding_array(source, "image", image)
    check_embedding_array(source, "text", text)
    if image.shape != text.shape:
        raise InputFileError(
            source,
            f"image {list(image.shape)} and text {list(text.shape)} rows "
            "must be paired one to one with the same dimension",
            "give [N, d] arrays with row i of each forming a pair",
        )
    return image.astype(np.float32), text.astype(np.float32), source


def _bad_pairs(image: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices of pairs that cannot be stored, by reason."""
    import numpy as np

    invalid = invalid_rows(image) | invalid_rows(text)
    rows = np.ascontiguousarray(np.concatenate([image, text], axis=1))
    _, first = np.unique(
        rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))), return_index=True
    )
    repeated = np.ones(len(rows), dtype=bool)
    repeated[first] = False
    return {
        "pair with a NaN/Inf or zero-norm row": np.flatnonzero(invalid),
        "repeat of an earlier pair": np.flatnonzero(repeated & ~invalid),
    }


def _labels(settings: PrecomputedSettings, n_pairs: int, n_classes: int | None) -> np.ndarray:
    """[N] int64 class of each image, checked: integers in [0, C) (C from the class prompts)."""
    import numpy as np

    path = settings.labels_path
    labels = _load_npy(Path(path))
    if labels.shape != (n_pairs,):
        raise InputFileError(
            path,
            f"expected shape [{n_pairs}], got {list(labels.shape)}",
            "give one label per image row",
        )
    if labels.dtype.kind not in "iu":
        raise InputFileError(
            path, f"labels are {labels.dtype}, not integers", "save class indices as integers"
        )
    high = n_classes if n_classes is not None else np.iinfo(np.int64).max
    outside = np.flatnonzero((labels < 0) | (labels >= high))
    if len(outside):
        bound = (
            f"outside 0..{n_classes - 1} (the class prompts' classes)" if n_classes else "negative"
        )
        raise InputFileError(
            path,
            f"label {labels[outside[0]]} of row {outside[0]} is {bound}",
            "give each image's class index",
        )
    return labels.astype(np.int64)


def _text_groups(path: str, n_pairs: int) -> np.ndarray:
    """[N] int64 group id of each text row, checked: one integer per pair."""
    import numpy as np

    groups = _load_npy(Path(path))
    if groups.shape != (n_pairs,) or groups.dtype.kind not in "iu":
        raise InputFileError(
            path,
            f"expected [{n_pairs}] integers, got {groups.dtype} of shape {list(groups.shape)}",
            "give one integer group id per text row",
        )
    return groups.astype(np.int64)


def row_paired_arrays(image: np.ndarray, text: np.ndarray, split: np.ndarray) -> dict:
    """The core arrays of a store whose row i of `image` pairs with row i of `text`: rows
    L2-normalised in place, identity pairs, the same split on both sides."""
    import numpy as np

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
    import numpy as np

    image, text, source = load_pairs(settings)
    bad = _bad_pairs(image, text)
    skipped = {reason: rows for reason, rows in bad.items() if len(rows)}
    if skipped and not settings.drop_bad_pairs:
        reason, rows = next(iter(skipped.items()))
        raise InputFileError(
            source,
            f"found {len(rows)} {reason} (first: row {rows[0]})",
            "fix the file, or set drop_bad_pairs: true in its precomputed section",
        )
    keep = np.ones(len(image), dtype=bool)
    for rows in skipped.values():
        keep[rows] = False
    image, text = image[keep], text[keep]
    was_normalised = bool(
        np.all(np.abs(np.linalg.norm(image, axis=1) - 1) < NORM_TOLERANCE)
        and np.all(np.abs(np.linalg.norm(text, axis=1) - 1) < NORM_TOLERANCE)
    )
    n_pairs = image.shape[0]
    split = assign_pair_splits(n_pairs, settings.eval_fraction, settings.split_seed)
    optional = {}
    n_classes = None
    if settings.class_prompts_path is not None:
        prompts = _load_npy(Path(settings.class_prompts_path))
        if prompts.ndim != 3 or prompts.shape[2] != image.shape[1] or 0 in prompts.shape:
            raise InputFileError(
                settings.class_prompts_path,
                f"expected shape [classes, templates, {image.shape[1]}], got {list(prompts.shape)}",
                "embed every prompt of every class",
            )
        check_embedding_array(settings.class_prompts_path, "class prompt", prompts[:, 0])
        if invalid_rows(prompts.reshape(-1, prompts.shape[2])).any():
            raise InputFileError(
                settings.class_prompts_path,
                "a class prompt holds NaN/Inf or is zero",
                "embed every prompt again",
            )
        optional["class_prompts"] = prompts
        n_classes = prompts.shape[0]
    if settings.labels_path is not None:
        optional["label"] = _labels(settings, len(keep), n_classes)[keep]
    if settings.groups_path is not None:
        optional["extra"] = {"text_group": _text_groups(settings.groups_path, len(keep))[keep]}
    return {
        **optional,
        **row_paired_arrays(image, text, split),
        "attrs": {
            "source": "precomputed",
            "files": source,
            "normalised": True,
            "input_was_normalised": was_normalised,
            "dtype": "float32",
            "skipped": {
                reason: {"count": len(rows), "examples": [f"row {r}" for r in rows[:5]]}
                for reason, rows in skipped.items()
            },
            "skipped_total": int(sum(len(rows) for rows in skipped.values())),
        },
    }
