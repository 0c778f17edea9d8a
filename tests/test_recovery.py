import numpy as np
import pytest

from vlmsae.metrics.recovery import dictionary_distance, matched_cosines, usage_agreement


def test_permuted_and_rescaled_dictionary_is_recovered_exactly():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((5, 8))
    learned = 3.0 * true[[4, 2, 0, 1, 3]]
    assert dictionary_distance(learned, true) == pytest.approx(0.0, abs=1e-12)
    rows, cols, _ = matched_cosines(learned, true)
    np.testing.assert_array_equal(cols[np.argsort(rows)], [4, 2, 0, 1, 3])


def test_distance_by_hand():
    true = np.eye(2)
    learned = np.array([[1.0, 1.0], [0.0, -1.0]])  # cos with e1: 1/√2, 0; with e2: 1/√2, −1
    # Best assignment: learned 0 ↔ e1 (1/√2) and learned 1 ↔ e2 (−1), or 0 ↔ e2 and 1 ↔ e1
    # (1/√2 + 0); the second wins: W = mean(1 − 1/√2, 1 − 0).
    assert dictionary_distance(learned, true) == pytest.approx((2 - 1 / np.sqrt(2)) / 2)


def test_extra_learned_atoms_stay_unmatched():
    true = np.eye(3)[:2]
    learned = np.vstack([np.eye(3), -np.eye(3)])
    assert dictionary_distance(learned, true) == pytest.approx(0.0)


def test_usage_agreement_by_hand():
    true_codes = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 2.0]])
    assert usage_agreement(true_codes[:, ::-1] * 5, true_codes) == pytest.approx(1.0)
    unused = np.zeros((3, 2))
    assert usage_agreement(unused, true_codes) == 0.0
