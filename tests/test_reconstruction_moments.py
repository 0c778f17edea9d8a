"""`ErrorMoments`: the one pass per modality behind every MSE and R² of the summary; moments of
two sets of rows add up to those of the rows together."""

from __future__ import annotations

import numpy as np
import pytest

from vlmsae.metrics import reconstruction
from vlmsae.metrics.reconstruction import ErrorMoments


def _rows(seed: int, n: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 5)) + offset).astype(np.float32)
    return x, (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32)


def test_pooled_moments_equal_the_moments_of_the_rows_together(monkeypatch):
    # Chunks of 7 rows: the per-chunk sums are exercised, not only one block.
    monkeypatch.setattr(reconstruction, "CHUNK_ROWS", 7)
    (a, a_hat), (b, b_hat) = _rows(0, 30, 0.0), _rows(1, 11, 2.0)
    pooled = ErrorMoments.of(a, a_hat) + ErrorMoments.of(b, b_hat)
    together = ErrorMoments.of(np.concatenate([a, b]), np.concatenate([a_hat, b_hat]))
    assert pooled.rows == together.rows == 41
    for method in ("mse", "mse_sum", "r2", "r2_overall"):
        assert getattr(pooled, method)() == pytest.approx(getattr(together, method)(), rel=1e-12)
    np.testing.assert_allclose(pooled.mean, together.mean, rtol=1e-12)
    np.testing.assert_allclose(pooled.deviation, together.deviation, rtol=1e-12)


def test_the_moments_give_the_textbook_formulas_by_hand():
    # x rows (1, 0), (0, 1), (1, 1); x̂ = x but the last row (1, 0): residual 1.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x_hat = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    moments = ErrorMoments.of(x, x_hat)
    # Per-dimension means 2/3: deviations 3 · (2/3)(1/3) = 2/3 a dimension, 4/3 in all.
    assert moments.r2() == pytest.approx(1 - 1 / (4 / 3))
    # One mean 4/6 = 2/3 over all entries: Σ (x − 2/3)² = 4 · 1/9 + 2 · 4/9 = 4/3.
    assert moments.r2_overall() == pytest.approx(1 - 1 / (4 / 3))
    assert moments.mse() == pytest.approx(1 / 6) and moments.mse_sum() == pytest.approx(1 / 3)


def test_identical_rows_pooled_from_two_sets_leave_r2_undefined():
    row = np.array([[0.25, -1.5, 3.0]], dtype=np.float32)
    first, second = np.repeat(row, 4, axis=0), np.repeat(row, 9, axis=0)
    pooled = ErrorMoments.of(first, first * 0) + ErrorMoments.of(second, second * 0)
    with pytest.raises(ValueError, match="every row"):
        pooled.r2()
    # The entries differ, so the overall convention still has variance to explain.
    assert pooled.r2_overall() < 1


def test_moments_refuse_rows_and_reconstructions_of_different_shapes():
    with pytest.raises(ValueError, match=r"need equal \[N ≥ 1, d\]"):
        ErrorMoments.of(np.ones((3, 2)), np.ones((3, 3)))
