"""Atom energy (linear-structure: first moment; iso-energy: second moment) and its concentration."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def energy(codes: np.ndarray | sparse.spmatrix, moment: int = 1) -> np.ndarray:
    """[p] per-atom energy: mean_n |z_nk|^moment over the rows of codes [N, p] (dense or sparse).

    For the non-negative codes of TopK-style SAEs the first moment is linear-structure's
    E_k = mean_n z_nk; the absolute value keeps it a magnitude for signed codes (matching pursuit).
    """
    if moment not in (1, 2):
        raise ValueError(f"energy moment must be 1 or 2, got {moment}")
    if sparse.issparse(codes):
        magnitude = abs(codes) if moment == 1 else codes.multiply(codes)
        return np.asarray(magnitude.sum(axis=0, dtype=np.float64)).ravel() / codes.shape[0]
    dense = np.asarray(codes, dtype=np.float64)
    return (np.abs(dense) if moment == 1 else np.square(dense)).mean(axis=0)


def top_share(atom_energy: np.ndarray, m: int) -> float:
    """Share of the total energy carried by the m most energetic atoms (1.0 when m ≥ p)."""
    total = atom_energy.sum()
    if total == 0:
        raise ValueError("energy share is undefined: every atom is dead")
    return float(np.sort(atom_energy)[::-1][:m].sum() / total)
