"""Modality cones (linear-structure §5.2, Fig. 5; DESIGN §5 "Modality cones").

Image and text embeddings each lie in a narrow cone: two rows of one modality have a mean cosine
far from zero, an image and a text a much smaller one (near 0 in linear-structure's models, 0.16
for non-pairs of CLIP ViT-B/16 on COCO). Four distributions of
cosines: within image rows (i ≠ j), within text rows (i ≠ j), across modalities for true pairs
(image i, text i) and across for non-pairs (image i, text j, i ≠ j).

Means and standard deviations are exact over all pairs without an N×N matrix. With unit rows x̂_i,
s = Σ_i x̂_i and the Gram matrix G = X̂ᵀX̂ [d, d]:
    Σ_{i≠j} x̂_i·x̂_j      = ‖s‖² − N            Σ_{i≠j} (x̂_i·x̂_j)²      = ‖G_X‖_F² − N
    Σ_{i≠j} x̂_i·t̂_j      = s_X·s_T − Σ_i c_i    Σ_{i≠j} (x̂_i·t̂_j)²      = ⟨G_X, G_T⟩_F − Σ_i c_i²
where c_i = x̂_i·t̂_i are the paired cosines. Histograms for figures come from a seeded subsample
instead (`cone_histograms`). Cones describe the embeddings, not the SAE: the summary uses the dense
eval rows, so it is the same for every run on one store and split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from vlmsae.metrics import STORE_METRICS
from vlmsae.metrics.context import MetricResult, StoreContext
from vlmsae.metrics.rows import unit_rows
from vlmsae.registry_base import Settings, setting

DISTRIBUTIONS = ("within_image", "within_text", "paired", "unpaired")
BLOCK_ROWS = 8192  # rows per float64 block: bounds the copies at 50 MB for d = 768


@dataclass(frozen=True)
class CosineStats:
    mean: float
    std: float  # population standard deviation over the pairs

    @classmethod
    def from_moments(cls, first: float, second: float) -> CosineStats:
        """From the mean cosine and the mean squared cosine over the same pairs."""
        # Rounding can leave a variance of a constant distribution a hair below 0.
        return cls(float(first), float(np.sqrt(max(second - first**2, 0.0))))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """x [n, d] as float64 unit rows; a zero row has no direction, so no cosine."""
    if np.any(np.linalg.norm(x, axis=1) == 0):
        raise ValueError("cosine is undefined for a zero row")
    return unit_rows(x, np.float64)


def _row_blocks(n: int) -> list[slice]:
    return [slice(start, start + BLOCK_ROWS) for start in range(0, n, BLOCK_ROWS)]


def _sum_and_gram(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s = Σ_i x̂_i [d], G = X̂ᵀX̂ [d, d]) of the unit rows of x [N, d], one block at a time."""
    total = np.zeros(x.shape[1])
    gram = np.zeros((x.shape[1], x.shape[1]))
    for rows in _row_blocks(len(x)):
        unit = _unit_rows(x[rows])
        total += unit.sum(axis=0)
        gram += unit.T @ unit
    return total, gram


def _paired_cosines(image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """[N] c_i = cos(image_i, text_i)."""
    return np.concatenate(
        [
            np.einsum("ij,ij->i", _unit_rows(image[rows]), _unit_rows(text[rows]))
            for rows in _row_blocks(len(image))
        ]
    )


def cone_statistics(image: np.ndarray, text: np.ndarray) -> dict[str, CosineStats]:
    """Mean and std of each cosine distribution in DISTRIBUTIONS, exact over all pairs.

    image [N, d] and text [N, d], row i of each a true pair, N ≥ 2; rows need not be unit norm
    (cosines normalise them). Cost O(N d²), memory O(d²): no [N, N] matrix is formed.
    """
    n = len(image)
    if n < 2 or len(text) != n:
        raise ValueError(f"cones need N ≥ 2 paired rows, got {n} images and {len(text)} texts")
    sum_image, gram_image = _sum_and_gram(image)
    sum_text, gram_text = _sum_and_gram(text)
    paired = _paired_cosines(image, text)
    distinct = n * (n - 1)  # ordered pairs i ≠ j; the mean over i < j is the same
    return {
        "within_image": CosineStats.from_moments(
            (sum_image @ sum_image - n) / distinct, (np.sum(gram_image**2) - n) / distinct
        ),
        "within_text": CosineStats.from_moments(
            (sum_text @ sum_text - n) / distinct, (np.sum(gram_text**2) - n) / distinct
        ),
        "paired": CosineStats.from_moments(paired.mean(), np.mean(paired**2)),
        "unpaired": CosineStats.from_moments(
            (sum_image @ sum_text - paired.sum()) / distinct,
            (np.sum(gram_image * gram_text) - np.sum(paired**2)) / distinct,
        ),
    }


def cosine_samples(image: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
    """Every cosine of each distribution in DISTRIBUTIONS for a small set of pairs.

    image [n, d], text [n, d] (row i a pair): within_* hold the n(n−1)/2 cosines i < j, paired the
    n cosines (i, i), unpaired the n(n−1) cosines (i, j ≠ i). Forms [n, n] matrices: subsample
    first (`cone_histograms` does). Cosines are clipped to [−1, 1].
    """
    unit_image, unit_text = _unit_rows(image), _unit_rows(text)
    n = len(unit_image)
    upper = np.triu_indices(n, k=1)
    # Rounding can push the cosine of parallel rows past 1, out of a histogram's last bin.
    across = np.clip(unit_image @ unit_text.T, -1.0, 1.0)
    return {
        "within_image": np.clip(unit_image @ unit_image.T, -1.0, 1.0)[upper],
        "within_text": np.clip(unit_text @ unit_text.T, -1.0, 1.0)[upper],
        "paired": np.diagonal(across).copy(),
        "unpaired": across[~np.eye(n, dtype=bool)],
    }


@dataclass(frozen=True, kw_only=True)
class ConeSettings(Settings):
    cone_sample: int = setting(2000, "rows per modality for cone histograms", minimum=2)


def cone_histograms(
    context: StoreContext, settings: ConeSettings, bins: int | np.ndarray = 100
) -> dict[str, np.ndarray]:
    """Histogram counts of each distribution in DISTRIBUTIONS, plus their bin `edges`.

    bins: a number of equal bins over [−1, 1] or explicit edges. The cosines come from
    `cone_sample` pairs drawn without replacement with `context.seed`; image and text keep the
    same rows so that pairs stay pairs.
    """
    n = len(context.image)
    size = min(settings.cone_sample, n)
    rows = np.sort(np.random.default_rng(context.seed).choice(n, size, replace=False))
    edges = np.linspace(-1.0, 1.0, int(bins) + 1) if np.ndim(bins) == 0 else np.asarray(bins)
    samples = cosine_samples(context.image[rows], context.text[rows])
    histograms = {name: np.histogram(values, edges)[0] for name, values in samples.items()}
    return {"edges": edges, **histograms}


def histogram_table(histograms: dict[str, np.ndarray]) -> pd.DataFrame:
    """`cone_histograms` as a table: one row per bin, `bin_left`, `bin_right` and the count of
    each distribution in DISTRIBUTIONS (the cones figure, linear-structure Fig. 5, draws it)."""
    edges = histograms["edges"]
    counts = {name: histograms[name] for name in DISTRIBUTIONS}
    return pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:], **counts})


@STORE_METRICS.register("cones", ConeSettings, order=10)
def summarise_store(context: StoreContext, settings: ConeSettings) -> MetricResult:
    """`cone_cos_{distribution}_{mean,std}` of the dense eval rows and the table
    `cone_histograms` (`histogram_table`); no per-atom columns.

    A pair with a zero row (an edited store's image or caption whose code kept no atom) has no
    cosine: it is left out and counted in `cone_zero_pairs`. With fewer than two pairs left the
    distributions are undefined: the `cone_cos_*` keys are left out and the histograms are empty.
    """
    directed = (np.linalg.norm(context.image, axis=1) > 0) & (
        np.linalg.norm(context.text, axis=1) > 0
    )
    summary: dict[str, float | int] = {"cone_zero_pairs": int(np.sum(~directed))}
    if directed.sum() < 2:
        edges = np.linspace(-1.0, 1.0, 101)
        empty = {name: np.zeros(len(edges) - 1, dtype=np.int64) for name in DISTRIBUTIONS}
        return MetricResult(
            summary=summary, tables={"cone_histograms": histogram_table({"edges": edges, **empty})}
        )
    context = replace(context, image=context.image[directed], text=context.text[directed])
    statistics = cone_statistics(context.image, context.text)
    for name, stats in statistics.items():
        summary[f"cone_cos_{name}_mean"] = stats.mean
        summary[f"cone_cos_{name}_std"] = stats.std
    histograms = histogram_table(cone_histograms(context, settings))
    return MetricResult(summary=summary, tables={"cone_histograms": histograms})
