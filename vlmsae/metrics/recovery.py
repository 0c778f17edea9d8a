"""Recovery of a known dictionary (iso-energy §4, synthetic data; DESIGN §5 Synthetic recovery;
issue 12 items 1 and 2).

Learned atoms D̂ [p, d] with codes Z [2N, p] over the eval rows (images, then texts), true atoms
D* [K, d] with true codes Z* [2N, K]; cosines between unit rows.

The truth as the iso-energy authors hold it keeps one copy of each bimodal atom per modality, its
image and its text instantiation, even when τ1 = 1 makes the two the same direction: the image
copy carries the bimodal atom's codes on image rows, the text copy those on text rows
(`authors_truth`). The store keeps a τ1 = 1 bimodal atom once (`merged_truth`, the store as
written); with τ1 < 1 both conventions coincide.

- `recovery_w` (the authors' W): exact optimal transport (POT's `ot.emd`, on the certified
  sparse candidate graph of `vlmsae.metrics.transport`, or on every edge with `dense`) between
  ALL learned and all true atoms, cost 1 − cos, marginals ∝ each atom's second-moment energy
  mean z² over the 2N rows (dead atoms carry no mass; true energies from the true codes):
  W = Σ_ij P_ij (1 − cos_ij), 0 when every unit of energy sits on a perfectly recovered direction.
  W is the same under either truth convention (the two copies of an atom share one direction).
- `recovery_w_uniform`: the same plan with uniform marginals (every learned and every true atom of
  the authors' truth weighs the same).
- `recovery_w_matched` (vlmsae's earlier W): mean 1 − cos over the one-to-one matching of learned
  to true atoms (stored truth): the optimal assignment (`transport.optimal_matching`, certified
  against the dense problem; linear_sum_assignment with `dense`).
- `recovery_mma` (the authors' mma): columns of Z and Z* (atom usage over the rows) as unit
  vectors; optimal one-to-one matching of true to learned columns maximising Σ cos; the mean
  matched cosine, against the authors' truth. A learned atom that fires on both modalities'
  rows can match only one copy of a bimodal atom.
- `recovery_mma_merged`: the same against the stored truth (vlmsae's earlier mma).
- `recovery_mma_energy`: the matched cosines of `recovery_mma`, weighted by the matched learned
  atoms' energies.
With more learned atoms than true ones every true atom gets a partner and the rest go unmatched
(and the other way round).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.bridge import transport_plans
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.metrics.energy import energy
from vlmsae.metrics.rows import unit_rows
from vlmsae.metrics.transport import optimal_matching
from vlmsae.registry_base import Settings
from vlmsae.stores.embedding_store import TrueStructure


def matched_cosines(
    a: np.ndarray, b: np.ndarray, dense: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows of a, rows of b, cosines) of the matching maximising Σ cos; a [m, n], b [q, n].

    `transport.optimal_matching` (its sparse path, certified against the dense problem), or
    with `dense` scipy's linear_sum_assignment, the reference.
    """
    cosine = unit_rows(a, np.float64) @ unit_rows(b, np.float64).T
    rows, cols, _ = optimal_matching(cosine, dense)
    return rows, cols, cosine[rows, cols]


def dictionary_distance(learned: np.ndarray, true: np.ndarray, dense: bool = False) -> float:
    """`recovery_w_matched`: mean of 1 − cos over the optimal matching of learned [p, d] to
    true [K, d] atoms."""
    # Rounding can put the cosine of two equal directions a hair above 1.
    return float(np.mean(np.maximum(0.0, 1.0 - matched_cosines(learned, true, dense)[2])))


def transport_distances(
    learned: np.ndarray,
    true: np.ndarray,
    weights: list[tuple[np.ndarray | None, np.ndarray | None]],
    dense: bool = False,
) -> list[float]:
    """`recovery_w` for each (learned_weight [p], true_weight [K]) of `weights`: Σ P ⊙ (1 − cos)
    of the exact optimal plan P between learned [p, d] and true [K, d] atoms, marginals ∝ the
    weights (uniform where None).

    Atoms of weight 0 carry no mass. The plans share one cosine matrix and its candidate graph
    (`bridge.transport_plans`; `dense`: the reference solver).
    """
    marginals = []
    for learned_weight, true_weight in weights:
        learned_weight = np.ones(len(learned)) if learned_weight is None else learned_weight
        true_weight = np.ones(len(true)) if true_weight is None else true_weight
        if len(learned_weight) != len(learned) or len(true_weight) != len(true):
            raise ValueError("one weight per atom is needed on each side")
        marginals.append((learned_weight, true_weight))
    # float32 for a float32 dictionary: at p = K = 8192 the cosine alone is 256 MB.
    dtype = np.result_type(learned, true, np.float32)
    cosine = unit_rows(learned, dtype) @ unit_rows(true, dtype).T
    distances = []
    for plan in transport_plans(marginals, cosine, dense):
        plan = plan.tocoo()
        cost = np.maximum(0.0, 1.0 - cosine[plan.row, plan.col])
        distances.append(float(np.sum(plan.data * cost)))
    return distances


def transport_distance(
    learned: np.ndarray,
    true: np.ndarray,
    learned_weight: np.ndarray | None = None,
    true_weight: np.ndarray | None = None,
    dense: bool = False,
) -> float:
    """`transport_distances` of one pair of weights (uniform where None)."""
    return transport_distances(learned, true, [(learned_weight, true_weight)], dense)[0]


def _column_norms(codes: sparse.csr_matrix) -> np.ndarray:
    """[p] Euclidean norms of the columns of codes [N, p], float64 of a float32 sum."""
    return np.sqrt(np.asarray(codes.multiply(codes).sum(axis=0), dtype=np.float64)).ravel()


# Gram entries per block of `_usage_blocks`: one 8 MB float32 buffer serves every block.
USAGE_BLOCK_ENTRIES = 1 << 21


def _usage_blocks(
    learned: sparse.csr_matrix,
    true: sparse.csr_matrix,
    learned_norms: np.ndarray,
    true_norms: np.ndarray,
) -> Iterator[tuple[slice, np.ndarray]]:
    """(columns, float64 [p, b] block) over the [p, K] usage cosines of codes [N, p] and true
    codes [N, K] over the same rows, given the column norms [p] and [K] of the codes the cosines
    are over.

    Each entry of the float32 product Zᵀ Z* sums over the rows in order, then goes to float64
    and is divided by the learned, then the true norm: at p = K = 8192 a [p, K] float64
    temporary is half a gigabyte, so only blocks of columns are ever materialised."""
    gram = sparse.csc_matrix(learned.T @ true)  # scipy's CSC route: faster here than CSR's
    learned_scale, true_scale = (
        np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        for norms in (learned_norms, true_norms)
    )
    step = max(1, USAGE_BLOCK_ENTRIES // max(1, gram.shape[0]))
    buffer = np.empty((step, gram.shape[0]), dtype=gram.dtype)
    for start in range(0, gram.shape[1], step):
        columns = slice(start, min(start + step, gram.shape[1]))
        block = buffer[: columns.stop - start]
        block.fill(0)
        gram[:, columns].T.toarray(out=block)  # adds into the block
        scaled = np.multiply(block.T, learned_scale[:, None], dtype=np.float64)
        scaled *= true_scale[None, columns]
        yield columns, scaled


def usage_cosines(
    learned_codes: sparse.spmatrix | np.ndarray, true_codes: sparse.spmatrix | np.ndarray
) -> np.ndarray:
    """[p, K] cosines between the usage columns of codes [N, p] and true codes [N, K] over the
    same rows, from the sparse product Zᵀ Z*; a learned atom never used has a zero column and
    a cosine of 0 with anything."""
    learned, true = sparse.csr_matrix(learned_codes), sparse.csr_matrix(true_codes)
    if learned.shape[0] != true.shape[0]:
        raise ValueError(
            f"codes over {learned.shape[0]} rows and true codes over {true.shape[0]} rows"
        )
    cosines = np.empty((learned.shape[1], true.shape[1]))
    for columns, block in _usage_blocks(learned, true, _column_norms(learned), _column_norms(true)):
        cosines[:, columns] = block
    return cosines


def usage_matching(
    learned_codes: sparse.spmatrix | np.ndarray,
    true_codes: sparse.spmatrix | np.ndarray,
    dense: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(learned atoms, true atoms, cosines) of the matching of usage columns maximising Σ cos,
    codes [N, p] and true codes [N, K] over the same rows (`usage_cosines`); `dense`: the
    reference solver."""
    gram = usage_cosines(learned_codes, true_codes)
    rows, cols, _ = optimal_matching(gram, dense)
    return rows, cols, gram[rows, cols]


def _agreement(
    rows: np.ndarray, cosines: np.ndarray, learned_weight: np.ndarray | None = None
) -> float:
    if learned_weight is None:
        return float(np.mean(cosines))
    weights = np.asarray(learned_weight, dtype=np.float64)[rows]
    total = weights.sum()
    return float(np.dot(weights, cosines) / total) if total > 0 else 0.0


def usage_agreement(
    learned_codes: sparse.spmatrix | np.ndarray,
    true_codes: sparse.spmatrix | np.ndarray,
    learned_weight: np.ndarray | None = None,
    dense: bool = False,
) -> float:
    """mma: mean matched cosine of `usage_matching`; with learned_weight [p] (`mma_energy`) the
    mean weighted by the matched learned atoms' weights (0 when they all weigh 0)."""
    rows, _, cosines = usage_matching(learned_codes, true_codes, dense)
    return _agreement(rows, cosines, learned_weight)


def _stacked(codes_image: sparse.spmatrix, codes_text: sparse.spmatrix) -> sparse.csr_matrix:
    return sparse.vstack([codes_image, codes_text], format="csr")


def merged_truth(
    truth: TrueStructure, codes_image: sparse.spmatrix, codes_text: sparse.spmatrix
) -> tuple[np.ndarray, sparse.csr_matrix]:
    """(true dictionary [K, d], true codes [2N, K]) as the store keeps them; true codes of the
    eval images [N, K] and of their texts [N, K]."""
    return np.asarray(truth.dictionary), _stacked(codes_image, codes_text)


def _shared_bimodal(truth: TrueStructure) -> np.ndarray:
    """The bimodal atoms the store keeps once (τ1 = 1: their concept has one row), ascending."""
    kind = np.asarray(truth.atom_kind)
    _, inverse, counts = np.unique(truth.atom_concept, return_inverse=True, return_counts=True)
    return np.flatnonzero((kind == "bimodal") & (counts[inverse] == 1))


def authors_truth(
    truth: TrueStructure, codes_image: sparse.spmatrix, codes_text: sparse.spmatrix
) -> tuple[np.ndarray, sparse.csr_matrix]:
    """(true dictionary [K', d], true codes [2N, K']) with one copy of each bimodal atom per
    modality.

    A bimodal atom the store keeps once (its concept has one row: τ1 = 1) gets a second row, the
    text copy, appended after the K stored rows; its codes on text rows move to that copy. Atoms
    already split by modality (τ1 < 1) and unimodal atoms stay as they are, so K' = K there.
    """
    shared = _shared_bimodal(truth)
    k = len(truth.atom_kind)
    if len(shared) == 0:
        return merged_truth(truth, codes_image, codes_text)
    column = np.arange(k)
    column[shared] = k + np.arange(len(shared))
    move = sparse.csr_matrix(
        (np.ones(k, dtype=np.float32), (np.arange(k), column)), shape=(k, k + len(shared))
    )
    image = sparse.hstack(
        [codes_image, sparse.csr_matrix((codes_image.shape[0], len(shared)), dtype=np.float32)]
    )
    text = sparse.csr_matrix(codes_text) @ move
    dictionary = np.concatenate([truth.dictionary, truth.dictionary[shared]])
    return dictionary, _stacked(image, text)


def recovery_summary(
    dictionary: np.ndarray,
    codes: sparse.spmatrix,
    truth: TrueStructure,
    true_codes_image: sparse.spmatrix,
    true_codes_text: sparse.spmatrix,
    dense: bool = False,
) -> dict[str, float]:
    """The six `recovery_*` scalars (module docstring) of a learned dictionary [p, d] with codes
    [2N, p] (images, then texts) against the truth and its codes of the same rows; `dense`: the
    reference solvers (POT on every edge, linear_sum_assignment)."""
    authors_dictionary, authors_codes = authors_truth(truth, true_codes_image, true_codes_text)
    merged_dictionary, merged_codes = merged_truth(truth, true_codes_image, true_codes_text)
    learned_energy = energy(codes, 2)
    w, w_uniform = transport_distances(
        dictionary,
        authors_dictionary,
        [(learned_energy, energy(authors_codes, 2)), (None, None)],
        dense,
    )
    # One matching serves mma and mma_energy.
    (rows, cosines), merged = _usage_matchings(
        codes, merged_codes, true_codes_image, true_codes_text, _shared_bimodal(truth), dense
    )
    return {
        "recovery_w": w,
        "recovery_w_uniform": w_uniform,
        "recovery_w_matched": dictionary_distance(dictionary, merged_dictionary, dense),
        "recovery_mma": _agreement(rows, cosines),
        "recovery_mma_merged": _agreement(*merged),
        "recovery_mma_energy": _agreement(rows, cosines, learned_energy),
    }


def _usage_matchings(
    codes: sparse.csr_matrix,
    merged_codes: sparse.csr_matrix,
    true_codes_image: sparse.spmatrix,
    true_codes_text: sparse.spmatrix,
    shared: np.ndarray,
    dense: bool,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((learned atoms, cosines) of `usage_matching` against the authors' truth, the same against
    the stored truth) for codes [2N, p] (images, then texts), merged_codes [2N, K], the true codes
    [N, K] of each modality and the `shared` bimodal atoms that `authors_truth` splits.

    The two usage cosine matrices share every column but the split atoms': the authors' [p, K']
    matrix is the stored truth's [p, K] with the shared columns over the image rows only and K' − K
    columns appended over the text rows (`authors_truth`). So one product over the 2N rows and two
    over the shared columns of N rows give both, equal to `usage_cosines` of each to the last bit
    (same float32 sums in the same order, same norms), and one [p, K'] buffer holds both in turn.
    """
    k, n = merged_codes.shape[1], true_codes_image.shape[0]
    shared_at = np.arange(len(shared))
    learned_norms = _column_norms(codes)
    # Column-major: `_usage_blocks` yields column blocks laid out so (transposes of the Gram's
    # rows), which then copy in whole rather than entry by entry across rows (0.8 s at p = 8192).
    usage = np.empty((codes.shape[1], k + len(shared)), order="F")
    for columns, block in _usage_blocks(
        codes, merged_codes, learned_norms, _column_norms(merged_codes)
    ):
        usage[:, columns] = block
    merged_rows, merged_columns, _ = optimal_matching(usage[:, :k], dense)
    merged = merged_rows, usage[merged_rows, merged_columns]
    if len(shared) == 0:
        return merged, merged
    image, text = (
        sparse.csr_matrix(true_codes)[:, shared]
        for true_codes in (true_codes_image, true_codes_text)
    )
    for learned, true, targets in ((codes[:n], image, shared), (codes[n:], text, k + shared_at)):
        for columns, block in _usage_blocks(learned, true, learned_norms, _column_norms(true)):
            usage[:, targets[columns]] = block
    rows, columns, _ = optimal_matching(usage, dense)
    return (rows, usage[rows, columns]), merged


@RUN_METRICS.register("recovery", order=90, cost=24)
def summarise(context: EvalContext, settings: Settings) -> MetricResult:
    """`recovery_summary` of the run on a synthetic store; empty for stores without a truth."""
    if context.truth is None or context.true_codes_image is None:
        return MetricResult()
    codes = _stacked(context.codes_image, context.codes_text)
    return MetricResult(
        summary=recovery_summary(
            context.dictionary,
            codes,
            context.truth,
            context.true_codes_image,
            context.true_codes_text,
        )
    )
