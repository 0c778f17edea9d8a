"""Fit the clip-like synthetic generator to a real store's cosine statistics (issue 12).

Five statistics describe the geometry a store's pairs have (`store_statistics`): the mean cosine
between two images, between two texts, between an image and a text that are not a pair, between
the two sides of a pair, and the modality gap ‖μ_I − μ_T‖. The clip-like generator makes every
pair's cosine exactly tau2, so tau2 is read off; `calibrate` searches the other free parameters
(L, tau1, bias_offset, image_share, text_share) for the four others, and `synthetic_block` prints
the result as the config section `datasets.X.synthetic`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import yaml
from scipy.optimize import minimize

from vlmsae.datasets.synthetic import SyntheticParams, build

STATISTICS = (
    "within_image_cosine",
    "within_text_cosine",
    "non_pair_cosine",
    "pair_cosine",
    "gap",
)
# Pairs the statistics are measured on: they are means over N² row pairs, so a seeded subsample
# of this size measures them to about 1e-3 and keeps a large store's rows out of memory.
MAX_PAIRS = 20000
# Pairs of each candidate generator during the search: the dictionary is drawn before the pairs,
# so a smaller draw of the same parameters has the same atoms and, within ~0.005, the same
# statistics; the reported ones are measured on the full n_pairs.
SEARCH_PAIRS = 1500
# The counts the search leaves alone unless `base` says otherwise: the authors' toy settings
# (100 atoms: 10 bias atoms per modality, 40 bimodal concepts with two instantiations each).
AUTHORS_COUNTS = {"n_bimodal": 40, "n_unimodal": 10}
# tau1 is kept this far above tau2: a pair's cosine tends to about tau1 as β grows, so tau2 close
# to tau1 is out of reach for some pairs.
TAU_MARGIN = 0.05
MAX_SHARE = 0.45
OFFSET_RANGE = (0.5, 100.0)
# Evaluations of the Nelder–Mead search per pass: the search stays within seconds on 2 cores.
SEARCH_EVALUATIONS = 50


def store_statistics(
    image: np.ndarray, text: np.ndarray, seed: int = 0, max_pairs: int = MAX_PAIRS
) -> dict[str, float]:
    """The five cosine statistics of paired rows image [N, d] and text [N, d] (row i: pair i).

    Means over distinct rows (i ≠ j) of cos(image_i, image_j), cos(text_i, text_j) and
    cos(image_i, text_j); the mean of cos(image_i, text_i); ‖mean(image) − mean(text)‖ of the
    unit rows. Stores of more than `max_pairs` pairs are measured on a seeded subsample of pairs.
    Each mean comes from the row sums, so the cost is O(N d).
    """
    if len(image) != len(text):
        raise ValueError(f"image and text must be paired row by row: {len(image)} vs {len(text)}")
    if len(image) < 2:
        raise ValueError("the statistics need at least 2 pairs")
    if len(image) > max_pairs:
        rows = np.sort(np.random.default_rng(seed).choice(len(image), max_pairs, replace=False))
        image, text = image[rows], text[rows]
    unit = {}
    for name, rows in (("image", image), ("text", text)):
        rows = np.asarray(rows, dtype=np.float64)
        unit[name] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    n = len(unit["image"])
    total = {m: unit[m].sum(axis=0) for m in unit}
    pair_sum = float(np.sum(unit["image"] * unit["text"]))
    distinct = n * (n - 1)
    return {
        # Σ_{i≠j} ⟨x_i, x_j⟩ = ‖Σ x_i‖² − Σ ‖x_i‖², with unit rows ‖x_i‖² = 1.
        "within_image_cosine": float((total["image"] @ total["image"] - n) / distinct),
        "within_text_cosine": float((total["text"] @ total["text"] - n) / distinct),
        "non_pair_cosine": float((total["image"] @ total["text"] - pair_sum) / distinct),
        "pair_cosine": pair_sum / n,
        "gap": float(np.linalg.norm((total["image"] - total["text"]) / n)),
    }


def _generated_statistics(params: SyntheticParams) -> dict[str, float]:
    data = build(params)
    return store_statistics(data["image"], data["text"], params.seed)


class _Search:
    """The search's loss on the four statistics tau2 does not fix, one generator per call."""

    def __init__(self, target: dict[str, float], probe: SyntheticParams):
        self.goal = np.array([target[name] for name in STATISTICS if name != "pair_cosine"])
        self.probe = probe
        self.lowest_tau1 = min(1.0, probe.tau2 + TAU_MARGIN)

    def params(self, x: np.ndarray, L: int) -> SyntheticParams:
        """The probe with L and x = (tau1, log bias_offset, image_share, text_share), rounded to
        what the printed block will hold."""
        tau1, log_offset, image_share, text_share = x
        return replace(
            self.probe,
            L=int(L),
            tau1=round(float(np.clip(tau1, self.lowest_tau1, 1.0)), 3),
            bias_offset=round(float(np.exp(log_offset)), 2),
            image_share=round(float(image_share), 3),
            text_share=round(float(text_share), 3),
        )

    def loss(self, x: np.ndarray, L: int) -> float:
        """Squared error summed over the four statistics; inf where the generator refuses."""
        try:
            achieved = _generated_statistics(self.params(x, L))
        except ValueError:  # tau2 out of reach, or a share below one dimension
            return np.inf
        values = np.array([achieved[name] for name in STATISTICS if name != "pair_cosine"])
        return float(np.sum((values - self.goal) ** 2))

    def best_L(self, x: np.ndarray, candidates: np.ndarray) -> int:
        """The candidate L of least loss at x."""
        losses = [self.loss(x, L) for L in candidates]
        return int(candidates[int(np.argmin(losses))])

    def non_pair_L(self, x: np.ndarray, largest: int) -> int:
        """The L whose non-pair cosine at x is nearest the store's, by bisection: the cosine
        grows with L, as two pairs then share more concepts."""
        goal = self.goal[STATISTICS.index("non_pair_cosine")]
        low, high = 2, largest
        while high - low > 1:
            middle = (low + high) // 2
            try:
                achieved = _generated_statistics(self.params(x, middle))["non_pair_cosine"]
            except ValueError:
                achieved = -np.inf
            low, high = (middle, high) if achieved < goal else (low, middle)
        return self.best_L(x, np.array([low, high]))

    def refine(self, x: np.ndarray, L: int) -> np.ndarray:
        """x improved by Nelder–Mead at fixed L, within bounds (a share of at least one
        dimension)."""
        d = self.probe.d
        bounds = [
            (self.lowest_tau1, 1.0),
            tuple(np.log(OFFSET_RANGE)),
            (1.0 / d, MAX_SHARE),
            (1.0 / d, MAX_SHARE),
        ]
        result = minimize(
            self.loss,
            x,
            args=(L,),
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxfev": SEARCH_EVALUATIONS, "xatol": 1e-3, "fatol": 1e-6},
        )
        return result.x


def calibrate(
    image: np.ndarray,
    text: np.ndarray,
    seed: int = 0,
    base: SyntheticParams | None = None,
) -> tuple[SyntheticParams, dict[str, float]]:
    """The clip-like generator fitted to paired rows image [N, d] and text [N, d], and the five
    statistics it achieves (`store_statistics` of its own pairs).

    tau2 is the store's mean pair cosine and d its dimension; L, tau1, bias_offset, image_share
    and text_share are searched: L by bisection on the non-pair cosine (it grows with the
    concepts two pairs can share), the others by Nelder–Mead from the base's values, then L once
    more around its first choice and the others again. Counts and the remaining parameters come from
    `base` (default: the authors' 40 bimodal concepts and 10 bias atoms per modality, the other
    defaults of SyntheticParams); `seed` seeds the subsample of the store and the generator.
    """
    target = store_statistics(image, text, seed)
    if base is None:
        base = SyntheticParams(geometry="clip-like", **AUTHORS_COUNTS)
    fitted = replace(
        base,
        geometry="clip-like",
        d=int(np.shape(image)[1]),
        tau2=round(float(np.clip(target["pair_cosine"], 0.01, 0.99 - TAU_MARGIN)), 3),
        seed=seed,
    )
    search = _Search(target, replace(fitted, n_pairs=SEARCH_PAIRS))
    # From the base's values (the paper's by default), tau1 just under 1 so that the first
    # simplex has room on both sides.
    x = np.array(
        [
            max(search.lowest_tau1, min(base.tau1, 0.99)),
            np.log(base.bias_offset),
            base.image_share,
            base.text_share,
        ]
    )
    largest_L = fitted.n_bimodal + 1
    L = search.non_pair_L(x, largest_L)
    x = search.refine(x, L)
    L = search.best_L(x, np.arange(max(2, L - 2), min(largest_L, L + 2) + 1))
    x = search.refine(x, L)
    fitted = replace(search.params(x, L), n_pairs=fitted.n_pairs)
    return fitted, _generated_statistics(fitted)


def synthetic_block(params: SyntheticParams) -> str:
    """The YAML lines a user pastes under `datasets.X.synthetic` (every field, so the block keeps
    its meaning if a default changes)."""
    return yaml.safe_dump(params.as_dict(), sort_keys=False, default_flow_style=False)
