"""The modality gap and its closing by dropping unimodal atoms (iso-energy §5, Fig. 4; DESIGN §5).

Three measures for a set of image rows I [N, d] and text rows T [N, d] (row i of each a pair):
- mean distance ‖mean I − mean T‖ (Liang et al. 2022), on the rows as they are;
- linear separability: held-out accuracy of a logistic regression telling image from text rows;
- kNN score (Sun et al. 2022): a query's distance 1 − cos to its k-th nearest image among
  held-out reference images, and the AUROC of that score separating image queries (in
  distribution) from text queries (out of it): 0.5 means no gap, 1 a complete one. Iso-energy
  borrows it because the first two miss mismatches that an intervention leaves between the
  distributions (the mean-shift baseline below matches the means, not the distributions).

Separability and kNN see unit rows: CLIP-like spaces compare by cosine, the kNN score is a cosine
by definition, and a row's norm would otherwise leak modality into the classifier (a truncated
reconstruction shrinks the rows of one modality more than the other). A zero row (a bimodal-only
embedding whose code has no bimodal atom) stays zero: cosine 0 with every reference row.

Mean distance uses every eval row. One seeded split serves the other two: at most `max_rows`
pairs are drawn and a `test_fraction` of them are held out. The classifier trains on the images
and texts of the other pairs and is scored on the held-out ones; the kNN reference is the images
of the training pairs and the queries are the images and texts of the held-out pairs, so no query
meets its own pair among the references.

Versions of the eval rows: the store's `dense` and `mean_shift` (Liang et al.'s baseline
I − μ_I + (μ_I + μ_T)/2, T − μ_T + (μ_I + μ_T)/2 on the dense rows, μ the means of the store's
train pairs: `train_half_gap`, the very shift the `mean-shift` edit of gap closing writes), once
per store (`summarise_store`), and each run's `reconstructed` (x̂, decoder bias included) and
`bimodal_only` (Ã = (Z ⊙ δ)D, δ keeping the atoms of second-moment kind 'bimodal', no decoder
bias: iso-energy's intervention), in `summarise`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from vlmsae.errors import ConfigError
from vlmsae.metrics import RUN_METRICS, STORE_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult, StoreContext
from vlmsae.metrics.rows import sparse_times_dense, unit_rows, zero_rows
from vlmsae.registry_base import Settings, setting
from vlmsae.stores.embedding_store import MODALITIES, EmbeddingStore

VERSIONS = ("dense", "reconstructed", "bimodal_only", "mean_shift")
MEASURES = ("mean_distance", "separability", "knn_auroc")  # `modality_gap`'s keys
BLOCK_ENTRIES = 1 << 24  # similarities per block of the kNN search: 64 MB in float32


def mean_distance(image: np.ndarray, text: np.ndarray) -> float:
    """‖mean I − mean T‖ for image [N_I, d] and text [N_T, d] rows."""
    return float(
        np.linalg.norm(image.mean(axis=0, dtype=np.float64) - text.mean(axis=0, dtype=np.float64))
    )


def train_half_gap(store: EmbeddingStore) -> np.ndarray | None:
    """[d] float32 (μ_I − μ_T)/2, μ the means over the store's train pairs (an image with
    several captions counts once per pair); None when it has no train pairs.

    The one estimate of the mean-shift baseline: the `mean-shift` edit and `summarise_store`
    both take it, so stores.csv and gap_closing.csv report one mean-shift gap. Rows are read
    in blocks of BLOCK_ENTRIES values: a large store's train split is never in memory whole.
    """
    pairs = store.split_pairs("train")
    if not len(pairs):
        return None
    means = []
    for column, modality in enumerate(MODALITIES):
        rows, counts = np.unique(pairs[:, column], return_counts=True)
        dim = store.array(modality).shape[1]
        block = max(1, BLOCK_ENTRIES // dim)
        total = np.zeros(dim)
        for start in range(0, len(rows), block):
            x = store.rows(modality, rows[start : start + block]).astype(np.float64)
            total += counts[start : start + block] @ x
        means.append(total / len(pairs))
    return ((means[0] - means[1]) / 2).astype(np.float32)


def mean_shift(
    image: np.ndarray, text: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Liang et al. 2022's shift: I − μ_I + (μ_I + μ_T)/2 and T − μ_T + (μ_I + μ_T)/2.

    image [N_I, d], text [N_T, d], shift [d] = (μ_I − μ_T)/2 (`train_half_gap`). Both
    modalities move half the mean difference towards each other, images by −shift and texts
    by +shift, so the means of the rows the shift was fitted on coincide.
    """
    return image - shift.astype(image.dtype), text + shift.astype(text.dtype)


def bimodal_only(codes: sparse.csr_matrix, dictionary: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Ã = (Z ⊙ δ)D [N, d] (iso-energy §5): codes [N, p] (sparse), dictionary [p, d], δ = keep [p].

    Z ⊙ δ zeroes the stored entries of the dropped atoms and removes them, so that the sparse
    product only spends time on the kept ones.
    """
    masked = sparse.csr_matrix(codes, copy=True)
    masked.data *= keep[masked.indices]
    masked.eliminate_zeros()
    return sparse_times_dense(masked, dictionary)


def gap_shares(
    codes_image: sparse.csr_matrix,
    codes_text: sparse.csr_matrix,
    dictionary: np.ndarray,
    image: np.ndarray,
    text: np.ndarray,
) -> np.ndarray:
    """[p] each atom's share of the modality gap, the difference in means (iso-energy Fig. 3).

    Atom k moves the mean reconstruction of a modality by its mean code times its direction, so
    it adds c_k = (mean_I z_k − mean_T z_k) d_k to the difference of the modalities' mean
    reconstructions. Its share is the part of the dense gap Δ = mean I − mean T along c_k:
    c_k·Δ / ‖Δ‖². Shares sum to the part of Δ the atoms reconstruct (about 1 for a good SAE
    without per-modality biases); a negative share narrows the gap. codes [N, p] (sparse, one
    row per eval row of image [N, d] or text [N, d]), dictionary [p, d]. NaN when Δ = 0.
    """
    gap = image.mean(axis=0, dtype=np.float64) - text.mean(axis=0, dtype=np.float64)
    difference = np.asarray(codes_image.mean(axis=0) - codes_text.mean(axis=0)).ravel()
    squared = gap @ gap
    if squared == 0:
        return np.full(len(dictionary), np.nan)
    return difference * (dictionary.astype(np.float64) @ gap) / squared


def gap_split(
    n_pairs: int, seed: int, test_fraction: float, max_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) pair indices: min(n_pairs, max_rows) pairs drawn with `seed`, of which
    round(test_fraction · n) are held out; an empty side is an error."""
    n = min(n_pairs, max_rows)
    n_test = int(round(test_fraction * n))
    if not 0 < n_test < n:
        raise ValueError(f"a test fraction of {test_fraction} leaves no train or no test pairs")
    drawn = np.random.default_rng(seed).choice(n_pairs, n, replace=False)
    return np.sort(drawn[n_test:]), np.sort(drawn[:n_test])


def _stack(image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit rows of image then text [n_I + n_T, d], labels: 0 image, 1 text)."""
    labels = np.concatenate([np.zeros(len(image), dtype=int), np.ones(len(text), dtype=int)])
    return unit_rows(np.concatenate([image, text])), labels


def linear_separability(
    image: np.ndarray, text: np.ndarray, train: np.ndarray, test: np.ndarray
) -> float:
    """Held-out accuracy of an L2 logistic regression (C = 1) telling unit image rows from text.

    image [N, d], text [N, d]; train and test index pairs (`gap_split`). 0.5 is chance. The lbfgs
    solver is deterministic: the split alone carries the randomness.
    """
    # scikit-learn is imported where it is used: the workflow's every start discovers this
    # module (the config schema), and the import takes a second.
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(max_iter=1000)
    classifier.fit(*_stack(image[train], text[train]))
    return float(classifier.score(*_stack(image[test], text[test])))


def knn_distance(
    queries: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool = False
) -> np.ndarray:
    """[n_q] 1 − cos from each of queries [n_q, d] to its k-th nearest row of reference [n_r, d].

    exclude_self: the queries are the reference rows themselves (row i of both), and each is not
    its own neighbour. Blocks of queries against all references bound the similarity matrix at
    BLOCK_ENTRIES.
    """
    available = len(reference) - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k = {k} needs 1 ≤ k ≤ {available} reference rows")
    import torch

    queries, reference = unit_rows(queries), unit_rows(reference)
    block = max(1, BLOCK_ENTRIES // len(reference))
    kth = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), block):
        similarity = queries[start : start + block] @ reference.T
        if exclude_self:
            rows = np.arange(len(similarity))
            similarity[rows, start + rows] = -np.inf
        # The k-th largest similarity is the least of the k largest: torch's top-k selection
        # reads each row once, 2.3 times faster than np.partition here, and returns the very
        # entries, so the value is the same.
        top = torch.topk(torch.from_numpy(similarity), k, dim=1, sorted=False).values
        kth[start : start + block] = top.min(dim=1).values.numpy()
    return 1.0 - kth


def nearest_image_distances(
    image: np.ndarray, text: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(image [N_I], text [N_T]) distances 1 − cos of each image and each caption to its k-th
    nearest image, an image not counting itself (iso-energy Fig. 4 right, Sun et al. 2022)."""
    return (
        knn_distance(image, image, k, exclude_self=True),
        knn_distance(text, image, k),
    )


def nearest_image_separation(image_distance: np.ndarray, text_distance: np.ndarray) -> dict:
    """How far apart the captions' and the images' k-th-nearest-image distances lie:
    `auroc` (captions positive; 0.5 = one distribution, 1 = apart) and `median_difference`
    (median caption distance − median image distance)."""
    from sklearn.metrics import roc_auc_score

    is_text = np.concatenate([np.zeros(len(image_distance)), np.ones(len(text_distance))])
    return {
        "auroc": float(roc_auc_score(is_text, np.concatenate([image_distance, text_distance]))),
        "median_difference": float(np.median(text_distance) - np.median(image_distance)),
    }


def distance_histograms(distances: dict[str, np.ndarray], bins: int) -> pd.DataFrame:
    """Long table [population, bin_left, bin_right, count] of each population's distances on one
    shared set of `bins` bins, so populations (and edits) compare bin by bin."""
    values = np.concatenate(list(distances.values()))
    edges = np.histogram_bin_edges(values, bins=bins, range=(0.0, max(float(values.max()), 1e-6)))
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "population": name,
                    "bin_left": edges[:-1],
                    "bin_right": edges[1:],
                    "count": np.histogram(d, bins=edges)[0],
                }
            )
            for name, d in distances.items()
        ],
        ignore_index=True,
    )


def knn_auroc(
    image: np.ndarray, text: np.ndarray, train: np.ndarray, test: np.ndarray, k: int
) -> float:
    """AUROC of the kNN score separating held-out text queries (positive) from image queries.

    image [N, d], text [N, d]; references are image[train], queries image[test] and text[test].
    Above 0.5 texts lie farther from the images than images do; 0.5 is no gap.
    """
    reference = image[train]
    score = np.concatenate(
        [
            knn_distance(image[test], reference, k),
            knn_distance(text[test], reference, k),
        ]
    )
    from sklearn.metrics import roc_auc_score

    is_text = np.concatenate([np.zeros(len(test)), np.ones(len(test))])
    return float(roc_auc_score(is_text, score))


def modality_gap(
    image: np.ndarray, text: np.ndarray, train: np.ndarray, test: np.ndarray, k: int
) -> dict[str, float]:
    """{mean_distance, separability, knn_auroc} of paired image [N, d] and text [N, d] rows."""
    return {
        "mean_distance": mean_distance(image, text),
        "separability": linear_separability(image, text, train, test),
        "knn_auroc": knn_auroc(image, text, train, test, k),
    }


def principal_components(image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates [N_I + N_T, 2] of the image rows then the text rows, variance shares [2]) on
    the first two principal components of the pooled rows image [N_I, d] and text [N_T, d]
    (iso-energy Fig. 3 left: the two modalities apart).

    The components are fitted on both modalities together, centred on their joint mean, so the
    gap between them is a direction they can take. An SVD's signs are arbitrary: each component
    is turned so that the image rows' mean coordinate on it is ≥ 0 (images on the right). The
    shares are of the pooled rows' total variance; NaN when all rows coincide.
    """
    pooled = np.concatenate([image, text]).astype(np.float64)
    centred = pooled - pooled.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ axes[:2].T
    coordinates *= np.where(coordinates[: len(image)].mean(axis=0) < 0, -1.0, 1.0)
    total = np.sum(singular**2)
    shares = singular[:2] ** 2 / total if total > 0 else np.full(2, np.nan)
    return coordinates, shares


def pca_table(image: np.ndarray, text: np.ndarray, seed: int, pairs: int) -> pd.DataFrame:
    """The store table `embedding_pca`: `principal_components` of at most `pairs` pairs of
    image [N, d] and text [N, d] rows (row i of each a pair), drawn with `seed`. One row per
    embedding: `modality`, `pair` (its row in image and text), `pc1`, `pc2` and the components'
    variance shares `variance_share_pc1`, `variance_share_pc2` (the same on every row)."""
    n = len(image)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, pairs), replace=False))
    coordinates, shares = principal_components(image[rows], text[rows])
    return pd.DataFrame(
        {
            "modality": np.repeat(["image", "text"], len(rows)),
            "pair": np.tile(rows, 2),
            "pc1": coordinates[:, 0],
            "pc2": coordinates[:, 1],
            "variance_share_pc1": shares[0],
            "variance_share_pc2": shares[1],
        }
    )


@dataclass(frozen=True, kw_only=True)
class GapSettings(Settings):
    gap_test_fraction: float = setting(
        0.3, "held-out pairs for separability and kNN", exclusiveMinimum=0, exclusiveMaximum=1
    )
    gap_max_rows: int = setting(20000, "rows per modality used by the gap measures", minimum=10)
    knn_k: int = setting(10, "the k of the kNN score", minimum=1)
    histogram_bins: int = setting(
        50, "bins of the k-th-nearest-image distance histograms (gap_histograms)", minimum=2
    )
    pca_pairs: int = setting(
        1000, "eval pairs (seeded) in the PCA of the dense embeddings (embedding_pca)", minimum=2
    )


def _split(context: StoreContext, settings: GapSettings) -> tuple[np.ndarray, np.ndarray]:
    """The seeded (train, test) pairs of separability and kNN; k must fit in the train pairs."""
    train, test = gap_split(
        len(context.image), context.seed, settings.gap_test_fraction, settings.gap_max_rows
    )
    if settings.knn_k > len(train):
        raise ConfigError(
            "evaluation.metrics.gap.knn_k",
            f"{settings.knn_k} neighbours, but the eval split leaves {len(train)} reference pairs",
            "lower knn_k, or give the store a larger eval split",
        )
    return train, test


def _measured(
    versions: Iterable[tuple[str, np.ndarray, np.ndarray]],
    train: np.ndarray,
    test: np.ndarray,
    k: int,
) -> dict[str, float | int]:
    return {
        f"gap_{name}_{version}": value
        for version, image, text in versions
        for name, value in modality_gap(image, text, train, test, k).items()
    }


@STORE_METRICS.register("gap", GapSettings, order=40)
def summarise_store(context: StoreContext, settings: GapSettings) -> MetricResult:
    """`gap_{mean_distance,separability,knn_auroc}_{dense,mean_shift}` of the store's eval rows,
    `gap_nn_{auroc,median_difference}` with the zero rows among those measured
    (`gap_nn_zero_{images,texts}`), and the table `gap_histograms`.

    The mean shift is the store's train-split estimate (context.train_half_gap), the one the
    `mean-shift` edit writes, so this version's measures equal the `gap_*_dense` of that edited
    store. Fitted on rows outside the eval split, it leaves the classifier no fitting artefact
    to read: fitted on the eval rows it would make the classifier's training and held-out mean
    differences exact opposites, and the classifier would score below chance on the held-out
    pairs (0.26–0.33 on 500 COCO pairs with CLIP ViT-B/16). Its mean distance is the residual
    difference of the eval means, not 0. Without train pairs (nothing to fit it on) its keys are
    absent and `gap_mean_shift_undefined` says why.

    `gap_nn_*` is iso-energy's Fig. 4 measure on the store's own rows: every eval image and
    caption (at most gap_max_rows pairs) against every eval image, knn_k-th neighbour; no
    held-out split, so an edited store (rule edit_store) is measured the same way as its source.
    The table `embedding_pca` places pca_pairs of the eval pairs on their first two principal
    components (`pca_table`).
    """
    train, test = _split(context, settings)
    versions = [("dense", context.image, context.text)]
    if context.train_half_gap is not None:
        shifted = mean_shift(context.image, context.text, context.train_half_gap)
        versions.append(("mean_shift", *shifted))
    summary = _measured(versions, train, test, settings.knn_k)
    if context.train_half_gap is None:  # absent, with the reason (docs/results.md)
        summary["gap_mean_shift_undefined"] = "the store has no train pairs to fit the shift on"
    rows = np.sort(np.concatenate([train, test]))
    image, text = context.image[rows], context.text[rows]
    image_distance, text_distance = nearest_image_distances(image, text, settings.knn_k)
    separation = nearest_image_separation(image_distance, text_distance)
    summary.update({f"gap_nn_{name}": value for name, value in separation.items()})
    # A zero row sits at distance 1 from every image: where most rows of both modalities are
    # zero (a bimodal edit of a dictionary with few bimodal atoms), the two distance
    # distributions coincide at 1 and the gap reads as closed; these counts tell that apart.
    summary.update(gap_nn_zero_images=zero_rows(image), gap_nn_zero_texts=zero_rows(text))
    histograms = distance_histograms(
        {"image": image_distance, "text": text_distance}, settings.histogram_bins
    )
    pca = pca_table(context.image, context.text, context.seed, settings.pca_pairs)
    return MetricResult(
        summary=summary, tables={"gap_histograms": histograms, "embedding_pca": pca}
    )


@RUN_METRICS.register("gap", GapSettings, order=40, cost=7)
def summarise(context: EvalContext, settings: GapSettings) -> MetricResult:
    """`gap_{mean_distance,separability,knn_auroc}_{reconstructed,bimodal_only}` of one run and
    the per-atom column `gap_share` (`gap_shares`).

    Also `gap_bimodal_atoms`, the number of atoms of second-moment kind 'bimodal'. When it is 0
    every bimodal-only row is zero and its gap is undefined: the `*_bimodal_only` keys are left
    out. Otherwise `gap_bimodal_zero_rows` counts the image and text rows whose code has no
    bimodal atom (zero rows, see the module docstring). The dense and mean-shift versions are the
    store's (`summarise_store`): the same split and seed make them comparable.
    """
    train, test = _split(context, settings)
    keep = context.atom_kind_sq == "bimodal"
    summary: dict[str, float | int] = {"gap_bimodal_atoms": int(keep.sum())}
    versions = [("reconstructed", context.recon_image, context.recon_text)]
    if keep.any():
        image, text = context.bimodal_only_rows()
        versions.append(("bimodal_only", image, text))
        summary["gap_bimodal_zero_rows"] = zero_rows(image) + zero_rows(text)
    summary.update(_measured(versions, train, test, settings.knn_k))
    share = gap_shares(
        context.codes_image, context.codes_text, context.dictionary, context.image, context.text
    )
    return MetricResult(atom_columns={"gap_share": share}, summary=summary)
