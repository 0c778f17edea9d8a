"""Zero-shot classification from sparse codes (group-sparse §5.2, Table 1; DESIGN §5).

Each class's prompt embeddings are averaged over templates and renormalised (the CLIP recipe).
Images are classified by the class of highest cosine, once with the dense embeddings (the
baseline) and once with the SAE codes, the class embeddings being encoded by the SAE as text.
Only the codes' cosines decide, so the score measures how much image-text alignment survives in
the sparse codes: a modality-split dictionary gives cosine 0 everywhere (§5.2).

Ties count against the prediction: an image is right at top-k when fewer than k other classes
score at least as high as its true class. Dense cosines essentially never tie, so this is argmax;
for codes it keeps an image whose code shares no atom with any class (all cosines 0) from being
credited with whichever class an argmax would pick first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

TOP_K = (1, 5)


def class_embeddings(class_prompt_embeddings: np.ndarray) -> np.ndarray:
    """[C, d] unit class embeddings: prompts [C, T, d] (classes × templates) averaged over T."""
    mean = np.asarray(class_prompt_embeddings, dtype=np.float64).mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def _unit_sparse_rows(codes: sparse.spmatrix | sparse.sparray) -> sparse.csr_array:
    """codes [N, p] with unit rows; an all-zero row stays zero (cosine 0 with everything)."""
    codes = sparse.csr_array(codes, dtype=np.float64)
    norms = np.sqrt(np.asarray(codes.multiply(codes).sum(axis=1)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sparse.diags_array(inverse) @ codes


def correct_at(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """[N] bool: fewer than k other classes score ≥ the true class in scores [N, C]."""
    true_score = scores[np.arange(len(labels)), labels][:, None]
    return (scores >= true_score).sum(axis=1) - 1 < k


def _accuracies(
    image: np.ndarray | sparse.csr_array,
    classes: np.ndarray | sparse.csr_array,
    labels: np.ndarray,
    batch_size: int,
) -> dict[int, float]:
    """{k: top-k accuracy} of cosine classification; image [N, q] and classes [C, q] unit rows.

    Batched over images so the score matrix never exceeds [batch_size, C].
    """
    ks = [k for k in TOP_K if k <= classes.shape[0]]
    correct = dict.fromkeys(ks, 0)
    for start in range(0, len(labels), batch_size):
        scores = image[start : start + batch_size] @ classes.T
        scores = scores.toarray() if sparse.issparse(scores) else np.asarray(scores)
        for k in ks:
            correct[k] += int(correct_at(scores, labels[start : start + batch_size], k).sum())
    return {k: correct[k] / len(labels) for k in ks}


def zero_shot(
    image_embeddings: np.ndarray,
    image_codes: sparse.spmatrix | sparse.sparray,
    labels: np.ndarray,
    class_prompt_embeddings: np.ndarray,
    encode: Callable[[np.ndarray], sparse.csr_matrix],
    batch_size: int = 4096,
) -> dict[str, float]:
    """`zero_shot_top1_{dense,codes}` (and `zero_shot_top5_*` when C ≥ 5) accuracies.

    image_embeddings [N, d], image_codes [N, p] their SAE codes, labels [N] in 0..C−1,
    class_prompt_embeddings [C, T, d]; encode maps text embeddings [C, d] to codes [C, p].
    """
    labels = np.asarray(labels)
    n_classes = class_prompt_embeddings.shape[0]
    if len(labels) != len(image_embeddings) or image_codes.shape[0] != len(image_embeddings):
        raise ValueError("image embeddings, codes and labels must have one row per image")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    classes = class_embeddings(class_prompt_embeddings)
    dense_images = np.asarray(image_embeddings, dtype=np.float64)
    dense_images = dense_images / np.linalg.norm(dense_images, axis=1, keepdims=True)
    results = {
        "dense": _accuracies(dense_images, classes, labels, batch_size),
        "codes": _accuracies(
            _unit_sparse_rows(image_codes),
            _unit_sparse_rows(encode(classes.astype(np.float32))),
            labels,
            batch_size,
        ),
    }
    return {
        f"zero_shot_top{k}_{space}": accuracy
        for space, by_k in results.items()
        for k, accuracy in by_k.items()
    }
