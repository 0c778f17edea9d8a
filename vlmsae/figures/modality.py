"""Modality-score distributions, plain and energy-weighted (linear-structure Fig. 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import share_histogram_grid
from vlmsae.registry_base import Settings, setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class ModalityHistogramSettings(Settings):
    bins: int = setting(25, "equal bins of the modality score over [0, 1]", minimum=2)


@FIGURES.register(
    "modality_scores",
    ModalityHistogramSettings,
    scope="store",
    tables=("atoms",),
    paper="linear-structure",
)
def draw(tables: dict[str, pd.DataFrame], settings: ModalityHistogramSettings, subject: str):
    """One panel per (variant, mixture), seeds pooled: the share of live atoms per score bin
    (bars) and the share of the energy (first moment) per bin (black steps).

    A split dictionary piles both at 0 and 1; energy-weighting shows whether the atoms that
    carry the embeddings are the unimodal or the bimodal ones.
    """
    import numpy as np

    return share_histogram_grid(
        tables["atoms"].dropna(subset=["modality_score"]),
        "modality_score",
        np.linspace(0.0, 1.0, settings.bins + 1),
        "modality_score (0 text, 1 image)",
        f"Modality scores: {subject}",
    )
