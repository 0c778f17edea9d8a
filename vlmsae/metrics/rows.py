"""Row normalisation shared by the metrics."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def unit_rows(x: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """x [N, d] as unit rows of `dtype`; a zero row has no direction and stays zero."""
    x = np.asarray(x, dtype=dtype)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def unit_sparse_rows(
    codes: sparse.spmatrix | sparse.sparray, dtype: type = np.float64
) -> tuple[sparse.csr_array, np.ndarray]:
    """(codes [N, p] with unit rows of `dtype`, [N] bool: the row has a direction). A zero row, or
    one holding NaN/Inf, is zero in the result (cosine 0 with everything)."""
    codes = sparse.csr_array(codes, dtype=np.float64, copy=True)
    row_of_entry = np.repeat(np.arange(codes.shape[0]), np.diff(codes.indptr))
    finite = np.ones(codes.shape[0], dtype=bool)
    finite[row_of_entry[~np.isfinite(codes.data)]] = False
    codes.data[~finite[row_of_entry]] = 0.0
    codes.eliminate_zeros()
    norms = np.sqrt(np.asarray(codes.multiply(codes).sum(axis=1)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sparse.csr_array(sparse.diags_array(inverse) @ codes, dtype=dtype), norms > 0


def zero_rows(x: np.ndarray) -> int:
    """How many rows of x [N, d] are zero (no direction: `unit_rows` leaves them zero)."""
    return int(np.count_nonzero(~x.any(axis=1)))
