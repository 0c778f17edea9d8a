"""The three papers' tables from the tidy tables: one row per (dataset, model, variant, mixture).

Each cell is the mean over the group's seeds, with its sample standard deviation (ddof = 1) in a
`<column> std` column and the number of independent measurements behind it in `<column> n`. A
value is not always measured once per seed: a run's seed stability is the pair of seeds it belongs
to (two seeds, one pair, carried by both runs), and a store-level value (dense baselines) repeats
on every run of its store. The std is empty where n < 2, so a single measurement never shows as a
zero spread; the Markdown rendering writes `mean ± std`, or `mean (n=…)` where n is below the
group's seeds. Columns
carry the papers' names (docs/results.md, "Paper tables", says which table each reproduces).
A metric a config does not produce (recovery on real data, zero-shot without labels) is left out
of the table rather than written as an empty column.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

GROUP_KEYS = ("dataset", "model", "variant", "mixture")
STORE_KEYS = ("dataset", "model")
SEEDS = "seeds"
STD_SUFFIX = " std"
N_SUFFIX = " n"
# Run columns measured once per pair of the group's seeds: n = s(s − 1)/2 for s runs with a value.
PAIRWISE = ("stability_seed",)
# (paper's column name, vlmsae metric) per table, in the papers' column order. A metric is read
# from summary.csv, or from stores.csv when it is a store-level one (dense baselines).
PAPER_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    # Papadimitriou et al., Table 1 (reconstruction, sparsity, stability) and §5 (modality).
    "linear_structure": (
        ("R²", "r2"),
        ("L0", "l0"),
        ("dead atoms", "dead_atoms"),
        ("stability (seeds)", "stability_seed"),
        ("stability (mixtures)", "stability_mixture"),
        ("image atoms", "modality_atoms_image"),
        ("text atoms", "modality_atoms_text"),
        ("bimodal atoms", "modality_atoms_bimodal"),
        ("modality score", "modality_score_mean"),
        ("modality score (energy-weighted)", "modality_score_energy_weighted_mean"),
        ("classifier accuracy", "classifier_accuracy_mean"),
        ("classifier accuracy (energy-weighted)", "classifier_accuracy_energy_weighted_mean"),
        ("bridge share (bimodal)", "bridge_share_bimodal"),
    ),
    # Dhimoïla et al., Table 1: the authors' MSE and R², recovery (W, mma), p_acc, ρ, FDA, δ_r.
    "iso_energy": (
        ("MSE", "mse_sum"),
        ("R²", "r2_overall"),
        ("L0", "l0"),
        ("W", "recovery_w"),
        ("mma", "recovery_mma"),
        ("p_acc", "p_acc"),
        ("ρ", "rho"),
        ("FDA", "fda"),
        ("δ_r", "delta_r"),
    ),
    # Kaushik et al., Table 1: dead neurons per modality, MMS per modality pair, zero-shot.
    "group_sparse": (
        ("R²", "r2"),
        ("dead (image)", "dead_atoms_image"),
        ("dead (text)", "dead_atoms_text"),
        ("MMS image–text", "mms_image_text"),
        ("MMS image–image", "mms_image_image"),
        ("MMS text–text", "mms_text_text"),
        ("MMS image–text (dense)", "mms_baseline_image_text"),
        ("zero-shot top-1 (codes)", "zero_shot_top1_codes"),
        ("zero-shot top-1 (dense)", "zero_shot_top1_dense"),
        ("zero-shot top-5 (codes)", "zero_shot_top5_codes"),
        ("zero-shot top-5 (dense)", "zero_shot_top5_dense"),
    ),
}


def with_store_metrics(summary: pd.DataFrame, stores: pd.DataFrame | None) -> pd.DataFrame:
    """summary with every store-level column it lacks (zero_shot_*_dense, ...) joined per store."""
    if stores is None or stores.empty:
        return summary
    extra = [c for c in stores.columns if c not in summary.columns or c in STORE_KEYS]
    return summary.merge(stores[extra], on=list(STORE_KEYS), how="left")


def seed_statistics(
    summary: pd.DataFrame, metrics: list[str], store_level: Collection[str] = ()
) -> pd.DataFrame:
    """Per GROUP_KEYS group, in order of first appearance: `seeds` (runs in the group) and, for
    each metric, its mean over the group's runs (NaN values skipped), `{metric}_n` the
    independent measurements behind it (runs with a value; pairs of them for PAIRWISE metrics;
    1 for a `store_level` metric) and `{metric}_std` (ddof 1, NaN where n < 2)."""
    groups = summary.groupby(list(GROUP_KEYS), sort=False)
    means = groups[metrics].mean()
    spread = groups[metrics].std(ddof=1)
    defined = groups[metrics].count()
    measured = defined.copy()
    for metric in metrics:
        if metric in store_level:
            measured[metric] = defined[metric].clip(upper=1)
        elif metric in PAIRWISE:
            measured[metric] = defined[metric] * (defined[metric] - 1) // 2
    spread = spread.where(measured >= 2)
    counts = groups.size().rename(SEEDS)
    return pd.concat(
        [counts, means, spread.add_suffix("_std"), measured.add_suffix("_n")], axis=1
    ).reset_index()


def paper_table(name: str, summary: pd.DataFrame, stores: pd.DataFrame | None = None):
    """Table `name` of PAPER_TABLES: GROUP_KEYS, `seeds`, then per metric the paper's column
    (mean) and `<column> std`. Metrics with no value in any run are left out."""
    store_level = set() if stores is None else set(stores.columns) - set(summary.columns)
    summary = with_store_metrics(summary, stores)
    columns = [
        (column, metric)
        for column, metric in PAPER_TABLES[name]
        if metric in summary.columns and summary[metric].notna().any()
    ]
    stats = seed_statistics(summary, [metric for _, metric in columns], store_level)
    return with_columns(stats[[*GROUP_KEYS, SEEDS]].copy(), stats, columns)


def with_columns(
    table: pd.DataFrame, stats: pd.DataFrame, columns: list[tuple[str, str]]
) -> pd.DataFrame:
    """`table` with, per (paper column, metric) of `columns`, the column, `<column> std` and
    `<column> n` from seed_statistics `stats` (rows in the same order)."""
    for column, metric in columns:
        table[column] = stats[metric]
        table[f"{column}{STD_SUFFIX}"] = stats[f"{metric}_std"]
        table[f"{column}{N_SUFFIX}"] = stats[f"{metric}_n"]
    return table


def _cell(mean: float, std: float, n: int, seeds: int) -> str:
    if np.isnan(mean):
        return ""
    if not np.isnan(std):
        return f"{mean:.4g} ± {std:.2g}"
    return f"{mean:.4g} (n={n})" if n < seeds else f"{mean:.4g}"


def markdown(table: pd.DataFrame, keys: tuple[str, ...] = (*GROUP_KEYS, SEEDS)) -> str:
    """A paper table as a Markdown pipe table: its `keys` columns as they are, then each metric
    as one `mean ± std` column."""
    metrics = [
        c for c in table.columns if c not in keys and not c.endswith((STD_SUFFIX, N_SUFFIX))
    ]
    header = [*keys, *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for values in table.to_dict("records"):
        cells = [str(values[key]) for key in keys]
        cells += [
            _cell(values[m], values[f"{m}{STD_SUFFIX}"], values[f"{m}{N_SUFFIX}"], values[SEEDS])
            for m in metrics
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
