"""The usage cosines of both truths from shared products (`recovery._usage_matchings`) against
`usage_matching` on each truth built in full (`authors_truth`, `merged_truth`)."""

import numpy as np
import pytest
from scipy import sparse

from vlmsae.metrics import recovery
from vlmsae.stores.embedding_store import TrueStructure


def _case(seed: int, split_concepts: bool) -> tuple:
    """Random codes with ties (small integers), dead learned atoms and unused true atoms, and a
    truth of 6 atoms: bimodal concepts kept once (τ1 = 1) or split in two rows (τ1 < 1)."""
    rng = np.random.default_rng(seed)
    n, p = 30, 9

    def codes(columns: int, density: float, unused: list[int]) -> sparse.csr_matrix:
        values = rng.integers(1, 3, (n, columns)) * (rng.random((n, columns)) < density)
        values[:, unused] = 0
        return sparse.csr_matrix(values.astype(np.float32))

    learned_image, learned_text = codes(p, 0.3, [2, 7]), codes(p, 0.3, [2, 7])  # dead atoms
    kind = np.array(["bimodal", "bimodal", "image", "text", "bimodal", "bimodal"])
    concept = np.array([0, 0, 1, 2, 3, 3]) if split_concepts else np.arange(6)
    truth = TrueStructure(rng.standard_normal((6, 4)), kind, concept, {})
    # True atom 5 is never used on images.
    true_image, true_text = codes(6, 0.4, [5]), codes(6, 0.4, [])
    codes_all = recovery._stacked(learned_image, learned_text)
    return codes_all, truth, true_image, true_text


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("split_concepts", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_shared_usage_matchings_equal_each_truth_built_in_full(seed, split_concepts, dense):
    codes, truth, true_image, true_text = _case(seed, split_concepts)
    _, authors_codes = recovery.authors_truth(truth, true_image, true_text)
    _, merged_codes = recovery.merged_truth(truth, true_image, true_text)
    shared = recovery._shared_bimodal(truth)
    assert len(shared) == (0 if split_concepts else 4)
    authors, merged = recovery._usage_matchings(
        codes, merged_codes, true_image, true_text, shared, dense
    )
    # Both matrices equal `usage_cosines` of each truth to the last bit, and the solvers are
    # deterministic: the same matching, ties included, and the same cosines.
    for (rows, cosines), true_codes in ((authors, authors_codes), (merged, merged_codes)):
        expected_rows, _, expected = recovery.usage_matching(codes, true_codes, dense)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(cosines, expected)


def test_usage_cosines_are_the_dense_formula():
    codes, truth, true_image, true_text = _case(0, False)
    _, authors_codes = recovery.authors_truth(truth, true_image, true_text)
    learned, true = codes.toarray().astype(np.float64), authors_codes.toarray().astype(np.float64)
    norms = np.linalg.norm(learned, axis=0)[:, None] * np.linalg.norm(true, axis=0)[None, :]
    expected = np.divide(learned.T @ true, norms, out=np.zeros_like(norms), where=norms > 0)
    np.testing.assert_allclose(recovery.usage_cosines(codes, authors_codes), expected, atol=1e-12)
