"""The iso-energy recovery table on synthetic data (Dhimoïla et al., Table 3 / App. C).

One row per (τ1, dataset, model, variant, mixture) of the synthetic datasets, mean and standard
deviation over seeds of how well each SAE recovers the generator's dictionary (W, mma, both in the
authors' conventions, docs/results.md) beside its reconstruction (R² around one overall mean, as
the authors' tables report it) and sparsity (L0); and how well its atoms are named, when the runs
named them (the `naming` intervention: group-sparse argues naming needs a multimodal dictionary).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.tables.papers import GROUP_KEYS, SEEDS, seed_statistics, with_columns

# The Snakefile imports this module at every start (`synthetic_datasets`): pandas only for types.
if TYPE_CHECKING:
    import pandas as pd

TAU1 = "tau1"
COLUMNS = (
    ("W", "recovery_w"),
    ("mma", "recovery_mma"),
    ("R² (overall)", "r2_overall"),
    ("L0", "l0"),
)
# Written when the summary has them (the metric group ran).
OPTIONAL_COLUMNS = (("naming accuracy", "naming_accuracy"),)
KEYS = (TAU1, *GROUP_KEYS, SEEDS)


def recovery_table(summary: pd.DataFrame, tau1: dict[str, float]) -> pd.DataFrame:
    """KEYS, then per metric of COLUMNS (and of OPTIONAL_COLUMNS the summary has) its mean,
    `<column> std` and `<column> n` over seeds (vlmsae.tables.papers).

    tau1: the τ1 of each synthetic dataset (config `datasets.<name>.synthetic.tau1`); other
    datasets are left out. Rows are sorted by τ1 (descending: iso-energy holds first), then kept
    in the summary's order.
    """
    rows = summary[summary["dataset"].isin(tau1)]
    if rows.empty:
        raise ValueError("no run of a synthetic dataset: the recovery table needs one")
    columns = [*COLUMNS, *((c, m) for c, m in OPTIONAL_COLUMNS if m in rows.columns)]
    stats = seed_statistics(rows, [metric for _, metric in columns])
    table = stats[[*GROUP_KEYS, SEEDS]].copy()
    table.insert(0, TAU1, table["dataset"].map(tau1))
    table = with_columns(table, stats, columns)
    return table.sort_values(TAU1, ascending=False, kind="stable").reset_index(drop=True)


def synthetic_datasets(config: dict) -> dict[str, float]:
    """{dataset: τ1} of the config's synthetic datasets."""
    return {
        name: float(spec["synthetic"]["tau1"])
        for name, spec in config["datasets"].items()
        if spec["source"] == "synthetic"
    }
