"""Properties of the metric functions that hold by definition, on generated inputs that include
the degenerate cases of docs/results.md ("Degenerate input"): zero rows, repeated rows, constant
columns, dead atoms, ties. Invariances (permuting rows or atoms, scaling a row that is normalised,
duplicating the eval set), ranges (shares, accuracies and recalls in [0, 1], R² ≤ 1) and the
identities between metrics. Examples are drawn deterministically (the `vlmsae` hypothesis profile
of tests/conftest.py), so a failure reproduces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import sparse

from vlmsae.interventions.arithmetic import target_ranks
from vlmsae.metrics.bridge import bimodal_energy_share, cosine_matrix, odds_ratio
from vlmsae.metrics.cones import cone_statistics
from vlmsae.metrics.energy import energy, top_share
from vlmsae.metrics.gap import knn_distance, mean_distance, mean_shift, nearest_image_separation
from vlmsae.metrics.mms import mms
from vlmsae.metrics.modality import atom_kind, modality_score
from vlmsae.metrics.modality_classifier import classifier_accuracy, threshold_accuracy
from vlmsae.metrics.probing import atom_scores, p_acc, probe_accuracy
from vlmsae.metrics.ranking import hit_credit, valid_rows
from vlmsae.metrics.reconstruction import l0, r_squared
from vlmsae.metrics.recovery import dictionary_distance
from vlmsae.metrics.retrieval import pair_groups, rank_counts, recall_at
from vlmsae.metrics.rows import unit_rows, zero_rows
from vlmsae.metrics.stability import stability
from vlmsae.metrics.zero_shot import zero_shot_dense

# Small integers scaled down: values repeat and hit zero often, so ties, zero rows and dead atoms
# are common rather than measure-zero events.
VALUES = st.integers(-3, 3).map(lambda v: v / 2)
NONNEGATIVE = st.integers(0, 3).map(float)


def matrices(rows=(1, 8), columns=(1, 6), elements=VALUES):
    """Float64 matrices of small values (zero rows and repeats included) with a number of rows
    and of columns in the closed ranges `rows` and `columns`."""
    return st.tuples(st.integers(*rows), st.integers(*columns)).flatmap(
        lambda shape: arrays(np.float64, shape, elements=elements)
    )


def paired(rows=(2, 8), columns=(1, 5), elements=VALUES):
    """Two matrices of one shape [N, d]: image and text rows, row i of each a pair."""
    return st.tuples(st.integers(*rows), st.integers(*columns)).flatmap(
        lambda shape: st.tuples(
            arrays(np.float64, shape, elements=elements),
            arrays(np.float64, shape, elements=elements),
        )
    )


permutations = st.randoms(use_true_random=False)


def _permutation(random, n: int) -> np.ndarray:
    order = list(range(n))
    random.shuffle(order)
    return np.array(order, dtype=np.int64)


# Energy and its concentration.


@given(matrices(elements=NONNEGATIVE), permutations)
def test_energy_is_a_mean_over_rows_per_atom(codes, random):
    per_atom = energy(codes)
    assert per_atom.shape == (codes.shape[1],) and (per_atom >= 0).all()
    rows, atoms = _permutation(random, codes.shape[0]), _permutation(random, codes.shape[1])
    np.testing.assert_allclose(energy(codes[rows]), per_atom)
    np.testing.assert_allclose(energy(codes[:, atoms]), per_atom[atoms])
    np.testing.assert_allclose(energy(np.vstack([codes, codes])), per_atom)
    np.testing.assert_allclose(energy(sparse.csr_matrix(codes), 2), energy(codes, 2))


@given(matrices(elements=NONNEGATIVE), st.integers(1, 8))
def test_top_share_is_a_share_that_grows_with_m(codes, m):
    per_atom = energy(codes)
    if per_atom.sum() == 0:
        with pytest.raises(ValueError, match="every atom is dead"):
            top_share(per_atom, m)
        return
    share = top_share(per_atom, m)
    assert 0 < share <= 1 + 1e-12
    assert top_share(per_atom, m + 1) >= share
    assert top_share(per_atom, len(per_atom)) == pytest.approx(1.0)


# Modality scores and kinds.


@given(
    arrays(np.float64, st.integers(1, 10), elements=NONNEGATIVE),
    arrays(np.float64, 10, elements=NONNEGATIVE),
    st.floats(0.01, 100),
)
def test_modality_score_is_the_image_share_and_nan_exactly_for_dead_atoms(image, text, scale):
    text = text[: len(image)]
    score = modality_score(image, text)
    dead = (image + text) == 0
    assert np.array_equal(np.isnan(score), dead)
    assert ((score[~dead] >= 0) & (score[~dead] <= 1)).all()
    # Swapping the modalities mirrors the score; a common scale of the energies leaves it.
    np.testing.assert_allclose(modality_score(text, image)[~dead], 1 - score[~dead])
    np.testing.assert_allclose(modality_score(scale * image, scale * text), score, rtol=1e-12)
    kinds = atom_kind(score, 0.05)
    assert set(kinds[dead]) <= {"dead"} and "dead" not in set(kinds[~dead])


# Reconstruction.


@given(paired(), permutations)
def test_r_squared_is_at_most_one_and_invariant_to_row_order_and_duplication(pair, random):
    x, reconstruction = pair
    if (x == x[0]).all():
        with pytest.raises(ValueError, match="undefined"):
            r_squared(x, reconstruction)
        return
    value = r_squared(x, reconstruction)
    assert value <= 1.0
    assert r_squared(x, x) == 1.0
    rows = _permutation(random, len(x))
    assert r_squared(x[rows], reconstruction[rows]) == pytest.approx(value)
    doubled = r_squared(np.vstack([x, x]), np.vstack([reconstruction, reconstruction]))
    assert doubled == pytest.approx(value)


@given(matrices())
def test_l0_counts_the_non_zero_entries_per_row(codes):
    assert l0(codes) == pytest.approx(np.count_nonzero(codes) / len(codes))
    assert l0(sparse.csr_matrix(codes)) == pytest.approx(l0(codes))
    assert 0 <= l0(codes) <= codes.shape[1]


# Rows.


@given(matrices(), st.floats(0.1, 10))
def test_unit_rows_scale_free_and_leave_zero_rows_zero(x, scale):
    unit = unit_rows(x, np.float64)
    zero = ~x.any(axis=1)
    assert zero_rows(x) == zero.sum()
    assert (unit[zero] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(unit[~zero], axis=1), 1.0)
    np.testing.assert_allclose(unit_rows(scale * x, np.float64), unit, atol=1e-12)


# Stability and recovery: Hungarian matchings of decoder rows.


@given(matrices(rows=(1, 6), columns=(2, 5)), permutations)
def test_a_dictionary_is_stable_against_its_own_permutation(dictionary, random):
    assume(dictionary.any(axis=1).all())  # a dead (zero) decoder row has no direction
    atoms = _permutation(random, len(dictionary))
    weights = np.arange(1.0, len(dictionary) + 1)
    result = stability(dictionary, dictionary[atoms], weights, weights[atoms], [1, 3])
    for value in result.values():
        assert value == pytest.approx(1.0)
    assert dictionary_distance(dictionary[atoms], dictionary) == pytest.approx(0.0, abs=1e-12)


@given(
    matrices(rows=(1, 5), columns=(3, 3)),
    matrices(rows=(1, 5), columns=(3, 3)),
)
def test_stability_and_recovery_lie_in_their_ranges(a, b):
    assume(a.any(axis=1).all() and b.any(axis=1).all())
    value = stability(a, b, np.ones(len(a)), np.ones(len(b)), [])["stability"]
    assert -1 - 1e-12 <= value <= 1 + 1e-12
    assert stability(b, a, np.ones(len(b)), np.ones(len(a)), [])["stability"] == pytest.approx(
        value
    )
    assert 0 <= dictionary_distance(a, b) <= 2


# Geometry of the dense rows.


@given(paired(rows=(2, 7)), st.floats(0.1, 10), permutations)
def test_cone_statistics_depend_on_directions_only(pair, scale, random):
    image, text = pair
    assume(image.any(axis=1).all() and text.any(axis=1).all())
    stats = cone_statistics(image, text)
    rows = _permutation(random, len(image))
    for name, value in cone_statistics(scale * image[rows], text[rows]).items():
        assert value.mean == pytest.approx(stats[name].mean, abs=1e-9)
        assert -1 - 1e-9 <= value.mean <= 1 + 1e-9 and value.std >= 0


@given(paired(), permutations)
def test_mean_distance_and_mean_shift(pair, random):
    image, text = pair
    distance = mean_distance(image, text)
    rows = _permutation(random, len(image))
    assert mean_distance(image[rows], np.vstack([text, text])) == pytest.approx(distance)
    half_gap = (image.mean(axis=0) - text.mean(axis=0)) / 2
    shifted_image, shifted_text = mean_shift(image, text, half_gap)
    # The shift moves both means onto their midpoint: no gap is left.
    assert mean_distance(shifted_image, shifted_text) == pytest.approx(0.0, abs=1e-9)


@given(paired(rows=(3, 8)), st.integers(1, 2))
def test_knn_distances_are_cosine_distances_and_auroc_a_probability(pair, k):
    image, text = pair
    distance = knn_distance(text, image, k)
    assert ((distance >= -1e-6) & (distance <= 2 + 1e-6)).all()
    separation = nearest_image_separation(
        knn_distance(image, image, k, exclude_self=True), distance
    )
    assert 0 <= separation["auroc"] <= 1


# Dictionaries.


@given(matrices(rows=(1, 6), columns=(1, 4)))
def test_cosine_matrix_is_symmetric_with_unit_diagonal_for_live_rows(dictionary):
    cosine = cosine_matrix(dictionary)
    np.testing.assert_allclose(cosine, cosine.T, atol=1e-6)
    live = dictionary.any(axis=1)
    np.testing.assert_allclose(np.diag(cosine)[live], 1.0, atol=1e-6)
    assert (np.diag(cosine)[~live] == 0).all()


@given(st.floats(0, 1), st.floats(0, 1))
def test_odds_ratio_is_undefined_exactly_where_its_formula_is(alpha, e):
    ratio = odds_ratio(alpha, e)
    if not 0 < e < 1 or alpha == 1:
        assert ratio is None
    else:
        assert ratio >= 0 and np.isfinite(ratio)


@given(
    st.lists(st.sampled_from(["bimodal", "image", "text", "dead"]), min_size=1, max_size=8),
    st.data(),
)
def test_bimodal_energy_share_is_a_share(kinds, data):
    energy_sq = np.array(data.draw(st.lists(NONNEGATIVE, min_size=len(kinds), max_size=len(kinds))))
    if energy_sq.sum() == 0:
        with pytest.raises(ValueError, match="undefined"):
            bimodal_energy_share(np.array(kinds), energy_sq)
    else:
        assert 0 <= bimodal_energy_share(np.array(kinds), energy_sq) <= 1


# Modality classifiers and probes.


@given(
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)), elements=VALUES),
    st.data(),
)
def test_best_threshold_accuracy_against_every_threshold(scores_image, data):
    n_text = data.draw(st.integers(1, 6))
    scores_text = data.draw(arrays(np.float64, (len(scores_image), n_text), elements=VALUES))
    accuracy = threshold_accuracy(scores_image, scores_text)
    # Brute force: every threshold between or beyond the scores, images above or below it.
    for k in range(len(scores_image)):
        values = np.concatenate([scores_image[k], scores_text[k]])
        best = 0
        for t in np.concatenate([values, [values.min() - 1]]):
            above = (scores_image[k] > t).sum() + (scores_text[k] <= t).sum()
            below = (scores_image[k] <= t).sum() + (scores_text[k] > t).sum()
            best = max(best, above, below)
        assert accuracy[k] == pytest.approx(best / len(values))
    # A classifier that says "image" to everything is always available.
    majority = max(scores_image.shape[1], n_text) / (scores_image.shape[1] + n_text)
    assert (accuracy >= majority - 1e-12).all() and (accuracy <= 1).all()


@given(paired(rows=(2, 6), columns=(3, 3)), st.floats(0.1, 10))
def test_classifier_accuracy_ignores_a_positive_scale_of_the_atom(pair, scale):
    image, text = pair
    dictionary = np.array([[1.0, 0.0, 0.0], [0.5, -1.0, 0.5]])
    accuracy = classifier_accuracy(image, text, dictionary)
    np.testing.assert_allclose(classifier_accuracy(image, text, scale * dictionary), accuracy)
    # Images against a copy of themselves: no threshold separates a row from itself.
    assert (classifier_accuracy(image, image, dictionary) <= 0.5 + 1e-12).all()


@given(
    paired(rows=(2, 6), columns=(3, 3)),
    st.lists(st.sampled_from(["bimodal", "image", "text", "dead"]), min_size=2, max_size=2),
)
def test_probe_scores_lie_in_their_ranges(pair, kinds):
    image, text = pair
    dictionary = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    accuracy = probe_accuracy(image, text, dictionary, np.zeros(3))
    assert ((accuracy >= 0) & (accuracy <= 1)).all()
    score = atom_scores(accuracy, np.array(kinds))
    dead = np.array(kinds) == "dead"
    assert np.array_equal(np.isnan(score), dead)
    assert ((score[~dead] >= 0) & (score[~dead] <= 1)).all()
    if dead.all():
        with pytest.raises(ValueError, match="every atom is dead"):
            p_acc(score, np.ones(2))
    else:
        assert 0 <= p_acc(score, np.ones(2)) <= 1


# Multimodal monosemanticity.


@given(
    matrices(rows=(2, 6), columns=(1, 4), elements=NONNEGATIVE),
    st.data(),
    permutations,
)
def test_mms_is_a_weighted_cosine_in_its_range_and_row_order_free(codes_image, data, random):
    n, p = codes_image.shape
    codes_text = data.draw(arrays(np.float64, (n, p), elements=NONNEGATIVE))
    reference = {
        m: data.draw(arrays(np.float64, (n, 3), elements=VALUES)) for m in ("image", "text")
    }
    codes = {"image": sparse.csr_matrix(codes_image), "text": sparse.csr_matrix(codes_text)}
    scores = mms(codes, reference)
    rows = _permutation(random, n)
    permuted = mms(
        {m: codes[m][rows] for m in codes}, {m: 2.5 * reference[m][rows] for m in reference}
    )
    for name, score in scores.items():
        defined = ~np.isnan(score)
        assert ((score[defined] >= -1) & (score[defined] <= 1)).all(), name
        np.testing.assert_allclose(permuted[name], score, atol=1e-9)
    # An atom that never fires on either side has no score.
    silent = ~codes_image.any(axis=0) & ~codes_text.any(axis=0)
    for score in scores.values():
        assert np.isnan(score[silent]).all()


# Vector arithmetic: the rank of a query's target among the candidates.


@given(
    matrices(rows=(1, 5), columns=(3, 3)),
    matrices(rows=(2, 6), columns=(3, 3)),
    st.data(),
    st.floats(0.1, 10),
)
def test_target_rank_is_a_rank_that_counts_ties_against_the_target(query, candidates, data, scale):
    target = np.array(
        data.draw(
            st.lists(st.integers(0, len(candidates) - 1), min_size=len(query), max_size=len(query))
        )
    )
    ranks = target_ranks(query, candidates, target)
    assert ((ranks >= 0) & (ranks < len(candidates))).all()
    np.testing.assert_array_equal(target_ranks(scale * query, candidates, target), ranks)
    # Brute force: the candidates at least as similar as the target, the target itself excluded.
    cosine = unit_rows(query, np.float64) @ unit_rows(candidates, np.float64).T
    own = cosine[np.arange(len(query)), target]
    expected = (cosine >= own[:, None] - 1e-6).sum(axis=1) - 1
    np.testing.assert_array_equal(ranks, expected)


# Ranking: zero-shot accuracy and retrieval recall, one tie rule (vlmsae.metrics.ranking).


@given(
    matrices(rows=(2, 8), columns=(2, 4)),
    matrices(rows=(2, 4), columns=(2, 4)),
    st.data(),
    st.floats(0.1, 10),
    permutations,
)
def test_zero_shot_accuracies_are_shares_free_of_scale_and_order(images, classes, data, s, random):
    assume(images.shape[1] == classes.shape[1])
    n = len(images)
    labels = np.array(data.draw(st.lists(st.integers(0, len(classes) - 1), min_size=n, max_size=n)))
    prompts = classes[:, None, :]  # one template per class
    result = zero_shot_dense(images, labels, prompts)
    for key, value in result.items():
        if key.startswith(("zero_shot_top", "zero_shot_tie_rate")) and not key.endswith(
            "_undefined"
        ):
            assert np.isnan(value) == (f"{key}_undefined" in result)
            assert np.isnan(value) or 0 <= value <= 1
    order = _permutation(random, len(images))
    again = zero_shot_dense(s * images[order], labels[order], prompts)
    assert again.keys() == result.keys()
    for key, value in result.items():
        if isinstance(value, float):
            assert again[key] == pytest.approx(value, nan_ok=True)
        else:
            assert again[key] == value
    # Duplicating the eval set changes no share.
    doubled = zero_shot_dense(np.vstack([images, images]), np.tile(labels, 2), prompts)
    for key, value in result.items():
        if key.startswith("zero_shot_top") and isinstance(value, float):
            assert doubled[key] == pytest.approx(value, nan_ok=True)


@given(st.integers(2, 4), st.integers(2, 4), st.integers(0, 6), st.data(), permutations)
def test_r_at_1_image_to_text_with_one_text_per_class_is_zero_shot_top1(
    d, n_classes, extra, data, random
):
    """The texts of the retrieval set are the class vectors of each image's class: identical text
    rows form one group, so an image retrieves its class's text exactly when it classifies as
    that class, and R@1 image→text is the zero-shot top-1 accuracy, ties wrong in both."""
    classes = data.draw(arrays(np.float64, (n_classes, d), elements=VALUES))
    # Distinct directions (a repeated class vector would merge two classes' groups), none zero.
    assume(valid_rows(classes).all())
    assume(len(np.unique(unit_rows(classes, np.float64).round(12), axis=0)) == n_classes)
    images = data.draw(arrays(np.float64, (n_classes + extra, d), elements=VALUES))
    # Every class has an image, so its text is in the retrieval set.
    labels = np.arange(n_classes + extra) % n_classes
    labels = labels[_permutation(random, len(labels))]
    zero_shot = zero_shot_dense(images, labels, classes[:, None, :])
    text = classes[labels]
    ids, grouping = pair_groups(images.astype(np.float32), text.astype(np.float32))
    image_to_text, _ = rank_counts(images.astype(np.float32), text.astype(np.float32), ids=ids)
    recall = recall_at(image_to_text[0] + image_to_text[1], 1, image_to_text[1])
    if "zero_shot_top1_dense_undefined" in zero_shot:  # every image row zero: nothing retrieved
        assert recall == 0
    else:
        assert recall == pytest.approx(zero_shot["zero_shot_top1_dense"])
    if extra:  # repeated classes: repeated text rows
        assert grouping == "identical rows"


@given(paired(rows=(2, 8), columns=(2, 4)), st.floats(0.1, 10), permutations)
def test_recall_is_a_share_that_grows_with_k_and_ignores_scale_and_order(pair, s, random):
    image, text = (x.astype(np.float32) for x in pair)
    (above_i, tied_i), (above_t, tied_t) = rank_counts(image, text)
    recalls = [recall_at(above_i + tied_i, k, tied_i) for k in (1, 2, 5)]
    assert all(0 <= r <= 1 for r in recalls) and recalls == sorted(recalls)
    order = _permutation(random, len(image))
    (again_above, again_tied), _ = rank_counts(s * image[order], text[order])
    np.testing.assert_array_equal(again_above, above_i[order])
    np.testing.assert_array_equal(again_tied, tied_i[order])
    # A zero or non-finite query, or partner, is a miss at every k.
    unscored = ~(valid_rows(image) & valid_rows(text))
    assert np.isinf(above_i[unscored]).all() and np.isinf(above_t[unscored]).all()
    # Top-k credit by expected rank over the tied block: all tied among n candidates gives k/n.
    credit = hit_credit(np.zeros(1), np.array([9]), 5)
    assert credit[0] == pytest.approx(0.5)
