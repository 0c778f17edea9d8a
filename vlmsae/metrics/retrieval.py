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

Versions: `dense` (the eval rows), `reconstructed` (x̂, decoder bias included) and
`bimodal_only` (Ã = (Z ⊙ δ)D, δ keeping the atoms of second-moment kind 'bimodal', no decoder
bias: iso-energy §5). δ_r = in-batch image→text R@1 of `reconstructed` minus that of
`bimodal_only`. Iso-energy's Table 1 reports one recall per model without naming its protocol;
in-batch recall is the contrastive setting the models were trained in, and every other recall
is in the summary for a δ_r of another kind.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.metrics.gap import bimodal_only
from vlmsae.metrics.rows import unit_rows

VERSIONS = ("dense", "reconstructed", "bimodal_only")
KS = (1, 5, 10)
BLOCK_ENTRIES = 1 << 24  # similarities per block: 64 MB in float32
# A comparison of two float32 cosines of unit rows at d = 768 can be off by twice their rounding
# error (measured at most 7e-7 against float64); on the 500 real COCO pairs no competitor comes
# closer than 1.0e-5 to its partner's cosine.
TIE_TOLERANCE = 2e-6


def partner_ranks(
    image: np.ndarray, text: np.ndarray, block_entries: int = BLOCK_ENTRIES
) -> tuple[np.ndarray, np.ndarray]:
    """(image→text [N], text→image [N]) rank of each row's partner, 0 = retrieved first.

    image, text [N, d], row i paired; cosine on re-normalised rows; rank = number of other rows
    of the other modality with a cosine ≥ the partner's − TIE_TOLERANCE. Blocks of at most
    `block_entries` similarities.
    """
    if image.shape != text.shape:
        raise ValueError(f"paired rows must have one shape, got {image.shape} and {text.shape}")
    image, text = unit_rows(image), unit_rows(text)
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


def inbatch_recall(image: np.ndarray, text: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """(image→text, text→image) in-batch R@1 of paired rows image, text [N, d]; groups from
    `batches` [n_batches, size]."""
    hits = np.zeros(2)
    # A batch's product is small (size × size × d): BLAS threads cost more in synchronisation
    # than they gain there (4 against 54 GFLOPS for 2 and 1 OpenBLAS threads at 256 × 256 × 768
    # on a busy 2-core machine), so the batches run on one thread.
    with threadpool_limits(1):
        for group in groups:
            image_to_text, text_to_image = partner_ranks(image[group], text[group])
            hits += np.count_nonzero(image_to_text == 0), np.count_nonzero(text_to_image == 0)
    return float(hits[0] / groups.size), float(hits[1] / groups.size)


def _versions(context: EvalContext) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(version, image rows, text rows), built one at a time to hold one version in memory."""
    yield "dense", context.image, context.text
    yield "reconstructed", context.recon_image, context.recon_text
    keep = context.atom_kind_sq == "bimodal"
    yield (
        "bimodal_only",
        bimodal_only(context.codes_image, context.dictionary, keep),
        bimodal_only(context.codes_text, context.dictionary, keep),
    )


def summarise(context: EvalContext) -> MetricResult:
    """For each version in VERSIONS: `recall_inbatch_{i2t,t2i}_<version>` and
    `recall_at{1,5,10}_{i2t,t2i}_<version>`; then `delta_r`, `retrieval_seed` (context.seed, which
    draws the batches and the subsample), `retrieval_batch` (pairs per batch) and
    `retrieval_pairs` (pairs in the whole-split recall).

    Options: `retrieval_batch` (256), `retrieval_max_pairs` (10000). Without bimodal atoms every
    bimodal-only row is zero and its recalls are 0 (ties count against the query).
    """
    n = len(context.image)
    groups = batches(n, int(context.options.get("retrieval_batch", 256)), context.seed)
    max_pairs = int(context.options.get("retrieval_max_pairs", 10000))
    split = np.arange(n)
    if n > max_pairs:
        split = np.sort(np.random.default_rng(context.seed).choice(n, max_pairs, replace=False))
    summary: dict[str, float | int] = {}
    for version, image, text in _versions(context):
        i2t, t2i = inbatch_recall(image, text, groups)
        summary[f"recall_inbatch_i2t_{version}"] = i2t
        summary[f"recall_inbatch_t2i_{version}"] = t2i
        ranks = dict(zip(("i2t", "t2i"), partner_ranks(image[split], text[split]), strict=True))
        for k in KS:
            for direction, direction_ranks in ranks.items():
                summary[f"recall_at{k}_{direction}_{version}"] = recall_at(direction_ranks, k)
    summary["delta_r"] = (
        summary["recall_inbatch_i2t_reconstructed"] - summary["recall_inbatch_i2t_bimodal_only"]
    )
    summary["retrieval_seed"] = context.seed
    summary["retrieval_batch"] = int(groups.shape[1])
    summary["retrieval_pairs"] = len(split)
    return MetricResult(summary=summary)
