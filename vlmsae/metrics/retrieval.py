"""Cross-modal retrieval and interventional robustness δ_r (iso-energy §4.1 (iv), Table 1, §5;
DESIGN §5 "Retrieval").

Row i of the image rows I [N, d] is paired with row i of the text rows T [N, d]. Rows are
re-normalised and compared by cosine. Image→text: image i queries every text and scores a hit at
k when its caption is among the k most similar; text→image the other way round. The rank of the
partner is the number of other candidates at least as similar as it: ties count against the
query, so a zero row (cosine 0 with everything) retrieves nothing instead of everything. Cosines
within TIE_TOLERANCE of the partner's count as ties: float32 rounding makes the cosines of two
parallel rows (bimodal-only rows with the same single atom) differ in the last bits, and without
the tolerance that noise, not the geometry, would decide the rank.

- In-batch R@1: the N pairs are shuffled with the seed and cut into batches of `batch` pairs
  (CLIP's contrastive setting); each query competes with its batch only. The last incomplete batch
  is dropped so every query faces the same number of candidates (with fewer than `batch` pairs,
  one batch of all of them); batches are equal, so the mean over queries is the mean over batches.
- R@{1, 5, 10} over the whole split: each query competes with all N candidates. The similarity
  matrix is computed in blocks of query rows, and one block serves both directions: its rows rank
  texts for images, its columns rank images for texts. The work is N²·d multiply-adds per
  version, 7.7·10¹² at N = 100k, d = 768: measured 3 s per version at N = 10k and 13 s at 20k on
  2 cores, so about 16 minutes for the three versions at 100k. The split is therefore a seeded
  subsample of `retrieval_max_pairs` pairs (default 10000, the default eval split size) when it is
  larger; `retrieval_pairs` records how many pairs competed.

Versions: `dense` (the eval rows; once per store, `summarise_store`), `reconstructed` (x̂,
decoder bias included), `decoded` (Â = ZD, no decoder bias) and `bimodal_only` (Ã = (Z ⊙ δ)D,
δ keeping the atoms of second-moment kind 'bimodal', no decoder bias: iso-energy §5).

δ_r (the iso-energy authors' computation, issue 12 item 5) compares two rows built the same way,
both without b_dec: δ_r = R@1(Â) − R@1(Ã), R@1 the in-batch recall averaged over image→text and
text→image (`recall_inbatch_<version>`), batches of `retrieval_batch` (256) pairs after a seeded
shuffle. `delta_r_with_bias_i2t` keeps vlmsae's earlier δ_r: image→text only, and x̂ (with
b_dec) against Ã (without), which mixes the two constructions. Every other recall is in the
summary for a δ_r of another kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from vlmsae.metrics import RUN_METRICS, STORE_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult, StoreContext
from vlmsae.metrics.gap import bimodal_only
from vlmsae.metrics.rows import unit_rows
from vlmsae.registry import Settings, setting

VERSIONS = ("dense", "reconstructed", "decoded", "bimodal_only")
KS = (1, 5, 10)
BLOCK_ENTRIES = 1 << 24  # similarities per block: 64 MB in float32
# A comparison of two float32 cosines of unit rows at d = 768 can be off by twice their rounding
# error (measured at most 7e-7 against float64); on the 500 real COCO pairs no competitor comes
# closer than 1.0e-5 to its partner's cosine.
TIE_TOLERANCE = 2e-6


def partner_ranks(
    image: np.ndarray,
    text: np.ndarray,
    block_entries: int = BLOCK_ENTRIES,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image→text [N], text→image [N]) rank of each row's partner, 0 = retrieved first.

    image, text [N, d], row i paired; cosine on re-normalised rows; rank = number of other rows
    of the other modality with a cosine ≥ the partner's − TIE_TOLERANCE. Blocks of at most
    `block_entries` similarities.

    ids [N, 2]: the store rows (image, text) of each pair. Where an image has several captions
    (COCO) or a text several images (class prompts), every candidate sharing the query's image
    or its text is right, as in the standard COCO protocol: the rank is then the number of wrong
    candidates at least as similar as the best right one.
    """
    if image.shape != text.shape:
        raise ValueError(f"paired rows must have one shape, got {image.shape} and {text.shape}")
    image, text = unit_rows(image), unit_rows(text)
    if ids is not None and _has_shared_rows(ids):
        return (
            _grouped_ranks(image, text, ids, block_entries),
            _grouped_ranks(text, image, ids, block_entries),
        )
    n = len(image)
    threshold = np.einsum("nd,nd->n", image, text) - np.float32(TIE_TOLERANCE)
    image_to_text = np.empty(n, dtype=np.int64)
    text_to_image = np.zeros(n, dtype=np.int64)
    block = max(1, block_entries // max(1, n))
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = image[start:stop] @ text.T  # [b, N]: images start..stop against all texts
        # The partners are not candidates against themselves.
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        image_to_text[start:stop] = np.count_nonzero(
            similarity >= threshold[start:stop, None], axis=1
        )
        text_to_image += np.count_nonzero(similarity >= threshold[None, :], axis=0)
    return image_to_text, text_to_image


def _has_shared_rows(ids: np.ndarray) -> bool:
    return any(len(np.unique(ids[:, side])) < len(ids) for side in (0, 1))


def _grouped_ranks(
    queries: np.ndarray, candidates: np.ndarray, ids: np.ndarray, block_entries: int
) -> np.ndarray:
    """[N] rank of each query's best right candidate among the wrong ones (see partner_ranks)."""
    n = len(queries)
    ranks = np.empty(n, dtype=np.int64)
    block = max(1, block_entries // max(1, n))
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = queries[start:stop] @ candidates.T  # [b, N]
        right = (ids[start:stop, 0, None] == ids[None, :, 0]) | (
            ids[start:stop, 1, None] == ids[None, :, 1]
        )
        best = np.where(right, similarity, -np.inf).max(axis=1)
        threshold = best - np.float32(TIE_TOLERANCE)
        ranks[start:stop] = np.count_nonzero((similarity >= threshold[:, None]) & ~right, axis=1)
    return ranks


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose partner has rank < k (ranks [N] from `partner_ranks`)."""
    return float(np.mean(ranks < k))


def batches(n: int, batch: int, seed: int) -> np.ndarray:
    """[n_batches, size] pair indices: a seeded shuffle cut into full batches of `batch` pairs
    (one batch of all n when n < batch; the incomplete rest is dropped)."""
    if batch < 2:
        raise ValueError(f"an in-batch recall needs batches of at least 2 pairs, got {batch}")
    order = np.random.default_rng(seed).permutation(n)
    size = min(batch, n)
    return order[: n - n % size].reshape(-1, size)


def inbatch_recall(
    image: np.ndarray, text: np.ndarray, groups: np.ndarray, ids: np.ndarray | None = None
) -> tuple[float, float]:
    """(image→text, text→image) in-batch R@1 of paired rows image, text [N, d]; groups from
    `batches` [n_batches, size]; ids [N, 2] as in `partner_ranks`."""
    hits = np.zeros(2)
    # A batch's product is small (size × size × d): BLAS threads cost more in synchronisation
    # than they gain there (4 against 54 GFLOPS for 2 and 1 OpenBLAS threads at 256 × 256 × 768
    # on a busy 2-core machine), so the batches run on one thread.
    with threadpool_limits(1):
        for group in groups:
            image_to_text, text_to_image = partner_ranks(
                image[group], text[group], ids=None if ids is None else ids[group]
            )
            hits += np.count_nonzero(image_to_text == 0), np.count_nonzero(text_to_image == 0)
    return float(hits[0] / groups.size), float(hits[1] / groups.size)


def mean_inbatch_recall(image: np.ndarray, text: np.ndarray, groups: np.ndarray) -> float:
    """In-batch R@1 of `inbatch_recall` averaged over image→text and text→image."""
    image_to_text, text_to_image = inbatch_recall(image, text, groups)
    return (image_to_text + text_to_image) / 2


def decoded(codes: sparse.spmatrix, dictionary: np.ndarray) -> np.ndarray:
    """Â = ZD [N, d]: codes [N, p] times dictionary [p, d], no decoder bias."""
    return np.asarray(sparse.csr_matrix(codes) @ dictionary)


def delta_r(
    codes_image: sparse.spmatrix,
    codes_text: sparse.spmatrix,
    dictionary: np.ndarray,
    keep: np.ndarray,
    groups: np.ndarray,
) -> tuple[float, float, float]:
    """(R@1 of Â = ZD, R@1 of Ã = (Z ⊙ δ)D, δ_r = their difference) of paired codes [N, p],
    dictionary [p, d], δ = keep [p] (bool); R@1 = `mean_inbatch_recall` over `groups`."""
    recall_decoded = mean_inbatch_recall(
        decoded(codes_image, dictionary), decoded(codes_text, dictionary), groups
    )
    recall_bimodal = mean_inbatch_recall(
        bimodal_only(codes_image, dictionary, keep),
        bimodal_only(codes_text, dictionary, keep),
        groups,
    )
    return recall_decoded, recall_bimodal, recall_decoded - recall_bimodal


@dataclass(frozen=True, kw_only=True)
class RetrievalSettings(Settings):
    retrieval_batch: int = setting(256, "pairs per batch of in-batch recall", minimum=2)
    retrieval_max_pairs: int = setting(
        10000, "pairs ranked by whole-split recall (a seeded subsample)", minimum=2
    )


def _recalls(
    versions: Iterable[tuple[str, np.ndarray, np.ndarray]],
    context: StoreContext,
    settings: RetrievalSettings,
) -> dict[str, float | int]:
    """Every recall of each version: in-batch per direction and averaged, R@k over the split."""
    n = len(context.image)
    groups = batches(n, settings.retrieval_batch, context.seed)
    split = np.arange(n)
    if n > settings.retrieval_max_pairs:
        rng = np.random.default_rng(context.seed)
        split = np.sort(rng.choice(n, settings.retrieval_max_pairs, replace=False))
    ids = context.pairs
    summary: dict[str, float | int] = {}
    for version, image, text in versions:
        i2t, t2i = inbatch_recall(image, text, groups, ids)
        summary[f"recall_inbatch_i2t_{version}"] = i2t
        summary[f"recall_inbatch_t2i_{version}"] = t2i
        summary[f"recall_inbatch_{version}"] = (i2t + t2i) / 2
        ranks = partner_ranks(image[split], text[split], ids=None if ids is None else ids[split])
        for k in KS:
            for direction, direction_ranks in zip(("i2t", "t2i"), ranks, strict=True):
                summary[f"recall_at{k}_{direction}_{version}"] = recall_at(direction_ranks, k)
    summary["retrieval_seed"] = context.seed
    summary["retrieval_batch"] = int(groups.shape[1])
    summary["retrieval_pairs"] = len(split)
    return summary


@STORE_METRICS.register("retrieval", RetrievalSettings, order=60)
def summarise_store(context: StoreContext, settings: RetrievalSettings) -> MetricResult:
    """The recalls of the dense eval rows (`*_dense`): the baseline every run is read against."""
    return MetricResult(
        summary=_recalls([("dense", context.image, context.text)], context, settings)
    )


def _run_versions(context: EvalContext) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(version, image rows, text rows), built one at a time to hold one version in memory."""
    yield "reconstructed", context.recon_image, context.recon_text
    yield (
        "decoded",
        decoded(context.codes_image, context.dictionary),
        decoded(context.codes_text, context.dictionary),
    )
    keep = context.atom_kind_sq == "bimodal"
    yield (
        "bimodal_only",
        bimodal_only(context.codes_image, context.dictionary, keep),
        bimodal_only(context.codes_text, context.dictionary, keep),
    )


@RUN_METRICS.register("retrieval", RetrievalSettings, order=60)
def summarise(context: EvalContext, settings: RetrievalSettings) -> MetricResult:
    """For the run's versions (reconstructed, decoded, bimodal_only): `recall_inbatch_{i2t,t2i}_
    <version>`, their mean `recall_inbatch_<version>` and `recall_at{1,5,10}_{i2t,t2i}_<version>`;
    then `delta_r`, `delta_r_with_bias_i2t` (module docstring), `retrieval_seed` (context.seed,
    which draws the batches and the subsample), `retrieval_batch` (pairs per batch) and
    `retrieval_pairs` (pairs in the whole-split recall). The dense recalls are the store's.

    Without bimodal atoms every bimodal-only row is zero and its recalls are 0 (ties count
    against the query).
    """
    summary = _recalls(_run_versions(context), context, settings)
    # The same numbers as `delta_r(...)` gives, without decoding the rows twice.
    summary["delta_r"] = summary["recall_inbatch_decoded"] - summary["recall_inbatch_bimodal_only"]
    summary["delta_r_with_bias_i2t"] = (
        summary["recall_inbatch_i2t_reconstructed"] - summary["recall_inbatch_i2t_bimodal_only"]
    )
    return MetricResult(summary=summary)
