"""Bridge matrices and the odds ratios ρ and FDA built on them (DESIGN §5; issue 12 items 3, 4).

Co-activation bridge (linear-structure eq. 6): over the N aligned pairs, with Z_I, Z_T [N, p] the
image and text codes and D̂ [p, d] the dictionary with unit rows,

    B = (Z_Iᵀ Z_T / N) ⊙ (D̂ D̂ᵀ)                                                [p, p]

Row i is atom i as it fires on images, column j atom j as it fires on the paired captions.
Σ_ij B_ij = mean_n ⟨z_I,n D̂, z_T,n D̂⟩: the total is the mean paired inner product of the
bias-free reconstructions, and B splits it over pairs of atoms.

Optimal-transport bridge (iso-energy, FDA): the co-activation term is replaced by the optimal plan
P between the image energy vector a and the text energy vector b (per atom, mean_n |z_nk| (first
moment) or mean_n z_nk² (second moment) over the rows of each modality, each normalised to sum 1)
under the cost 1 − D̂ D̂ᵀ; B_OT = P ⊙ (D̂ D̂ᵀ) and Σ B_OT = 1 − (optimal transport cost), the
transport-weighted mean cosine. Atoms without energy in a modality carry no mass there, so the
problem is solved on the live rows and live columns only. The solver is POT's exact network
simplex (`ot.emd`): the plan is the true optimum, needs no regularisation parameter, is
deterministic, and is sparse (at most n_a + n_b − 1 non-zero entries), which keeps top pairs
readable. Entropic Sinkhorn would blur mass over every pair and so shift the shares below with its
regularisation strength. On all n_a · n_b edges (`dense=True`, the reference) the simplex took 21
to 36 s at 8192 live atoms (time grows about as n^2.6); `vlmsae.metrics.transport` runs it on a
sparse candidate graph instead and certifies the plan against every edge by LP duality, enlarging
the graph until it holds, so the plan is the same optimum (its value equal to the dense one's up
to rounding; where several plans are optimal either may come back). The two plans of a run (first
and second moment) share one candidate graph.

Thresholds (the iso-energy authors' code): entries of the co-activation Z_IᵀZ_T/N whose magnitude
is below its COACTIVATION_PERCENTILE-th percentile (99.9, over all p² entries, zeros included)
are set to 0, and entries of D̂ D̂ᵀ whose magnitude is below its COSINE_PERCENTILE-th percentile
(90, over all p² entries, the diagonal included) are set to 0 before the product. Percentiles are
numpy's linear ones of the signed entries, as the authors compute them.

Odds ratios (iso-energy §4.1 (ii)-(iii)): atoms are split into I, T and B (bimodal) by their
second-moment kind; α is the share of the |bridge| mass in entries that touch a bimodal atom
(row or column in B: blocks IB, TB, BI, BT, BB; the rest is II, IT, TI, TT), and

    odds(α, e) = (α / e) · ((1 − e) / (1 − α)).

- `rho` (the authors' ρ): odds on the thresholded co-activation bridge with e = RHO_PRIOR = 0.5.
- `rho_energy` (vlmsae's earlier ρ, the paper's text): odds on the unthresholded co-activation
  bridge with e = the share of the second-moment energy carried by bimodal atoms.
- `fda` (the authors' FDA): odds on the transport bridge of SECOND-moment marginals times the
  thresholded D̂ D̂ᵀ, e = the bimodal energy share.
- `fda_first_moment` (vlmsae's earlier FDA): first-moment marginals, no threshold, e the same.
ρ > 1: bimodal atoms carry more of the bridge than e. An odds ratio is undefined when e ∈ {0, 1}
(no bimodal or no unimodal energy), α = 1 (unimodal atoms bridge nothing: the odds are infinite)
or its bridge has no mass at all (every entry thresholded away); α = 0 gives 0, a value. An
undefined ratio is left out of the summary, never written as NaN or inf, and
`bridge_odds_undefined` counts how many of the four were left out.

Not copied from the authors' code: a normalisation of the bridge that leaves it unchanged (it
would not change α anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.metrics.energy import energy
from vlmsae.metrics.rows import unit_rows
from vlmsae.registry_base import Settings, setting

BIMODAL = "bimodal"
TOP_PAIRS_COLUMNS = (
    "atom_image",
    "atom_text",
    "bridge",
    "kind_image",
    "kind_text",
    "cosine",
    "coactivation",
)
# The iso-energy authors' thresholds and ρ's fixed e (module docstring).
COACTIVATION_PERCENTILE = 99.9
COSINE_PERCENTILE = 90.0
RHO_PRIOR = 0.5


@dataclass(frozen=True)
class Bridge:
    """A bridge matrix B = coupling ⊙ cosine [p, p], row = image atom, column = text atom.

    `coupling` is the co-activation Z_IᵀZ_T / N (thresholded or not) or the transport plan P;
    `values` is B with the sparsity structure of `coupling` (B is zero wherever the coupling is,
    and where a thresholded cosine is); `cosine` is D̂ D̂ᵀ, unthresholded.
    """

    coupling: sparse.csr_matrix  # [p, p]
    cosine: np.ndarray  # [p, p] float32
    values: sparse.csr_matrix  # [p, p]


def cosine_matrix(dictionary: np.ndarray) -> np.ndarray:
    """[p, p] D̂ D̂ᵀ of dictionary [p, d], rows re-normalised (a zero row stays zero); float32,
    or float64 for a float64 dictionary."""
    unit = unit_rows(dictionary, np.result_type(dictionary, np.float32))
    return unit @ unit.T


def entry_percentile(data: np.ndarray, n_entries: int, q: float) -> float:
    """np.percentile(M, q) (linear interpolation) of a matrix M of `n_entries` entries whose
    non-zero entries are `data` (a sparse matrix's stored values; the others are 0)."""
    data = np.asarray(data)
    n_zero = n_entries - len(data)
    if n_zero < 0 or n_entries == 0:
        raise ValueError(f"{len(data)} stored values do not fit in {n_entries} entries")
    n_negative = int(np.count_nonzero(data < 0))

    def rank_in_data(k: int) -> int | None:
        """Where the k-th smallest entry of M sits among the sorted data (None: a zero)."""
        if k < n_negative:
            return k
        return None if k < n_negative + n_zero else k - n_zero

    position = q / 100.0 * (n_entries - 1)
    low = int(np.floor(position))
    high = min(low + 1, n_entries - 1)
    ranks = [rank_in_data(low), rank_in_data(high)]
    # Only two order statistics are needed: a partition instead of a sort of up to p² values.
    needed = sorted({rank for rank in ranks if rank is not None})
    chosen = np.partition(data, needed) if needed else data
    below, above = (0.0 if rank is None else float(chosen[rank]) for rank in ranks)
    return below + (above - below) * (position - low)


def cosine_floor(cosine: np.ndarray, q: float = COSINE_PERCENTILE) -> float:
    """The q-th percentile of the entries of D̂ D̂ᵀ [p, p]: entries of smaller magnitude count as 0
    in a thresholded bridge."""
    return float(np.percentile(cosine, q))


def _bridge(coupling: sparse.csr_matrix, cosine: np.ndarray, floor: float | None = None) -> Bridge:
    """Bridge from a coupling [p, p] without repeated entries, reading the cosine only at the
    coupling's entries; with a `floor`, cosines of magnitude below it count as 0."""
    coupling = sparse.csr_matrix(coupling)
    rows = np.repeat(np.arange(coupling.shape[0], dtype=np.int32), np.diff(coupling.indptr))
    cosines = cosine[rows, coupling.indices]
    if floor is not None:
        cosines = np.where(np.abs(cosines) < floor, 0, cosines)
    values = sparse.csr_matrix(
        (coupling.data * cosines, coupling.indices, coupling.indptr), shape=coupling.shape
    )
    return Bridge(coupling=coupling, cosine=cosine, values=values)


def coactivation(
    codes_image: sparse.csr_matrix, codes_text: sparse.csr_matrix
) -> sparse.csr_matrix:
    """[p, p] Z_Iᵀ Z_T / N (float64) of the codes [N, p] of the N aligned pairs.

    The product of the sparse codes stays sparse: it holds only the (image atom, text atom) pairs
    that fire together on some pair, at most p² entries, each once, columns sorted.
    """
    if codes_image.shape != codes_text.shape:
        raise ValueError(
            f"codes of aligned pairs must have one shape, got {codes_image.shape} and "
            f"{codes_text.shape}"
        )
    # Sorted columns (the CSC → CSR conversion sorts them): scipy sorts a matrix's indices in
    # place on its first sum, which would scramble a bridge sharing them. The division is
    # float64, as scipy's `/` gives, in one pass instead of a float64 copy and a scaled copy.
    product = (sparse.csr_matrix(codes_image).T @ sparse.csr_matrix(codes_text)).tocsr()
    data = np.multiply(product.data, 1 / codes_image.shape[0], dtype=np.float64)
    return sparse.csr_matrix((data, product.indices, product.indptr), shape=product.shape)


def thresholded(coupling: sparse.csr_matrix, percentile: float) -> sparse.csr_matrix:
    """coupling [p, p] (no repeated entries) without its entries of magnitude below the
    `percentile`-th percentile of all p² entries (`entry_percentile`), nor stored zeros; a new
    matrix."""
    coupling = sparse.csr_matrix(coupling)
    data = coupling.data
    cut = entry_percentile(data, coupling.shape[0] * coupling.shape[1], percentile)
    kept = np.flatnonzero((np.abs(data) >= cut) & (data != 0))
    # Row r's kept entries start where its first stored entry would among the kept ones.
    indptr = np.searchsorted(kept, coupling.indptr)
    return sparse.csr_matrix((data[kept], coupling.indices[kept], indptr), shape=coupling.shape)


def coactivation_bridge(
    codes_image: sparse.csr_matrix,
    codes_text: sparse.csr_matrix,
    cosine: np.ndarray,
    floor: float | None = None,
    percentile: float | None = None,
) -> Bridge:
    """Linear-structure eq. 6: B = (Z_Iᵀ Z_T / N) ⊙ cosine; codes [N, p] of the N aligned pairs
    (`coactivation`). Thresholded (the authors' ρ): `percentile` drops co-activations of
    magnitude below that percentile of all p² entries (`thresholded`), `floor` zeroes cosines of
    magnitude below it (`cosine_floor`).
    """
    coupling = coactivation(codes_image, codes_text)
    if percentile is not None:
        coupling = thresholded(coupling, percentile)
    return _bridge(coupling, cosine, floor)


def _marginal(energy_vector: np.ndarray) -> np.ndarray:
    """energy [p] as float64 mass summing to 1."""
    mass = np.asarray(energy_vector, dtype=np.float64)
    return mass / mass.sum()


def transport_plans(
    energies: list[tuple[np.ndarray, np.ndarray]], cosine: np.ndarray, dense: bool = False
) -> list[sparse.csr_matrix]:
    """[p, q] optimal plan between energy_image [p] and energy_text [q] under cost 1 − cosine
    [p, q], for each (energy_image, energy_text) of `energies`.

    Both energy vectors are normalised to sum 1; atoms without energy in a modality carry no
    mass, and the plan is zero there. The exact solver: `transport.optimal_plans` (its sparse
    path, certified against the dense problem), or with `dense` POT's network simplex on every
    edge, the reference.
    """
    from vlmsae.metrics.transport import optimal_plans

    for energy_image, energy_text in energies:
        if not (np.any(energy_image > 0) and np.any(energy_text > 0)):
            raise ValueError("optimal transport is undefined: one side has no energy at all")
    marginals = [(_marginal(image), _marginal(text)) for image, text in energies]
    return [plan for plan, _ in optimal_plans(cosine, marginals, dense)]


def transport_plan(
    energy_image: np.ndarray, energy_text: np.ndarray, cosine: np.ndarray, dense: bool = False
) -> sparse.csr_matrix:
    """`transport_plans` of one pair of energy vectors."""
    return transport_plans([(energy_image, energy_text)], cosine, dense)[0]


def transport_bridge(
    codes_image: sparse.csr_matrix,
    codes_text: sparse.csr_matrix,
    cosine: np.ndarray,
    moment: int = 1,
    floor: float | None = None,
) -> Bridge:
    """Iso-energy's variant: B_OT = P ⊙ cosine, P the optimal plan between the energies of the
    given `moment` of the image codes [N_I, p] and of the text codes [N_T, p] (`transport_plan`);
    with a `floor`, cosines of magnitude below it count as 0 in B_OT (not in the cost)."""
    plan = transport_plan(energy(codes_image, moment), energy(codes_text, moment), cosine)
    return _bridge(plan, cosine, floor)


# `nth_largest` partitions the entries at least as large as the n-th largest of every
# SAMPLE_STRIDE-th entry: about n · SAMPLE_STRIDE of them.
SAMPLE_STRIDE = 16


def nth_largest(data: np.ndarray, n: int) -> float:
    """The n-th largest of data [E] (1 ≤ n ≤ E) in np.partition's order (NaN above all).

    The n-th largest of a subset bounds it from below, so entries under that bound cannot be it:
    at the bench's 51M bridge entries, partitioning the others instead of a copy of all takes a
    twentieth of the time."""
    sample = data[::SAMPLE_STRIDE]
    if len(sample) >= n:
        bound = np.partition(sample, len(sample) - n)[len(sample) - n]
        if not np.isnan(bound):
            data = data[~(data < bound)]  # NaN stays, as it ranks above the bound
    return np.partition(data, len(data) - n)[len(data) - n]


def top_pairs(bridge: Bridge, atom_kind: np.ndarray, n: int) -> pd.DataFrame:
    """The n largest entries of B as a table (`bridge_top.parquet`), largest first.

    Columns TOP_PAIRS_COLUMNS: the image-side and text-side atom, B, both atoms' kinds (from
    atom_kind [p]), their cosine and the coupling term (`coactivation`: Z_IᵀZ_T / N for the
    co-activation bridge, the transported mass for the transport bridge). Only entries where the
    coupling is non-zero compete; ties go to the lower image atom, then the lower text atom.
    """
    values = bridge.values.tocoo()
    data = values.data
    if n < len(data):
        # Every entry at least as large as the n-th largest, so ties at the cut stay candidates.
        candidates = np.flatnonzero(data >= nth_largest(data, n))
    else:
        candidates = np.arange(len(data))
    rank = np.lexsort((values.col[candidates], values.row[candidates], -data[candidates]))
    order = candidates[rank][:n]
    row, column = values.row[order], values.col[order]
    return pd.DataFrame(
        {
            "atom_image": row.astype(np.int64),
            "atom_text": column.astype(np.int64),
            "bridge": data[order].astype(np.float64),
            "kind_image": np.asarray(atom_kind, dtype=object)[row],
            "kind_text": np.asarray(atom_kind, dtype=object)[column],
            "cosine": bridge.cosine[row, column].astype(np.float64),
            "coactivation": np.asarray(bridge.coupling[row, column], dtype=np.float64).ravel(),
        }
    )


def bimodal_mass(bridge: Bridge, is_bimodal: np.ndarray) -> tuple[float, float]:
    """(|B| mass in entries touching a bimodal atom, |B| mass in the others); is_bimodal [p].

    An entry (i, j) touches the bimodal block when atom i or atom j is bimodal: blocks I×B, B×T,
    T×B, B×I and B×B; the others are I×I, I×T, T×I and T×T.
    """
    values = sparse.csr_matrix(bridge.values)
    # Per entry without a COO copy: its row's flag repeated along the row, its column's looked up.
    touches = np.repeat(is_bimodal, np.diff(values.indptr)) | is_bimodal[values.indices]
    magnitude = np.abs(values.data, dtype=np.float64)
    return float(magnitude[touches].sum()), float(magnitude[~touches].sum())


def odds_ratio(alpha: float, e: float) -> float | None:
    """ρ = (α / e) · ((1 − e) / (1 − α)), or None where it is undefined: e ∈ {0, 1} or α = 1."""
    if not 0 < e < 1 or alpha == 1:
        return None
    return (alpha / e) * ((1 - e) / (1 - alpha))


def _share(part: float, rest: float, what: str) -> float:
    """part / (part + rest), exactly 1.0 when rest is 0, so `odds_ratio` sees its edge cases."""
    if part + rest == 0:
        raise ValueError(f"{what} is undefined: its total is zero")
    return float(part / (part + rest))


def bimodal_energy_share(atom_kind_sq: np.ndarray, energy_sq: np.ndarray) -> float:
    """e: the share of the second-moment energy energy_sq [p] carried by bimodal atoms."""
    is_bimodal = np.asarray(atom_kind_sq) == BIMODAL
    energy_sq = np.asarray(energy_sq, dtype=np.float64)
    return _share(energy_sq[is_bimodal].sum(), energy_sq[~is_bimodal].sum(), "the energy share e")


# (summary prefix, odds-ratio key, whether e is RHO_PRIOR rather than the energy share) of each
# bridge `summarise_bridges` reads, by the name it has in its `bridges` argument.
ODDS = {
    "coactivation": ("bridge", "rho_energy", False),
    "coactivation_thresholded": ("bridge_thresholded", "rho", True),
    "transport": ("bridge_ot", "fda_first_moment", False),
    "transport_sq": ("bridge_ot_sq", "fda", False),
}


def summarise_bridges(
    bridges: dict[str, Bridge], atom_kind_sq: np.ndarray, energy_sq: np.ndarray
) -> dict[str, float | int]:
    """Scalars of the bridges named in ODDS, given atom_kind_sq [p] and energy_sq [p]:

    `bridge_bimodal_energy_share` (e); per bridge `<prefix>_total` (signed sum of B) and
    `<prefix>_share_bimodal` (α; absent when the bridge has no mass); `rho`, `rho_energy`, `fda`,
    `fda_first_moment` where defined; `bridge_odds_undefined`.
    """
    is_bimodal = np.asarray(atom_kind_sq) == BIMODAL
    e = bimodal_energy_share(atom_kind_sq, energy_sq)
    summary: dict[str, float | int] = {"bridge_bimodal_energy_share": e}
    undefined = 0
    for name, bridge in bridges.items():
        prefix, odds_key, prior = ODDS[name]
        summary[f"{prefix}_total"] = float(bridge.values.sum(dtype=np.float64))
        touching, rest = bimodal_mass(bridge, is_bimodal)
        odds = None
        if touching + rest > 0:
            alpha = _share(touching, rest, f"{prefix}_share_bimodal")
            summary[f"{prefix}_share_bimodal"] = alpha
            odds = odds_ratio(alpha, RHO_PRIOR if prior else e)
        if odds is None:
            undefined += 1
        else:
            summary[odds_key] = odds
    summary["bridge_odds_undefined"] = undefined
    return summary


def all_bridges(context: EvalContext) -> tuple[dict[str, Bridge], dict[str, float]]:
    """(the four bridges of ODDS by name, {`bridge_cosine_floor`: the threshold of D̂ D̂ᵀ})."""
    cosine = cosine_matrix(context.dictionary)
    floor = cosine_floor(cosine)
    image, text = context.codes_image, context.codes_text
    # Both moments' plans in one call: they share the candidate graph of the cosine.
    first, second = transport_plans(
        [(energy(image, moment), energy(text, moment)) for moment in (1, 2)], cosine
    )
    coupling = coactivation(image, text)  # one product for both co-activation bridges
    bridges = {
        "coactivation": _bridge(coupling, cosine),
        "coactivation_thresholded": _bridge(
            thresholded(coupling, COACTIVATION_PERCENTILE), cosine, floor
        ),
        "transport": _bridge(first, cosine),
        "transport_sq": _bridge(second, cosine, floor),
    }
    return bridges, {"bridge_cosine_floor": floor}


@dataclass(frozen=True, kw_only=True)
class BridgeSettings(Settings):
    bridge_top_pairs: int = setting(100, "rows of bridge_top per bridge form", minimum=1)


@RUN_METRICS.register("bridge", BridgeSettings, order=50, cost=17)
def summarise(context: EvalContext, settings: BridgeSettings) -> MetricResult:
    """Bridge scalars of one run (`summarise_bridges`, plus `bridge_cosine_floor`) and its
    `bridge_top` table.

    bridge_top: the `bridge_top_pairs` largest entries of the co-activation bridge (linear-
    structure eq. 6, unthresholded), then of the first-moment OT bridge, with a `form` column
    naming which; kinds are the first-moment atom kinds of linear-structure.
    """
    bridges, floors = all_bridges(context)
    n_pairs = settings.bridge_top_pairs
    top = pd.concat(
        [
            top_pairs(bridges[form], context.atom_kind, n_pairs).assign(form=form)
            for form in ("coactivation", "transport")
        ],
        ignore_index=True,
    )
    summary = summarise_bridges(bridges, context.atom_kind_sq, context.energy_sq)
    return MetricResult(summary={**summary, **floors}, tables={"bridge_top": top})
