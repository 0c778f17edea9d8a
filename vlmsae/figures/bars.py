"""Per-variant metric bars of the iso-energy and group-sparse papers, mean ± std over seeds.

Both figures read summary.csv (and stores.csv for the dense baselines) through the same
aggregation as the paper tables (vlmsae.tables.papers), so a bar is a cell of those tables.
"""

from __future__ import annotations

import pandas as pd

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import grouped_bars
from vlmsae.figures.style import LEGEND_SIZE, PANEL_TITLE_SIZE, TITLE_SIZE, grid, mixture_label
from vlmsae.registry_base import Settings
from vlmsae.tables.papers import seed_statistics, with_store_metrics

HUE = "store and mixture"
# (metric, panel title) of each figure, in panel order; a metric no run has gets no panel.
ISO_ENERGY_PANELS = (
    ("p_acc", "probing accuracy p_acc"),
    ("rho", "ρ (bridge odds, co-activation)"),
    ("fda", "FDA (bridge odds, transport)"),
    ("delta_r", "δ_r (R@1 lost without unimodal atoms)"),
)
GROUP_SPARSE_PANELS = (
    ("dead_atoms_image", "dead atoms on images"),
    ("dead_atoms_text", "dead atoms on texts"),
    ("mms_image_text", "MMS image–text"),
    ("zero_shot_top1_codes", "zero-shot top-1 from codes"),
)
# A dense baseline drawn as a dotted line over the bars of a panel, one per store.
BASELINES = {
    "zero_shot_top1_codes": "zero_shot_top1_dense",
    "mms_image_text": "mms_baseline_image_text",
}


def panel_statistics(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """seed_statistics of `metrics` with the bars' hue: 'dataset/model · image:text a:b'."""
    stats = seed_statistics(summary, metrics)
    stats[HUE] = (
        stats["dataset"] + "/" + stats["model"] + " · " + stats["mixture"].map(mixture_label)
    )
    return stats


def metric_bars(summary: pd.DataFrame, panels, title: str):
    """One panel of grouped bars per metric of `panels` that some run has."""
    present = [(m, t) for m, t in panels if m in summary.columns and summary[m].notna().any()]
    stats = panel_statistics(summary, [metric for metric, _ in present])
    columns = min(len(present), 2)
    figure, axes = grid(-(-len(present) // columns), columns, panel_width=4.4, panel_height=3.0)
    for axis in axes.flat[len(present) :]:
        axis.set_axis_off()
    for axis, (metric, panel_title) in zip(axes.flat, present, strict=False):
        grouped_bars(axis, stats, metric, HUE)
        baseline = BASELINES.get(metric)
        if baseline in summary.columns:
            for value in summary[baseline].dropna().unique():
                axis.axhline(value, color="black", linestyle=":", linewidth=1)
        axis.set_title(panel_title, fontsize=PANEL_TITLE_SIZE)
    axes.flat[0].legend(fontsize=LEGEND_SIZE)
    figure.suptitle(title, fontsize=TITLE_SIZE)
    return figure


@FIGURES.register("iso_energy_metrics", scope="all", tables=("summary",), paper="iso-energy")
def draw_iso_energy(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """p_acc, ρ, FDA and δ_r per variant (iso-energy Table 1 as bars); one bar per store and
    mixture, the mean over seeds with ± one standard deviation."""
    return metric_bars(tables["summary"], ISO_ENERGY_PANELS, f"Iso-energy metrics: {subject}")


@FIGURES.register(
    "group_sparse_metrics",
    scope="all",
    tables=("summary", "stores"),
    paper="group-sparse",
)
def draw_group_sparse(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """Dead atoms per modality, MMS image–text and zero-shot accuracy from codes per variant
    (group-sparse Table 1 as bars), dense baselines as dotted lines (MMS of the reference
    itself, zero-shot from the dense embeddings)."""
    summary = with_store_metrics(tables["summary"], tables["stores"])
    return metric_bars(summary, GROUP_SPARSE_PANELS, f"Group-sparse metrics: {subject}")
