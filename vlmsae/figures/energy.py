"""Energy across atoms coloured by atom kind (iso-energy Fig. 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import first_seed, variant_mixture_grid
from vlmsae.figures.style import KIND_COLOURS, LEGEND_SIZE, TITLE_SIZE
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

KINDS = ("bimodal", "image", "text")


@FIGURES.register(
    "energy_by_kind",
    scope="store",
    tables=("atoms",),
    paper="iso-energy",
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One panel per (variant, mixture), the lowest seed's run: the live atoms' second-moment
    energy (mean z², iso-energy's) in decreasing order, each point coloured by the atom's
    second-moment kind. Where the bimodal atoms sit in this ranking is what iso-energy reads."""
    import pandas as pd

    atoms = first_seed(tables["atoms"])
    live = atoms[atoms["atom_kind_sq"] != "dead"]
    figure, panels = variant_mixture_grid(live)
    for axis, _, _, run in panels:
        ranked = run.sort_values("energy_sq", ascending=False, kind="stable")
        rank = pd.Series(range(len(ranked)), index=ranked.index)
        for kind in KINDS:
            chosen = ranked["atom_kind_sq"] == kind
            if chosen.any():
                axis.scatter(
                    rank[chosen],
                    ranked.loc[chosen, "energy_sq"],
                    color=KIND_COLOURS[kind],
                    s=6,
                    label=kind,
                )
        axis.set_yscale("log")
        axis.set_xlabel("atom rank (most energetic first)")
        axis.set_ylabel("energy_sq (mean z²)")
    panels[0][0].legend(fontsize=LEGEND_SIZE, markerscale=2)
    figure.suptitle(f"Energy by atom kind: {subject}", fontsize=TITLE_SIZE)
    return figure
