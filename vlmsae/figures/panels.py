"""Panel helpers shared by the figures: which runs get a panel, histograms, grouped bars.

Registers no figure. Every helper draws on a matplotlib Axes with artists a test can read back:
histograms are a BarContainer (share of items per bin) and a StepPatch (weighted share), grouped
bars one BarContainer per hue with its error bars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures.style import (
    LEGEND_SIZE,
    PANEL_TITLE_SIZE,
    TITLE_SIZE,
    grid,
    mixture_label,
)

# Heavy imports stay inside functions: the Snakefile reads the figure registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def mixture_order(mixtures) -> list[str]:
    """Mixtures sorted by their ratio ('1-1' before '5-1' before '10-1'), not as strings."""
    return sorted(set(mixtures), key=lambda m: tuple(int(part) for part in m.split("-")))


def first_seed(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each (variant, mixture)'s lowest seed: one run per panel where runs can't pool
    (a UMAP, a bridge's pairs, a sorted energy curve are each one run's)."""
    lowest = table.groupby(["variant", "mixture"])["seed"].transform("min")
    return table[table["seed"] == lowest]


def variant_mixture_grid(table: pd.DataFrame, **kwargs):
    """(figure, panels): one row per variant, one column per mixture of `table`.

    panels: (axis, variant, mixture, rows of table) for every pair that has rows; a pair without
    rows (a paired variant trains at 1-1 only) leaves its axis switched off.
    """
    figure, _, panels = _variant_mixture_axes(table, 0, **kwargs)
    return figure, panels


def with_store_panel(table: pd.DataFrame, **kwargs):
    """(figure, store axis, panels): `variant_mixture_grid` behind one more column, whose first
    row is a panel of the whole store (what the runs share, e.g. its embeddings) and whose other
    rows are switched off."""
    figure, lead, panels = _variant_mixture_axes(table, 1, **kwargs)
    return figure, lead[0], panels


def _variant_mixture_axes(table: pd.DataFrame, lead: int, **kwargs):
    """(figure, the first row's `lead` leading axes, panels of `variant_mixture_grid`)."""
    variants = sorted(table["variant"].unique())
    mixtures = mixture_order(table["mixture"])
    figure, axes = grid(len(variants), lead + len(mixtures), **kwargs)
    for axis in axes[1:, :lead].flat:
        axis.set_axis_off()
    groups = dict(list(table.groupby(["variant", "mixture"])))
    panels = []
    for row, variant in enumerate(variants):
        for column, mixture in enumerate(mixtures):
            axis = axes[row][lead + column]
            rows = groups.get((variant, mixture))
            if rows is None:
                axis.set_axis_off()
                continue
            axis.set_title(f"{variant}, {mixture_label(mixture)}", fontsize=PANEL_TITLE_SIZE)
            panels.append((axis, variant, mixture, rows))
    return figure, list(axes[0, :lead]), panels


def share_histogram(axis, values: pd.Series, weights: pd.Series, edges: np.ndarray) -> None:
    """Bars: share of the items per bin; black steps: share of `weights` per bin.

    Both sum to 1 over the bins, so the two distributions compare on one axis (linear-structure
    Figs. 4 and 6 show the plain and the energy-weighted view of one quantity).
    """
    import numpy as np

    counts, _ = np.histogram(values, edges)
    weighted, _ = np.histogram(values, edges, weights=weights)
    total = weighted.sum()
    axis.bar(
        edges[:-1],
        counts / max(counts.sum(), 1),
        width=np.diff(edges),
        align="edge",
        alpha=0.5,
        label="atoms",
    )
    axis.stairs(
        weighted / total if total > 0 else weighted,
        edges,
        color="black",
        linewidth=1.5,
        label="energy-weighted",
    )


def share_histogram_grid(
    atoms: pd.DataFrame, column: str, edges: np.ndarray, xlabel: str, title: str
):
    """One `share_histogram` panel of `column` per (variant, mixture) of `atoms` (seeds pooled,
    weighted by `energy`), legend on the first panel: linear-structure Figs. 4 and 6."""
    figure, panels = variant_mixture_grid(atoms, sharex=True)
    for axis, _, _, rows in panels:
        share_histogram(axis, rows[column], rows["energy"], edges)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("share")
    panels[0][0].legend(fontsize=LEGEND_SIZE)
    figure.suptitle(title, fontsize=TITLE_SIZE)
    return figure


def grouped_bars(
    axis,
    stats: pd.DataFrame,
    metric: str,
    hue: str,
    colours: dict[str, str] | None = None,
) -> None:
    """One group of bars per variant, one bar per value of column `hue`, with ± std error bars.

    stats holds `variant`, `hue`, `metric` (the mean over seeds) and `{metric}_std`; rows without
    a mean draw no bar, so the bars on the axis are exactly the table's defined values.
    colours: {hue value: colour}, which also sets the order of the bars in a group; default:
    the hue values sorted, in the cycle's colours.
    """
    # Colours follow every hue of the table, so a hue keeps its colour in every panel.
    hues = list(colours) if colours else sorted(stats[hue].unique())
    colours = colours or {value: f"C{offset}" for offset, value in enumerate(hues)}
    stats = stats.dropna(subset=[metric])
    variants = sorted(stats["variant"].unique())
    width = 0.8 / max(len(hues), 1)
    position = {variant: index for index, variant in enumerate(variants)}
    for offset, value in enumerate(hues):
        rows = stats[stats[hue] == value]
        if rows.empty:
            continue
        axis.bar(
            rows["variant"].map(position) + (offset - (len(hues) - 1) / 2) * width,
            rows[metric],
            width=width,
            yerr=rows[f"{metric}_std"].fillna(0),
            capsize=2,
            label=value,
            color=colours[value],
        )
    axis.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    axis.set_ylabel(metric)
