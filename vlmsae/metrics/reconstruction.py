"""Reconstruction quality and sparsity (DESIGN §5, Reconstruction)."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def mean_squared_error(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean over rows and dimensions of (x − x̂)², x and x̂ [N, d]."""
    return float(np.mean((x - reconstruction) ** 2, dtype=np.float64))


def r_squared(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """R² = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the per-dimension mean of x [N, d]."""
    residual = np.sum((x - reconstruction) ** 2, dtype=np.float64)
    total = np.sum((x - x.mean(axis=0, dtype=np.float64)) ** 2, dtype=np.float64)
    if total == 0:
        raise ValueError("R² is undefined: every row of x is the same")
    return float(1.0 - residual / total)


def l0(codes: np.ndarray | sparse.spmatrix) -> float:
    """Mean number of non-zero entries per code row, codes [N, p] (dense or sparse)."""
    if sparse.issparse(codes):
        return float(codes.count_nonzero() / codes.shape[0])
    return float(np.count_nonzero(codes, axis=1).mean())
