"""Cross-modal retrieval, its mean reciprocal rank and interventional robustness δ_r
(iso-energy §4.1 (iv), Table 1, §5; group-sparse Table 2; DESIGN §5 "Retrieval").

Row i of the image rows I [N, d] is paired with row i of the text rows T [N, d] ("image" is the
store's media: audio clips in a CLAP store). Rows are re-normalised and compared by cosine.
Image→text: image i queries every text and scores a hit at k when its caption is among the k
most similar; text→image the other way round (group-sparse's FMACaps text-to-music retrieval).

Groups. Candidates of one group are interchangeable, and every one of them is right: an image
query's right texts are those paired with an image of its group or in its caption's group (and
the other way round). `pair_groups` builds the groups from the DENSE eval rows, once, for every
version: rows that are identical after normalisation (exact duplicates, which no cosine can tell
apart: a store whose text rows are the class vectors of each image's class) form one group, and
so do pairs sharing a store row (COCO's several captions of an image) and, where the store has
one, an explicit text grouping (`text_group`, precomputed `groups_path`). `retrieval_grouping`
says which of these made the groups: "pairs" (none: every pair its own), "store rows",
"identical rows" or "groups_path"; `retrieval_groups_{image,text}` how many there are. With one
text per class, R@1 image→text is then zero-shot top-1 accuracy.

Ranks and ties (vlmsae.metrics.ranking, the rule zero-shot uses too): of the wrong candidates,
`above` are more similar than the query's best right one by over TIE_TOLERANCE, `tied` within
TIE_TOLERANCE of it; `partner_ranks` returns above + tied, the rank when ties count against the
query. R@1 (and in-batch R@1) is a hit only at rank 0: a tie counts as wrong. R@k, k > 1, is the
expected hit under a random order of the tied block, clip(k − above, 0, tied + 1) / (tied + 1).
The mean reciprocal rank (`mrr_{i2t,t2i}_<v>`, over the same queries as R@k) averages each
query's expected 1 / rank under that random order (`ranking.reciprocal_rank`): 1 / (above + 1)
without ties, 0 for a query that cannot be ranked. TIE_TOLERANCE is there because float32
rounding makes the cosines of two parallel rows (bimodal-only rows with the same single atom)
differ in the last bits: without it that noise, not the geometry, would decide the rank.
`retrieval_tie_rate_{i2t,t2i}_<v>` is the share of the split's queries whose best right
candidate ties with a wrong one at rank 0.

A query whose row is zero or not finite, or whose right candidates all are, cannot be ranked: its
rank is inf and it is a miss at every k (a zero row, cosine 0 with everything, would otherwise
tie its way into R@k). `retrieval_zero_rows_<v>` counts the eval pairs with such a row on either
side.

- In-batch R@1: the N pairs are shuffled with the seed and cut into batches of `batch` pairs
  (CLIP's contrastive setting); each query competes with its batch only. The last incomplete batch
  is dropped so every query faces the same number of candidates (with fewer than `batch` pairs,
  one batch of all of them); batches are equal, so the mean over queries is the mean over batches.
- R@{1, 5, 10} and MRR over the whole split: each query competes with all N candidates. The
  similarity matrix is computed in blocks of query rows, and one block serves both directions:
  its rows rank texts for images, its columns rank images for texts (with groups, each direction
  takes its own pass, as a column's best right candidate is only known once the column is
  whole). The work is N²·d multiply-adds per version, 7.7·10¹² at N = 100k, d = 768: measured 3 s
  per version at N = 10k and 13 s at 20k on 2 cores (twice that with groups), so about 16 minutes
  for the three versions at 100k. The split is therefore a seeded subsample of
  `retrieval_max_pairs` pairs (default 10000, the default eval split size) when it is larger;
  `retrieval_pairs` records how many pairs competed.

Versions: `dense` (the eval rows; once per store, `summarise_store`), `reconstructed` (x̂,
decoder bias included), `decoded` (Â = ZD, no decoder bias), `bimodal_only` (Ã = (Z ⊙ δ)D,
δ keeping the atoms of second-moment kind 'bimodal', no decoder bias: iso-energy §5) and `codes`
(the SAE codes Z themselves, compared by cosine: group-sparse §5.2 retrieves with the sparse
codes; they stay sparse, and each block of similarities is made dense on its own).

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

from vlmsae.metrics import RUN_METRICS, STORE_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult, StoreContext
from vlmsae.metrics.gap import bimodal_only
from vlmsae.metrics.ranking import (
    TIE_TOLERANCE,
    hit_credit,
    reciprocal_rank,
    tied_at_top,
    valid_rows,
)
from vlmsae.metrics.rows import sparse_times_dense, unit_rows, unit_sparse_rows
from vlmsae.registry_base import Settings, setting

VERSIONS = ("dense", "reconstructed", "decoded", "bimodal_only", "codes")
KS = (1, 5, 10)
DIRECTIONS = ("i2t", "t2i")
BLOCK_ENTRIES = 1 << 24  # similarities per block: 64 MB in float32
BATCH_CHUNK_ENTRIES = 1 << 20  # in-batch similarities per product: 4 MB in float32

Counts = tuple[np.ndarray, np.ndarray]  # (above [N] float, inf when unscored; tied [N] int)
# Rows of one version: dense [N, d], or sparse codes [N, p].
Rows = np.ndarray | sparse.spmatrix | sparse.sparray


def _unit(x: Rows) -> tuple[Rows, np.ndarray]:
    """(x [N, q] with unit float32 rows, [N] bool: the row has a direction); a zero or
    non-finite row is zero in the result. Sparse rows stay sparse."""
    if sparse.issparse(x):
        return unit_sparse_rows(x, np.float32)
    valid = valid_rows(x)
    # Zeroed before normalising: a non-finite row would spread NaN (and warnings) through the
    # similarities; as a zero row it is a candidate like any other and never a query.
    return unit_rows(x if valid.all() else np.where(valid[:, None], x, 0)), valid


def _paired_units(image: Rows, text: Rows) -> tuple[tuple[Rows, np.ndarray], ...]:
    """`_unit` of each side of paired rows image, text [N, d], which must share one shape."""
    if image.shape != text.shape:
        raise ValueError(f"paired rows must have one shape, got {image.shape} and {text.shape}")
    return _unit(image), _unit(text)


def _cosines(queries: Rows, candidates: Rows) -> np.ndarray:
    """[b, M] dense cosines of unit rows queries [b, q] and candidates [M, q]."""
    product = queries @ candidates.T
    return product.toarray() if sparse.issparse(product) else np.asarray(product)


def _paired_cosines(image: Rows, text: Rows) -> np.ndarray:
    """[N] cosine of each pair (image i, text i) of unit rows."""
    if sparse.issparse(image):
        return np.asarray(image.multiply(text).sum(axis=1), dtype=np.float32).ravel()
    return np.einsum("nd,nd->n", image, text)


def rank_counts(
    image: Rows,
    text: Rows,
    block_entries: int = BLOCK_ENTRIES,
    ids: np.ndarray | None = None,
) -> tuple[Counts, Counts]:
    """(image→text, text→image) (above, tied) of each query's best right candidate.

    image, text [N, d] (or sparse codes [N, p]), row i paired; cosine on re-normalised rows.
    above: wrong candidates with
    a cosine over the best right one's + TIE_TOLERANCE; tied: wrong candidates within
    TIE_TOLERANCE of it; above = inf for a query that cannot be ranked (module docstring).
    Blocks of at most `block_entries` similarities.

    ids [N, 2]: group ids (image, text) of each pair, equal ids marking one item (store rows, or
    `pair_groups`); None: every pair its own. Every candidate sharing the query's image group or
    its caption's group is right (the standard COCO protocol); the others are wrong.
    """
    return _unit_rank_counts(*_paired_units(image, text), block_entries, ids)


def _unit_rank_counts(
    image: tuple[Rows, np.ndarray],
    text: tuple[Rows, np.ndarray],
    block_entries: int = BLOCK_ENTRIES,
    ids: np.ndarray | None = None,
) -> tuple[Counts, Counts]:
    """`rank_counts` of rows already through `_unit`: (unit rows [N, q], valid [N]) a side."""
    (image, valid_image), (text, valid_text) = image, text
    if ids is not None and _has_shared_rows(ids):
        return (
            _grouped_counts(image, text, valid_image, valid_text, ids, block_entries),
            _grouped_counts(text, image, valid_text, valid_image, ids, block_entries),
        )
    n = image.shape[0]
    partner = _paired_cosines(image, text)
    low, high = partner - np.float32(TIE_TOLERANCE), partner + np.float32(TIE_TOLERANCE)
    counts = {
        name: np.zeros(n, dtype=np.int64) for name in ("i2t", "i2t_above", "t2i", "t2i_above")
    }
    block = max(1, block_entries // max(1, n))
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = _cosines(image[start:stop], text)  # [b, N]: images start..stop, all texts
        # The partners are not candidates against themselves.
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        counts["i2t"][start:stop] = np.count_nonzero(similarity >= low[start:stop, None], axis=1)
        counts["i2t_above"][start:stop] = np.count_nonzero(
            similarity > high[start:stop, None], axis=1
        )
        counts["t2i"] += np.count_nonzero(similarity >= low[None, :], axis=0)
        counts["t2i_above"] += np.count_nonzero(similarity > high[None, :], axis=0)
    scored = valid_image & valid_text  # a pair's query and its one right candidate
    return tuple(
        _counts(counts[f"{side}_above"], counts[side] - counts[f"{side}_above"], scored)
        for side in ("i2t", "t2i")
    )


def _counts(above: np.ndarray, tied: np.ndarray, scored: np.ndarray) -> Counts:
    above = np.where(scored, above, np.inf)
    return above, np.where(scored, tied, 0)


def partner_ranks(
    image: Rows,
    text: Rows,
    block_entries: int = BLOCK_ENTRIES,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image→text [N], text→image [N]) rank of each query's best right candidate, 0 = retrieved
    first: the wrong candidates at least as similar as it (within TIE_TOLERANCE), ties counting
    against the query; inf where the query cannot be ranked. Arguments as `rank_counts`."""
    return tuple(above + tied for above, tied in rank_counts(image, text, block_entries, ids))


def _has_shared_rows(ids: np.ndarray) -> bool:
    return any(len(np.unique(ids[:, side])) < len(ids) for side in (0, 1))


def _grouped_counts(
    queries: Rows,
    candidates: Rows,
    valid_queries: np.ndarray,
    valid_candidates: np.ndarray,
    ids: np.ndarray,
    block_entries: int,
) -> Counts:
    """[N] (above, tied) of each query's best right candidate among the wrong ones (see
    rank_counts); a right candidate without a direction is not a right answer."""
    n = queries.shape[0]
    above = np.empty(n, dtype=np.float64)
    at_least = np.empty(n, dtype=np.int64)
    reachable = np.empty(n, dtype=bool)
    block = max(1, block_entries // max(1, n))
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = _cosines(queries[start:stop], candidates)  # [b, N]
        right = (ids[start:stop, 0, None] == ids[None, :, 0]) | (
            ids[start:stop, 1, None] == ids[None, :, 1]
        )
        answers = right & valid_candidates[None, :]
        best = np.where(answers, similarity, -np.inf).max(axis=1)
        reachable[start:stop] = answers.any(axis=1)
        low, high = best - np.float32(TIE_TOLERANCE), best + np.float32(TIE_TOLERANCE)
        wrong = ~right
        at_least[start:stop] = np.count_nonzero((similarity >= low[:, None]) & wrong, axis=1)
        above[start:stop] = np.count_nonzero((similarity > high[:, None]) & wrong, axis=1)
    return _counts(above, at_least - above.astype(np.int64), valid_queries & reachable)


def recall_at(ranks: np.ndarray, k: int, tied: np.ndarray | None = None) -> float:
    """Mean top-k credit of queries with ranks [N] (`partner_ranks`: wrong candidates at least as
    similar as the right one, ties included). tied [N]: how many of those tie with it
    (`rank_counts`); credit by expected rank over the tied block for k > 1 (module docstring).
    None: no tie information, a hit is rank < k (ties count against the query)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    tied = np.zeros(len(ranks)) if tied is None else np.asarray(tied, dtype=np.float64)
    if not len(ranks):
        return float("nan")
    return float(np.mean(hit_credit(ranks - tied, tied, k)))


def identical_rows(x: np.ndarray) -> np.ndarray:
    """[N] int: equal for rows of x [N, d] that are identical after normalisation (bit for bit
    as float32 unit rows; all zero or non-finite rows form one group of their own)."""
    # + 0 turns −0.0 into 0.0: the two are one value but two bit patterns.
    unit = np.ascontiguousarray(_unit(x)[0] + np.float32(0))
    if unit.shape[1] == 0:
        return np.zeros(len(unit), dtype=np.int64)
    # A hash of each row's bits (a sum of its 32-bit words times fixed odd multipliers, modulo
    # 2^64) groups equal rows; a comparison of every row with its group's first row, bit for bit,
    # then rules out two different rows sharing a hash. Sorting the rows' bytes themselves
    # (the fallback) takes seconds at N = 100k, d = 768.
    words = unit.view(np.uint32)
    multipliers = np.random.default_rng(0).integers(1, 2**63, unit.shape[1], np.uint64) | 1
    step = max(1, (1 << 22) // unit.shape[1])
    hashes = np.concatenate(
        [
            (words[start : start + step] * multipliers).sum(axis=1, dtype=np.uint64)
            for start in range(0, len(words), step)
        ]
    )
    _, first, labels = np.unique(hashes, return_index=True, return_inverse=True)
    representative = first[labels]
    if all(
        np.array_equal(words[start : start + step], words[representative[start : start + step]])
        for start in range(0, len(words), step)
    ):
        return labels.astype(np.int64)
    row_bytes = unit.view(np.dtype((np.void, unit.dtype.itemsize * unit.shape[1]))).ravel()
    return np.unique(row_bytes, return_inverse=True)[1].astype(np.int64)


def merged_groups(*labellings: np.ndarray) -> np.ndarray:
    """[N] int: the finest grouping in which rows equal under any of the labellings [N] share a
    group (the connected components of rows linked through equal labels)."""
    from scipy.sparse.csgraph import connected_components

    n = len(labellings[0])
    # A bipartite graph: row i is linked to one node per (labelling, label) it carries.
    nodes = [np.unique(labels, return_inverse=True)[1] for labels in labellings]
    offsets = np.cumsum([n] + [int(node.max(initial=-1)) + 1 for node in nodes])
    columns = np.concatenate([node + offset for node, offset in zip(nodes, offsets, strict=False)])
    rows = np.tile(np.arange(n), len(labellings))
    graph = sparse.coo_array((np.ones(len(rows)), (rows, columns)), shape=(offsets[-1],) * 2)
    components = connected_components(graph, directed=False)[1][:n]
    return np.unique(components, return_inverse=True)[1].astype(np.int64)


def pair_groups(
    image: np.ndarray,
    text: np.ndarray,
    pairs: np.ndarray | None = None,
    text_groups: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """([N, 2] group ids (image, text) of each pair for `rank_counts`, the grouping's name).

    image, text [N, d] the dense eval rows; pairs [N, 2] their store rows (None: all distinct);
    text_groups [N] an explicit group of each pair's text (precomputed `groups_path`). Identical
    rows, shared store rows and explicit groups are merged; the name (`retrieval_grouping`) is
    "groups_path" with explicit groups, else "identical rows" when identical rows group more
    than store rows do, else "store rows" when pairs share store rows, else "pairs".
    """
    stored = np.stack([np.arange(len(image))] * 2, axis=1) if pairs is None else np.asarray(pairs)
    explicit = [] if text_groups is None else [np.asarray(text_groups)]
    ids = np.stack(
        [
            merged_groups(stored[:, 0], identical_rows(image)),
            merged_groups(stored[:, 1], identical_rows(text), *explicit),
        ],
        axis=1,
    )
    store_rows = np.stack([merged_groups(stored[:, side]) for side in (0, 1)], axis=1)
    if text_groups is not None:
        name = "groups_path"
    elif any(ids[:, side].max(initial=-1) < store_rows[:, side].max(initial=-1) for side in (0, 1)):
        name = "identical rows"
    elif _has_shared_rows(stored):
        name = "store rows"
    else:
        name = "pairs"
    return ids, name


def batches(n: int, batch: int, seed: int) -> np.ndarray:
    """[n_batches, size] pair indices: a seeded shuffle cut into full batches of `batch` pairs
    (one batch of all n when n < batch; the incomplete rest is dropped)."""
    if batch < 2:
        raise ValueError(f"an in-batch recall needs batches of at least 2 pairs, got {batch}")
    order = np.random.default_rng(seed).permutation(n)
    size = min(batch, n)
    return order[: n - n % size].reshape(-1, size)


def inbatch_recall(
    image: Rows, text: Rows, groups: np.ndarray, ids: np.ndarray | None = None
) -> tuple[float, float]:
    """(image→text, text→image) in-batch R@1 of paired rows image, text [N, d] (or sparse codes
    [N, p]); groups from
    `batches` [n_batches, size]; ids [N, 2] as in `partner_ranks`."""
    return _unit_inbatch_recall(*_paired_units(image, text), groups, ids)


def _unit_inbatch_recall(
    image: tuple[Rows, np.ndarray],
    text: tuple[Rows, np.ndarray],
    groups: np.ndarray,
    ids: np.ndarray | None = None,
) -> tuple[float, float]:
    """`inbatch_recall` of rows already through `_unit` (normalised once for all batches: the
    normalisation is row by row, so a batch's rows are those it would compute itself)."""
    hits = np.zeros(2)
    if ids is not None and not _has_shared_rows(ids):
        ids = None  # no batch has shared rows either: each pair is its own group
    # Several batches per product: one call per batch cost more in overhead (and, with BLAS
    # threads, in synchronisation) than its 256 × 256 × 768 product.
    chunk = max(1, BATCH_CHUNK_ENTRIES // groups.shape[1] ** 2)
    for start in range(0, len(groups), chunk):
        hits += _batch_hits(image, text, groups[start : start + chunk], ids)
    return float(hits[0] / groups.size), float(hits[1] / groups.size)


def _batch_hits(
    image: tuple[Rows, np.ndarray],
    text: tuple[Rows, np.ndarray],
    batches: np.ndarray,
    ids: np.ndarray | None,
) -> tuple[int, int]:
    """(image→text, text→image) queries of batches [b, size] (pair indices) whose best right
    candidate in their batch ranks first (rank 0 of `_unit_rank_counts` run on each batch)."""
    (image, valid_image), (text, valid_text) = image, text
    rows = batches.ravel()
    queries = {"i2t": (image[rows], valid_image[batches]), "t2i": (text[rows], valid_text[batches])}
    hits = []
    if ids is None:
        (image_rows, valid_i), (text_rows, valid_t) = queries["i2t"], queries["t2i"]
        similarity = _batch_cosines(image_rows, text_rows, batches.shape)  # [b, size, size]
        # Partners are no candidates against themselves: the diagonal is out of reach.
        similarity.reshape(len(batches), -1)[:, :: batches.shape[1] + 1] = -np.inf
        partner = _paired_cosines(image_rows, text_rows).reshape(batches.shape)
        low = partner - np.float32(TIE_TOLERANCE)
        scored = valid_i & valid_t
        # Rank 0: no wrong candidate at least as similar as the partner (within the tolerance).
        for axis in (2, 1):  # image i's row of texts; text j's column of images
            hits.append(np.count_nonzero(scored & (similarity.max(axis=axis) < low)))
        return tuple(hits)
    batch_ids = ids[batches]  # [b, size, 2]
    right = (batch_ids[:, :, None, 0] == batch_ids[:, None, :, 0]) | (
        batch_ids[:, :, None, 1] == batch_ids[:, None, :, 1]
    )
    for query, candidate in (("i2t", "t2i"), ("t2i", "i2t")):
        (query_rows, valid_q), (candidate_rows, valid_c) = queries[query], queries[candidate]
        # Each direction its own product, as `_grouped_counts` takes.
        similarity = _batch_cosines(query_rows, candidate_rows, batches.shape)
        answers = right & valid_c[:, None, :]
        best = np.where(answers, similarity, -np.inf).max(axis=2)
        low = best - np.float32(TIE_TOLERANCE)
        beaten = ((similarity >= low[..., None]) & ~right).any(axis=2)
        hits.append(np.count_nonzero(valid_q & answers.any(axis=2) & ~beaten))
    return tuple(hits)


def _batch_cosines(queries: Rows, candidates: Rows, shape: tuple[int, int]) -> np.ndarray:
    """[b, size, size] cosines within each batch: queries, candidates [b · size, q] unit rows,
    batch by batch; entry (batch, i, j) equals `_cosines` of the batch's rows bit for bit."""
    count, size = shape
    if not sparse.issparse(queries):
        import torch

        # torch's batched product: numpy's calls one BLAS product a batch, each on every BLAS
        # thread, 4x slower. Both accumulate each entry along q in order (bit for bit the same
        # products as numpy's at the bench: 51M entries).
        queries = torch.from_numpy(np.ascontiguousarray(queries).reshape(count, size, -1))
        candidates = torch.from_numpy(np.ascontiguousarray(candidates).reshape(count, size, -1))
        return torch.bmm(queries, candidates.transpose(1, 2)).numpy()
    # Sparse codes: each batch's atoms moved to a block of columns of its own, so that one
    # product holds the batches' similarities on its diagonal blocks and nothing else. Every
    # entry sums the same products in the same order as the batch's own product.
    width = queries.shape[1]
    product = _batch_columns(queries, size, width) @ _batch_columns(candidates, size, width).T
    product = sparse.csr_array(product)
    similarity = np.zeros((count * size, size), dtype=product.dtype)
    entry_rows = np.repeat(np.arange(count * size), np.diff(product.indptr))
    similarity[entry_rows, product.indices % size] = product.data
    return similarity.reshape(count, size, size)


def _batch_columns(rows: sparse.spmatrix | sparse.sparray, size: int, width: int):
    """rows [b · size, width] as [b · size, b · width]: batch k's entries in columns k · width +."""
    rows = sparse.csr_array(rows)
    batch = np.repeat(np.arange(rows.shape[0]) // size, np.diff(rows.indptr))
    return sparse.csr_array(
        (rows.data, rows.indices + batch * width, rows.indptr),
        shape=(rows.shape[0], (rows.shape[0] // size) * width),
    )


def mean_inbatch_recall(image: np.ndarray, text: np.ndarray, groups: np.ndarray) -> float:
    """In-batch R@1 of `inbatch_recall` averaged over image→text and text→image."""
    image_to_text, text_to_image = inbatch_recall(image, text, groups)
    return (image_to_text + text_to_image) / 2


def decoded(codes: sparse.spmatrix, dictionary: np.ndarray) -> np.ndarray:
    """Â = ZD [N, d]: codes [N, p] times dictionary [p, d], no decoder bias."""
    return sparse_times_dense(codes, dictionary)


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


def mean_reciprocal_rank(above: np.ndarray, tied: np.ndarray) -> float:
    """MRR of queries with rank counts (above [N], tied [N]) from `rank_counts`: the mean over
    queries of the expected 1 / rank (`ranking.reciprocal_rank`); NaN without queries."""
    return float(np.mean(reciprocal_rank(above, tied))) if len(above) else float("nan")


def _recalls(
    versions: Iterable[tuple[str, Rows, Rows]],
    context: StoreContext,
    settings: RetrievalSettings,
) -> dict[str, float | int | str]:
    """Every recall of each version: in-batch per direction and averaged, R@k and MRR over the
    split, the tie rates and zero rows; then the settings and the grouping (module docstring)."""
    n = len(context.image)
    groups = batches(n, settings.retrieval_batch, context.seed)
    split = np.arange(n)
    if n > settings.retrieval_max_pairs:
        rng = np.random.default_rng(context.seed)
        split = np.sort(rng.choice(n, settings.retrieval_max_pairs, replace=False))
    # Groups come from the dense rows whatever the version: which pairs show one item is a fact
    # of the data, and two reconstructions of one text may differ in their last bits.
    ids, grouping = pair_groups(context.image, context.text, context.pairs, context.text_groups)
    summary: dict[str, float | int | str] = {}
    for version, image, text in versions:
        if image.shape != text.shape:
            raise ValueError(f"paired rows must have one shape, got {image.shape} and {text.shape}")
        # Normalised once for the in-batch recall, the whole-split ranks and the zero rows.
        image, text = _unit(image), _unit(text)
        i2t, t2i = _unit_inbatch_recall(image, text, groups, ids)
        summary[f"recall_inbatch_i2t_{version}"] = i2t
        summary[f"recall_inbatch_t2i_{version}"] = t2i
        summary[f"recall_inbatch_{version}"] = (i2t + t2i) / 2
        counts = _unit_rank_counts(
            (image[0][split], image[1][split]), (text[0][split], text[1][split]), ids=ids[split]
        )
        for k in KS:
            for direction, (above, tied) in zip(DIRECTIONS, counts, strict=True):
                summary[f"recall_at{k}_{direction}_{version}"] = recall_at(above + tied, k, tied)
        for direction, (above, tied) in zip(DIRECTIONS, counts, strict=True):
            summary[f"mrr_{direction}_{version}"] = mean_reciprocal_rank(above, tied)
            summary[f"retrieval_tie_rate_{direction}_{version}"] = float(
                np.mean(tied_at_top(above, tied))
            )
        summary[f"retrieval_zero_rows_{version}"] = int(np.count_nonzero(~(image[1] & text[1])))
    summary["retrieval_seed"] = context.seed
    summary["retrieval_batch"] = int(groups.shape[1])
    summary["retrieval_pairs"] = len(split)
    summary["retrieval_grouping"] = grouping
    summary["retrieval_groups_image"] = int(len(np.unique(ids[:, 0])))
    summary["retrieval_groups_text"] = int(len(np.unique(ids[:, 1])))
    return summary


@STORE_METRICS.register("retrieval", RetrievalSettings, order=60)
def summarise_store(context: StoreContext, settings: RetrievalSettings) -> MetricResult:
    """The recalls of the dense eval rows (`*_dense`): the baseline every run is read against."""
    return MetricResult(
        summary=_recalls([("dense", context.image, context.text)], context, settings)
    )


def _run_versions(context: EvalContext) -> Iterator[tuple[str, Rows, Rows]]:
    """(version, image rows, text rows), built one at a time to hold one version in memory."""
    yield "reconstructed", context.recon_image, context.recon_text
    yield (
        "decoded",
        decoded(context.codes_image, context.dictionary),
        decoded(context.codes_text, context.dictionary),
    )
    yield "bimodal_only", *context.bimodal_only_rows()
    yield "codes", context.codes_image, context.codes_text


@RUN_METRICS.register("retrieval", RetrievalSettings, order=60, cost=16)
def summarise(context: EvalContext, settings: RetrievalSettings) -> MetricResult:
    """For the run's versions (reconstructed, decoded, bimodal_only, codes): `recall_inbatch_
    {i2t,t2i}_<version>`, their mean `recall_inbatch_<version>`, `recall_at{1,5,10}_{i2t,t2i}_
    <version>` and `mrr_{i2t,t2i}_<version>`;
    then `delta_r`, `delta_r_with_bias_i2t` (module docstring), `retrieval_seed` (context.seed,
    which draws the batches and the subsample), `retrieval_batch` (pairs per batch) and
    `retrieval_pairs` (pairs in the whole-split recall), `retrieval_tie_rate_{i2t,t2i}_<version>`,
    `retrieval_zero_rows_<version>`, `retrieval_grouping` and `retrieval_groups_{image,text}`.
    The dense recalls are the store's.

    Without bimodal atoms every bimodal-only row is zero: no query can be ranked, its recalls
    are 0 and `retrieval_zero_rows_bimodal_only` counts every pair.
    """
    summary = _recalls(_run_versions(context), context, settings)
    # The same numbers as `delta_r(...)` gives, without decoding the rows twice.
    summary["delta_r"] = summary["recall_inbatch_decoded"] - summary["recall_inbatch_bimodal_only"]
    summary["delta_r_with_bias_i2t"] = (
        summary["recall_inbatch_i2t_reconstructed"] - summary["recall_inbatch_i2t_bimodal_only"]
    )
    return MetricResult(summary=summary)
