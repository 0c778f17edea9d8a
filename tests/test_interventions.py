"""Gap closing by edited stores and vector arithmetic (vlmsae.interventions)."""

import numpy as np
import pandas as pd
import pytest
from oracles import oracle_topk

from vlmsae import sae
from vlmsae.datasets.synthetic import SyntheticParams, build, swap_triplets
from vlmsae.errors import InputFileError
from vlmsae.interventions.arithmetic import (
    ArithmeticSettings,
    measure,
    queries,
    reference_split,
    store_triplets,
    target_ranks,
)
from vlmsae.interventions.edits import GapClosingSettings, kept_atoms, write_edited_store
from vlmsae.metrics.evaluate import EvalSettings, evaluate_store
from vlmsae.metrics.gap import nearest_image_distances, nearest_image_separation
from vlmsae.stores import embedding_store as store_module
from vlmsae.stores.embedding_store import EmbeddingStore, write_store

SCORE = {"bimodal": 0.5, "image": 1.0, "text": 0.0}


def test_nearest_image_distances_by_hand():
    # Images at 0°, 60° and 90° in a plane; one caption at 30°. k = 1: each image's nearest
    # other image, the caption's nearest image.
    angle = np.radians([0.0, 60.0, 90.0])
    image = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    text = np.array([[np.cos(np.radians(30)), np.sin(np.radians(30))]])
    image_distance, text_distance = nearest_image_distances(image, text, k=1)
    half = 1 - np.cos(np.radians(30))
    np.testing.assert_allclose(image_distance, [0.5, half, half], atol=1e-6)
    np.testing.assert_allclose(text_distance, [half], atol=1e-6)


def test_nearest_image_separation_is_half_for_one_distribution_and_one_when_apart():
    same = np.array([0.1, 0.2, 0.3])
    assert nearest_image_separation(same, same) == {"auroc": 0.5, "median_difference": 0.0}
    apart = nearest_image_separation(np.array([0.1, 0.2]), np.array([0.5, 0.7]))
    assert apart["auroc"] == 1.0
    assert apart["median_difference"] == pytest.approx(0.45)


def test_target_ranks_by_hand():
    candidates = np.eye(3)
    query = np.array([[1.0, 0.2, 0.0], [1.0, 0.2, 0.0], [1.0, 1.0, 1.0]])
    # Query 0 → target 0 first; query 1 → target 1 second; query 2 ties every candidate: last.
    np.testing.assert_array_equal(target_ranks(query, candidates, np.array([0, 1, 2])), [0, 1, 2])


def test_reference_split_takes_half_the_groups():
    groups = np.repeat(np.arange(6), 2)
    is_reference, held_out = reference_split(groups, seed=0)
    assert is_reference.sum() == 6 and len(held_out) == 3
    assert not np.isin(groups[is_reference], held_out).any()


def _params(**change):
    base = dict(
        d=128,
        n_bimodal=32,
        n_unimodal=16,
        L=4,
        n_active_bimodal=2,
        tau1=1.0,
        tau2=0.3,
        n_pairs=600,
        seed=0,
    )
    return SyntheticParams(**{**base, **change})


@pytest.mark.parametrize("tau1", [1.0, 0.6])
def test_swap_triplets_swap_exactly_one_concept(tau1):
    arrays = build(_params(tau1=tau1))
    truth = arrays["truth"]
    pairs = arrays["pairs"][:20]
    drawn = swap_triplets(truth, pairs, swaps_per_source=3, seed=0)
    assert len(drawn["target"]) == 60
    # Targets of one source differ (distinct concepts swapped in), and none is the source.
    for source in range(20):
        targets = drawn["target"][drawn["group"] == source]
        assert len(np.unique(np.round(targets, 5), axis=0)) == 3
    held = truth.atom_concept[truth.codes["image"].indices[pairs[drawn["group"], 0]]]
    assert all(out in row for out, row in zip(drawn["swapped_out"], held, strict=True))
    assert not any(new in row for new, row in zip(drawn["swapped_in"], held, strict=True))
    np.testing.assert_allclose(np.linalg.norm(drawn["caption"], axis=1), 1, atol=1e-5)
    # The target is the source minus the swapped-out instantiation plus the new one: its cosine
    # with the source is high but below 1.
    cosine = np.sum(arrays["image"][drawn["source_row"]] * drawn["target"], axis=1)
    assert np.all(cosine < 0.999) and np.all(cosine > 0.3)


def test_swap_triplets_refuse_more_swaps_than_absent_concepts():
    arrays = build(_params(n_bimodal=3, n_active_bimodal=2))
    with pytest.raises(ValueError, match="swaps per source"):
        swap_triplets(arrays["truth"], arrays["pairs"][:5], swaps_per_source=2, seed=0)


def _oracle(store: EmbeddingStore, k: int) -> tuple[sae.SparseAutoencoder, pd.DataFrame]:
    """A TopK SAE whose encoder and decoder are the true dictionary, and its atoms table with
    the true kinds as modality scores."""
    truth = store.truth()
    model = oracle_topk(truth.dictionary, k)
    score = np.array([SCORE[kind] for kind in truth.atom_kind])
    atoms = pd.DataFrame(
        {"atom": np.arange(len(score)), "modality_score_sq": score, "modality_score": score}
    )
    return model, atoms


@pytest.fixture(scope="module")
def iso_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("stores") / "iso.zarr"
    write_store(path, **build(_params()))
    return EmbeddingStore(path)


def test_bimodal_edit_closes_the_gap_that_mean_shift_leaves_open(iso_store, tmp_path):
    # Iso-energy holds (τ1 = 1) and the dictionary is the true one: dropping the unimodal atoms
    # leaves each image and its caption on the same bimodal part, so the captions' distances to
    # their 10th nearest image match the images' own; the mean shift only moves the means.
    model, atoms = _oracle(iso_store, k=4)
    settings = GapClosingSettings()
    assert kept_atoms(atoms, settings).sum() == 32
    measured = {"dense": evaluate_store(iso_store, EvalSettings())[0]}
    for edit in ("bimodal", "mean-shift"):
        path = write_edited_store(
            iso_store, tmp_path / f"{edit}.zarr", edit, model, atoms, settings, "oracle"
        )
        edited = EmbeddingStore(path)
        assert edited.attrs["edit"] == edit and edited.attrs["normalised"] is False
        np.testing.assert_array_equal(edited.pairs, iso_store.pairs)
        measured[edit] = evaluate_store(edited, EvalSettings())[0]
    dense, bimodal, shifted = (measured[e] for e in ("dense", "bimodal", "mean-shift"))
    assert dense["gap_nn_auroc"] > 0.9
    assert dense["gap_nn_zero_images"] == dense["gap_nn_zero_texts"] == 0
    assert bimodal["gap_nn_auroc"] < 0.6 < shifted["gap_nn_auroc"]
    for direction in ("i2t", "t2i"):
        key = f"recall_at1_{direction}_dense"
        assert bimodal[key] >= dense[key] - 0.02


def test_mean_shift_edit_matches_the_train_means(iso_store, tmp_path):
    path = write_edited_store(
        iso_store, tmp_path / "shift.zarr", "mean-shift", None, None, GapClosingSettings(), "none"
    )
    edited = EmbeddingStore(path)
    train = iso_store.split_pairs("train")
    image, text = edited.rows("image", train[:, 0]), edited.rows("text", train[:, 1])
    np.testing.assert_allclose(image.mean(axis=0), text.mean(axis=0), atol=1e-5)


def test_the_stores_mean_shift_gap_is_the_mean_shift_edits_gap(iso_store, tmp_path):
    # stores.csv's `gap_*_mean_shift` and gap_closing.csv's mean-shift edit (`gap_*_dense` of
    # the edited store) are one number: the shift fitted on the store's train pairs, measured
    # on its eval pairs with the same split and seed.
    path = write_edited_store(
        iso_store, tmp_path / "shift.zarr", "mean-shift", None, None, GapClosingSettings(), "none"
    )
    store = evaluate_store(iso_store, EvalSettings())[0]
    edited = evaluate_store(EmbeddingStore(path), EvalSettings())[0]
    for name in ("mean_distance", "separability", "knn_auroc"):
        assert store[f"gap_{name}_mean_shift"] == edited[f"gap_{name}_dense"], name


def test_edit_of_a_store_without_text_rows_is_refused(tmp_path, monkeypatch):
    arrays = build(_params(n_pairs=50))
    arrays.update(
        text=arrays["text"][:0], pairs=arrays["pairs"][:0], text_split=arrays["text_split"][:0]
    )
    # write_store refuses a store without pairs: this one is written past its check.
    monkeypatch.setattr(store_module, "_check_store_arrays", lambda *args, **kwargs: None)
    store = EmbeddingStore(write_store(tmp_path / "one.zarr", **arrays))
    monkeypatch.undo()
    with pytest.raises(Exception, match="no text rows"):
        write_edited_store(
            store, tmp_path / "out.zarr", "mean-shift", None, None, GapClosingSettings(), "x"
        )
    assert not (tmp_path / "out.zarr").exists()


def test_bimodal_arithmetic_stays_in_distribution_and_finds_the_target(iso_store):
    # Q = I_src + Δ carries the caption's text-only atoms out of the image distribution;
    # Q_SAE adds only the caption's bimodal part, the swapped-in concept.
    model, atoms = _oracle(iso_store, k=4)
    settings = ArithmeticSettings(n_sources=100, swaps_per_source=3)
    triplets = store_triplets(iso_store, settings)
    keep = kept_atoms(atoms, GapClosingSettings())
    table, histograms = measure(queries(model, triplets, keep, 1024), triplets, settings)
    row = table.set_index("query")
    assert row.loc["Q_SAE", "ood_auroc"] < row.loc["Q", "ood_auroc"]
    assert row.loc["Q_SAE", "recall_at_1"] >= row.loc["Q", "recall_at_1"]
    # The baselines: the source alone is as in distribution as a target; the caption alone is not.
    assert row.loc["Q_src", "ood_auroc"] < 0.7 < row.loc["Q_delta", "ood_auroc"]
    assert set(histograms["population"]) == {"target", *row.index}


def _store_with_triplets(path, triplets: np.ndarray) -> EmbeddingStore:
    """A FashionIQ-like store (no truth) of the synthetic rows with the given triplet rows."""
    arrays = build(_params(n_pairs=100))
    arrays.pop("truth")
    return EmbeddingStore(write_store(path, **arrays, extra={"triplets": triplets}))


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing", "triplets name rows the store does not hold.*rebuild the store"),
        ("train only", "no triplet has its reference image in the eval split"),
    ],
)
def test_triplets_naming_missing_items_are_one_line(tmp_path, problem, message):
    probe = _store_with_triplets(tmp_path / "probe.zarr", np.zeros((0, 3), np.int64))
    eval_image = int(probe.split_rows("image", "eval")[0])
    train_image = int(probe.split_rows("image", "train")[0])
    n_images = probe.array("image").shape[0]
    rows = {
        "missing": [[eval_image, 0, n_images]],  # a target past the last image
        "train only": [[train_image, 0, eval_image]],
    }[problem]
    store = _store_with_triplets(tmp_path / "store.zarr", np.array(rows, np.int64))
    with pytest.raises(InputFileError, match=message) as error:
        store_triplets(store, ArithmeticSettings())
    assert "\n" not in str(error.value) and "store.zarr" in str(error.value)
