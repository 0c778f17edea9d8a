"""What the page shows of a run, precomputed with array operations (never a loop over atoms).

Codes are [N, p] sparse matrices of one modality's eval rows; per atom the page gets its top-k
rows, a histogram of its non-zero activations per modality, and its nearest atoms by decoder
cosine. Table columns come from atoms.parquet, any of whose optional columns may be absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from vlmsae.metrics.rows import unit_rows

# atoms.parquet columns shown as they are, when the run has them (labels live in the page).
OPTIONAL_COLUMNS = (
    "energy",
    "modality_score",
    "atom_kind",
    "classifier_accuracy",
    "name",
    # The name's cosine and the runner-up: every atom gets its nearest word, also one that no
    # word describes (an image-only atom named from text), and these tell a weak name apart.
    "name_score",
    "runner_up",
)
NEIGHBOUR_BLOCK = 1024  # decoder rows per block of the cosine matrix: 1024 × p floats in memory


@dataclass(frozen=True)
class TopRows:
    """Per atom the k rows with the largest codes: rows [p, k] (-1 past the atom's active rows)
    and their values [p, k], largest first."""

    rows: np.ndarray
    values: np.ndarray


def top_rows(codes: sparse.spmatrix, k: int) -> TopRows:
    """The k largest codes of each column of codes [N, p]; ties go to the lower row."""
    coo = codes.tocoo()
    n_atoms = codes.shape[1]
    order = np.lexsort((coo.row, -coo.data, coo.col))
    atoms = coo.col[order]
    rank = np.arange(len(order)) - np.searchsorted(atoms, np.arange(n_atoms))[atoms]
    keep = rank < k
    rows = np.full((n_atoms, k), -1, dtype=np.int64)
    values = np.zeros((n_atoms, k), dtype=np.float32)
    rows[atoms[keep], rank[keep]] = coo.row[order][keep]
    values[atoms[keep], rank[keep]] = coo.data[order][keep]
    return TopRows(rows, values)


def value_range(codes: list[sparse.spmatrix]) -> tuple[np.ndarray, np.ndarray]:
    """(lo [p], hi [p]): the range of each atom's codes over all `codes`, 0 included."""
    n_atoms = codes[0].shape[1]
    lo, hi = np.zeros(n_atoms, dtype=np.float64), np.zeros(n_atoms, dtype=np.float64)
    for matrix in codes:
        coo = matrix.tocoo()
        np.minimum.at(lo, coo.col, coo.data)
        np.maximum.at(hi, coo.col, coo.data)
    return lo, hi


def histograms(codes: sparse.spmatrix, lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    """[p, bins] counts of each atom's non-zero codes in `bins` equal bins over [lo, hi]."""
    coo = codes.tocoo()
    width = np.where(hi > lo, hi - lo, 1.0)
    position = np.floor((coo.data - lo[coo.col]) / width[coo.col] * bins).astype(np.int64)
    position = np.clip(position, 0, bins - 1)
    n_atoms = codes.shape[1]
    counts = np.bincount(coo.col * bins + position, minlength=n_atoms * bins)
    return counts.reshape(n_atoms, bins)


def nearest_atoms(dictionary: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(atoms [p, k'], cosines [p, k']) of each atom's k' = min(k, p − 1) nearest other atoms
    by decoder cosine, nearest first; computed NEIGHBOUR_BLOCK rows at a time."""
    unit = unit_rows(dictionary)
    n_atoms = len(unit)
    k = min(k, n_atoms - 1)
    atoms = np.zeros((n_atoms, k), dtype=np.int64)
    cosines = np.zeros((n_atoms, k), dtype=np.float32)
    for start in range(0, n_atoms, NEIGHBOUR_BLOCK):
        block = unit[start : start + NEIGHBOUR_BLOCK] @ unit.T
        own = np.arange(start, start + len(block))
        block[own - start, own] = -np.inf
        candidates = np.argpartition(-block, k - 1, axis=1)[:, :k] if k else block[:, :0]
        found = np.take_along_axis(block, candidates, axis=1)
        order = np.argsort(-found, axis=1, kind="stable")
        atoms[own] = np.take_along_axis(candidates, order, axis=1)
        cosines[own] = np.take_along_axis(found, order, axis=1)
    return atoms, cosines


def table_columns(atoms: pd.DataFrame) -> dict[str, np.ndarray]:
    """The table's columns of atoms.parquet (rows in atom order): frequency (the mean of the two
    modalities' frequencies: eval rows are N images and their N captions) and OPTIONAL_COLUMNS,
    each only when the run has it."""
    columns = {}
    if {"frequency_image", "frequency_text"} <= set(atoms.columns):
        columns["frequency"] = (
            atoms["frequency_image"].to_numpy() + atoms["frequency_text"].to_numpy()
        ) / 2
    for name in OPTIONAL_COLUMNS:
        if name in atoms.columns:
            columns[name] = atoms[name].to_numpy()
    return columns
