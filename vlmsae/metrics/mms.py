"""Multimodal monosemanticity (group-sparse §3.2; DESIGN §5 MMS).

For atom k and modalities (m, n), a and b are its activations on the rows of m and of n, and S
the cosine similarities of those rows under a second encoder (the reference embeddings):

    MMS_k(m, n) = Σ_ij |a_i b_j| S_ij / Σ_ij |a_i b_j|,   pairs i = j left out when m = n.

With E the row-normalised reference embeddings, S = E_m E_nᵀ, so the numerator is
(|a|ᵀE_m)·(|b|ᵀE_n) minus the self terms Σ_i a_i² ‖e_i‖² when m = n, and the normaliser is
(Σ|a|)(Σ|b|) minus Σ_i a_i². For all atoms at once |Z|ᵀE is one sparse product [p, r]: the N×N
similarity matrix is never formed. MMS is a weighted mean of cosines, so it lies in [−1, 1].

An atom with no co-activating pair for (m, n) (inactive on a modality, or for m = n active on a
single row) has no MMS for that pair: NaN in its per-atom column. The summary follows the paper
(group-sparse §3.2, which reads a modality-split dictionary's MMS(image, text) as 0): such an atom
scores 0 and `mms_<pair>` is the mean over ALL p atoms (issue 12 item 8); `mms_<pair>_defined`
keeps the mean over the atoms where MMS is defined (0 when there is none; vlmsae's earlier
`mms_<pair>`) and `mms_<pair>_atoms` counts them.

Synthetic data: the second encoder is the truth, and its columns are true CONCEPTS
(`truth.atom_concept`, `concept_reference`): the image and the text instantiation of a bimodal
concept (two dictionary rows when τ1 < 1) are one column, so an atom firing on an image and on a
text of the same concept sees cosine 1 between them, as group-sparse's second encoder would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from vlmsae.metrics import RUN_METRICS, STORE_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult, StoreContext
from vlmsae.metrics.rows import unit_rows
from vlmsae.registry_base import Settings

PAIRS = (("image", "image"), ("text", "text"), ("image", "text"))


def _unit_reference(reference: np.ndarray | sparse.spmatrix | sparse.sparray):
    """Rows scaled to unit norm (zero rows stay zero); a sparse reference stays sparse.

    Synthetic data's reference is its true codes: [N, K] with K up to p, dense it would take
    gigabytes at full scale.
    """
    if not sparse.issparse(reference):
        return unit_rows(reference, np.float64)
    rows = sparse.csr_array(reference, dtype=np.float64)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sparse.csr_array(sparse.diags_array(scale) @ rows)


# Atoms pooled at a time: a block of |Z|ᵀE is made dense on its own ([block, r] float64).
BLOCK_ATOMS = 256


class _Side:
    """One modality's |Z| [N, p] and what MMS needs of it: |Z|ᵀE [p, r] a block of atoms at a
    time (`pooled`), Σ|a|, Σ a²‖e‖², Σ a²."""

    def __init__(self, codes: sparse.spmatrix | sparse.sparray, reference):
        if codes.shape[0] != reference.shape[0]:
            raise ValueError(
                f"codes have {codes.shape[0]} rows but the reference embeddings "
                f"{reference.shape[0]}"
            )
        weights = sparse.csc_array(abs(codes), dtype=np.float64)
        self.unit = _unit_reference(reference)
        # |Z|ᵀ as rows: a block of atoms is a slice of rows.
        self.weights_t = sparse.csr_array(weights.T)
        squared = weights.multiply(weights)
        self.mass = np.asarray(weights.sum(axis=0)).ravel()  # [p] Σ_i |a_i|
        # e_i·e_i is 1, or 0 for a zero reference row (its cosine with anything is 0).
        unit = self.unit
        unit_norms = np.asarray(
            (unit.multiply(unit) if sparse.issparse(unit) else np.square(unit)).sum(axis=1)
        ).ravel()
        self.self_similarity = squared.T @ unit_norms  # [p]
        self.self_mass = np.asarray(squared.sum(axis=0)).ravel()  # [p] Σ_i a_i²

    def pooled(self, start: int, stop: int) -> np.ndarray:
        """[stop − start, r] dense rows start..stop of |Z|ᵀE. With a sparse reference the whole
        product is nearly dense at p = 8192 (every atom meets most concepts): a block at a time
        it never holds p·r entries in sparse form and again dense."""
        product = self.weights_t[start:stop] @ self.unit
        return product.toarray() if sparse.issparse(product) else np.asarray(product)


def _numerators(sides: dict[str, _Side], n_atoms: int) -> dict[tuple[str, str], np.ndarray]:
    """{(m, n): [p] (|Z_m|ᵀE_m)_k · (|Z_n|ᵀE_n)_k} for each of PAIRS, a block of atoms at a time."""
    numerators = {pair: np.empty(n_atoms) for pair in PAIRS}
    for start in range(0, n_atoms, BLOCK_ATOMS):
        stop = min(start + BLOCK_ATOMS, n_atoms)
        pooled = {m: side.pooled(start, stop) for m, side in sides.items()}
        for m, n in PAIRS:
            numerators[m, n][start:stop] = np.einsum("kr,kr->k", pooled[m], pooled[n])
    return numerators


def _pair_score(side_m: _Side, side_n: _Side, numerator: np.ndarray, same: bool) -> np.ndarray:
    """[p] MMS of every atom for one modality pair from its [p] numerator (`_numerators`); NaN
    where the normaliser is 0."""
    normaliser = side_m.mass * side_n.mass
    if same:
        numerator = numerator - side_m.self_similarity
        normaliser = normaliser - side_m.self_mass
    score = np.full(normaliser.shape, np.nan)
    defined = normaliser > 0
    # Rounding can push a weighted mean of cosines a hair outside [−1, 1].
    score[defined] = np.clip(numerator[defined] / normaliser[defined], -1.0, 1.0)
    return score


def mms(
    codes: dict[str, sparse.spmatrix | sparse.sparray], reference: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """{`mms_image_image`, `mms_text_text`, `mms_image_text`: [p]} per-atom MMS.

    codes[m] [N_m, p] are the SAE codes of modality m's rows and reference[m] [N_m, r] the same
    rows under the second encoder (any scale: rows are normalised here).
    """
    sides = {m: _Side(codes[m], reference[m]) for m in ("image", "text")}
    numerators = _numerators(sides, codes["image"].shape[1])
    return {
        f"mms_{m}_{n}": _pair_score(sides[m], sides[n], numerators[m, n], m == n) for m, n in PAIRS
    }


def baseline(reference: dict[str, np.ndarray]) -> dict[str, float]:
    """{`mms_baseline_<pair>`}: mean reference cosine within each pair, self-pairs left out.

    This is the MMS of an atom firing equally on every row, the dense reference's score.
    """
    everywhere = {m: sparse.csc_array(np.ones((reference[m].shape[0], 1))) for m in reference}
    scores = mms(everywhere, reference)
    return {name.replace("mms_", "mms_baseline_"): float(s[0]) for name, s in scores.items()}


def concept_reference(
    true_codes: sparse.spmatrix | sparse.sparray, atom_concept: np.ndarray
) -> sparse.csr_array:
    """True codes [N, K] summed into concept columns [N, C] (C distinct `atom_concept` [K]
    values, in sorted order): the instantiations of one concept become one column."""
    _, concept = np.unique(np.asarray(atom_concept), return_inverse=True)
    k = len(concept)
    merge = sparse.csr_array(
        (np.ones(k), (np.arange(k), concept.ravel())), shape=(k, int(concept.max()) + 1)
    )
    return sparse.csr_array(sparse.csr_array(true_codes, dtype=np.float64) @ merge)


def reference_views(context: StoreContext) -> dict:
    """{image, text}: the second view of the eval rows, the true codes of a synthetic store (the
    reference evaluate gives when there is no reference store) summed into concept columns."""
    reference = {"image": context.reference_image, "text": context.reference_text}
    if context.truth is not None and context.reference_image is context.true_codes_image:
        reference = {
            m: concept_reference(r, context.truth.atom_concept) for m, r in reference.items()
        }
    return reference


def _has_reference(context: StoreContext) -> bool:
    return context.reference_image is not None and context.reference_text is not None


def dense_dimensions(
    image: np.ndarray, text: np.ndarray, reference: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """{`mms_<pair>`: [d]} per-dimension MMS of the dense embeddings: each of the d coordinates
    as a neuron whose activation on a row is that coordinate (group-sparse Fig. 4, "No SAE").

    image [N, d] and text [N, d] rows; reference as for `mms`. A coordinate is non-zero on
    nearly every row, so its MMS weighs nearly every pair of rows by |x_i x_j|.
    """
    dense = {"image": image, "text": text}
    return mms({m: sparse.csc_array(np.asarray(x)) for m, x in dense.items()}, reference)


def dense_table(scores: dict[str, np.ndarray] | None) -> pd.DataFrame:
    """The store table `mms_dense`: `dimension` and one `mms_<pair>` column per PAIRS entry, a
    row per dense coordinate (`dense_dimensions`); no rows without a reference."""
    columns = [f"mms_{m}_{n}" for m, n in PAIRS]
    if scores is None:
        return pd.DataFrame({"dimension": pd.Series(dtype=np.int64)}).assign(
            **{name: pd.Series(dtype=np.float64) for name in columns}
        )
    size = len(scores[columns[0]])
    return pd.DataFrame({"dimension": np.arange(size), **{c: scores[c] for c in columns}})


@STORE_METRICS.register("mms", order=80)
def summarise_store(context: StoreContext, settings: Settings) -> MetricResult:
    """`mms_baseline_<pair>`: the MMS of the dense reference itself (`baseline`), once per store,
    and the table `mms_dense`: the MMS of each dense coordinate (`dense_dimensions`).

    Without reference embeddings: no summary keys and a `mms_dense` table without rows.
    """
    if not _has_reference(context):
        return MetricResult(tables={"mms_dense": dense_table(None)})
    reference = reference_views(context)
    scores = dense_dimensions(context.image, context.text, reference)
    return MetricResult(summary=baseline(reference), tables={"mms_dense": dense_table(scores)})


@RUN_METRICS.register("mms", order=80, cost=4)
def summarise(context: EvalContext, settings: Settings) -> MetricResult:
    """Per-atom MMS columns and, per pair, the mean over all atoms (undefined ones count 0), the
    mean over defined atoms and their count; the baseline is the store's (`summarise_store`).

    Empty when the context has no reference embeddings.
    """
    if not _has_reference(context):
        return MetricResult()
    reference = reference_views(context)
    columns = mms({"image": context.codes_image, "text": context.codes_text}, reference)
    summary: dict[str, float | int] = {}
    for name, scores in columns.items():
        defined = ~np.isnan(scores)
        summary[name] = float(np.where(defined, scores, 0.0).mean()) if len(scores) else 0.0
        summary[f"{name}_defined"] = float(scores[defined].mean()) if defined.any() else 0.0
        summary[f"{name}_atoms"] = int(defined.sum())
    return MetricResult(atom_columns=columns, summary=summary)
