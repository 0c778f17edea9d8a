"""The one tie rule of every ranking metric (zero-shot accuracy, retrieval recall and MRR).

A query (an image to classify, an image or caption to match) has a right answer (its class, its
partner or any member of the partner's group) and wrong candidates, all scored by cosine. Two
counts describe where the right answer lands: `above`, the wrong candidates scoring more than it
by over TIE_TOLERANCE, and `tied`, those within TIE_TOLERANCE of it.

- top-1 (R@1, zero-shot top-1): a hit only when nothing is above and nothing ties. A tie counts
  as wrong: an argmax would credit whichever candidate comes first, which is no information.
- top-k, k > 1: the expected hit under a uniformly random order of the tied block. The right
  answer then takes each of the positions above + 1 … above + tied + 1 with probability
  1 / (tied + 1), so its credit is clip(k − above, 0, tied + 1) / (tied + 1). An image whose
  code shares no atom with any of 10 classes (all tied) gets 5/10 at top-5, what any ranking
  gives, instead of 0.
- reciprocal rank (MRR): the expected 1 / rank under the same random order of the tied block,
  (1 / (tied + 1)) · Σ_{r = above + 1}^{above + tied + 1} 1 / r; 1 / (above + 1) without ties.
  A right answer tied with all N − 1 wrong candidates gets H_N / N, what a random ranking gives.
Without ties both are the plain `above < k`. A query that cannot be scored (its row, or every
right answer's row, is zero or not finite) has above = inf: no credit at any k.

The tie rate where ties happen is the share of queries whose right answer ties with at least one
wrong candidate at the top-1 boundary (above = 0, tied ≥ 1): the queries top-1 counts wrong for a
tie alone.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma

# Two cosines closer than this tie. A comparison of two float32 cosines of unit rows at d = 768
# can be off by twice their rounding error (measured at most 7e-7 against float64); on the 500
# real COCO pairs no competitor comes closer than 1.0e-5 to its partner's cosine. Without the
# tolerance, rounding noise, not the geometry, would order two parallel rows.
TIE_TOLERANCE = 2e-6


def valid_rows(x: np.ndarray) -> np.ndarray:
    """[N] bool: the rows of x [N, d] that are finite and not zero, i.e. have a direction."""
    x = np.asarray(x)
    return np.isfinite(x).all(axis=1) & x.any(axis=1)


def hit_credit(above: np.ndarray, tied: np.ndarray, k: int) -> np.ndarray:
    """[N] credit in [0, 1] of each query at top-k (module docstring): above [N] (inf: not
    scored), tied [N] counts of wrong candidates above and tied with the right answer."""
    above = np.asarray(above, dtype=np.float64)
    tied = np.asarray(tied, dtype=np.float64)
    if k == 1:
        return ((above == 0) & (tied == 0)).astype(np.float64)
    # k − inf is −inf, clipped to 0: an unscored query gets nothing, without a warning.
    return np.clip(k - above, 0.0, tied + 1.0) / (tied + 1.0)


def reciprocal_rank(above: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """[N] expected reciprocal rank of each query's right answer (module docstring): above [N]
    (inf: not scored, reciprocal rank 0), tied [N] as in `hit_credit`."""
    above = np.asarray(above, dtype=np.float64)
    tied = np.asarray(tied, dtype=np.float64)
    scored = np.isfinite(above)
    first = np.where(scored, above, 0.0) + 1.0  # the best rank the right answer can take
    # Σ_{r = first}^{first + tied} 1 / r = ψ(first + tied + 1) − ψ(first); without ties the
    # exact 1 / first, so that an untied rank reads back exactly.
    spread = (digamma(first + tied + 1.0) - digamma(first)) / (tied + 1.0)
    credit = np.where(tied == 0, 1.0 / first, spread)
    return np.where(scored, credit, 0.0)


def tied_at_top(above: np.ndarray, tied: np.ndarray) -> np.ndarray:
    """[N] bool: the right answer ties with a wrong candidate at the top-1 boundary."""
    return (np.asarray(above) == 0) & (np.asarray(tied) > 0)
