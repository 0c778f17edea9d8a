"""Row normalisation shared by the metrics."""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """x [N, d] as unit rows of `dtype`; a zero row has no direction and stays zero."""
    x = np.asarray(x, dtype=dtype)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def zero_rows(x: np.ndarray) -> int:
    """How many rows of x [N, d] are zero (no direction: `unit_rows` leaves them zero)."""
    return int(np.count_nonzero(~x.any(axis=1)))
