"""Synthetic paired embeddings with a known dictionary (iso-energy §4 and App. C, DESIGN §3).

Concepts come in three kinds: bimodal (one instantiation per modality, cosine τ1 between the
two), image-only and text-only. Each pair shares `n_active_bimodal` bimodal concepts with the
same weights in both modalities and adds L − n_active_bimodal unimodal concepts of each modality,
so every embedding is a positive combination of exactly L true atoms. The weights of the unimodal
atoms are scaled by one factor, solved for so that the mean paired cosine equals τ2; both
embeddings are then L2-normalised, and the true codes are rescaled with them so that
x = Σ values · true_dictionary[indices] holds exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import brentq

from vlmsae.store import SparseCodes, TrueStructure, assign_pair_splits

WEIGHT_RANGE = (0.5, 1.5)  # positive and bounded away from 0: every active atom is visible


@dataclass(frozen=True)
class SyntheticParams:
    d: int = 128
    n_bimodal: int = 128
    n_unimodal: int = 64  # per modality
    L: int = 20
    n_active_bimodal: int = 10
    tau1: float = 1.0
    tau2: float = 0.3
    n_pairs: int = 40000
    frequency_exponent: float = 0.0  # atom k is drawn with probability ∝ (k + 1)^(−exponent)
    eval_fraction: float = 0.2
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError naming the parameter when the combination cannot be generated."""
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
        if not -1.0 <= self.tau1 <= 1.0 or not -1.0 <= self.tau2 <= 1.0:
            raise ValueError("tau1 and tau2 are cosines and must lie in [-1, 1]")


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    rows = rng.standard_normal((n, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _with_cosine(rng: np.random.Generator, base: np.ndarray, cosine: float) -> np.ndarray:
    """Unit rows whose cosine with the matching row of `base` (unit rows) is exactly `cosine`."""
    noise = rng.standard_normal(base.shape)
    noise -= np.sum(noise * base, axis=1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return cosine * base + np.sqrt(max(0.0, 1.0 - cosine**2)) * noise


def _draw_support(
    rng: np.random.Generator,
    n_rows: int,
    n_atoms: int,
    n_draw: int,
    exponent: float,
    chunk: int = 4096,
) -> np.ndarray:
    """[n_rows, n_draw] atom indices drawn without replacement (Gumbel top-k on log-probabilities).

    Rows are drawn in chunks so memory stays O(chunk · n_atoms).
    """
    if n_draw == 0:
        return np.zeros((n_rows, 0), dtype=np.int64)
    log_p = -exponent * np.log(np.arange(1, n_atoms + 1))
    out = np.empty((n_rows, n_draw), dtype=np.int64)
    for start in range(0, n_rows, chunk):
        keys = log_p + rng.gumbel(size=(min(chunk, n_rows - start), n_atoms))
        out[start : start + chunk] = np.argpartition(-keys, n_draw - 1, axis=1)[:, :n_draw]
    return out


def _render(dictionary: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[N, d] = Σ_j weights[n, j] · dictionary[indices[n, j]], as a sparse-dense product."""
    return np.asarray(SparseCodes(indices, weights).to_csr(len(dictionary)) @ dictionary)


def _paired_cosine(parts: dict[str, np.ndarray], scale: float) -> float:
    """Mean over pairs of cos(b_I + s·u_I, b_T + s·u_T), from precomputed inner products."""
    s = scale
    dot = parts["bI.bT"] + s * (parts["bI.uT"] + parts["uI.bT"]) + s * s * parts["uI.uT"]
    norm_i = parts["bI.bI"] + 2 * s * parts["bI.uI"] + s * s * parts["uI.uI"]
    norm_t = parts["bT.bT"] + 2 * s * parts["bT.uT"] + s * s * parts["uT.uT"]
    return float(np.mean(dot / np.sqrt(norm_i * norm_t)))


def generate(params: SyntheticParams) -> dict:
    """Draw the dataset. Returns the arrays and attrs `write_store` takes, ground truth included.

    image, text: [n_pairs, d] unit rows; pairs[i] = (i, i).
    """
    params.check()
    rng = np.random.default_rng(params.seed)
    p = params
    bimodal_image = _unit_rows(rng, p.n_bimodal, p.d)
    iso_energy = np.isclose(p.tau1, 1.0)
    bimodal_text = bimodal_image if iso_energy else _with_cosine(rng, bimodal_image, p.tau1)
    unimodal = {
        "image": _unit_rows(rng, p.n_unimodal, p.d),
        "text": _unit_rows(rng, p.n_unimodal, p.d),
    }

    n_uni = p.L - p.n_active_bimodal
    shared_idx = _draw_support(
        rng, p.n_pairs, p.n_bimodal, p.n_active_bimodal, p.frequency_exponent
    )
    shared_w = rng.uniform(*WEIGHT_RANGE, size=shared_idx.shape)
    uni_idx = {
        m: _draw_support(rng, p.n_pairs, p.n_unimodal, n_uni, p.frequency_exponent)
        for m in ("image", "text")
    }
    uni_w = {m: rng.uniform(*WEIGHT_RANGE, size=uni_idx[m].shape) for m in ("image", "text")}

    b = {
        "image": _render(bimodal_image, shared_idx, shared_w),
        "text": _render(bimodal_text, shared_idx, shared_w),
    }
    u = {m: _render(unimodal[m], uni_idx[m], uni_w[m]) for m in ("image", "text")}

    def inner(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.sum(a * c, axis=1)

    parts = {
        "bI.bT": inner(b["image"], b["text"]),
        "bI.uT": inner(b["image"], u["text"]),
        "uI.bT": inner(u["image"], b["text"]),
        "uI.uT": inner(u["image"], u["text"]),
        "bI.bI": inner(b["image"], b["image"]),
        "bI.uI": inner(b["image"], u["image"]),
        "uI.uI": inner(u["image"], u["image"]),
        "bT.bT": inner(b["text"], b["text"]),
        "bT.uT": inner(b["text"], u["text"]),
        "uT.uT": inner(u["text"], u["text"]),
    }
    unimodal_scale = _solve_unimodal_scale(parts, p)

    # True dictionary rows: bimodal image instantiations, bimodal text instantiations (only when
    # they differ, τ1 < 1), image-only atoms, text-only atoms.
    n_b = p.n_bimodal
    blocks = (
        [bimodal_image]
        + ([] if iso_energy else [bimodal_text])
        + [unimodal["image"], unimodal["text"]]
    )
    dictionary = np.concatenate(blocks).astype(np.float32)
    text_bimodal_offset = 0 if iso_energy else n_b
    image_offset = n_b + (0 if iso_energy else n_b)
    text_offset = image_offset + p.n_unimodal
    atom_kind = np.array(
        ["bimodal"] * (image_offset) + ["image"] * p.n_unimodal + ["text"] * p.n_unimodal
    )
    atom_concept = np.concatenate(
        [
            np.arange(n_b),
            *([] if iso_energy else [np.arange(n_b)]),
            n_b + np.arange(p.n_unimodal),
            n_b + p.n_unimodal + np.arange(p.n_unimodal),
        ]
    )

    embeddings, codes = {}, {}
    for modality, bimodal_offset, uni_offset in (
        ("image", 0, image_offset),
        ("text", text_bimodal_offset, text_offset),
    ):
        raw = b[modality] + unimodal_scale * u[modality]
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        embeddings[modality] = (raw / norms).astype(np.float32)
        indices = np.concatenate(
            [shared_idx + bimodal_offset, uni_idx[modality] + uni_offset], axis=1
        )
        values = np.concatenate([shared_w, unimodal_scale * uni_w[modality]], axis=1) / norms
        codes[modality] = SparseCodes(indices.astype(np.int32), values.astype(np.float32))

    split = assign_pair_splits(p.n_pairs, p.eval_fraction, p.seed)
    mean_cosine = float(np.mean(np.sum(embeddings["image"] * embeddings["text"], axis=1)))
    return {
        "image": embeddings["image"],
        "text": embeddings["text"],
        "pairs": np.stack([np.arange(p.n_pairs)] * 2, axis=1),
        "image_split": split,
        "text_split": split,
        "truth": TrueStructure(dictionary, atom_kind, atom_concept, codes),
        "attrs": {
            "source": "synthetic",
            "normalised": True,
            "dtype": "float32",
            "generator": asdict(p),
            "unimodal_scale": unimodal_scale,
            "mean_paired_cosine": mean_cosine,
        },
    }


def _solve_unimodal_scale(parts: dict[str, np.ndarray], p: SyntheticParams) -> float:
    """The unimodal weight scale s with mean paired cosine = τ2 (cosine falls as s grows)."""
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
