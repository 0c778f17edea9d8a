"""What figures read that the metric groups add for them: per-atom gap shares (iso-energy Fig. 3)
and the cone histograms table (linear-structure Fig. 5)."""

import numpy as np
from scipy import sparse

from vlmsae.metrics.cones import DISTRIBUTIONS, ConeSettings, summarise_store
from vlmsae.metrics.context import StoreContext
from vlmsae.metrics.gap import gap_shares


def test_gap_shares_by_hand():
    image = np.array([[1.0, 0.0], [1.0, 0.0]])  # mean (1, 0)
    text = np.array([[0.0, 1.0], [0.0, 1.0]])  # mean (0, 1): Δ = (1, −1), ‖Δ‖² = 2
    dictionary = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # D·Δ = (1, −1, −0.2)
    codes_image = sparse.csr_matrix([[1.0, 0.0, 0.0], [1.0, 0.0, 0.5]])  # mean (1, 0, 0.25)
    codes_text = sparse.csr_matrix([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # mean (0, 1, 0)
    shares = gap_shares(codes_image, codes_text, dictionary, image, text)
    # (mean_I z − mean_T z) · (D·Δ) / ‖Δ‖² = (1·1, −1·−1, 0.25·−0.2) / 2
    assert np.allclose(shares, [0.5, 0.5, -0.025])


def test_gap_shares_without_a_gap_are_undefined():
    rows = np.array([[1.0, 0.0], [0.0, 1.0]])
    codes = sparse.csr_matrix(np.eye(2))
    assert np.isnan(gap_shares(codes, codes, np.eye(2), rows, rows)).all()


def test_cone_histograms_table_counts_every_pair_of_the_sample():
    rng = np.random.default_rng(0)
    n = 5
    context = StoreContext(image=rng.normal(size=(n, 4)), text=rng.normal(size=(n, 4)), seed=0)
    table = summarise_store(context, ConeSettings()).tables["cone_histograms"]
    assert list(table.columns) == ["bin_left", "bin_right", *DISTRIBUTIONS]
    assert len(table) == 100
    assert np.allclose(table["bin_left"].iloc[0], -1.0) and np.allclose(
        table["bin_right"].iloc[-1], 1.0
    )
    assert np.allclose(
        table["bin_left"].iloc[1:].to_numpy(), table["bin_right"].iloc[:-1].to_numpy()
    )
    # within a modality: the n(n−1)/2 distinct pairs; across: n true pairs, n(n−1) non-pairs.
    assert table[["within_image", "within_text", "paired", "unpaired"]].sum().tolist() == [
        10,
        10,
        5,
        20,
    ]
