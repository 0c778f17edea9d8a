"""Per-variant metric bars of the iso-energy and group-sparse papers, mean ± std over seeds.

The figures read summary.csv (and stores.csv for the dense baselines) through the same
aggregation as the paper tables (vlmsae.tables.papers), so a bar is a cell of those tables:
iso-energy Table 1, group-sparse Table 1 and group-sparse Fig. 3 (atoms by the modalities they
fire on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import grouped_bars
from vlmsae.figures.style import (
    KIND_COLOURS,
    LEGEND_SIZE,
    PANEL_TITLE_SIZE,
    TITLE_SIZE,
    grid,
    mixture_label,
)
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

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
# Group-sparse Fig. 3: the atoms ("neurons") by the modalities they fire on (summary.csv's
# `active_on` counts), in the paper's order and in the colours of the atom kinds.
NEURON_COUNTS = {
    "image only": "atoms_active_image_only",
    "text only": "atoms_active_text_only",
    "both": "atoms_active_both",
    "neither": "dead_atoms",
}
NEURON_COLOURS = dict(zip(NEURON_COUNTS, ("image", "text", "bimodal", "dead"), strict=True))
# A dense baseline drawn as a dotted line over the bars of a panel, one per store.
BASELINES = {
    "zero_shot_top1_codes": "zero_shot_top1_dense",
    "mms_image_text": "mms_baseline_image_text",
}


def panel_statistics(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """seed_statistics of `metrics` with the bars' hue: 'dataset/model · image:text a:b'."""
    from vlmsae.tables.papers import seed_statistics

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
    from vlmsae.tables.papers import with_store_metrics

    summary = with_store_metrics(tables["summary"], tables["stores"])
    return metric_bars(summary, GROUP_SPARSE_PANELS, f"Group-sparse metrics: {subject}")


def neuron_counts(summary: pd.DataFrame) -> pd.DataFrame:
    """Long table of group-sparse Fig. 3: per (dataset, model, variant, mixture) and NEURON_COUNTS
    category (`active on`), `atoms` (the mean count over seeds) and `atoms_std`. `variant` reads
    'variant (a:b)' where the store's runs have several mixtures."""
    import pandas as pd

    from vlmsae.tables.papers import seed_statistics

    stats = seed_statistics(summary, list(NEURON_COUNTS.values()))
    mixtures = stats.groupby(["dataset", "model"])["mixture"].transform("nunique")
    stats["variant"] = stats["variant"].where(
        mixtures == 1, stats["variant"] + " (" + stats["mixture"].str.replace("-", ":") + ")"
    )
    keys = ["dataset", "model", "variant", "mixture"]
    return pd.concat(
        [
            stats[keys].assign(
                **{"active on": category},
                atoms=stats[column],
                atoms_std=stats[f"{column}_std"],
            )
            for category, column in NEURON_COUNTS.items()
        ],
        ignore_index=True,
    )


@FIGURES.register("group_sparse_neurons", scope="all", tables=("summary",), paper="group-sparse")
def draw_neurons(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One panel per store: per variant, its atoms active on images only, on texts only, on both
    and on neither modality over the eval split (group-sparse Fig. 3), mean over seeds ± std."""
    counts = neuron_counts(tables["summary"])
    stores = sorted(set(zip(counts["dataset"], counts["model"], strict=True)))
    columns = min(len(stores), 2)
    figure, axes = grid(-(-len(stores) // columns), columns, panel_width=4.6, panel_height=3.2)
    for axis in axes.flat[len(stores) :]:
        axis.set_axis_off()
    colours = {category: KIND_COLOURS[kind] for category, kind in NEURON_COLOURS.items()}
    for axis, (dataset, model) in zip(axes.flat, stores, strict=False):
        rows = counts[(counts["dataset"] == dataset) & (counts["model"] == model)]
        grouped_bars(axis, rows, "atoms", "active on", colours)
        axis.set_ylabel("atoms (neurons)")
        axis.set_title(f"{dataset}/{model}", fontsize=PANEL_TITLE_SIZE)
    axes.flat[0].legend(fontsize=LEGEND_SIZE)
    figure.suptitle(f"Atoms by the modalities they fire on: {subject}", fontsize=TITLE_SIZE)
    return figure
