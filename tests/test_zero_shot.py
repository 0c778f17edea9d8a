import numpy as np
import pytest
from scipy import sparse

from vlmsae.metrics.zero_shot import (
    class_embeddings,
    class_ranks,
    credit_at,
    zero_shot_codes,
    zero_shot_dense,
)


def zero_shot(images, image_codes, labels, prompts, encode, batch_size=4096):
    """Both halves of zero-shot: the store's dense baseline and the run's codes."""
    return {
        **zero_shot_dense(images, labels, prompts, batch_size),
        **zero_shot_codes(image_codes, labels, prompts, encode, batch_size),
    }


def identity_encode(x: np.ndarray) -> sparse.csr_matrix:
    """An 'SAE' whose codes are the non-negative part of the embedding: codes = relu(x)."""
    return sparse.csr_matrix(np.maximum(x, 0.0))


def test_class_embeddings_average_templates_and_renormalise():
    prompts = np.array([[[2.0, 0.0], [0.0, 2.0]], [[0.0, -1.0], [0.0, -3.0]]])
    np.testing.assert_allclose(class_embeddings(prompts), [[0.5**0.5, 0.5**0.5], [0.0, -1.0]])


def test_three_classes_by_hand():
    # Classes along e1, e2, e3; each class's two templates average back to its axis.
    shifts = 0.1 * np.roll(np.eye(3), 1, axis=0)
    prompts = np.stack([np.eye(3) + shifts, np.eye(3) - shifts], axis=1)
    images = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.6, 0.8], [0.5, 0.0, 0.4]])
    labels = np.array([0, 1, 1, 2])
    # Dense: argmax 0, 1, 2, 0 → images 0 and 1 right: 2/4. Codes: image 2 has an empty code
    # (cosine 0 with every class: wrong), image 3 a code on atom 2 alone (class 2: right): 3/4.
    image_codes = sparse.csr_matrix([[1.0, 0, 0], [0.1, 0.5, 0], [0, 0, 0], [0, 0, 2.0]])
    result = zero_shot(images, image_codes, labels, prompts, identity_encode)
    # Image 2's empty code is a zero row: no class, no tie, not unscored (it has no atom at all).
    assert result == {
        "zero_shot_top1_dense": 0.5,
        "zero_shot_zero_rows_dense": 0,
        "zero_shot_zero_classes_dense": 0,
        "zero_shot_tie_rate_dense": 0.0,
        "zero_shot_top1_codes": 0.75,
        "zero_shot_zero_rows_codes": 1,
        "zero_shot_zero_classes_codes": 0,
        "zero_shot_tie_rate_codes": 0.0,
        "zero_shot_unscored_codes": 0.0,
    }


def test_codes_that_share_no_atom_with_any_class_are_wrong():
    prompts = np.eye(3)[:, None, :]
    images = np.eye(3)
    labels = np.arange(3)
    # A modality-split "SAE": image codes use atoms 0-2, class (text) codes atoms 3-5, so every
    # cosine is 0; an argmax would credit class 0 and get image 0 right by chance.
    image_codes = sparse.csr_matrix(np.hstack([images, np.zeros((3, 3))]))
    result = zero_shot(
        images,
        image_codes,
        labels,
        prompts,
        lambda x: sparse.csr_matrix(np.hstack([np.zeros((3, 3)), x])),
    )
    # Every image ties with all three classes at the top and shares no atom with its class.
    assert {key: result[key] for key in result if key.endswith("codes")} == {
        "zero_shot_top1_codes": 0.0,
        "zero_shot_zero_rows_codes": 0,
        "zero_shot_zero_classes_codes": 0,
        "zero_shot_tie_rate_codes": 1.0,
        "zero_shot_unscored_codes": 1.0,
    }
    assert result["zero_shot_top1_dense"] == 1.0


def test_dense_baseline_is_argmax_and_top5_counts_the_five_best():
    rng = np.random.default_rng(0)
    prompts = rng.standard_normal((12, 4, 16))
    images = rng.standard_normal((200, 16))
    labels = rng.integers(0, 12, 200)
    result = zero_shot(
        images, identity_encode(images), labels, prompts, identity_encode, batch_size=64
    )
    classes = prompts.mean(axis=1)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    scores = images / np.linalg.norm(images, axis=1, keepdims=True) @ classes.T
    assert result["zero_shot_top1_dense"] == pytest.approx(np.mean(scores.argmax(1) == labels))
    in_top5 = (np.argsort(-scores, axis=1)[:, :5] == labels[:, None]).any(axis=1)
    assert result["zero_shot_top5_dense"] == pytest.approx(np.mean(in_top5))
    codes = np.maximum(images, 0)
    class_codes = np.maximum(classes, 0)
    code_scores = (codes / np.linalg.norm(codes, axis=1, keepdims=True)) @ (
        class_codes / np.linalg.norm(class_codes, axis=1, keepdims=True)
    ).T
    assert result["zero_shot_top1_codes"] == pytest.approx(np.mean(code_scores.argmax(1) == labels))
    expected = {
        f"zero_shot_{name}_{s}"
        for name in ("top1", "top5", "zero_rows", "zero_classes", "tie_rate")
        for s in ("dense", "codes")
    }
    assert set(result) == expected | {"zero_shot_unscored_codes"}


def test_credit_at_by_hand_three_images_four_classes():
    scores = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],  # true class 0 ties with all 3 others: above 0, tied 3
            [0.3, 0.9, 0.3, 0.1],  # true class 0: class 1 above, class 2 tied: above 1, tied 1
            [0.3, 0.9, 0.1, 0.2],  # true class 2: classes 0, 1, 3 above: above 3, tied 0
        ]
    )
    labels = np.array([0, 0, 2])
    above, tied = class_ranks(scores, labels)
    np.testing.assert_array_equal(above, [0, 1, 3])
    np.testing.assert_array_equal(tied, [3, 1, 0])
    # Top-1: a tie is wrong. Top-k: P(a random order of the tied block puts the class in the k
    # best) = clip(k − above, 0, tied + 1) / (tied + 1).
    np.testing.assert_array_equal(credit_at(scores, labels, 1), [0, 0, 0])
    np.testing.assert_allclose(credit_at(scores, labels, 2), [2 / 4, 1 / 2, 0])
    np.testing.assert_allclose(credit_at(scores, labels, 3), [3 / 4, 1, 0])
    np.testing.assert_allclose(credit_at(scores, labels, 4), [1, 1, 1])


def test_scores_within_the_tolerance_tie():
    scores = np.array([[0.5, 0.5 + 1e-7, 0.4], [0.5, 0.5 + 1e-3, 0.4]])
    above, tied = class_ranks(scores, np.array([0, 0]))
    np.testing.assert_array_equal(above, [0, 1])
    np.testing.assert_array_equal(tied, [1, 0])


def test_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="labels"):
        zero_shot(
            np.eye(2),
            sparse.csr_matrix(np.eye(2)),
            np.array([0, 2]),
            np.ones((2, 1, 2)),
            identity_encode,
        )


# Issue 24, defect 1: zero image rows read as correct (NaN scores pass the comparison).
def test_zero_image_rows_never_count_as_correct():
    prompts = np.eye(3)[:, None, :]
    images = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1.0, 0]])
    labels = np.array([0, 1, 2, 2])
    # Image 0 is right, image 3 wrong (class 1), the two zero rows are neither scored nor right.
    result = zero_shot_dense(images, labels, prompts)
    assert result["zero_shot_top1_dense"] == 0.25
    assert result["zero_shot_zero_rows_dense"] == 2


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_all_zero_image_rows_give_nan_with_a_reason_and_no_warning():
    prompts = np.eye(3)[:, None, :]
    result = zero_shot_dense(np.zeros((4, 3)), np.array([0, 1, 2, 2]), prompts)
    assert np.isnan(result["zero_shot_top1_dense"])
    assert result["zero_shot_top1_dense_undefined"] == "every image row is zero or not finite"
    assert result["zero_shot_zero_rows_dense"] == 4


# Issue 24, defect 3: ties counted by hand (top-1: a tie is wrong; top-k: expected rank).
def test_ties_are_wrong_at_top1_and_fractional_at_top5():
    # Six classes along e0..e5 of R^8. Image 0 (class 0) is e0: right. Image 1 (class 1) is e6:
    # it shares nothing with any class, all six tie: top-1 wrong, top-5 credit 5/6. Image 2
    # (class 1) is e0 + e1: classes 0 and 1 tie at the top: top-1 wrong, top-5 credit 1.
    prompts = np.eye(8)[:6, None, :]
    images = np.zeros((3, 8))
    images[0, 0] = images[1, 6] = images[2, 0] = images[2, 1] = 1.0
    labels = np.array([0, 1, 1])
    result = zero_shot(images, identity_encode(images), labels, prompts, identity_encode)
    for space in ("dense", "codes"):
        assert result[f"zero_shot_top1_{space}"] == pytest.approx(1 / 3)
        assert result[f"zero_shot_top5_{space}"] == pytest.approx((1 + 5 / 6 + 1) / 3)
        assert result[f"zero_shot_tie_rate_{space}"] == pytest.approx(2 / 3)
    assert result["zero_shot_unscored_codes"] == pytest.approx(1 / 3)


def test_non_finite_rows_and_codes_count_as_zero_rows():
    prompts = np.eye(3)[:, None, :]
    images = np.array([[1.0, 0, 0], [np.nan, 1, 0], [0, np.inf, 0], [0, 0, 1]])
    labels = np.array([0, 1, 1, 2])
    dense = zero_shot_dense(images, labels, prompts)
    assert dense["zero_shot_top1_dense"] == 0.5
    assert dense["zero_shot_zero_rows_dense"] == 2
    # A code with a NaN entry, and an empty one, are zero rows too; a class code with NaN is a
    # zero class: image 3 (its class) then scores 0 everywhere, a tie of all: wrong, unscored.
    codes = sparse.csr_matrix(np.array([[1.0, 0, 0], [np.nan, 1, 0], [0, 0, 0], [0, 0, 1]]))

    def encode(x):
        out = np.maximum(x, 0.0)
        out[2, 2] = np.nan
        return sparse.csr_matrix(out)

    result = zero_shot_codes(codes, labels, prompts, encode)
    assert result["zero_shot_top1_codes"] == 0.25
    assert result["zero_shot_zero_rows_codes"] == 2
    assert result["zero_shot_zero_classes_codes"] == 1
    assert result["zero_shot_tie_rate_codes"] == 0.25
    assert result["zero_shot_unscored_codes"] == 0.25


def test_the_input_codes_are_not_changed():
    codes = sparse.csr_matrix(np.array([[np.nan, 1.0], [2.0, 0.0]]))
    zero_shot_codes(codes, np.array([0, 1]), np.eye(2)[:, None, :], identity_encode)
    assert np.isnan(codes.data[0]) and codes.data[2] == 2.0


@pytest.mark.parametrize(
    ("images", "labels", "prompts", "reason"),
    [
        (np.zeros((0, 3)), np.zeros(0, dtype=int), np.eye(3)[:, None, :], "no image rows"),
        (np.ones((2, 3)), np.zeros(2, dtype=int), np.ones((1, 1, 3)), "fewer than 2 classes"),
        (
            np.ones((2, 3)),
            np.zeros(2, dtype=int),
            np.stack([np.eye(3)[:2], -np.eye(3)[:2]], axis=1),  # templates cancel out
            "every class embedding is zero or not finite",
        ),
    ],
)
def test_undefined_accuracies_are_nan_with_their_reason(images, labels, prompts, reason):
    result = zero_shot_dense(images, labels, prompts)
    assert np.isnan(result["zero_shot_top1_dense"])
    assert result["zero_shot_top1_dense_undefined"] == reason


def test_the_registered_groups_leave_nan_out_and_keep_the_reason():
    from vlmsae.metrics import zero_shot as group
    from vlmsae.metrics.context import StoreContext

    store = StoreContext(
        image=np.zeros((3, 3), dtype=np.float32),
        text=np.zeros((3, 3), dtype=np.float32),
        seed=0,
        labels=np.array([0, 1, 2]),
        class_prompts=np.eye(3)[:, None, :],
    )
    summary = group.summarise_store(store, group.Settings()).summary
    assert "zero_shot_top1_dense" not in summary
    assert summary["zero_shot_top1_dense_undefined"] == "every image row is zero or not finite"
    assert summary["zero_shot_zero_rows_dense"] == 3


def test_codes_sharing_no_atom_with_ten_classes_get_half_at_top5():
    # Issue 24: a top-5 from codes below the 1/2 that any ranking of 10 classes gives. Every
    # image code lies on atoms no class uses: all 10 classes tie, top-5 credit 5/10 each.
    prompts = np.eye(20)[:10, None, :]
    images = np.eye(20)[10:]
    labels = np.arange(10)
    result = zero_shot_codes(identity_encode(images), labels, prompts, identity_encode)
    assert result["zero_shot_top1_codes"] == 0.0
    assert result["zero_shot_top5_codes"] == pytest.approx(0.5)
    assert result["zero_shot_tie_rate_codes"] == 1.0
    assert result["zero_shot_unscored_codes"] == 1.0


def test_class_embeddings_of_cancelling_or_non_finite_prompts_are_zero_rows():
    prompts = np.array([[[1.0, 0.0], [-1.0, 0.0]], [[np.inf, 0.0], [1.0, 0.0]], [[0, 3.0], [0, 1]]])
    np.testing.assert_array_equal(class_embeddings(prompts), [[0, 0], [0, 0], [0, 1]])
