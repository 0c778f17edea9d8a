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

from vlmsae.metrics import RUN_METRICS, STORE_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult, StoreContext
from vlmsae.registry import Settings

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


def _checked_labels(labels: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if len(labels) != n_rows:
        raise ValueError("image rows and labels must have one entry per image")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    return labels


def _named(accuracies: dict[int, float], space: str) -> dict[str, float]:
    return {f"zero_shot_top{k}_{space}": accuracy for k, accuracy in accuracies.items()}


def zero_shot_dense(
    image_embeddings: np.ndarray,
    labels: np.ndarray,
    class_prompt_embeddings: np.ndarray,
    batch_size: int = 4096,
) -> dict[str, float]:
    """`zero_shot_top1_dense` (and `zero_shot_top5_dense` when C ≥ 5): the dense baseline.

    image_embeddings [N, d], labels [N] in 0..C−1, class_prompt_embeddings [C, T, d].
    """
    labels = _checked_labels(labels, len(image_embeddings), class_prompt_embeddings.shape[0])
    images = np.asarray(image_embeddings, dtype=np.float64)
    images = images / np.linalg.norm(images, axis=1, keepdims=True)
    classes = class_embeddings(class_prompt_embeddings)
    return _named(_accuracies(images, classes, labels, batch_size), "dense")


def zero_shot_codes(
    image_codes: sparse.spmatrix | sparse.sparray,
    labels: np.ndarray,
    class_prompt_embeddings: np.ndarray,
    encode: Callable[[np.ndarray], sparse.csr_matrix],
    batch_size: int = 4096,
) -> dict[str, float]:
    """`zero_shot_top1_codes` (and `_top5_`): the same classification from SAE codes.

    image_codes [N, p]; encode maps the class embeddings [C, d] (as text) to codes [C, p].
    """
    labels = _checked_labels(labels, image_codes.shape[0], class_prompt_embeddings.shape[0])
    classes = class_embeddings(class_prompt_embeddings).astype(np.float32)
    image_units = _unit_sparse_rows(image_codes)
    class_codes = _unit_sparse_rows(encode(classes))
    named = _named(_accuracies(image_units, class_codes, labels, batch_size), "codes")
    named["zero_shot_ties_codes"] = _share_unscored(image_units, class_codes)
    return named


def _share_unscored(images: sparse.csr_array, classes: sparse.csr_array) -> float:
    """Share of images whose code shares no atom with any class's code: every score is 0.

    Such an image ties among all classes and counts as wrong; this share tells that apart from
    a confident mistake.
    """
    class_atoms = (np.asarray(abs(classes).sum(axis=0)).ravel() > 0).astype(np.float32)  # [p]
    touched = np.asarray(abs(images) @ class_atoms).ravel() > 0
    return float(1.0 - touched.mean())


def _has_labels(context: StoreContext) -> bool:
    return context.labels is not None and context.class_prompts is not None


@STORE_METRICS.register("zero_shot", order=70)
def summarise_store(context: StoreContext, settings: Settings) -> MetricResult:
    """The dense zero-shot accuracies, for stores with labels and class prompts (else empty)."""
    if not _has_labels(context):
        return MetricResult()
    return MetricResult(
        summary=zero_shot_dense(context.image, context.labels, context.class_prompts)
    )


@RUN_METRICS.register("zero_shot", order=70)
def summarise(context: EvalContext, settings: Settings) -> MetricResult:
    """The zero-shot accuracies from the run's codes, for stores with labels and class prompts."""
    if not _has_labels(context):
        return MetricResult()
    return MetricResult(
        summary=zero_shot_codes(
            context.codes_image, context.labels, context.class_prompts, context.encode_text
        )
    )
