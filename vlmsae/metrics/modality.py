"""Per-atom modality: which modalities an atom fires on, its modality score and its kind."""

from __future__ import annotations

import numpy as np

DEAD = "dead"


def activity(on_image: np.ndarray, on_text: np.ndarray) -> np.ndarray:
    """[p] labels from [p] bool activity: 'both', 'image_only', 'text_only' or 'dead'."""
    labels = np.full(on_image.shape, DEAD, dtype=object)
    labels[on_image & on_text] = "both"
    labels[on_image & ~on_text] = "image_only"
    labels[~on_image & on_text] = "text_only"
    return labels


def modality_score(energy_image: np.ndarray, energy_text: np.ndarray) -> np.ndarray:
    """[p] μ_k = E_I,k / (E_I,k + E_T,k) in [0, 1]; NaN marks dead atoms (no energy at all)."""
    total = energy_image + energy_text
    score = np.full(total.shape, np.nan)
    live = total > 0
    score[live] = energy_image[live] / total[live]
    return score


def atom_kind(score: np.ndarray, epsilon: float) -> np.ndarray:
    """[p] 'text' if μ < ε, 'image' if μ > 1 − ε, 'bimodal' otherwise; 'dead' where μ is NaN."""
    kinds = np.full(score.shape, "bimodal", dtype=object)
    kinds[score < epsilon] = "text"
    kinds[score > 1 - epsilon] = "image"
    kinds[np.isnan(score)] = DEAD
    return kinds
