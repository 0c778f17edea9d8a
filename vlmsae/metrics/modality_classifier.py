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
    its minimum at an image score (or −∞). One sort of each modality's scores and a binary search
    of one sorted list in the other give w at all of those points at once: at the j-th lowest text
    score b_j, j − #{images ≤ b_j} is w(b_j) for the last of tied texts and below it otherwise,
    so the maximum is exact and tied image and text scores are never split (likewise the minimum).
    """
    image, text = np.sort(scores_image, axis=1), np.sort(scores_text, axis=1)
    n_image, n_text = image.shape[1], text.shape[1]
    rank_image, rank_text = np.arange(1, n_image + 1), np.arange(1, n_text + 1)
    accuracy = np.empty(len(image))
    # np.searchsorted is one-dimensional: one call per classifier, each over all its thresholds.
    for k, (image_k, text_k) in enumerate(zip(image, text, strict=True)):
        rise = np.max(rank_text - np.searchsorted(image_k, text_k, side="right"), initial=0)
        fall = np.min(np.searchsorted(text_k, image_k, side="right") - rank_image, initial=0)
        accuracy[k] = max(n_image + rise, n_text - fall)
    return accuracy / (n_image + n_text)


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


@RUN_METRICS.register("modality_classifier", ClassifierSettings, order=20)
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
