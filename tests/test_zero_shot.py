import numpy as np
import pytest
from scipy import sparse

from vlmsae.metrics.zero_shot import (
    class_embeddings,
    correct_at,
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
    # Image 2 alone shares no atom with any class: a tie among all classes, 1/4 of the images.
    assert result == {
        "zero_shot_top1_dense": 0.5,
        "zero_shot_top1_codes": 0.75,
        "zero_shot_ties_codes": 0.25,
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
    assert result == {
        "zero_shot_top1_dense": 1.0,
        "zero_shot_top1_codes": 0.0,
        "zero_shot_ties_codes": 1.0,
    }


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
    expected = {f"zero_shot_top{k}_{s}" for k in (1, 5) for s in ("dense", "codes")}
    assert set(result) == expected | {"zero_shot_ties_codes"}


def test_correct_at_counts_ties_against_the_prediction():
    scores = np.array([[0.0, 0.0, 0.0], [0.3, 0.9, 0.1], [0.3, 0.9, 0.1]])
    labels = np.array([0, 0, 2])
    np.testing.assert_array_equal(correct_at(scores, labels, 1), [False, False, False])
    np.testing.assert_array_equal(correct_at(scores, labels, 2), [False, True, False])
    np.testing.assert_array_equal(correct_at(scores, labels, 3), [True, True, True])


def test_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="labels"):
        zero_shot(
            np.eye(2),
            sparse.csr_matrix(np.eye(2)),
            np.array([0, 2]),
            np.ones((2, 1, 2)),
            identity_encode,
        )
