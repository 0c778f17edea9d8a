"""Zero-shot classification from sparse codes (group-sparse §5.2, Tables 1 and 2; DESIGN §5).

Each class's prompt embeddings are averaged over templates and renormalised (the CLIP recipe).
Images (or audio clips: a store's media rows, whatever their modality) are classified by the
class of highest cosine, once with the dense embeddings (the baseline) and once with the SAE
codes, the class embeddings being encoded by the SAE as text. Only the codes' cosines decide,
so the score measures how much image-text alignment survives in the sparse codes: a
modality-split dictionary gives cosine 0 everywhere (§5.2).

Ties follow vlmsae.metrics.ranking, the rule retrieval uses too: classes whose cosine lies within
TIE_TOLERANCE of the true class's tie with it. Top-1: a tie with the true class counts as wrong
(an argmax would credit whichever class comes first). Top-k, k > 1: by expected rank under a
random order of the tied block: an image whose true class ties with t other classes, a of them
scoring higher, gets clip(k − a, 0, t + 1) / (t + 1). Dense cosines essentially never tie; codes
do, when an image's code shares no atom with its class's code (cosine 0). `zero_shot_tie_rate_*`
is the share of images whose true class ties with another at the top-1 boundary (nothing above,
at least one tied), `zero_shot_unscored_codes` the share of images whose code shares no atom
with its own class's code.

Degenerate input never reads as a result: an image row that is zero or not finite (a zero code
too) is scored for no class and counts as wrong at every k, counted in `zero_shot_zero_rows_*`;
a class embedding (or class code) that is zero or not finite scores 0 with every image, counted
in `zero_shot_zero_classes_*`. An accuracy is NaN, with its reason in
`<metric>_undefined`, when there is no image row, fewer than 2 classes, no image row with a
direction, or no class with one. The registered groups leave NaN out of the summary (summary.json
holds no NaN): the key is absent and its `_undefined` reason present. No numpy warning is raised.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

from vlmsae.metrics import RUN_METRICS, STORE_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult, StoreContext
from vlmsae.metrics.ranking import TIE_TOLERANCE, hit_credit, tied_at_top, valid_rows
from vlmsae.metrics.rows import unit_rows, unit_sparse_rows
from vlmsae.registry_base import Settings

TOP_K = (1, 5)


def class_embeddings(class_prompt_embeddings: np.ndarray) -> np.ndarray:
    """[C, d] unit class embeddings: prompts [C, T, d] (classes × templates) averaged over T.

    A class with a non-finite prompt, or whose prompts average to zero, has no direction: its
    row is zero (cosine 0 with every image).
    """
    prompts = np.asarray(class_prompt_embeddings, dtype=np.float64)
    finite = np.isfinite(prompts).all(axis=(1, 2))
    # Zeroed before the mean: inf − inf would be NaN, with a numpy warning.
    mean = np.where(finite[:, None, None], prompts, 0.0).mean(axis=1)
    return unit_rows(mean, np.float64)


def class_ranks(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(above [N] float, tied [N] int): classes scoring more than the true class by over
    TIE_TOLERANCE, and other classes within TIE_TOLERANCE of it, in scores [N, C]."""
    true_score = scores[np.arange(len(labels)), labels][:, None]
    above = np.count_nonzero(scores > true_score + TIE_TOLERANCE, axis=1)
    at_least = np.count_nonzero(scores >= true_score - TIE_TOLERANCE, axis=1)
    return above.astype(np.float64), at_least - above - 1  # the true class is not its own tie


def credit_at(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """[N] credit in [0, 1] of each image at top-k from scores [N, C] (the tie rule above)."""
    return hit_credit(*class_ranks(scores, labels), k)


def _classify(
    images: np.ndarray | sparse.csr_array,
    classes: np.ndarray | sparse.csr_array,
    labels: np.ndarray,
    valid: np.ndarray,
    batch_size: int,
) -> tuple[dict[int, float], int, int]:
    """({k: summed top-k credit}, images tied at the top, scored images sharing no atom with
    their class) of cosine classification; image [N, q] and classes [C, q] unit (or zero) rows,
    valid [N] the image rows with a direction.

    Batched over images so the score matrix never exceeds [batch_size, C]. The shared-atom count
    reads the supports, so it is only meaningful for codes.
    """
    ks = [k for k in TOP_K if k <= classes.shape[0]]
    credit = dict.fromkeys(ks, 0.0)
    tied_top = unscored = 0
    class_support = (abs(classes) > 0).astype(np.float64) if sparse.issparse(classes) else None
    for start in range(0, len(labels), batch_size):
        batch = slice(start, start + batch_size)
        scores = images[batch] @ classes.T
        scores = scores.toarray() if sparse.issparse(scores) else np.asarray(scores)
        above, tied = class_ranks(scores, labels[batch])
        # A zero row scores 0 with every class, a tie of all of them: it never counts as right.
        above[~valid[batch]], tied[~valid[batch]] = np.inf, 0
        for k in ks:
            credit[k] += float(hit_credit(above, tied, k).sum())
        tied_top += int(np.count_nonzero(tied_at_top(above, tied)))
        if class_support is not None:
            shared = ((abs(images[batch]) > 0).astype(np.float64) @ class_support.T).toarray()
            no_shared = shared[np.arange(len(above)), labels[batch]] == 0
            unscored += int(np.count_nonzero(no_shared & valid[batch]))
    return credit, tied_top, unscored


def _undefined_reason(
    n_images: int, n_classes: int, valid: np.ndarray, valid_classes: np.ndarray
) -> str | None:
    """Why no accuracy can be read from these rows, or None."""
    if n_images == 0:
        return "no image rows"
    if n_classes < 2:
        return "fewer than 2 classes"
    if not valid.any():
        return "every image row is zero or not finite"
    if not valid_classes.any():
        return "every class embedding is zero or not finite"
    return None


def _summary(
    space: str,
    credit: dict[int, float],
    tied_top: int,
    valid: np.ndarray,
    valid_classes: np.ndarray,
    unscored: int | None = None,
) -> dict[str, float | int | str]:
    """The named columns of one space: accuracies (NaN with a `_undefined` reason where no
    accuracy can be read), zero image and class rows, tie rate (and unscored share)."""
    n = len(valid)
    reason = _undefined_reason(n, len(valid_classes), valid, valid_classes)
    summary: dict[str, float | int | str] = {}
    for k, total in credit.items():
        key = f"zero_shot_top{k}_{space}"
        summary[key] = np.nan if reason else total / n
        if reason:
            summary[f"{key}_undefined"] = reason
    summary[f"zero_shot_zero_rows_{space}"] = int(np.count_nonzero(~valid))
    summary[f"zero_shot_zero_classes_{space}"] = int(np.count_nonzero(~valid_classes))
    rates = {f"zero_shot_tie_rate_{space}": tied_top}
    if unscored is not None:
        rates[f"zero_shot_unscored_{space}"] = unscored
    for key, count in rates.items():
        summary[key] = count / n if n else np.nan
        if not n:
            summary[f"{key}_undefined"] = "no image rows"
    return summary


def _checked_labels(labels: np.ndarray, n_rows: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if len(labels) != n_rows:
        raise ValueError("image rows and labels must have one entry per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    return labels


def zero_shot_dense(
    image_embeddings: np.ndarray,
    labels: np.ndarray,
    class_prompt_embeddings: np.ndarray,
    batch_size: int = 4096,
) -> dict[str, float | int | str]:
    """The dense baseline: `zero_shot_top1_dense` (and `zero_shot_top5_dense` when C ≥ 5),
    `zero_shot_zero_rows_dense`, `zero_shot_zero_classes_dense`, `zero_shot_tie_rate_dense`,
    and `<key>_undefined` beside any NaN (module docstring).

    image_embeddings [N, d], labels [N] in 0..C−1, class_prompt_embeddings [C, T, d].
    """
    labels = _checked_labels(labels, len(image_embeddings), class_prompt_embeddings.shape[0])
    images = np.asarray(image_embeddings, dtype=np.float64)
    valid = valid_rows(images)
    images = unit_rows(np.where(valid[:, None], images, 0.0), np.float64)
    classes = class_embeddings(class_prompt_embeddings)
    valid_classes = classes.any(axis=1)
    credit, tied_top, _ = _classify(images, classes, labels, valid, batch_size)
    return _summary("dense", credit, tied_top, valid, valid_classes)


def zero_shot_codes(
    image_codes: sparse.spmatrix | sparse.sparray,
    labels: np.ndarray,
    class_prompt_embeddings: np.ndarray,
    encode: Callable[[np.ndarray], sparse.csr_matrix],
    batch_size: int = 4096,
) -> dict[str, float | int | str]:
    """The same classification from SAE codes: `zero_shot_top1_codes` (and `_top5_`),
    `zero_shot_zero_rows_codes` (empty or non-finite image codes), `zero_shot_zero_classes_codes`,
    `zero_shot_tie_rate_codes`, `zero_shot_unscored_codes`, `<key>_undefined` beside any NaN.

    image_codes [N, p]; encode maps the class embeddings [C, d] (as text) to codes [C, p].
    """
    labels = _checked_labels(labels, image_codes.shape[0], class_prompt_embeddings.shape[0])
    classes = class_embeddings(class_prompt_embeddings)
    image_units, valid = unit_sparse_rows(image_codes)
    class_codes, valid_classes = unit_sparse_rows(encode(classes.astype(np.float32)))
    # A class without a direction gets no code: the SAE's biases would give it one.
    valid_classes &= classes.any(axis=1)
    class_codes = sparse.diags_array(valid_classes.astype(np.float64)) @ class_codes
    credit, tied_top, unscored = _classify(image_units, class_codes, labels, valid, batch_size)
    return _summary("codes", credit, tied_top, valid, valid_classes, unscored)


def _defined(summary: dict[str, float | int | str]) -> dict[str, float | int | str]:
    """The summary without its NaN values: summary.json holds none (an absent key is an empty
    cell in summary.csv), and each one's `_undefined` reason stays."""
    return {
        key: value
        for key, value in summary.items()
        if not (isinstance(value, float) and np.isnan(value))
    }


def _has_labels(context: StoreContext) -> bool:
    return context.labels is not None and context.class_prompts is not None


@STORE_METRICS.register("zero_shot", order=70)
def summarise_store(context: StoreContext, settings: Settings) -> MetricResult:
    """The dense zero-shot columns, for stores with labels and class prompts (else empty)."""
    if not _has_labels(context):
        return MetricResult()
    return MetricResult(
        summary=_defined(zero_shot_dense(context.image, context.labels, context.class_prompts))
    )


@RUN_METRICS.register("zero_shot", order=70)
def summarise(context: EvalContext, settings: Settings) -> MetricResult:
    """The zero-shot columns from the run's codes, for stores with labels and class prompts."""
    if not _has_labels(context):
        return MetricResult()
    return MetricResult(
        summary=_defined(
            zero_shot_codes(
                context.codes_image, context.labels, context.class_prompts, context.encode_text
            )
        )
    )
