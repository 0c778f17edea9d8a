"""Dictionary stability across seeds and mixtures (linear-structure Fig. 2).

Read from stability.csv (one row per pair of runs of a variant that differ in seed only or in
mixture only) and atom_stability.parquet (one row per atom of each run with another seed: its
matched cosine averaged over those seeds; vlmsae.metrics.stability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import mixture_order, variant_mixture_grid
from vlmsae.figures.style import (
    LEGEND_SIZE,
    MARKERS,
    PANEL_TITLE_SIZE,
    TITLE_SIZE,
    grid,
)
from vlmsae.registry_base import Settings, setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

KIND_LABELS = {"seed": "across seeds", "mixture": "across mixtures"}
KIND_STYLES = {"seed": "-", "mixture": "--"}
# On the per-pair panel the column already names the variant: shade tells the kind of pair.
KIND_GREYS = {"seed": "0.15", "mixture": "0.55"}


def _pairs_exist(runs: list[dict], fixed: tuple[str, ...]) -> bool:
    """Whether two runs share a variant, a store and every key of `fixed` (so they differ in the
    remaining one of mixture and seed)."""
    keys = [tuple(run[k] for k in ("dataset", "model", "variant", *fixed)) for run in runs]
    return len(set(keys)) < len(keys)


def _any_pairs(config: dict, runs: list[dict]) -> bool:
    return _pairs_exist(runs, ("mixture",)) or _pairs_exist(runs, ("seed",))


def _mixture_pairs(config: dict, runs: list[dict]) -> bool:
    return _pairs_exist(runs, ("seed",))


def _seed_pairs(config: dict, runs: list[dict]) -> bool:
    return _pairs_exist(runs, ("mixture",))


def top_columns(stability: pd.DataFrame) -> list[str]:
    """`stability_top{m}` columns by increasing m, then `stability` (every atom)."""
    tops = [c for c in stability.columns if c.startswith("stability_top")]
    return sorted(tops, key=lambda c: int(c.removeprefix("stability_top"))) + ["stability"]


@FIGURES.register(
    "stability",
    scope="all",
    tables=("stability",),
    paper="linear-structure",
    applies=_any_pairs,
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One row per store. Left: the mean stability of each variant's m most energetic atoms
    against m (colour: variant; solid: pairs across seeds, dashed: across mixtures). Right:
    every pair's `stability` (all atoms), one column per variant (dark: across seeds, light:
    across mixtures)."""
    import numpy as np

    stability = tables["stability"]
    columns = top_columns(stability)
    stores = sorted(set(zip(stability["dataset"], stability["model"], strict=True)))
    variants = sorted(stability["variant"].unique())
    colours = {variant: f"C{index}" for index, variant in enumerate(variants)}
    figure, axes = grid(len(stores), 2, panel_width=5.0, panel_height=3.4)
    ticks = [c.removeprefix("stability_").replace("top", "top ") for c in columns[:-1]]
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(stability))
    for (left, right), (dataset, model) in zip(axes, stores, strict=True):
        here = ((stability["dataset"] == dataset) & (stability["model"] == model)).to_numpy()
        rows = stability[here]
        for (variant, kind), pairs in rows.groupby(["variant", "kind"]):
            left.plot(
                range(len(columns)),
                pairs[columns].mean().to_numpy(),
                color=colours[variant],
                marker=MARKERS[list(KIND_LABELS).index(kind)],
                linestyle=KIND_STYLES[kind],
                label=f"{variant}, {KIND_LABELS[kind]}",
            )
        left.set_xticks(range(len(columns)), [*ticks, "all atoms"])
        left.set_xlabel("atoms matched (most energetic first)")
        left.set_ylabel("stability (mean matched cosine)")
        left.set_title(f"{dataset}/{model}: top-m atoms", fontsize=PANEL_TITLE_SIZE)
        left.legend(fontsize=LEGEND_SIZE)
        position = rows["variant"].map({v: i for i, v in enumerate(variants)}).to_numpy()
        for kind, label in KIND_LABELS.items():
            chosen = (rows["kind"] == kind).to_numpy()
            if chosen.any():
                right.scatter(
                    position[chosen] + jitter[here][chosen],
                    rows.loc[chosen, "stability"],
                    color=KIND_GREYS[kind],
                    marker=MARKERS[list(KIND_LABELS).index(kind)],
                    alpha=0.8,
                    label=label,
                )
        right.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
        right.set_ylabel("stability (mean matched cosine)")
        right.set_title(f"{dataset}/{model}: every pair of runs", fontsize=PANEL_TITLE_SIZE)
        right.legend(fontsize=LEGEND_SIZE)
    figure.suptitle(f"Dictionary stability: {subject}", fontsize=TITLE_SIZE)
    return figure


def mixture_matrix(stability: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """(mixtures, M [n, n]) of one variant: M[a, b] the mean `stability` of its pairs of kind
    mixture between a and b (symmetric), M[a, a] the mean of its pairs of kind seed at a; NaN
    where there is no such pair."""
    import numpy as np

    mixed = stability[stability["kind"] == "mixture"]
    seeds = stability[stability["kind"] == "seed"]
    mixtures = mixture_order([*mixed["mixture_a"], *mixed["mixture_b"]])
    index = {mixture: i for i, mixture in enumerate(mixtures)}
    total = np.zeros((len(mixtures), len(mixtures)))
    count = np.zeros_like(total)
    a = mixed["mixture_a"].map(index).to_numpy(dtype=int)
    b = mixed["mixture_b"].map(index).to_numpy(dtype=int)
    values = mixed["stability"].to_numpy()
    np.add.at(total, (a, b), values)
    np.add.at(total, (b, a), values)
    np.add.at(count, (a, b), 1)
    np.add.at(count, (b, a), 1)
    same = seeds[seeds["mixture_a"].isin(index)]
    diagonal = same["mixture_a"].map(index).to_numpy(dtype=int)
    np.add.at(total, (diagonal, diagonal), same["stability"].to_numpy())
    np.add.at(count, (diagonal, diagonal), 1)
    with np.errstate(invalid="ignore"):
        return mixtures, total / count


@FIGURES.register(
    "stability_mixtures",
    scope="store",
    tables=("stability",),
    paper="linear-structure",
    applies=_mixture_pairs,
)
def draw_mixtures(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One heat map per variant: mean stability between runs trained on mixtures a and b (same
    seed), and on the diagonal between seeds of one mixture."""
    import matplotlib
    import numpy as np

    stability = tables["stability"]
    variants = sorted(stability.loc[stability["kind"] == "mixture", "variant"].unique())
    figure, axes = grid(1, len(variants), panel_width=3.4, panel_height=3.2)
    # Cells without a pair of runs stay white, not the colour of 0.
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    for axis, variant in zip(axes[0], variants, strict=True):
        mixtures, matrix = mixture_matrix(stability[stability["variant"] == variant])
        image = axis.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=1.0)
        for (row, column), value in np.ndenumerate(matrix):
            text = "–" if np.isnan(value) else f"{value:.2f}"
            axis.text(column, row, text, ha="center", va="center", fontsize=LEGEND_SIZE)
        labels = [m.replace("-", ":") for m in mixtures]
        axis.set_xticks(range(len(mixtures)), labels)
        axis.set_yticks(range(len(mixtures)), labels)
        axis.set_xlabel("mixture (image:text)")
        axis.set_ylabel("mixture (image:text)")
        axis.set_title(variant, fontsize=PANEL_TITLE_SIZE)
    figure.colorbar(image, ax=axes[0].tolist(), label="stability (mean matched cosine)")
    figure.suptitle(f"Stability across mixtures: {subject}", fontsize=TITLE_SIZE)
    return figure


@dataclass(frozen=True, kw_only=True)
class EnergyStabilitySettings(Settings):
    bins: int = setting(
        10, "energy bins (equal counts of live atoms) of the median line", minimum=1
    )


def energy_bin_medians(
    energy: np.ndarray, stability: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """(median energy, median stability) of `bins` groups of atoms of equal size by energy."""
    import numpy as np

    order = np.argsort(energy, kind="stable")
    groups = [group for group in np.array_split(order, bins) if len(group)]
    return (
        np.array([np.median(energy[group]) for group in groups]),
        np.array([np.median(stability[group]) for group in groups]),
    )


@FIGURES.register(
    "energy_stability",
    EnergyStabilitySettings,
    scope="store",
    tables=("atom_stability",),
    paper="linear-structure",
    applies=_seed_pairs,
)
def draw_energy_stability(
    tables: dict[str, pd.DataFrame], settings: EnergyStabilitySettings, subject: str
):
    """One panel per (variant, mixture), every seed's atoms pooled: each live atom's energy
    (log) against its stability across the other seeds, and the median stability per energy
    bin (black). Dead atoms (energy 0) have no place on a log axis: the x label counts them."""
    import matplotlib.ticker

    atoms = tables["atom_stability"]
    figure, panels = variant_mixture_grid(atoms, panel_width=3.6, panel_height=3.0)
    for axis, _, _, run in panels:
        live = run[run["energy"] > 0]
        axis.scatter(
            live["energy"],
            live["stability"],
            s=3,
            alpha=0.4,
            color="C0",
            rasterized=True,
            label="atom",
        )
        if len(live):
            x, y = energy_bin_medians(
                live["energy"].to_numpy(), live["stability"].to_numpy(), settings.bins
            )
            axis.plot(x, y, color="black", marker="o", markersize=3, label="median per bin")
            axis.set_xscale("log")
            # Within a decade matplotlib labels the minor ticks too, and they overlap.
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        dead = len(run) - len(live)
        axis.set_xlabel(f"energy (mean code); {dead} dead atoms not shown")
        axis.set_ylabel("stability across seeds")
        axis.set_ylim(-0.05, 1.05)
    panels[0][0].legend(fontsize=LEGEND_SIZE, markerscale=2)
    figure.suptitle(f"Energy against stability per atom\n{subject}", fontsize=TITLE_SIZE)
    return figure
