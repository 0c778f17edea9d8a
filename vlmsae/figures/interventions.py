"""The interventions' figures: gap closing (iso-energy Fig. 4 right), vector arithmetic
(iso-energy Fig. 6), probe decomposition (group-sparse Fig. 5), one run per variant (its first
mixture and lowest seed), and steering retrieval over every run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import first_seed, mixture_order
from vlmsae.figures.style import KIND_COLOURS, LEGEND_SIZE, PANEL_TITLE_SIZE, TITLE_SIZE, grid
from vlmsae.interventions import applies as intervention_applies
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

# (measure, population) of gap_histograms.csv → what the curve shows.
GAP_CURVES = {
    ("nn_distance", "image"): "images",
    ("nn_distance", "text"): "captions",
    ("cosine", "paired"): "pairs",
    ("cosine", "unpaired"): "non-pairs",
}
MEASURE_LABELS = {
    "nn_distance": "1 − cos to the 10th nearest image",
    "cosine": "image–caption cosine",
}
# Query kinds drawn in the arithmetic figure (the paper's four), and the targets.
ARITHMETIC_CURVES = {
    "target": "held-out targets",
    "Q": "Q = I_src + Δ",
    "Q_SAE": "Q_SAE = I_src + Ã_Δ",
    "Q_src": "Q_src",
    "Q_delta": "Q_Δ",
}


def _one_run_per_variant(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of each variant's run at its first mixture and lowest seed."""
    first_mixture = table.groupby("variant")["mixture"].transform(lambda m: mixture_order(m)[0])
    return first_seed(table[table["mixture"] == first_mixture])


def _stairs(axis, rows: pd.DataFrame, label: str, colour: str) -> None:
    """One histogram as a step curve of shares (rows: one per bin, in bin order)."""
    import numpy as np

    rows = rows.sort_values("bin_left")
    edges = np.append(rows["bin_left"].to_numpy(), rows["bin_right"].iloc[-1])
    counts = rows["count"].to_numpy(dtype=float)
    axis.stairs(counts / max(counts.sum(), 1.0), edges, label=label, color=colour, linewidth=1.3)


def _applies(name: str):
    return lambda config, runs: any(
        intervention_applies(config, name, dataset) for dataset in {r["dataset"] for r in runs}
    )


@FIGURES.register(
    "gap_closing",
    scope="store",
    tables=("gap_histograms",),
    paper="iso-energy",
    applies=_applies("gap_closing"),
)
def draw_gap_closing(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """Per variant, per edit (dense first): the images' and captions' distances to their 10th
    nearest image (top row; the gap is the distance between the two curves) and the cosines of
    pairs and non-pairs (bottom row; retrieval needs them apart)."""
    table = _one_run_per_variant(tables["gap_histograms"])
    edits = list(dict.fromkeys(table["edit"]))
    variants = sorted(table["variant"].unique())
    measures = list(MEASURE_LABELS)
    figure, axes = grid(len(variants) * len(measures), len(edits))
    for v, variant in enumerate(variants):
        for m, measure in enumerate(measures):
            row = v * len(measures) + m
            for column, edit in enumerate(edits):
                axis = axes[row][column]
                rows = table[
                    (table["variant"] == variant)
                    & (table["edit"] == edit)
                    & (table["measure"] == measure)
                ]
                for index, ((curve_measure, population), label) in enumerate(GAP_CURVES.items()):
                    if curve_measure == measure:
                        _stairs(axis, rows[rows["population"] == population], label, f"C{index}")
                axis.set_title(f"{variant}: {edit}", fontsize=PANEL_TITLE_SIZE)
                axis.set_xlabel(MEASURE_LABELS[measure], fontsize=PANEL_TITLE_SIZE)
                if column == 0:
                    axis.set_ylabel("share")
                    axis.legend(fontsize=LEGEND_SIZE)
    figure.suptitle(f"Closing the modality gap: {subject}", fontsize=TITLE_SIZE)
    return figure


@FIGURES.register(
    "vector_arithmetic",
    scope="store",
    tables=("arithmetic_histograms", "vector_arithmetic"),
    paper="iso-energy",
    applies=_applies("arithmetic"),
)
def draw_vector_arithmetic(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """Per variant: each query kind's distance to its 10th nearest reference target (left;
    the held-out targets' own distances are in distribution) and its OOD score and target R@1
    (right)."""
    import numpy as np

    histograms = _one_run_per_variant(tables["arithmetic_histograms"])
    summary = _one_run_per_variant(tables["vector_arithmetic"])
    variants = sorted(histograms["variant"].unique())
    figure, axes = grid(len(variants), 2)
    for row, variant in enumerate(variants):
        left, right = axes[row]
        rows = histograms[histograms["variant"] == variant]
        for index, (population, label) in enumerate(ARITHMETIC_CURVES.items()):
            colour = "black" if population == "target" else f"C{index}"
            _stairs(left, rows[rows["population"] == population], label, colour)
        left.set_xlabel("1 − cos to the 10th nearest target image", fontsize=PANEL_TITLE_SIZE)
        left.set_ylabel("share")
        left.set_title(variant, fontsize=PANEL_TITLE_SIZE)
        left.legend(fontsize=LEGEND_SIZE)
        scores = summary[summary["variant"] == variant].set_index("query")
        kinds = [kind for kind in ARITHMETIC_CURVES if kind in scores.index]
        positions = np.arange(len(kinds))
        right.bar(positions - 0.2, scores.loc[kinds, "ood_auroc"], width=0.4, label="OOD AUROC")
        right.bar(positions + 0.2, scores.loc[kinds, "recall_at_1"], width=0.4, label="target R@1")
        right.set_xticks(positions, kinds, rotation=30, ha="right")
        right.set_ylim(0, 1)
        right.legend(fontsize=LEGEND_SIZE)
        right.set_title(f"{variant}: lower OOD is in distribution", fontsize=PANEL_TITLE_SIZE)
    figure.suptitle(f"Vector arithmetic: {subject}", fontsize=TITLE_SIZE)
    return figure


@FIGURES.register(
    "probe_concepts",
    scope="store",
    tables=("probe_concepts",),
    paper="group-sparse",
    applies=_applies("probe"),
)
def draw_probe_concepts(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """Per variant: the atoms with the largest |α| = |D θ| of a logistic probe θ, named where
    the run has names, coloured by kind (group-sparse Fig. 5): which concepts the probe reads.
    A degenerate probe (one class predicted for every eval image) lists no atoms: its panel
    shows its status instead."""
    import numpy as np
    from matplotlib.patches import Patch

    table = _one_run_per_variant(tables["probe_concepts"])
    variants = sorted(table["variant"].unique())
    figure, axes = grid(1, len(variants), panel_height=3.2)
    for column, variant in enumerate(variants):
        axis = axes[0][column]
        rows = table[table["variant"] == variant].sort_values("rank", ascending=False)
        first = rows.iloc[0]
        accuracy = first["probe_accuracy"], first["probe_balanced_accuracy"]
        axis.set_title(
            f"{variant}: {first['target']} (acc. {accuracy[0]:.2f}, balanced {accuracy[1]:.2f})",
            fontsize=PANEL_TITLE_SIZE,
        )
        if first["probe_status"] != "ok":
            axis.text(
                0.5,
                0.5,
                f"{first['probe_status']}:\nno atoms listed",
                ha="center",
                va="center",
                transform=axis.transAxes,
            )
            axis.set_axis_off()
            continue
        names = rows["name"] if "name" in rows.columns else None
        labels = [
            # A CSV column with a degenerate run's empty atom reads as float.
            f"{name} ({int(atom)})" if isinstance(name, str) else str(int(atom))
            for name, atom in zip(
                names if names is not None else [None] * len(rows), rows["atom"], strict=True
            )
        ]
        colours = [KIND_COLOURS.get(kind, "0.5") for kind in rows["atom_kind_sq"]]
        axis.barh(np.arange(len(rows)), rows["alpha"], color=colours)
        axis.set_yticks(np.arange(len(rows)), labels, fontsize=LEGEND_SIZE)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_xlabel("α = d_k · θ")
        kinds = list(dict.fromkeys(rows["atom_kind_sq"]))
        handles = [Patch(color=KIND_COLOURS.get(kind, "0.5"), label=kind) for kind in kinds]
        axis.legend(handles=handles, fontsize=LEGEND_SIZE, title="kind", title_fontsize=LEGEND_SIZE)
    figure.suptitle(f"Probe decomposed into atoms: {subject}", fontsize=TITLE_SIZE)
    return figure


@FIGURES.register(
    "steering",
    scope="store",
    tables=("steering",),
    paper="group-sparse",
    applies=_applies("steering"),
)
def draw_steering(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """Share of the top-k retrieved images that carry the steered atom's concept against the
    strength added to the atom, a line per variant (mean ± std over seeds and mixtures); dotted:
    the concept's share of all eval images."""
    table = tables["steering"]
    figure, axes = grid(1, 1, panel_width=4.5, panel_height=3.2)
    axis = axes[0][0]
    for index, (variant, rows) in enumerate(table.groupby("variant")):
        stats = rows.groupby("strength")["share_with_concept"].agg(["mean", "std"]).fillna(0)
        axis.errorbar(
            stats.index,
            stats["mean"],
            yerr=stats["std"],
            marker="o",
            capsize=2,
            color=f"C{index}",
            label=variant,
        )
    axis.axhline(table["concept_base_rate"].mean(), color="black", linestyle=":", label="base rate")
    words = ", ".join(sorted(table["word"].astype(str).unique()))
    axis.set_xlabel(f"strength added to the atom of '{words}'")
    axis.set_ylabel("share of top-k with the concept")
    axis.legend(fontsize=LEGEND_SIZE)
    axis.set_title(f"Steering retrieval: {subject}", fontsize=TITLE_SIZE)
    return figure
