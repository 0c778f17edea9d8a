import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from vlmsae.metrics import gap
from vlmsae.metrics.context import EvalContext
from vlmsae.stores.embedding_store import EmbeddingStore, write_store

D, P = 8, 6
# Atoms 0–3 are shared by both modalities, atom 4 fires on images only and atom 5 on texts only.
KINDS = ["bimodal"] * 4 + ["image", "text"]


def synthetic_pairs(n: int, seed: int) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
    """(image codes, text codes, dictionary): a pair shares its bimodal weights exactly, and each
    modality adds its own unimodal atom, which alone carries the gap."""
    rng = np.random.default_rng(seed)
    dictionary = rng.standard_normal((P, D))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    shared = rng.exponential(size=(n, 4)) * (rng.random((n, 4)) < 0.5)
    unimodal = 1 + rng.random(n)
    codes_image = np.zeros((n, P))
    codes_text = np.zeros((n, P))
    codes_image[:, :4] = codes_text[:, :4] = shared
    codes_image[:, 4] = codes_text[:, 5] = unimodal
    return sparse.csr_matrix(codes_image), sparse.csr_matrix(codes_text), dictionary


def make_context(n: int = 300, seed: int = 0, kinds_sq=KINDS) -> EvalContext:
    """n eval pairs, and the mean shift fitted on n other (train) pairs of the same dictionary."""
    codes_image, codes_text, dictionary = synthetic_pairs(2 * n, seed)
    train = [gap.unit_rows(codes[n:] @ dictionary) for codes in (codes_image, codes_text)]
    train_half_gap = (train[0].mean(axis=0) - train[1].mean(axis=0)) / 2
    codes_image, codes_text = codes_image[:n], codes_text[:n]
    image, text = codes_image @ dictionary, codes_text @ dictionary
    return EvalContext(
        image=gap.unit_rows(image),
        text=gap.unit_rows(text),
        codes_image=codes_image,
        codes_text=codes_text,
        recon_image=image,
        recon_text=text,
        dictionary=dictionary,
        energy=np.ones(P),
        energy_sq=np.ones(P),
        atom_kind=np.array(KINDS, dtype=object),
        atom_kind_sq=np.array(kinds_sq, dtype=object),
        seed=seed,
        atoms=None,
        train_half_gap=train_half_gap,
    )


def summarise(context: EvalContext, **options) -> dict:
    """The store's gap versions (dense, mean shift) and the run's, as one summary."""
    settings = gap.GapSettings(**options)
    return {
        **gap.summarise_store(context, settings).summary,
        **gap.summarise(context, settings).summary,
    }


def test_mean_distance_by_hand():
    image = np.array([[1.0, 0.0], [1.0, 2.0]])  # mean (1, 1)
    text = np.array([[4.0, 5.0], [4.0, 5.0]])  # mean (4, 5)
    assert gap.mean_distance(image, text) == pytest.approx(5.0)
    assert gap.mean_distance(image, image) == 0.0


def test_mean_shift_by_hand():
    image, text = np.array([[2.0, 0.0]]), np.array([[0.0, 0.0]])
    shifted_image, shifted_text = gap.mean_shift(image, text, np.array([1.0, 0.0]))
    np.testing.assert_allclose(shifted_image, [[1.0, 0.0]])
    np.testing.assert_allclose(shifted_text, [[1.0, 0.0]])


def _store(path, image, text, pairs, image_split, text_split) -> EmbeddingStore:
    write_store(
        path,
        image=image,
        text=text,
        pairs=pairs,
        image_split=image_split,
        text_split=text_split,
        attrs={},
        val=None,
    )
    return EmbeddingStore(path)


def test_train_half_gap_by_hand_counts_each_pair(tmp_path, monkeypatch):
    # Image 0 (train) has two captions, image 1 (train) one, image 2 is eval: the train pairs'
    # image mean is (2·(2, 0) + (0, 4))/3 and their caption mean ((0, 0) + (0, 3) + (3, 0))/3.
    image = np.array([[2.0, 0.0], [0.0, 4.0], [9.0, 9.0]])
    text = np.array([[0.0, 0.0], [0.0, 3.0], [3.0, 0.0], [9.0, 9.0]])
    pairs = np.array([[0, 0], [0, 1], [1, 2], [2, 3]])
    split = np.array([0, 0, 1], dtype=np.int8), np.array([0, 0, 0, 1], dtype=np.int8)
    store = _store(tmp_path / "s.zarr", image, text, pairs, *split)
    expected = (np.array([4.0, 4.0]) / 3 - np.array([3.0, 3.0]) / 3) / 2
    np.testing.assert_allclose(gap.train_half_gap(store), expected, rtol=1e-6)
    monkeypatch.setattr(gap, "BLOCK_ENTRIES", 2)  # one row a block: the same sums
    np.testing.assert_allclose(gap.train_half_gap(store), expected, rtol=1e-6)
    everything_eval = _store(
        tmp_path / "e.zarr", image, text, pairs, np.ones(3, np.int8), np.ones(4, np.int8)
    )
    assert gap.train_half_gap(everything_eval) is None


def test_unit_rows_keeps_zero_rows_zero():
    np.testing.assert_allclose(
        gap.unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]]
    )


def test_bimodal_only_masks_the_codes():
    codes = sparse.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]]))
    dictionary = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    keep = np.array([True, False, True])
    np.testing.assert_allclose(gap.bimodal_only(codes, dictionary, keep), [[1.0, 0.0], [3, 3]])


def test_gap_split_is_seeded_disjoint_and_capped():
    train, test = gap.gap_split(100, seed=0, test_fraction=0.3, max_rows=50)
    assert (len(train), len(test)) == (35, 15)
    assert not set(train) & set(test)
    again = gap.gap_split(100, seed=0, test_fraction=0.3, max_rows=50)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(test, gap.gap_split(100, 1, 0.3, 50)[1])
    with pytest.raises(ValueError, match="no train or no test"):
        gap.gap_split(3, seed=0, test_fraction=0.1, max_rows=10)


def test_knn_distance_by_hand():
    root_half = np.sqrt(0.5)
    reference = np.array([[1.0, 0.0], [0.0, 2.0], [root_half, root_half]])
    queries = np.array([[5.0, 0.0], [0.0, 0.0]])
    # The first query has cosines 1, 1/√2, 0; the zero query has cosine 0 with every row.
    for k, first in ((1, 0.0), (2, 1 - root_half), (3, 1.0)):
        # float32 similarities: the search runs at the precision of the embeddings.
        np.testing.assert_allclose(gap.knn_distance(queries, reference, k), [first, 1], atol=1e-6)
    with pytest.raises(ValueError, match="k = 4"):
        gap.knn_distance(queries, reference, 4)


def test_knn_distance_matches_sklearn_in_blocks(monkeypatch):
    monkeypatch.setattr(gap, "BLOCK_ENTRIES", 100)  # 2 queries a block
    rng = np.random.default_rng(1)
    queries, reference = rng.standard_normal((25, 5)), rng.standard_normal((40, 5))
    neighbours = NearestNeighbors(n_neighbors=7, metric="cosine").fit(reference)
    expected = neighbours.kneighbors(queries)[0][:, -1]
    np.testing.assert_allclose(gap.knn_distance(queries, reference, 7), expected, atol=1e-6)


def test_identical_modalities_have_no_gap():
    rows = np.random.default_rng(2).standard_normal((60, 5))
    train, test = gap.gap_split(60, seed=0, test_fraction=0.5, max_rows=60)
    # Each held-out row appears once as an image and once as a text: one of the two is right.
    assert gap.modality_gap(rows, rows.copy(), train, test, k=3) == pytest.approx(
        {"mean_distance": 0.0, "separability": 0.5, "knn_auroc": 0.5}, abs=1e-12
    )


def test_two_clusters_have_a_complete_gap():
    noise = 0.05 * np.random.default_rng(3).standard_normal((80, 3))
    noise[:, :2] = 0
    noise[40:, 2] = -noise[:40, 2]  # symmetric: the cluster means are exactly e1 and e2
    image, text = np.eye(1, 3) + noise, np.eye(1, 3, 1) + noise
    train, test = gap.gap_split(80, seed=0, test_fraction=0.25, max_rows=80)
    result = gap.modality_gap(image, text, train, test, k=5)
    assert result["mean_distance"] == pytest.approx(np.sqrt(2))
    assert result["separability"] == 1.0
    assert result["knn_auroc"] == 1.0


def test_rotation_and_swapping_leave_the_gap_unchanged():
    context = make_context(n=200)
    image, text = context.image, context.text
    train, test = gap.gap_split(200, seed=0, test_fraction=0.3, max_rows=200)
    rotation, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((D, D)))
    before = gap.modality_gap(image, text, train, test, k=5)
    after = gap.modality_gap(image @ rotation, text @ rotation, train, test, k=5)
    assert after == pytest.approx(before, abs=1e-6)
    swapped = gap.linear_separability(text, image, train, test)
    assert swapped == pytest.approx(before["separability"])


def test_summarise_closes_the_gap_by_dropping_unimodal_atoms():
    summary = summarise(make_context(n=300))
    assert set(summary) == {
        "gap_bimodal_atoms",
        "gap_bimodal_zero_rows",
        "gap_nn_auroc",
        "gap_nn_median_difference",
        "gap_nn_zero_images",
        "gap_nn_zero_texts",
    } | {
        f"gap_{name}_{version}"
        for name in ("mean_distance", "separability", "knn_auroc")
        for version in gap.VERSIONS
    }
    assert summary["gap_bimodal_atoms"] == 4
    # A pair's bimodal-only rows are the same vector (zero when no shared atom fired).
    assert summary["gap_mean_distance_bimodal_only"] == 0.0
    assert summary["gap_separability_bimodal_only"] == 0.5
    assert summary["gap_knn_auroc_bimodal_only"] == pytest.approx(0.5, abs=1e-12)
    assert summary["gap_bimodal_zero_rows"] > 0
    for version in ("dense", "reconstructed"):
        assert summary[f"gap_separability_{version}"] > 0.9
        assert summary[f"gap_knn_auroc_{version}"] > 0.9
    # Fitted on other (train) pairs, the shift leaves the sampling noise of the eval means.
    assert summary["gap_mean_distance_mean_shift"] < 0.2 * summary["gap_mean_distance_dense"]
    assert summary["gap_mean_distance_dense"] > 0.3


def test_summarise_is_seeded():
    first = summarise(make_context(n=200), gap_max_rows=150)
    assert summarise(make_context(n=200), gap_max_rows=150) == first


def test_summarise_without_bimodal_atoms_leaves_their_keys_out():
    summary = summarise(make_context(n=100, kinds_sq=["image"] * 3 + ["text"] * 3))
    assert summary["gap_bimodal_atoms"] == 0
    assert not any("bimodal_only" in key or "zero_rows" in key for key in summary)
    assert "gap_knn_auroc_mean_shift" in summary


def test_without_train_pairs_the_mean_shift_gap_is_undefined():
    summary = gap.summarise_store(
        replace(make_context(n=100), train_half_gap=None), gap.GapSettings()
    )
    for name in gap.MEASURES:
        assert f"gap_{name}_mean_shift" not in summary.summary
        assert np.isfinite(summary.summary[f"gap_{name}_dense"])
    assert summary.summary["gap_mean_shift_undefined"].startswith("the store has no train pairs")
    json.dumps(summary.summary, allow_nan=False)  # store.json is written so


def test_summarise_masks_by_second_moment_kinds():
    kinds_sq = ["bimodal"] * 4 + ["bimodal", "text"]  # the image atom counts as bimodal
    summary = summarise(make_context(n=100, kinds_sq=kinds_sq))
    assert summary["gap_bimodal_atoms"] == 5
    assert summary["gap_mean_distance_bimodal_only"] > 0.5


def test_real_clip_pairs(coco_features):
    image, text = np.load(coco_features)
    train, test = gap.gap_split(len(image), seed=0, test_fraction=0.3, max_rows=20000)
    dense = gap.modality_gap(image, text, train, test, k=10)
    # The README's measurement: ‖mean(image) − mean(text)‖ = 0.85; CLIP's cones never touch.
    expected = {"mean_distance": 0.85, "separability": 1.0, "knn_auroc": 1.0}
    assert dense == pytest.approx(expected, abs=0.01)
    shift = (image[train].mean(axis=0) - text[train].mean(axis=0)) / 2
    shifted = gap.modality_gap(*gap.mean_shift(image, text, shift), train, test, k=10)
    # The shift hides the gap from a linear probe but not from the kNN score (iso-energy Fig. 4).
    assert 0.4 < shifted["separability"] < 0.65
    assert shifted["knn_auroc"] > 0.7


def test_zero_rows_are_counted_and_coincide_at_distance_one():
    context = make_context(n=100)
    image, text = context.image.copy(), context.text.copy()
    image[:5] = 0
    text[:3] = 0
    summary = gap.summarise_store(replace(context, image=image, text=text), gap.GapSettings())
    assert (summary.summary["gap_nn_zero_images"], summary.summary["gap_nn_zero_texts"]) == (5, 3)
    # Every row zero: both distance distributions sit at 1, so the gap reads as closed.
    nothing = np.zeros_like(image)
    collapsed = gap.summarise_store(
        replace(context, image=nothing, text=nothing), gap.GapSettings()
    )
    assert collapsed.summary["gap_nn_auroc"] == 0.5
    assert collapsed.summary["gap_nn_median_difference"] == 0.0
    assert collapsed.summary["gap_nn_zero_images"] == collapsed.summary["gap_nn_zero_texts"] == 100


def test_bimodal_only_rows_are_computed_once_and_equal_the_direct_product():
    context = make_context(n=50, seed=3)
    rows = context.bimodal_only_rows()
    keep = context.atom_kind_sq == "bimodal"
    for codes, shared in zip((context.codes_image, context.codes_text), rows, strict=True):
        np.testing.assert_array_equal(shared, gap.bimodal_only(codes, context.dictionary, keep))
    assert context.bimodal_only_rows() is rows
    # A copy of the context starts without them.
    assert replace(context, seed=4).bimodal_only_rows() is not rows
