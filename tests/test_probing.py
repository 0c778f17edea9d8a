import numpy as np
import pytest
from metric_context import rows_context
from scipy.stats import ortho_group

from vlmsae.metrics import probing
from vlmsae.metrics.context import EvalContext
from vlmsae.registry_base import Settings


def summarise(context):
    return probing.summarise(context, Settings())


# Atoms: 0 image (1, 0), 1 bimodal (0, 1), 2 text (−1, 0), 3 dead (.6, .8).
DICTIONARY = np.array([[1, 0], [0, 1], [-1, 0], [0.6, 0.8]], dtype=np.float32)
KINDS = np.array(["image", "bimodal", "text", "dead"], dtype=object)
ENERGY_SQ = np.array([1.0, 2.0, 1.0, 0.0])
# b = (1·(1, 0) + 2·(0, 1) + 1·(−1, 0)) / 4 = (0, .5).
IMAGE = np.array([[1, 0.6], [1, 0.2]], dtype=np.float32)
TEXT = np.array([[-1, 0.6], [-0.5, 0.9]], dtype=np.float32)


def context(image, text, dictionary, kinds, energy_sq):
    """An EvalContext for the probes: they read rows, dictionary, kinds and energy_sq only."""
    return rows_context(image, text, dictionary, kinds, energy_sq)


def random_run(seed: int, n: int = 50, p: int = 9, d: int = 6) -> EvalContext:
    """Image and text rows in two shifted clouds, a random dictionary and random energies."""
    rng = np.random.default_rng(seed)
    shift = rng.standard_normal(d)
    image = (rng.standard_normal((n, d)) + shift).astype(np.float32)
    text = (rng.standard_normal((n, d)) - shift).astype(np.float32)
    dictionary = rng.standard_normal((p, d)).astype(np.float32)
    kinds = np.array(["image", "text", "bimodal"] * (p // 3), dtype=object)
    return context(image, text, dictionary, kinds, rng.uniform(0.1, 1.0, p))


def test_mean_atom_by_hand():
    np.testing.assert_allclose(probing.mean_atom(DICTIONARY, ENERGY_SQ), [0.0, 0.5])
    # Rows are re-normalised before averaging.
    np.testing.assert_allclose(probing.mean_atom(DICTIONARY * 4, ENERGY_SQ), [0.0, 0.5])
    with pytest.raises(ValueError, match="every weight is zero"):
        probing.mean_atom(DICTIONARY, np.zeros(4))


def test_probe_accuracy_by_hand():
    # x − b: images (1, .1), (1, −.3); texts (−1, .1), (−.5, .4).
    # Atom 0: both images > 0, both texts ≤ 0: 1. Atom 1: image 0 and both texts > 0: 1/4.
    # Atom 2: no image > 0, both texts > 0: 0. Atom 3: images .68, .36 > 0; texts −.52, .02 > 0.
    accuracy = probing.probe_accuracy(IMAGE, TEXT, DICTIONARY, np.array([0.0, 0.5]))
    np.testing.assert_allclose(accuracy, [1.0, 0.25, 0.0, 0.75])


def test_a_row_on_the_hyperplane_is_negative():
    accuracy = probing.probe_accuracy(
        np.array([[0.0, 1.0]]), np.array([[0.0, -1.0]]), np.array([[1.0, 0.0]]), np.zeros(2)
    )
    # Both scores are 0: the image is missed and the text is right.
    np.testing.assert_allclose(accuracy, [0.5])


def test_atom_scores_by_hand():
    accuracy = np.array([0.9, 0.9, 0.9, 0.2, 0.5, np.nan])
    kinds = np.array(["image", "text", "bimodal", "bimodal", "bimodal", "dead"])
    score = probing.atom_scores(accuracy, kinds)
    np.testing.assert_allclose(score, [0.9, 0.1, 0.6, 0.7, 1.0, np.nan])


def test_summarise_by_hand():
    result = summarise(context(IMAGE, TEXT, DICTIONARY, KINDS, ENERGY_SQ))
    # Scores: image atom 1, bimodal 1.5 − .75, text 1 − 0; the dead atom has none.
    np.testing.assert_allclose(result.atom_columns["probe_accuracy"], [1.0, 0.75, 1.0, np.nan])
    assert result.summary == {"p_acc": pytest.approx((1 * 1 + 2 * 0.75 + 1 * 1) / 4)}


def test_p_acc_of_only_dead_atoms_is_an_error():
    with pytest.raises(ValueError, match="every atom is dead"):
        probing.p_acc(np.array([np.nan, np.nan]), np.array([0.0, 0.0]))


def test_blocks_do_not_change_the_accuracy(monkeypatch):
    run = random_run(0)
    bias = probing.mean_atom(run.dictionary, run.energy_sq)
    whole = probing.probe_accuracy(run.image, run.text, run.dictionary, bias)
    monkeypatch.setattr(probing, "BLOCK_ENTRIES", 7)
    np.testing.assert_array_equal(
        probing.probe_accuracy(run.image, run.text, run.dictionary, bias), whole
    )


def test_permuting_atoms_permutes_the_column_and_keeps_p_acc():
    run = random_run(1)
    permutation = np.random.default_rng(2).permutation(run.n_atoms)
    permuted = context(
        run.image,
        run.text,
        run.dictionary[permutation],
        run.atom_kind_sq[permutation],
        run.energy_sq[permutation],
    )
    original, moved = summarise(run), summarise(permuted)
    np.testing.assert_allclose(
        moved.atom_columns["probe_accuracy"], original.atom_columns["probe_accuracy"][permutation]
    )
    assert moved.summary["p_acc"] == pytest.approx(original.summary["p_acc"])


def test_rotating_rows_and_dictionary_keeps_p_acc():
    run = random_run(3)
    rotation = ortho_group.rvs(run.dictionary.shape[1], random_state=4).astype(np.float32)
    rotated = context(
        run.image @ rotation,
        run.text @ rotation,
        run.dictionary @ rotation,
        run.atom_kind_sq,
        run.energy_sq,
    )
    original, moved = summarise(run), summarise(rotated)
    np.testing.assert_allclose(
        moved.atom_columns["probe_accuracy"], original.atom_columns["probe_accuracy"]
    )
    assert moved.summary["p_acc"] == pytest.approx(original.summary["p_acc"])


def test_swapping_modalities_and_unimodal_kinds_keeps_p_acc():
    run = random_run(5)
    swapped_kinds = np.array(
        [{"image": "text", "text": "image"}.get(kind, kind) for kind in run.atom_kind_sq],
        dtype=object,
    )
    swapped = context(run.text, run.image, run.dictionary, swapped_kinds, run.energy_sq)
    # Ties on the hyperplane aside (none in random data), swapping the classes complements acc.
    assert summarise(swapped).summary["p_acc"] == pytest.approx(summarise(run).summary["p_acc"])


def test_blocked_positives_equal_one_count_over_every_row(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, size=(23, 4)).astype(np.float32)  # rows on hyperplanes too
    atoms = rng.integers(-1, 2, size=(5, 4)).astype(np.float32)
    bias = np.array([0.5, 0, 0, 0], dtype=np.float32)
    expected = np.count_nonzero((x - bias) @ atoms.T > 0, axis=0)
    for entries in (5, 5 * 7, 1 << 24):  # a row a block, blocks of 7 rows (the last short), one
        monkeypatch.setattr(probing, "BLOCK_ENTRIES", entries)
        np.testing.assert_array_equal(probing._positives(x, atoms, bias), expected)
    np.testing.assert_array_equal(probing._positives(x[:0], atoms, bias), np.zeros(5))
