"""R² against L0 per SAE family: the sparsity–fidelity frontier (linear-structure Fig. 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import mixture_order
from vlmsae.figures.style import (
    LEGEND_SIZE,
    MARKERS,
    PANEL_TITLE_SIZE,
    TITLE_SIZE,
    grid,
    mixture_label,
)
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd


@FIGURES.register("r2_vs_l0", scope="all", tables=("summary",), paper="linear-structure")
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One panel per store: every run a point (colour: family, marker: mixture); a line joins a
    family's variants (mean over seeds, in order of L0) where the family has several."""
    summary = tables["summary"]
    if "family" not in summary.columns:
        summary = summary.assign(family=summary["variant"])
    stores = sorted(set(zip(summary["dataset"], summary["model"], strict=True)))
    columns = min(len(stores), 3)
    figure, axes = grid(-(-len(stores) // columns), columns, panel_width=4.5, panel_height=3.6)
    colours = {f: f"C{i}" for i, f in enumerate(sorted(summary["family"].unique()))}
    markers = {
        m: MARKERS[i % len(MARKERS)] for i, m in enumerate(mixture_order(summary["mixture"]))
    }
    for axis in axes.flat[len(stores) :]:
        axis.set_axis_off()
    for axis, (dataset, model) in zip(axes.flat, stores, strict=False):
        rows = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        for (family, mixture), group in rows.groupby(["family", "mixture"]):
            label = f"{family} · {mixture_label(mixture)}"
            axis.scatter(
                group["l0"],
                group["r2"],
                color=colours[family],
                marker=markers[mixture],
                alpha=0.8,
                label=label,
            )
            frontier = group.groupby("variant")[["l0", "r2"]].mean().sort_values("l0")
            if len(frontier) > 1:
                axis.plot(frontier["l0"], frontier["r2"], color=colours[family], linewidth=1)
        axis.set_xlabel("L0 (mean active atoms per embedding)")
        axis.set_ylabel("R² (pooled image + text)")
        axis.set_title(f"{dataset}/{model}", fontsize=PANEL_TITLE_SIZE)
        axis.legend(fontsize=LEGEND_SIZE, loc="best")
    figure.suptitle(f"Reconstruction against sparsity: {subject}", fontsize=TITLE_SIZE)
    return figure
