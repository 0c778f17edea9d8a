"""A 2-D map of the dictionary atoms coloured by modality score (linear-structure Figs. 3, 10).

The coordinates are the store's atom_maps.parquet (run keys, atom, x, y, method: a UMAP of each
run's decoder rows, or their first two principal components for a dictionary too small for
UMAP; vlmsae.explorer.atom_map, rule `atom_map`); this figure only draws them.
"""

from __future__ import annotations

import pandas as pd

from vlmsae.figures import FIGURES, RUN_KEYS
from vlmsae.figures.panels import first_seed, variant_mixture_grid
from vlmsae.figures.style import LEGEND_SIZE, MODALITY_CMAP, NO_VALUE_COLOUR, TITLE_SIZE
from vlmsae.registry_base import Settings

AXIS_NAMES = {"umap": "UMAP", "pca": "PC"}


@FIGURES.register(
    "atom_map",
    scope="store",
    tables=("atoms", "atom_map"),
    paper="linear-structure",
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One panel per mixture (and per variant), the lowest seed's run: every atom at its map
    position, coloured by its modality score (grey: dead atoms, which have none, counted in the
    legend)."""
    keys = [*RUN_KEYS, "atom"]
    atoms = tables["atoms"][[*keys, "modality_score"]]
    placed = first_seed(tables["atom_map"].merge(atoms, on=keys, how="left"))
    figure, panels = variant_mixture_grid(placed, panel_width=3.4, panel_height=3.2)
    for axis, _, _, run in panels:
        dead = run["modality_score"].isna()
        axis.scatter(
            run.loc[dead, "x"],
            run.loc[dead, "y"],
            color=NO_VALUE_COLOUR,
            s=4,
            label=f"dead ({int(dead.sum())})",
        )
        points = axis.scatter(
            run.loc[~dead, "x"],
            run.loc[~dead, "y"],
            c=run.loc[~dead, "modality_score"],
            cmap=MODALITY_CMAP,
            vmin=0.0,
            vmax=1.0,
            s=6,
        )
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(loc="lower right", fontsize=LEGEND_SIZE, markerscale=2, handletextpad=0.2)
        method = AXIS_NAMES.get(run["method"].iloc[0], "axis")
        axis.set_xlabel(f"{method} 1")
        axis.set_ylabel(f"{method} 2")
    figure.colorbar(
        points,
        ax=[axis for axis, *_ in panels],
        label="modality_score (0 text, 1 image)",
    )
    figure.suptitle(f"Atoms of the dictionary: {subject}", fontsize=TITLE_SIZE)
    return figure
