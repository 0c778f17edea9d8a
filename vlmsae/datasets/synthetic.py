"""Synthetic paired embeddings with a known dictionary (iso-energy §4 and App. C, DESIGN §3).

Two geometries (`geometry`):

isotropic: concepts come in three kinds, all random unit directions: bimodal (one instantiation
per modality, cosine τ1 between the two), image-only and text-only. Each pair shares
`n_active_bimodal` bimodal concepts with the same weights in both modalities and adds
L − n_active_bimodal unimodal concepts of each modality, so every embedding is a positive
combination of exactly L true atoms. The weights of the unimodal atoms are scaled by one factor,
solved for so that the mean paired cosine equals τ2.

clip-like: the authors' toy process (issue 12), with CLIP-like cosine statistics. The dimensions
split into an image slice, a text slice and a shared slice. Each modality has `n_unimodal` bias
atoms in its own slice, each a random vector plus `bias_offset` times one common unit offset: a
tight cluster, the modality's cone. A bimodal concept B lies in the shared slice, and its
instantiation in modality m is √τ1·B + √(1 − τ1)·N_m, N_m a random unit vector of m's slice. Each
pair draws L − 1 bimodal concepts without replacement (concept k with a frequency on a log scale
from `bimodal_frequency_max` to `bimodal_frequency_min`), all with one weight β, and one bias atom
per modality with weight 1; β is solved pair by pair so that every pair's cosine is exactly τ2.

Both geometries L2-normalise the embeddings and rescale the true codes with them, so that
x = Σ values · true_dictionary[indices] holds exactly. The true dictionary holds every distinct
direction: the bimodal image instantiations, the bimodal text instantiations (only when τ1 < 1;
with τ1 = 1 both modalities share one row per concept), the image-only atoms and the text-only
atoms; `atom_concept` gives both instantiations of a bimodal concept the same concept id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vlmsae.datasets import SOURCES
from vlmsae.registry_base import Settings, setting
from vlmsae.stores.embedding_store import SparseCodes, TrueStructure, assign_pair_splits

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

WEIGHT_RANGE = (0.5, 1.5)  # positive and bounded away from 0: every active atom is visible
MODALITIES = ("image", "text")
# A root of the clip-like quartic counts as real when its imaginary part is this small relative to
# it; eigenvalues of a companion matrix carry rounding of about 1e-12 relative.
# swap_triplets draws from a random stream of its own, beside the generator's.
_TRIPLET_STREAM = 2
# clip-like pairs whose cosine cannot reach τ2 are drawn again, up to this many rounds, while
# they stay under this share of all pairs (beyond it τ2 is refused as out of reach).
MAX_REDRAW_ROUNDS = 20
MAX_REDRAWN_SHARE = 0.01
_REAL_ROOT_TOLERANCE = 1e-7


@dataclass(frozen=True, kw_only=True)
class SyntheticParams(Settings):
    """The generator's parameters: config section `datasets.X.synthetic`."""

    geometry: Literal["isotropic", "clip-like"] = setting(
        "isotropic",
        "isotropic: random unit atoms, n_active_bimodal bimodal atoms shared by a pair, the "
        "unimodal weights scaled so that the mean paired cosine is tau2; clip-like: the authors' "
        "toy process with modality slices and bias cones (n_unimodal bias atoms per modality, "
        "L - 1 bimodal atoms and one bias atom per embedding, every pair's cosine exactly tau2; "
        "n_active_bimodal and frequency_exponent unused)",
    )
    d: int = setting(128, "embedding dimension", minimum=2)
    n_bimodal: int = setting(128, "bimodal concepts", minimum=0)
    n_unimodal: int = setting(64, "unimodal concepts per modality", minimum=0)
    L: int = setting(20, "active atoms per embedding", minimum=1)
    n_active_bimodal: int = setting(10, "bimodal atoms shared by a pair", minimum=0)
    tau1: float = setting(
        1.0, "cosine between the two instantiations of a bimodal atom", minimum=-1, maximum=1
    )
    tau2: float = setting(0.3, "target mean paired image-text cosine", minimum=-1, maximum=1)
    n_pairs: int = setting(40000, "image-text pairs generated", minimum=10)
    frequency_exponent: float = setting(
        0.0, "atom k drawn with probability ∝ (k+1)^-exponent", minimum=0
    )
    eval_fraction: float = setting(
        0.2, "share of the pairs in the eval split", exclusiveMinimum=0, exclusiveMaximum=1
    )
    seed: int = setting(0, "seed of the draw and of the splits", minimum=0)
    image_share: float = setting(
        0.1,
        "clip-like: share of the dimensions in the image slice (image bias atoms, image parts "
        "of the bimodal instantiations)",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    text_share: float = setting(
        0.1,
        "clip-like: share of the dimensions in the text slice",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    bias_offset: float = setting(
        10.0,
        "clip-like: length of the unit offset common to a modality's bias atoms, added to each "
        "one's standard normal vector before normalisation (larger: a tighter cone)",
        minimum=0,
    )
    bimodal_frequency_max: float = setting(
        0.5,
        "clip-like: frequency of the first bimodal concept; the others' fall on a log scale to "
        "bimodal_frequency_min",
        exclusiveMinimum=0,
        maximum=1,
    )
    bimodal_frequency_min: float = setting(
        0.1, "clip-like: frequency of the last bimodal concept", exclusiveMinimum=0, maximum=1
    )

    def check(self) -> None:
        """Raise ValueError naming the parameter when the combination cannot be generated."""
        if not -1.0 <= self.tau1 <= 1.0 or not -1.0 <= self.tau2 <= 1.0:
            raise ValueError("tau1 and tau2 are cosines and must lie in [-1, 1]")
        if self.geometry == "clip-like":
            self._check_clip_like()
            return
        n_unimodal_active = self.L - self.n_active_bimodal
        if not 0 <= self.n_active_bimodal <= min(self.L, self.n_bimodal):
            raise ValueError(
                f"n_active_bimodal={self.n_active_bimodal} must lie in [0, min(L, n_bimodal)]"
            )
        if n_unimodal_active > self.n_unimodal:
            raise ValueError(
                f"L - n_active_bimodal = {n_unimodal_active} unimodal atoms per embedding "
                f"exceed n_unimodal={self.n_unimodal}"
            )

    def _check_clip_like(self) -> None:
        if not 0.0 <= self.tau1 <= 1.0:
            raise ValueError(
                f"tau1={self.tau1} must lie in [0, 1] for the clip-like geometry: the "
                "instantiations are √tau1·B + √(1 − tau1)·N"
            )
        if not 0.0 < self.tau2 < 1.0:
            # The slices are disjoint, so a pair's cosine is β²⟨S_I, S_T⟩ ≥ 0; 1 needs β = ∞.
            raise ValueError(f"tau2={self.tau2} must lie in (0, 1) for the clip-like geometry")
        if not 2 <= self.L <= self.n_bimodal + 1:
            raise ValueError(
                f"L={self.L} must lie in [2, n_bimodal + 1]: the clip-like geometry draws L - 1 "
                f"of the n_bimodal={self.n_bimodal} bimodal concepts and one bias atom"
            )
        if self.n_unimodal < 1:
            raise ValueError(
                f"n_unimodal={self.n_unimodal} must be at least 1 for the clip-like geometry: "
                "it is the number of bias atoms per modality"
            )
        for name in ("image_share", "text_share"):
            if int(getattr(self, name) * self.d) < 1:
                raise ValueError(f"{name}={getattr(self, name)} of d={self.d} is no dimension")
        if self.slices()[2].start >= self.d:
            raise ValueError(
                f"image_share + text_share = {self.image_share + self.text_share} leaves no "
                f"dimension of d={self.d} to the shared slice"
            )
        if self.bimodal_frequency_min > self.bimodal_frequency_max:
            raise ValueError(
                f"bimodal_frequency_min={self.bimodal_frequency_min} exceeds "
                f"bimodal_frequency_max={self.bimodal_frequency_max}"
            )

    def slices(self) -> tuple[slice, slice, slice]:
        """The clip-like geometry's (image, text, shared) dimension slices."""
        n_image, n_text = int(self.image_share * self.d), int(self.text_share * self.d)
        return slice(0, n_image), slice(n_image, n_image + n_text), slice(n_image + n_text, self.d)


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    import numpy as np

    rows = rng.standard_normal((n, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _with_cosine(rng: np.random.Generator, base: np.ndarray, cosine: float) -> np.ndarray:
    """Unit rows whose cosine with the matching row of `base` (unit rows) is exactly `cosine`."""
    import numpy as np

    noise = rng.standard_normal(base.shape)
    noise -= np.sum(noise * base, axis=1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return cosine * base + np.sqrt(max(0.0, 1.0 - cosine**2)) * noise


def _draw_support(
    rng: np.random.Generator,
    n_rows: int,
    n_draw: int,
    log_p: np.ndarray,
    chunk: int = 4096,
) -> np.ndarray:
    """[n_rows, n_draw] atom indices drawn without replacement, atom k with weight exp(log_p[k]).

    Gumbel top-k: the same law as drawing one atom after another in proportion to the weights
    (numpy's choice without replacement). Rows are drawn in chunks so memory stays
    O(chunk · n_atoms).
    """
    import numpy as np

    if n_draw == 0:
        return np.zeros((n_rows, 0), dtype=np.int64)
    out = np.empty((n_rows, n_draw), dtype=np.int64)
    for start in range(0, n_rows, chunk):
        keys = log_p + rng.gumbel(size=(min(chunk, n_rows - start), len(log_p)))
        out[start : start + chunk] = np.argpartition(-keys, n_draw - 1, axis=1)[:, :n_draw]
    return out


def _render(dictionary: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[N, d] = Σ_j weights[n, j] · dictionary[indices[n, j]], as a sparse-dense product."""
    import numpy as np

    return np.asarray(SparseCodes(indices, weights).to_csr(len(dictionary)) @ dictionary)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N] inner products of matching rows of a and b [N, d]."""
    import numpy as np

    return np.sum(a * b, axis=1)


def _true_structure(
    bimodal: dict[str, np.ndarray],
    unimodal: dict[str, np.ndarray],
    bimodal_idx: np.ndarray,
    unimodal_idx: dict[str, np.ndarray],
    values: dict[str, np.ndarray],
) -> TrueStructure:
    """The true dictionary, atom kinds and concepts, and codes of both modalities.

    bimodal[m] [n_b, d]: modality m's instantiations of the bimodal concepts, the same array for
    both modalities when τ1 = 1 (one row per concept then); unimodal[m] [n_u, d];
    bimodal_idx [N, a] the bimodal concepts of each pair; unimodal_idx[m] [N, c];
    values[m] [N, a + c] the code values in that order.
    """
    import numpy as np

    merged = bimodal["text"] is bimodal["image"]
    n_b, n_u = len(bimodal["image"]), len(unimodal["image"])
    # Rows: bimodal image instantiations, bimodal text instantiations (τ1 < 1), image-only atoms,
    # text-only atoms.
    blocks = (
        [bimodal["image"]]
        + ([] if merged else [bimodal["text"]])
        + [unimodal["image"], unimodal["text"]]
    )
    n_bimodal_rows = n_b if merged else 2 * n_b
    bimodal_offset = {"image": 0, "text": 0 if merged else n_b}
    unimodal_offset = {"image": n_bimodal_rows, "text": n_bimodal_rows + n_u}
    atom_kind = np.array(["bimodal"] * n_bimodal_rows + ["image"] * n_u + ["text"] * n_u)
    atom_concept = np.concatenate(
        [np.arange(n_b), *([] if merged else [np.arange(n_b)]), n_b + np.arange(2 * n_u)]
    )
    codes = {}
    for m in MODALITIES:
        indices = np.concatenate(
            [bimodal_idx + bimodal_offset[m], unimodal_idx[m] + unimodal_offset[m]], axis=1
        )
        codes[m] = SparseCodes(indices.astype(np.int32), values[m].astype(np.float32))
    dictionary = np.concatenate(blocks).astype(np.float32)
    return TrueStructure(dictionary, atom_kind, atom_concept, codes)


def _paired_cosine(parts: dict[str, np.ndarray], scale: float) -> float:
    """Mean over pairs of cos(b_I + s·u_I, b_T + s·u_T), from precomputed inner products."""
    import numpy as np

    s = scale
    dot = parts["bI.bT"] + s * (parts["bI.uT"] + parts["uI.bT"]) + s * s * parts["uI.uT"]
    norm_i = parts["bI.bI"] + 2 * s * parts["bI.uI"] + s * s * parts["uI.uI"]
    norm_t = parts["bT.bT"] + 2 * s * parts["bT.uT"] + s * s * parts["uT.uT"]
    return float(np.mean(dot / np.sqrt(norm_i * norm_t)))


def _isotropic(p: SyntheticParams, rng: np.random.Generator) -> tuple[dict, TrueStructure, dict]:
    """(embeddings, truth, attrs) of the isotropic geometry."""
    import numpy as np

    bimodal_image = _unit_rows(rng, p.n_bimodal, p.d)
    iso_energy = np.isclose(p.tau1, 1.0)
    bimodal_text = bimodal_image if iso_energy else _with_cosine(rng, bimodal_image, p.tau1)
    unimodal = {
        "image": _unit_rows(rng, p.n_unimodal, p.d),
        "text": _unit_rows(rng, p.n_unimodal, p.d),
    }

    def log_p(n_atoms: int) -> np.ndarray:
        return -p.frequency_exponent * np.log(np.arange(1, n_atoms + 1))

    n_uni = p.L - p.n_active_bimodal
    shared_idx = _draw_support(rng, p.n_pairs, p.n_active_bimodal, log_p(p.n_bimodal))
    shared_w = rng.uniform(*WEIGHT_RANGE, size=shared_idx.shape)
    uni_idx = {m: _draw_support(rng, p.n_pairs, n_uni, log_p(p.n_unimodal)) for m in MODALITIES}
    uni_w = {m: rng.uniform(*WEIGHT_RANGE, size=uni_idx[m].shape) for m in MODALITIES}

    b = {
        "image": _render(bimodal_image, shared_idx, shared_w),
        "text": _render(bimodal_text, shared_idx, shared_w),
    }
    u = {m: _render(unimodal[m], uni_idx[m], uni_w[m]) for m in MODALITIES}
    parts = {
        "bI.bT": _rowdot(b["image"], b["text"]),
        "bI.uT": _rowdot(b["image"], u["text"]),
        "uI.bT": _rowdot(u["image"], b["text"]),
        "uI.uT": _rowdot(u["image"], u["text"]),
        "bI.bI": _rowdot(b["image"], b["image"]),
        "bI.uI": _rowdot(b["image"], u["image"]),
        "uI.uI": _rowdot(u["image"], u["image"]),
        "bT.bT": _rowdot(b["text"], b["text"]),
        "bT.uT": _rowdot(b["text"], u["text"]),
        "uT.uT": _rowdot(u["text"], u["text"]),
    }
    unimodal_scale = _solve_unimodal_scale(parts, p)

    embeddings, values = {}, {}
    for m in MODALITIES:
        raw = b[m] + unimodal_scale * u[m]
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        embeddings[m] = (raw / norms).astype(np.float32)
        values[m] = np.concatenate([shared_w, unimodal_scale * uni_w[m]], axis=1) / norms
    bimodal = {"image": bimodal_image, "text": bimodal_text}
    truth = _true_structure(bimodal, unimodal, shared_idx, uni_idx, values)
    return embeddings, truth, {"unimodal_scale": unimodal_scale}


def _solve_unimodal_scale(parts: dict[str, np.ndarray], p: SyntheticParams) -> float:
    """The unimodal weight scale s with mean paired cosine = τ2 (cosine falls as s grows)."""
    from scipy.optimize import brentq

    if p.L == p.n_active_bimodal:
        return 0.0
    if p.n_active_bimodal == 0:
        # No shared atoms: the cosine is that of unrelated vectors whatever s is.
        return 1.0
    high = 1.0
    while _paired_cosine(parts, high) > p.tau2 and high < 1e4:
        high *= 2.0
    low_cosine, high_cosine = _paired_cosine(parts, 0.0), _paired_cosine(parts, high)
    if not high_cosine <= p.tau2 <= low_cosine:
        raise ValueError(
            f"tau2={p.tau2} is out of reach: with tau1={p.tau1}, L={p.L} and "
            f"n_active_bimodal={p.n_active_bimodal} the mean paired cosine lies in "
            f"[{high_cosine:.3f}, {low_cosine:.3f}]"
        )
    return float(brentq(lambda s: _paired_cosine(parts, s) - p.tau2, 0.0, high, xtol=1e-10))


def _in_slice(rows: np.ndarray, dims: slice, offset: np.ndarray | float = 0.0) -> np.ndarray:
    """rows [n, d] cut to `dims` (0 elsewhere), plus `offset` there, scaled to unit norm."""
    import numpy as np

    out = np.zeros_like(rows)
    out[:, dims] = rows[:, dims] + offset
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _clip_like(p: SyntheticParams, rng: np.random.Generator) -> tuple[dict, TrueStructure, dict]:
    """(embeddings, truth, attrs) of the clip-like geometry."""
    import numpy as np

    # Every random vector is drawn at full width d and cut to its slice, and the noise is drawn
    # for every τ1: the random stream is then the same whatever the shares and τ1, so a sweep
    # (or calibrate's search) over them changes the geometry, not the draws.
    dims = dict(zip((*MODALITIES, "shared"), p.slices(), strict=True))
    bias = {}
    for m in MODALITIES:
        offset = rng.standard_normal(p.d)[dims[m]]
        offset *= p.bias_offset / np.linalg.norm(offset)
        bias[m] = _in_slice(rng.standard_normal((p.n_unimodal, p.d)), dims[m], offset)
    concepts = _in_slice(rng.standard_normal((p.n_bimodal, p.d)), dims["shared"])
    noise = {m: _in_slice(rng.standard_normal((p.n_bimodal, p.d)), dims[m]) for m in MODALITIES}
    if np.isclose(p.tau1, 1.0):
        # Both modalities share the concept's own row (see _true_structure).
        bimodal = {m: concepts for m in MODALITIES}
    else:
        bimodal = {
            m: np.sqrt(p.tau1) * concepts + np.sqrt(1.0 - p.tau1) * noise[m] for m in MODALITIES
        }

    frequencies = np.geomspace(p.bimodal_frequency_max, p.bimodal_frequency_min, p.n_bimodal)
    shared_idx = _draw_support(rng, p.n_pairs, p.L - 1, np.log(frequencies))
    bias_idx = {m: rng.integers(p.n_unimodal, size=(p.n_pairs, 1)) for m in MODALITIES}
    weight = _bimodal_weight(bimodal, bias, shared_idx, bias_idx, p)
    # A pair whose cosine cannot reach τ2 at any β (its bimodal atoms' instantiations agree too
    # little) is drawn again: τ2 is then exact for every pair, at the cost of conditioning the
    # draw on reachability. A redrawn share above MAX_REDRAWN_SHARE means τ2 does not suit τ1.
    unreachable = np.flatnonzero(np.isnan(weight))
    redrawn = len(unreachable)
    for _ in range(MAX_REDRAW_ROUNDS):
        if redrawn > MAX_REDRAWN_SHARE * p.n_pairs or not len(unreachable):
            break
        shared_idx[unreachable] = _draw_support(rng, len(unreachable), p.L - 1, np.log(frequencies))
        for m in MODALITIES:
            bias_idx[m][unreachable] = rng.integers(p.n_unimodal, size=(len(unreachable), 1))
        weight[unreachable] = _bimodal_weight(
            bimodal,
            bias,
            shared_idx[unreachable],
            {m: v[unreachable] for m, v in bias_idx.items()},
            p,
        )
        unreachable = unreachable[np.isnan(weight[unreachable])]
        redrawn += len(unreachable)
    if len(unreachable):
        sums = {
            m: _render(bimodal[m], shared_idx[unreachable], np.ones((len(unreachable), p.L - 1)))
            for m in MODALITIES
        }
        limit = _rowdot(sums["image"], sums["text"]) / np.sqrt(
            _rowdot(sums["image"], sums["image"]) * _rowdot(sums["text"], sums["text"])
        )
        raise ValueError(
            f"tau2={p.tau2} is out of reach: with tau1={p.tau1} the cosine of "
            f"{redrawn} of {p.n_pairs} drawn pairs cannot reach it (it tends to "
            f"{float(limit.min()):.3f} as the bimodal weight grows); lower tau2 or raise tau1"
        )
    ones = np.ones(shared_idx.shape)
    sums = {m: _render(bimodal[m], shared_idx, ones) for m in MODALITIES}
    bias_rows = {m: bias[m][bias_idx[m][:, 0]] for m in MODALITIES}

    embeddings, values = {}, {}
    for m in MODALITIES:
        raw = bias_rows[m] + weight[:, None] * sums[m]
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        embeddings[m] = (raw / norms).astype(np.float32)
        values[m] = np.concatenate([weight[:, None] * ones, np.ones((p.n_pairs, 1))], axis=1)
        values[m] /= norms
    truth = _true_structure(bimodal, bias, shared_idx, bias_idx, values)
    attrs = {"mean_bimodal_weight": float(weight.mean()), "redrawn_pairs": redrawn}
    return embeddings, truth, attrs


def _bimodal_weight(
    bimodal: dict[str, np.ndarray],
    bias: dict[str, np.ndarray],
    shared_idx: np.ndarray,
    bias_idx: dict[str, np.ndarray],
    p: SyntheticParams,
) -> np.ndarray:
    """[N] the bimodal weight β > 0 of each pair that makes cos(x_I, x_T) exactly τ2, NaN
    where no β does.

    x_m = b_m + β·S_m with b_m the unit bias row [N, d] and S_m the sum of the bimodal
    instantiations [N, d]. The slices are disjoint, so ⟨x_I, x_T⟩ = β²⟨S_I, S_T⟩ and
    ‖x_m‖² = 1 + β·2⟨b_m, S_m⟩ + β²‖S_m‖². Squaring cos = τ2 and writing u = 1/β gives the monic
    quartic (u² + b_I u + a_I)(u² + b_T u + a_T) − (⟨S_I, S_T⟩/τ2)² = 0, solved for all pairs at
    once as the eigenvalues of its companion matrices. Every positive root is a β with cosine
    +τ2 (the cosine is never negative); the largest u, the smallest β, is kept.
    """
    import numpy as np

    ones = np.ones(shared_idx.shape)
    sums = {m: _render(bimodal[m], shared_idx, ones) for m in MODALITIES}
    rows = {m: bias[m][bias_idx[m][:, 0]] for m in MODALITIES}
    a = {m: _rowdot(sums[m], sums[m]) for m in MODALITIES}
    b = {m: 2.0 * _rowdot(rows[m], sums[m]) for m in MODALITIES}
    cross = _rowdot(sums["image"], sums["text"])
    # Coefficients of u⁰ … u³ of the monic quartic.
    coefficients = np.stack(
        [
            a["image"] * a["text"] - (cross / p.tau2) ** 2,
            a["image"] * b["text"] + a["text"] * b["image"],
            a["image"] + a["text"] + b["image"] * b["text"],
            b["image"] + b["text"],
        ],
        axis=1,
    )
    companion = np.zeros((len(cross), 4, 4))
    companion[:, np.arange(1, 4), np.arange(3)] = 1.0
    companion[:, :, 3] = -coefficients
    roots = np.linalg.eigvals(companion)
    real = np.abs(roots.imag) <= _REAL_ROOT_TOLERANCE * np.maximum(1.0, np.abs(roots))
    u = np.where(real & (roots.real > 0), roots.real, -np.inf).max(axis=1)
    return np.where(np.isfinite(u), 1.0 / u, np.nan)


@SOURCES.register("synthetic", SyntheticParams, kind="embedding")
def build(settings: SyntheticParams) -> dict:
    """The built-in generator with a known dictionary (iso-energy App. C, DESIGN §3).

    Returns the arrays and attrs `write_store` takes, ground truth included. image, text:
    [n_pairs, d] unit rows; pairs[i] = (i, i).
    """
    import numpy as np

    settings.check()
    rng = np.random.default_rng(settings.seed)
    draw = _clip_like if settings.geometry == "clip-like" else _isotropic
    embeddings, truth, attrs = draw(settings, rng)
    split = assign_pair_splits(settings.n_pairs, settings.eval_fraction, settings.seed)
    mean_cosine = float(np.mean(_rowdot(embeddings["image"], embeddings["text"])))
    return {
        "image": embeddings["image"],
        "text": embeddings["text"],
        "pairs": np.stack([np.arange(settings.n_pairs)] * 2, axis=1),
        "image_split": split,
        "text_split": split,
        "truth": truth,
        "attrs": {
            "source": "synthetic",
            "normalised": True,
            "dtype": "float32",
            "generator": settings.as_dict(),
            **attrs,
            "mean_paired_cosine": mean_cosine,
        },
    }


def swap_triplets(
    truth: TrueStructure,
    source_pairs: np.ndarray,
    swaps_per_source: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Composed-retrieval triplets with a known answer (iso-energy §5, FashionIQ-like).

    For each source pair (image row, text row) of source_pairs [n, 2], `swaps_per_source`
    targets: the source image with one of its bimodal concepts a (drawn at random) replaced by a
    concept b it does not hold (distinct b per source, so no two targets coincide), same weight;
    the relative caption is b's text instantiation at a's weight plus the text-only atoms of the
    source's own caption (modality-specific content, as a real caption carries). Rows are
    rendered from the true dictionary and L2-normalised.

    Returns source_row [n·s] (image rows of the store), caption [n·s, d], target [n·s, d],
    group [n·s] (the source's index in source_pairs), swapped_out, swapped_in [n·s] (concepts).
    """
    import numpy as np

    rng = np.random.default_rng([seed, _TRIPLET_STREAM])
    bimodal_rows = np.flatnonzero(truth.atom_kind == "bimodal")
    concepts = truth.atom_concept[bimodal_rows]
    n_concepts = int(concepts.max()) + 1
    # Rows of each concept: the image instantiation first, the text one last (one row when τ1 = 1).
    image_row = np.full(n_concepts, -1)
    text_row = np.full(n_concepts, -1)
    first = np.unique(concepts, return_index=True)[1]
    last = len(concepts) - 1 - np.unique(concepts[::-1], return_index=True)[1]
    image_row[concepts[first]] = bimodal_rows[first]
    text_row[concepts[last]] = bimodal_rows[last]
    image_codes, text_codes = truth.codes["image"], truth.codes["text"]
    indices = image_codes.indices[source_pairs[:, 0]]
    values = image_codes.values[source_pairs[:, 0]]
    is_bimodal = truth.atom_kind[indices] == "bimodal"
    held = np.zeros((len(source_pairs), n_concepts), dtype=bool)
    held[np.nonzero(is_bimodal)[0], truth.atom_concept[indices[is_bimodal]]] = True
    if swaps_per_source > int((~held).sum(axis=1).min()):
        raise ValueError(
            f"{swaps_per_source} swaps per source, but a source holds all but "
            f"{int((~held).sum(axis=1).min())} of the {n_concepts} bimodal concepts"
        )
    # Distinct absent concepts per source: the smallest random keys among the absent ones.
    keys = np.where(held, np.inf, rng.random(held.shape))
    swapped_in = np.argsort(keys, axis=1)[:, :swaps_per_source].ravel()
    group = np.repeat(np.arange(len(source_pairs)), swaps_per_source)
    # One of the source's bimodal entries per target, drawn uniformly.
    position = np.argmax(np.where(is_bimodal[group], rng.random(is_bimodal[group].shape), -1), 1)
    rows = np.arange(len(group))
    target_indices = indices[group].copy()
    swapped_out = truth.atom_concept[target_indices[rows, position]]
    target_indices[rows, position] = image_row[swapped_in]
    target = np.einsum("nj,njd->nd", values[group], truth.dictionary[target_indices])
    caption_idx = text_codes.indices[source_pairs[group, 1]]
    caption_values = np.where(
        truth.atom_kind[caption_idx] == "text", text_codes.values[source_pairs[group, 1]], 0.0
    )
    caption = np.einsum("nj,njd->nd", caption_values, truth.dictionary[caption_idx])
    caption += values[group][rows, position, None] * truth.dictionary[text_row[swapped_in]]
    return {
        "source_row": source_pairs[group, 0],
        "caption": (caption / np.linalg.norm(caption, axis=1, keepdims=True)).astype(np.float32),
        "target": (target / np.linalg.norm(target, axis=1, keepdims=True)).astype(np.float32),
        "group": group,
        "swapped_out": swapped_out,
        "swapped_in": swapped_in,
    }
