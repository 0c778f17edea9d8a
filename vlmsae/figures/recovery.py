"""Dictionary recovery against τ1 on the synthetic datasets (iso-energy §4, "sanity check")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.style import TITLE_SIZE, subplots
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

PLOTTED = ("W", "mma")


def _has_synthetic_runs(config: dict, runs: list[dict]) -> bool:
    datasets = config.get("datasets", {})
    synthetic = {name for name, spec in datasets.items() if spec["source"] == "synthetic"}
    return any(run["dataset"] in synthetic for run in runs)


@FIGURES.register(
    "synthetic_recovery",
    scope="all",
    tables=("synthetic_recovery",),
    paper="iso-energy",
    applies=_has_synthetic_runs,
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """W and mma against τ1, one line per (variant, mixture), error bars: std over seeds."""
    from vlmsae.tables.papers import STD_SUFFIX
    from vlmsae.tables.recovery import COLUMNS, TAU1

    table = tables["synthetic_recovery"]
    names = dict(COLUMNS)
    figure, axes = subplots(1, len(PLOTTED), width=4.2 * len(PLOTTED), height=3.6)
    for axis, column in zip(axes[0], PLOTTED, strict=True):
        for (variant, mixture), rows in table.groupby(["variant", "mixture"], sort=True):
            rows = rows.sort_values(TAU1)
            axis.errorbar(
                rows[TAU1],
                rows[column],
                yerr=rows[f"{column}{STD_SUFFIX}"].fillna(0.0),
                marker="o",
                capsize=3,
                label=f"{variant} ({mixture.replace('-', ':')})",
            )
        axis.set_xlabel("τ1 (cosine between a bimodal atom's instantiations)")
        axis.set_ylabel(f"{column} ({names[column]})")
        axis.set_title(f"{column} against τ1", fontsize=TITLE_SIZE)
    axes[0][-1].legend(fontsize=7)
    figure.suptitle(f"Dictionary recovery on synthetic data: {subject}", fontsize=TITLE_SIZE)
    return figure
