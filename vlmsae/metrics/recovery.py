"""Recovery of a known dictionary (iso-energy §4, synthetic data; DESIGN §5 Synthetic recovery).

W: learned atoms are matched one-to-one to true atoms by linear_sum_assignment on the cost
1 − cos; W is the mean matched cost (0 = every true atom found exactly). mma: the same kind of
matching between usage patterns, the columns of the code matrices over the same samples; mma is
the mean matched cosine (1 = every true atom's usage reproduced by some learned atom).
With more learned atoms than true ones, every true atom gets a partner and the rest go unmatched.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from vlmsae.metrics.rows import unit_rows


def matched_cosines(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows of a, rows of b, cosines) of the matching maximising Σ cos; a [m, n], b [q, n]."""
    cosine = unit_rows(a, np.float64) @ unit_rows(b, np.float64).T
    rows, cols = linear_sum_assignment(cosine, maximize=True)
    return rows, cols, cosine[rows, cols]


def dictionary_distance(learned: np.ndarray, true: np.ndarray) -> float:
    """W: mean of 1 − cos over the optimal matching of learned [p, d] to true [K, d] atoms."""
    return float(np.mean(1.0 - matched_cosines(learned, true)[2]))


def usage_agreement(
    learned_codes: sparse.spmatrix | np.ndarray, true_codes: sparse.spmatrix | np.ndarray
) -> float:
    """mma: mean matched cosine between usage columns of codes [N, p] and true codes [N, K].

    Computed from the sparse product Zᵀ Z* [p, K]; a learned atom never used has a zero column
    and a cosine of 0 with anything.
    """
    learned, true = sparse.csr_matrix(learned_codes), sparse.csr_matrix(true_codes)
    gram = np.asarray((learned.T @ true).todense(), dtype=np.float64)

    def column_norms(codes: sparse.csr_matrix) -> np.ndarray:
        return np.sqrt(np.asarray(codes.multiply(codes).sum(axis=0), dtype=np.float64)).ravel()

    # Scale in place: at p = K = 8192 each [p, K] temporary is half a gigabyte.
    for axis, norms in ((1, column_norms(learned)), (0, column_norms(true))):
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        gram *= np.expand_dims(scale, axis)
    rows, cols = linear_sum_assignment(gram, maximize=True)
    return float(np.mean(gram[rows, cols]))
