"""The co-activation bridge's sparse passes (`coactivation`, `thresholded`, `entry_percentile`,
`bimodal_mass`) against dense formulas on small random codes with ties and dead atoms."""

import numpy as np
import pytest
from scipy import sparse

from vlmsae.metrics import bridge


def _codes(rng: np.random.Generator, n: int, p: int) -> sparse.csr_matrix:
    """Small integers (many equal products: ties), atoms 0 and 3 dead, some empty rows."""
    values = rng.integers(1, 4, (n, p)) * (rng.random((n, p)) < 0.3)
    values[:, [0, 3]] = 0
    values[::5] = 0
    return sparse.csr_matrix(values.astype(np.float32))


@pytest.mark.parametrize("seed", range(6))
def test_coactivation_and_its_threshold_are_the_dense_formulas(seed):
    rng = np.random.default_rng(seed)
    image, text = _codes(rng, 40, 7), _codes(rng, 40, 7)
    coupling = bridge.coactivation(image, text)
    # Times 1/N, as scipy's sparse `/` computes it (exact sums: small integers).
    dense = (image.toarray().T @ text.toarray()).astype(np.float64) * (1 / 40)
    np.testing.assert_array_equal(coupling.toarray(), dense)
    assert coupling.has_canonical_format and coupling.dtype == np.float64
    for q in (0.0, 50.0, 90.0, 99.9, rng.uniform(0, 100)):
        cut = np.percentile(dense, q)
        assert bridge.entry_percentile(coupling.data, dense.size, q) == pytest.approx(
            cut, abs=1e-15
        )
        kept = bridge.thresholded(coupling, q)
        expected = np.where(
            np.abs(dense) < bridge.entry_percentile(coupling.data, dense.size, q), 0, dense
        )
        np.testing.assert_array_equal(kept.toarray(), expected)
        assert kept.nnz == np.count_nonzero(expected)  # no stored zeros


@pytest.mark.parametrize("seed", range(4))
def test_bimodal_mass_is_the_dense_formula_and_leaves_the_coupling_intact(seed):
    rng = np.random.default_rng(seed)
    image, text = _codes(rng, 40, 7), _codes(rng, 40, 7)
    cosine = bridge.cosine_matrix(rng.standard_normal((7, 5)).astype(np.float32))
    b = bridge.coactivation_bridge(image, text, cosine)
    coupling = b.coupling.toarray()
    is_bimodal = rng.random(7) < 0.5
    touches = is_bimodal[:, None] | is_bimodal[None, :]
    magnitude = np.abs(coupling * cosine)
    expected = magnitude[touches].sum(), magnitude[~touches].sum()
    np.testing.assert_allclose(bridge.bimodal_mass(b, is_bimodal), expected, rtol=1e-12)
    # Summing the bridge (scipy sorts unsorted indices in place then) leaves the coupling as it was.
    b.values.sum()
    np.testing.assert_array_equal(b.coupling.toarray(), coupling)


@pytest.mark.parametrize("seed", range(8))
def test_nth_largest_is_the_partition_of_all_entries(seed):
    rng = np.random.default_rng(seed)
    data = np.round(rng.standard_normal(int(rng.integers(1, 2000))), 1)  # ties
    if seed % 2:
        data[rng.integers(0, len(data), len(data) // 3)] = np.nan  # NaN ranks above all
    for n in {1, 2, len(data) // 16, len(data) // 2, len(data)} - {0}:
        expected = np.partition(data, len(data) - n)[len(data) - n]
        np.testing.assert_array_equal(bridge.nth_largest(data, n), expected)
