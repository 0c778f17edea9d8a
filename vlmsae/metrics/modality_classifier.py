"""Each atom as a modality classifier (linear-structure §5.2, Fig. 6; DESIGN §5).

Atom k scores eval rows (dense embeddings; a seeded subsample of pairs at large N, see
`summarise`) by their projection s = x·d̂_k and classifies each as image or text by a threshold.
Its accuracy is that of the best threshold in either direction (images above or images below), so
it lies in [max(N_I, N_T)/(N_I + N_T), 1]: 0.5 on a balanced split means the atom's direction
carries no modality, 1 that it separates the two cones perfectly.

The accuracy only depends on the order of the scores, which a positive scale of d_k leaves as it
is: decoder rows are used as stored, with no normalisation. Every atom gets an accuracy, dead
atoms included (their direction is defined even though they never fire); the unweighted summary
mean is over live atoms only, and the energy-weighted mean gives dead atoms weight 0 anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.metrics.modality import DEAD
from vlmsae.registry_base import Settings, setting


def threshold_accuracy(scores_image: np.ndarray, scores_text: np.ndarray) -> np.ndarray:
    """[c] best-threshold accuracy of each of c classifiers; scores_image [c, N_I], [c, N_T].

    With w(t) = #{texts ≤ t} − #{images ≤ t}, a threshold t classifies N_I + w(t) rows right when
    images lie above it and N_T − w(t) when they lie below. w only rises at text scores and only
    falls at image scores, so its maximum over all t is at a text score (or t = −∞, w = 0) and
    its minimum at an image score (or −∞). Tied image and text scores are never split: w is
    only read past the last of a run of equal scores.

    float32 scores go through `_merged_extremes` (one sort of both modalities' scores together),
    others, and scores it cannot key exactly, through `_searched_extremes`; both give the same
    counts, so the same accuracies.
    """
    n_image, n_text = scores_image.shape[1], scores_text.shape[1]
    extremes = None
    # Scores of both modalities, in int32 running counts and lifts (under 2^30 rows).
    fits = n_image and n_text and n_image + n_text < 1 << 30
    if scores_image.dtype == scores_text.dtype == np.float32 and fits:
        extremes = _merged_extremes(scores_image, scores_text)
    rise, fall = extremes if extremes is not None else _searched_extremes(scores_image, scores_text)
    return np.maximum(n_image + rise, n_text - fall) / (n_image + n_text)


def _searched_extremes(
    scores_image: np.ndarray, scores_text: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """([c] max(0, max_t w(t)), [c] min(0, min_t w(t))) of `threshold_accuracy`, by one sort of
    each modality's scores and a binary search of one sorted list in the other: at the j-th
    lowest text score b_j, j − #{images ≤ b_j} is w(b_j) for the last of tied texts and below it
    otherwise, so the maximum is exact (likewise the minimum at image scores)."""
    image, text = np.sort(scores_image, axis=1), np.sort(scores_text, axis=1)
    rank_image = np.arange(1, image.shape[1] + 1)
    rank_text = np.arange(1, text.shape[1] + 1)
    rise, fall = np.empty(len(image), np.int64), np.empty(len(image), np.int64)
    # np.searchsorted is one-dimensional: one call per classifier, each over all its thresholds.
    for k, (image_k, text_k) in enumerate(zip(image, text, strict=True)):
        rise[k] = np.max(rank_text - np.searchsorted(image_k, text_k, side="right"), initial=0)
        fall[k] = np.min(np.searchsorted(text_k, image_k, side="right") - rank_image, initial=0)
    return rise, fall


# Magnitude bits (a float32's bit pattern without its sign) up to this fit, signed, in 31 bits:
# the 32nd of an int32 key carries the modality.
_MAGNITUDE_LIMIT = (1 << 30) - 1


def _magnitude_offset(*scores: np.ndarray) -> int | None:
    """What to take off every non-zero score's magnitude bits so that they fit
    _MAGNITUDE_LIMIT, keeping their order and ties: 0 for scores below 2 in size (unit rows and
    atoms); None when no offset does (a non-finite score, or magnitudes spanning more than 2^30
    bit patterns)."""
    high = max(max(s.max(), -s.min()) for s in scores)
    if not np.isfinite(high):
        return None
    offset = max(0, int(np.float32(high).view(np.int32)) - _MAGNITUDE_LIMIT)
    if offset:
        # Every non-zero magnitude must stay above zero's.
        low = min(np.abs(s[s != 0]).min(initial=np.inf) for s in scores)
        if int(np.float32(low).view(np.int32)) <= offset:
            return None
    return offset


def _merged_extremes(
    scores_image: np.ndarray, scores_text: np.ndarray, block: int = 8
) -> tuple[np.ndarray, np.ndarray] | None:
    """`_searched_extremes` of float32 scores from one sort of both modalities' scores, as int32
    keys 2·v + (1 for a text), v the score's order-preserving integer; None when the scores do not
    fit such keys (`_magnitude_offset`).

    In key order ties put images first, and the running count w_q = texts − images among the
    first q + 1 keys is w(t) at the last key of each run of equal scores. One int32 sort and one
    running sum take a third of the time of two float32 sorts and 2c binary searches (20 ns a
    key at 20k rows); `block` classifiers at a time keep the buffers in cache.
    """
    import torch

    offset = _magnitude_offset(scores_image, scores_text)
    if offset is None:
        return None
    (c, n_image), n_text = scores_image.shape, scores_text.shape[1]
    rise, fall = np.empty(c, np.int32), np.empty(c, np.int32)
    size = min(block, c)
    keys = np.empty((size, n_image + n_text), dtype=np.int32)
    running = np.empty_like(keys)
    # torch's running sum of a 1-d int32 tensor is 4x faster than numpy's (on one thread: a 2-d
    # one is split over threads row by row, which costs more than it gains for a few rows).
    running_rows = [torch.from_numpy(row) for row in running]
    # The last key always ends a run: its lift stays 0.
    lifts = np.zeros_like(keys)
    position = np.arange(1, n_image + n_text + 1, dtype=np.int32)
    for start in range(0, c, size):
        stop = min(start + size, c)
        key, w, lift = keys[: stop - start], running[: stop - start], lifts[: stop - start]
        # Sign and magnitude to two's complement (w holds the sign): −0.0 and 0.0 both become 0.
        for columns, scores in (
            (slice(None, n_image), scores_image),
            (slice(n_image, None), scores_text),
        ):
            bits = np.ascontiguousarray(scores[start:stop]).view(np.int32)
            np.right_shift(bits, 31, out=w[:, columns])
            np.bitwise_and(bits, 0x7FFFFFFF, out=key[:, columns])
        if offset:
            np.subtract(key, offset, out=key)
            np.maximum(key, 0, out=key)
        np.bitwise_xor(key, w, out=key)
        np.subtract(key, w, out=key)
        np.left_shift(key, 1, out=key)
        key[:, n_image:] |= 1
        key.sort(axis=1)
        # w_q = 2 · texts − (q + 1).
        np.bitwise_and(key, 1, out=w)
        for row in running_rows[: stop - start]:
            row.cumsum_(0)
        np.left_shift(w, 1, out=w)
        np.subtract(w, position, out=w)
        # Along a run of equal scores w falls (images), then rises (texts): its maximum is at the
        # end of a run, its minimum may be inside one. Keys that do not end a run (the next key
        # differs at most in the modality bit) are lifted by 2^30, out of the minimum's reach.
        np.bitwise_xor(key[:, 1:], key[:, :-1], out=lift[:, :-1])
        np.less_equal(lift.view(np.uint32)[:, :-1], 1, out=lift[:, :-1])
        np.left_shift(lift, 30, out=lift)
        w.max(axis=1, out=rise[start:stop])
        np.add(w, lift, out=w)
        w.min(axis=1, out=fall[start:stop])
    return np.maximum(rise, 0).astype(np.int64), np.minimum(fall, 0).astype(np.int64)


def classifier_accuracy(
    image: np.ndarray, text: np.ndarray, dictionary: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """[p] best-threshold accuracy of s = x·d_k separating image [N_I, d] from text [N_T, d] rows.

    dictionary [p, d]. Atoms go `chunk` at a time: their scores and sorted scores take 8 bytes per
    (row, atom) in float32, 80 MB for 256 atoms and 20k rows a modality.
    """
    accuracy = np.empty(len(dictionary))
    for start in range(0, len(dictionary), chunk):
        atoms = dictionary[start : start + chunk]
        accuracy[start : start + chunk] = threshold_accuracy(atoms @ image.T, atoms @ text.T)
    return accuracy


@dataclass(frozen=True, kw_only=True)
class ClassifierSettings(Settings):
    classifier_max_rows: int = setting(
        20000, "rows per modality scored by the atom-as-modality-classifier", minimum=2
    )
    classifier_chunk: int = setting(256, "atoms sorted at a time", minimum=1)


@RUN_METRICS.register("modality_classifier", ClassifierSettings, order=20, cost=13)
def summarise(context: EvalContext, settings: ClassifierSettings) -> MetricResult:
    """Per atom `classifier_accuracy` [p] on the dense eval rows; its mean over live atoms and
    its mean weighted by first-moment energy (`classifier_accuracy[_energy_weighted]_mean`).

    Settings: `classifier_max_rows`: at most this many eval pairs, drawn with
    `context.seed`, give the image and text rows. Scoring is O(N p d) and sorting O(p N log N):
    at 100k pairs and 8192 atoms every row would take minutes, while 20k rows a modality pin an
    accuracy down to a standard error below 0.003. `classifier_chunk`: atoms scored at a time.
    """
    n = len(context.image)
    size = min(n, settings.classifier_max_rows)
    rows = np.sort(np.random.default_rng(context.seed).choice(n, size, replace=False))
    accuracy = classifier_accuracy(
        context.image[rows],
        context.text[rows],
        context.dictionary,
        settings.classifier_chunk,
    )
    live = context.atom_kind != DEAD
    if not live.any():
        raise ValueError("classifier accuracy means are undefined: every atom is dead")
    return MetricResult(
        atom_columns={"classifier_accuracy": accuracy},
        summary={
            "classifier_accuracy_mean": float(accuracy[live].mean()),
            "classifier_accuracy_energy_weighted_mean": float(
                np.average(accuracy, weights=context.energy)
            ),
        },
    )
