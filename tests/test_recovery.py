import numpy as np
import pytest
from scipy import sparse

from vlmsae.metrics.recovery import (
    authors_truth,
    dictionary_distance,
    matched_cosines,
    merged_truth,
    recovery_summary,
    transport_distance,
    usage_agreement,
    usage_matching,
)
from vlmsae.stores.embedding_store import TrueStructure


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


def test_transport_distance_by_hand_and_dead_atoms_carry_no_mass():
    true = np.eye(2)
    learned = np.eye(2)
    # Energies (1, 3) against (1, 1): a quarter of the mass moves from e2 to e1 at cost 1.
    assert transport_distance(learned, true, np.array([1.0, 3.0]), np.ones(2)) == pytest.approx(
        0.25
    )
    assert transport_distance(learned, true) == pytest.approx(0.0)
    # A third learned atom −e1 without energy changes nothing; with uniform weights it carries a
    # third of the mass, which costs at least 1 per unit wherever it goes: W = 1/3 + 1/6 (the
    # half of e1's demand that e1 alone cannot meet).
    learned = np.vstack([np.eye(2), [[-2.0, 0.0]]])
    energies = np.array([1.0, 3.0, 0.0])
    assert transport_distance(learned, true, energies, np.ones(2)) == pytest.approx(0.25)
    assert transport_distance(learned, true) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one weight per atom"):
        transport_distance(learned, true, np.ones(2))


def _truth(kind, concept, codes_image, codes_text, dictionary=None):
    kind = np.array(kind, dtype=object)
    dictionary = np.eye(len(kind), 4) if dictionary is None else dictionary
    return TrueStructure(dictionary, kind, np.array(concept), {}), (
        sparse.csr_matrix(np.array(codes_image, dtype=np.float32)),
        sparse.csr_matrix(np.array(codes_text, dtype=np.float32)),
    )


def test_authors_truth_keeps_one_copy_of_a_bimodal_atom_per_modality():
    # τ1 = 1: the bimodal atom 0 is one row; its text codes move to a copy appended as row 3.
    truth, (image, text) = _truth(["bimodal", "image", "text"], [0, 1, 2], [[1, 2, 0]], [[3, 0, 4]])
    dictionary, codes = authors_truth(truth, image, text)
    np.testing.assert_array_equal(dictionary, np.eye(3, 4)[[0, 1, 2, 0]])
    np.testing.assert_array_equal(codes.toarray(), [[1, 2, 0, 0], [0, 0, 4, 3]])
    merged_dictionary, merged = merged_truth(truth, image, text)
    np.testing.assert_array_equal(merged.toarray(), [[1, 2, 0], [3, 0, 4]])
    # τ1 < 1: the concept already has two rows, one per modality; nothing changes.
    truth, (image, text) = _truth(
        ["bimodal", "bimodal", "image"], [0, 0, 1], [[1, 0, 2]], [[0, 3, 0]]
    )
    dictionary, codes = authors_truth(truth, image, text)
    np.testing.assert_array_equal(dictionary, np.eye(3, 4))
    np.testing.assert_array_equal(codes.toarray(), [[1, 0, 2], [0, 3, 0]])


def test_recovery_summary_of_the_merged_truth_itself_by_hand():
    # Atoms e1 (bimodal), e2 (image), e3 (text); pair 0 uses e1 in both modalities, pair 1 e2 and
    # e3. The SAE has learned the stored truth exactly: its codes are the true codes.
    truth, (image, text) = _truth(
        ["bimodal", "image", "text"], [0, 1, 2], [[1, 0, 0], [0, 1, 0]], [[1, 0, 0], [0, 0, 1]]
    )
    codes = sparse.vstack([image, text], format="csr")
    summary = recovery_summary(truth.dictionary, codes, truth, image, text)
    # Energies (.5, .25, .25) move onto the split truth (.25 on each copy of e1) at no cost.
    assert summary["recovery_w"] == pytest.approx(0.0, abs=1e-12)
    assert summary["recovery_w_matched"] == pytest.approx(0.0, abs=1e-12)
    # Uniform: learned 1/3 on each of e1, e2, e3; true e1 has two copies (1/2 in all), so 1/6
    # moves to e1 at cost 1.
    assert summary["recovery_w_uniform"] == pytest.approx(1 / 6)
    assert summary["recovery_mma_merged"] == pytest.approx(1.0)
    # e1's usage column (1, 0, 1, 0) has cosine 1/√2 with either copy; e2 and e3 match exactly.
    assert summary["recovery_mma"] == pytest.approx((2 + np.sqrt(0.5)) / 3)
    # Weighted by the learned energies (.5, .25, .25).
    assert summary["recovery_mma_energy"] == pytest.approx(0.5 * np.sqrt(0.5) + 0.5)


def test_energy_weighted_usage_agreement_by_hand():
    true_codes = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    # Learned columns (1, 0, 1) and (0, 1, 1): cosine 1/√2 with the first true column, 1 with
    # the second.
    learned = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    rows, cols, cosines = usage_matching(learned, true_codes)
    np.testing.assert_allclose(cosines[np.argsort(rows)], [np.sqrt(0.5), 1.0])
    weights = np.array([1.0, 3.0])
    assert usage_agreement(learned, true_codes, weights) == pytest.approx((np.sqrt(0.5) + 3.0) / 4)
    assert usage_agreement(learned, true_codes, np.zeros(2)) == 0.0
