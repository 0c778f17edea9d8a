"""The vocabulary of concept naming as data: words and their embeddings in a store's joint
space, and the zarr group that holds them beside the store.

A vocabulary holds words [V] (distinct strings), vectors [V, d] (float32 unit rows) and true_row
[V] (the row of the store's true dictionary a word stands for, −1 for none). The rule
`vocabulary` builds one (vlmsae.interventions.vocabulary) and writes it with `write_vocabulary`;
the metric group `naming` (vlmsae.metrics.naming) and steering read it with `read_vocabulary`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.errors import InputFileError
from vlmsae.stores.embedding_store import write_array

# Heavy imports stay inside functions: the registries the Snakefile reads at every start
# import this module.
if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Vocabulary:
    """words [V] str (distinct), vectors [V, d] float32 unit rows, true_row [V] int64 (−1: none)."""

    words: np.ndarray
    vectors: np.ndarray
    true_row: np.ndarray
    source: str

    def __post_init__(self) -> None:
        import numpy as np

        if not (len(self.words) == len(self.vectors) == len(self.true_row)):
            raise ValueError("a vocabulary needs one vector and one true row per word")
        if len(self.words) < 2:
            raise ValueError("a vocabulary needs at least two words (a name and a runner-up)")
        if len(np.unique(self.words)) != len(self.words):
            raise ValueError("the words of a vocabulary must be distinct")

    def __len__(self) -> int:
        return len(self.words)


def write_vocabulary(vocabulary: Vocabulary, path: str | Path) -> Path:
    """Write `vocabulary` as a zarr group at `path` (built beside it, then moved into place)."""
    import numpy as np
    import zarr

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    root = zarr.open_group(partial, mode="w")
    write_array(root, "words", vocabulary.words.astype(str))
    write_array(root, "vectors", vocabulary.vectors.astype(np.float32))
    write_array(root, "true_row", vocabulary.true_row.astype(np.int64))
    root.attrs.update({"source": vocabulary.source, "complete": True})
    if path.exists():
        shutil.rmtree(path)
    partial.rename(path)
    return path


def read_vocabulary(path: str | Path) -> Vocabulary:
    """The vocabulary written at `path` by `write_vocabulary`."""
    import zarr

    path = Path(path)
    fix = "rebuild it with `snakemake <path>`"
    if not path.exists():
        raise InputFileError(str(path), "vocabulary not found", fix)
    root = zarr.open_group(path, mode="r")
    missing = [name for name in ("words", "vectors", "true_row") if name not in root]
    if not root.attrs.get("complete", False) or missing:
        raise InputFileError(str(path), "incomplete vocabulary (an interrupted write?)", fix)
    try:
        return Vocabulary(
            # zarr reads strings as numpy's StringDType, which casts to str only through object.
            root["words"][...].astype(object).astype(str),
            root["vectors"][...],
            root["true_row"][...],
            str(root.attrs.get("source", "")),
        )
    except ValueError as error:
        raise InputFileError(str(path), str(error), fix) from error
