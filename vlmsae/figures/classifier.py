"""Each atom as a modality classifier, plain and energy-weighted (linear-structure Fig. 6)."""

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
class ClassifierHistogramSettings(Settings):
    bins: int = setting(20, "equal bins of the accuracy over [0.5, 1]", minimum=2)


@FIGURES.register(
    "classifier_accuracy",
    ClassifierHistogramSettings,
    scope="store",
    tables=("atoms",),
    paper="linear-structure",
)
def draw(tables: dict[str, pd.DataFrame], settings: ClassifierHistogramSettings, subject: str):
    """One panel per (variant, mixture), seeds pooled: the share of live atoms per bin of
    `classifier_accuracy` (bars) and the share of the energy per bin (black steps).

    An accuracy near 1 means the atom's direction alone tells images from texts: most atoms of
    a split dictionary, and most of the energy, sit there.
    """
    import numpy as np

    live = tables["atoms"].dropna(subset=["classifier_accuracy"])
    return share_histogram_grid(
        live[live["atom_kind"] != "dead"],
        "classifier_accuracy",
        np.linspace(0.5, 1.0, settings.bins + 1),
        "classifier_accuracy",
        f"Atoms as modality classifiers: {subject}",
    )
