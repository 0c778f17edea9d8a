"""A 2-D map of the dictionary atoms coloured by modality score (linear-structure Figs. 3, 10).

The coordinates are the store's atom_maps.parquet (run keys, atom, x, y, method: a UMAP of each
run's decoder rows, or their first two principal components for a dictionary too small for
UMAP; vlmsae.explorer.atom_map, rule `atom_map`); these figures only draw them. `atom_map` draws
every atom alike (Fig. 3 top row), `atom_map_energy` sizes each by its energy (Fig. 3 bottom
row), where the most used atoms stand out whatever the mixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES, RUN_KEYS
from vlmsae.figures.panels import first_seed, variant_mixture_grid
from vlmsae.figures.style import LEGEND_SIZE, NO_VALUE_COLOUR, TITLE_SIZE, modality_cmap
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

AXIS_NAMES = {"umap": "UMAP", "pca": "PC"}
# Area (pt²) of the atom with the largest share of its run's energy in an energy-sized map.
ENERGY_AREA = 150.0


def energy_areas(placed: pd.DataFrame) -> pd.Series:
    """Marker area of each atom of `placed` (one run per variant and mixture): its share of its
    run's first-moment energy, scaled so that the largest share in the figure gets ENERGY_AREA.

    Shares, not energies, so that panels compare: a run whose codes are larger overall does not
    draw larger atoms. Dead atoms have no energy and get area 0.
    """
    total = placed.groupby(["variant", "mixture"])["energy"].transform("sum")
    share = (placed["energy"] / total).where(total > 0, 0.0)
    largest = share.max()
    return ENERGY_AREA * share / largest if largest > 0 else share * 0.0


def atom_map(tables: dict[str, pd.DataFrame], subject: str, by_energy: bool):
    """One panel per mixture (and per variant), the lowest seed's run: the atoms at their map
    position coloured by modality score. by_energy: each live atom's area is `energy_areas`
    (dead atoms, which have none, are left out); else every atom has one size and dead atoms are
    grey, counted in the legend."""
    keys = [*RUN_KEYS, "atom"]
    atoms = tables["atoms"][[*keys, "modality_score", "energy"]]
    placed = first_seed(tables["atom_map"].merge(atoms, on=keys, how="left"))
    if by_energy:
        placed = placed.assign(area=energy_areas(placed))
    figure, panels = variant_mixture_grid(placed, panel_width=3.4, panel_height=3.2)
    for axis, _, _, run in panels:
        dead = run["modality_score"].isna()
        if not by_energy:
            axis.scatter(
                run.loc[dead, "x"],
                run.loc[dead, "y"],
                color=NO_VALUE_COLOUR,
                s=4,
                label=f"dead ({int(dead.sum())})",
            )
            axis.legend(loc="lower right", fontsize=LEGEND_SIZE, markerscale=2, handletextpad=0.2)
        live = run[~dead]
        points = axis.scatter(
            live["x"],
            live["y"],
            c=live["modality_score"],
            cmap=modality_cmap(),
            vmin=0.0,
            vmax=1.0,
            s=live["area"] if by_energy else 6,
            alpha=0.6 if by_energy else 1.0,
        )
        axis.set_xticks([])
        axis.set_yticks([])
        method = AXIS_NAMES.get(run["method"].iloc[0], "axis")
        axis.set_xlabel(f"{method} 1")
        axis.set_ylabel(f"{method} 2")
    figure.colorbar(
        points,
        ax=[axis for axis, *_ in panels],
        label="modality_score (0 text, 1 image)",
    )
    sized = ", area: share of the run's energy" if by_energy else ""
    figure.suptitle(f"Atoms of the dictionary{sized}: {subject}", fontsize=TITLE_SIZE)
    return figure


@FIGURES.register(
    "atom_map",
    scope="store",
    tables=("atoms", "atom_map"),
    paper="linear-structure",
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """Every atom at its map position, coloured by its modality score (grey: dead atoms, which
    have none, counted in the legend): linear-structure Fig. 3 top row."""
    return atom_map(tables, subject, by_energy=False)


@FIGURES.register(
    "atom_map_energy",
    scope="store",
    tables=("atoms", "atom_map"),
    paper="linear-structure",
)
def draw_energy(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """The live atoms at their map positions, coloured by modality score, each sized by its
    share of the run's energy: linear-structure Fig. 3 bottom row."""
    return atom_map(tables, subject, by_energy=True)
