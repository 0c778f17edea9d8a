import numpy as np
import pytest
from metric_context import rows_context

from vlmsae.metrics import modality_classifier as mc


def summarise(context):
    return mc.summarise(context, mc.ClassifierSettings())


def make_context(image, text, dictionary, kinds, energy):
    return rows_context(image, text, dictionary, kinds, energy)


def brute_force_accuracy(image: np.ndarray, text: np.ndarray) -> float:
    """Every threshold t in {−∞} ∪ scores, both directions, one at a time."""
    best = 0.0
    for t in np.concatenate([[-np.inf], image, text]):
        images_above = np.sum(image > t) + np.sum(text <= t)
        images_below = np.sum(image <= t) + np.sum(text > t)
        best = max(best, images_above, images_below)
    return best / (len(image) + len(text))


def test_threshold_accuracy_by_hand():
    # Sorted: 0T 1I 2I 3I | 4T 5T 6T 10I — "image below 3.5" gets all but 0 and 10 right.
    accuracy = mc.threshold_accuracy(np.array([[1.0, 2, 3, 10]]), np.array([[4.0, 5, 6, 0]]))
    np.testing.assert_allclose(accuracy, [6 / 8])


def test_threshold_accuracy_either_direction_and_several_classifiers():
    image = np.array([[0.0, 1.0], [5.0, 6.0], [1.0, 2.0]])
    text = np.array([[5.0, 6.0], [0.0, 1.0], [1.0, 2.0]])
    # Images below, images above, identical scores.
    np.testing.assert_allclose(mc.threshold_accuracy(image, text), [1.0, 1.0, 0.5])


def test_tied_scores_are_never_split():
    # One image and one text at 1: no threshold separates them.
    np.testing.assert_allclose(mc.threshold_accuracy(np.array([[1.0]]), np.array([[1.0]])), [0.5])
    accuracy = mc.threshold_accuracy(np.array([[0.0, 1.0]]), np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(accuracy, [3 / 4])


def test_unbalanced_classes_fall_back_to_the_majority():
    # Every score tied: the best is to call everything an image, 3 of 4 right.
    np.testing.assert_allclose(mc.threshold_accuracy(np.zeros((1, 3)), np.zeros((1, 1))), [0.75])
    np.testing.assert_allclose(mc.threshold_accuracy(np.array([[0.0, 1]]), np.array([[5.0]])), [1])


def test_threshold_accuracy_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    # Small integer scores: plenty of ties within and across modalities.
    image = rng.integers(0, 6, size=(20, 15)).astype(float)
    text = rng.integers(2, 8, size=(20, 12)).astype(float)
    expected = [brute_force_accuracy(i, t) for i, t in zip(image, text, strict=True)]
    np.testing.assert_allclose(mc.threshold_accuracy(image, text), expected)


def test_classifier_accuracy_by_hand():
    image = np.array([[1.0, 0.1, 0.0], [0.9, -0.2, 0.0]])
    text = np.array([[0.1, 1.0, 0.0], [-0.1, 0.8, 0.0]])
    # e1 − e2 separates the modalities; 3·(e1 − e2) is the same direction; e3 scores all 0.
    dictionary = np.array([[1.0, -1.0, 0.0], [3.0, -3.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(mc.classifier_accuracy(image, text, dictionary), [1.0, 1.0, 0.5])


def random_rows(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((60, 8)) + np.eye(1, 8)
    text = rng.standard_normal((60, 8)) - np.eye(1, 8)
    return image, text, rng.standard_normal((13, 8))


def test_accuracy_properties():
    image, text, dictionary = random_rows(1)
    accuracy = mc.classifier_accuracy(image, text, dictionary, chunk=5)
    assert np.all((accuracy >= 0.5) & (accuracy <= 1.0))
    # Chunks change the memory, not the answer.
    np.testing.assert_array_equal(accuracy, mc.classifier_accuracy(image, text, dictionary, 100))
    # Swapping modalities or flipping an atom only swaps the direction of the best threshold.
    np.testing.assert_array_equal(accuracy, mc.classifier_accuracy(text, image, dictionary))
    np.testing.assert_array_equal(accuracy, mc.classifier_accuracy(image, text, -dictionary))


def test_rotation_leaves_accuracy_unchanged():
    image, text, dictionary = random_rows(2)
    rotation, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((8, 8)))
    np.testing.assert_array_equal(
        mc.classifier_accuracy(image, text, dictionary),
        mc.classifier_accuracy(image @ rotation, text @ rotation, dictionary @ rotation),
    )


def test_summarise_scores_dead_atoms_but_leaves_them_out_of_the_mean():
    image = np.array([[1.0, 0.1, 0.0], [0.9, -0.2, 0.0]])
    text = np.array([[0.1, 1.0, 0.0], [-0.1, 0.8, 0.0]])
    dictionary = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
    context = make_context(image, text, dictionary, ["image", "bimodal", "dead"], [3.0, 1.0, 0])
    result = summarise(context)
    np.testing.assert_allclose(result.atom_columns["classifier_accuracy"], [1.0, 0.5, 1.0])
    assert result.summary["classifier_accuracy_mean"] == pytest.approx(0.75)
    assert result.summary["classifier_accuracy_energy_weighted_mean"] == pytest.approx(
        (3 * 1.0 + 1 * 0.5) / 4
    )


def test_summarise_of_only_dead_atoms_is_an_error():
    context = make_context(np.eye(2), np.eye(2), np.eye(2), ["dead", "dead"], [0.0, 0.0])
    with pytest.raises(ValueError, match="every atom is dead"):
        summarise(context)


def test_summarise_subsamples_pairs_with_the_seed():
    image, text, dictionary = random_rows(5)
    kinds, energy = ["bimodal"] * len(dictionary), np.ones(len(dictionary))
    every_row = summarise(make_context(image, text, dictionary, kinds, energy))
    np.testing.assert_array_equal(
        every_row.atom_columns["classifier_accuracy"],
        mc.classifier_accuracy(image, text, dictionary),
    )
    context = make_context(image, text, dictionary, kinds, energy)
    settings = mc.ClassifierSettings(classifier_max_rows=20)
    first = mc.summarise(context, settings).atom_columns["classifier_accuracy"]
    np.testing.assert_array_equal(
        first, mc.summarise(context, settings).atom_columns["classifier_accuracy"]
    )
    context.seed = 1
    assert not np.array_equal(
        first, mc.summarise(context, settings).atom_columns["classifier_accuracy"]
    )


def tied_float32_scores(seed: int, c: int = 12, n_image: int = 40, n_text: int = 33):
    """float32 scores with ties within and across modalities, ±0.0 and a dead (all-zero) atom."""
    rng = np.random.default_rng(seed)
    image = (rng.integers(-6, 7, size=(c, n_image)) / 4).astype(np.float32)
    text = (rng.integers(-4, 9, size=(c, n_text)) / 4).astype(np.float32)
    image[0], text[0] = 0.0, -0.0  # a dead atom: every score 0, signs aside
    image[1, ::2] = -0.0
    text[2] = rng.standard_normal(n_text).astype(np.float32)  # no ties at all
    return image, text


@pytest.mark.parametrize("scale", [1.0, 1e6, 1e-30])
def test_merged_extremes_equal_the_binary_searches(scale):
    # scale 1e6: magnitudes over 2 take the offset; 1e-30: small scores keep theirs.
    image, text = tied_float32_scores(0)
    image, text = image * np.float32(scale), text * np.float32(scale)
    searched = mc._searched_extremes(image, text)
    for block in (1, 5, 64):  # blocks that do and do not divide the classifiers
        merged = mc._merged_extremes(image, text, block)
        np.testing.assert_array_equal(merged[0], searched[0])
        np.testing.assert_array_equal(merged[1], searched[1])
    expected = [brute_force_accuracy(i, t) for i, t in zip(image, text, strict=True)]
    np.testing.assert_array_equal(mc.threshold_accuracy(image, text), expected)


def test_scores_without_exact_keys_take_the_binary_searches():
    image, text = tied_float32_scores(1, c=3)
    # Magnitudes from 1e-38 to 1e30 span more bit patterns than an int32 key has room for.
    wide = image.copy()
    wide[:, 0], wide[:, 1] = np.float32(1e-38), np.float32(1e30)
    assert mc._merged_extremes(wide, text) is None
    expected = [brute_force_accuracy(i, t) for i, t in zip(wide, text, strict=True)]
    np.testing.assert_array_equal(mc.threshold_accuracy(wide, text), expected)
    image[1, 3] = np.nan
    assert mc._merged_extremes(image, text) is None
