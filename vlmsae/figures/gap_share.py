"""Each atom's share of the modality gap against its modality score (iso-energy Fig. 3)."""

from __future__ import annotations

import pandas as pd

from vlmsae.figures import FIGURES
from vlmsae.figures.energy import KINDS
from vlmsae.figures.panels import first_seed, variant_mixture_grid
from vlmsae.figures.style import KIND_COLOURS, LEGEND_SIZE, TITLE_SIZE
from vlmsae.registry_base import Settings


@FIGURES.register(
    "gap_share",
    scope="store",
    tables=("atoms",),
    paper="iso-energy",
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One panel per (variant, mixture), the lowest seed's run: every live atom's `gap_share`
    (its part of the difference of the modality means, vlmsae.metrics.gap.gap_shares) against
    its second-moment modality score, coloured by kind. Iso-energy's finding: the unimodal atoms
    (scores near 0 and 1) carry the gap, the bimodal ones almost none."""
    atoms = first_seed(tables["atoms"]).dropna(subset=["gap_share", "modality_score_sq"])
    figure, panels = variant_mixture_grid(atoms)
    for axis, _, _, run in panels:
        for kind in KINDS:
            chosen = run[run["atom_kind_sq"] == kind]
            if len(chosen):
                axis.scatter(
                    chosen["modality_score_sq"],
                    chosen["gap_share"],
                    color=KIND_COLOURS[kind],
                    s=8,
                    label=kind,
                )
        axis.axhline(0.0, color="black", linewidth=0.5)
        axis.set_xlabel("modality_score_sq (0 text, 1 image)")
        axis.set_ylabel("gap_share")
    panels[0][0].legend(fontsize=LEGEND_SIZE, markerscale=2)
    figure.suptitle(f"Share of the modality gap per atom: {subject}", fontsize=TITLE_SIZE)
    return figure
