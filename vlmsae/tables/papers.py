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
from typing import TYPE_CHECKING

# Heavy imports stay inside functions: the Snakefile imports this module at every start.
if TYPE_CHECKING:
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

RUN_KEYS = ("dataset", "model", "variant", "mixture", "seed")
# Kaushik et al., Table 3 (App. A.2.2): zero-shot accuracy from codes over expansion factor × K,
# one column per model kind (`grid_model`), rows keyed by GRID_KEYS.
GRID_METRIC = "zero_shot_top1_codes"
GRID_MODELS = ("SAE", "GSAE", "MGSAE")
GRID_KEYS = ("dataset", "model", "mixture", "expansion", "K")
GRID_SETTINGS = (
    "type",
    "d",
    "n_atoms",
    "k",
    "train_alignment",
    "train_group_sparsity",
    "train_mask_probability",
)


def with_store_metrics(summary: pd.DataFrame, stores: pd.DataFrame | None) -> pd.DataFrame:
    """summary with every store-level column it lacks (zero_shot_*_dense, ...) joined per store."""
    if stores is None or stores.empty:
        return summary
    extra = [c for c in stores.columns if c not in summary.columns or c in STORE_KEYS]
    return summary.merge(stores[extra], on=list(STORE_KEYS), how="left")


def seed_statistics(
    summary: pd.DataFrame,
    metrics: list[str],
    store_level: Collection[str] = (),
    keys: tuple[str, ...] = GROUP_KEYS,
) -> pd.DataFrame:
    """Per group of `keys` (GROUP_KEYS: one per variant and mixture), in order of first
    appearance: `seeds` (runs in the group) and, for each metric, its mean over the group's runs
    (NaN values skipped), `{metric}_n` the independent measurements behind it (runs with a
    value; pairs of them for PAIRWISE metrics; 1 for a `store_level` metric) and `{metric}_std`
    (ddof 1, NaN where n < 2)."""
    import pandas as pd

    groups = summary.groupby(list(keys), sort=False)
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


def group_sparse_grid(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Kaushik et al., Table 3 (App. A.2.2): zero-shot top-1 accuracy from codes
    (GRID_METRIC) per expansion factor n_atoms / d and K, one column per GRID_MODELS kind.

    summary: summary.csv; runs: runs.csv (`type`, `d`, `n_atoms`, `k`, the regulariser weights).
    The TopK runs without alignment are the grid's (`grid_model`); each cell is the mean over
    the runs of its kind at that (dataset, model, mixture, expansion, K), with `<kind> std` and
    `<kind> n` as in the paper tables, `seeds` the most runs of a cell in the row. Rows and
    kinds without a value are left out: a config without zero-shot gives the key columns only.
    """
    settings = runs.reindex(columns=[*RUN_KEYS, *GRID_SETTINGS])
    rows = summary.reindex(columns=[*RUN_KEYS, GRID_METRIC]).merge(settings, on=list(RUN_KEYS))
    rows["kind"] = grid_model(rows)
    rows = rows.dropna(subset=["kind", GRID_METRIC, "d", "n_atoms", "k"])
    rows["expansion"] = [_ratio(p, d) for p, d in zip(rows["n_atoms"], rows["d"], strict=True)]
    rows["K"] = rows["k"].astype(int)
    stats = seed_statistics(rows, [GRID_METRIC], keys=(*GRID_KEYS, "kind"))
    keys = list(GRID_KEYS)
    table = stats.groupby(keys, as_index=False)[SEEDS].max()
    measured = [GRID_METRIC, f"{GRID_METRIC}_std", f"{GRID_METRIC}_n"]
    for kind in GRID_MODELS:
        cells = stats.loc[stats["kind"] == kind, [*keys, *measured]]
        if cells.empty:
            continue
        cells.columns = [*keys, kind, f"{kind}{STD_SUFFIX}", f"{kind}{N_SUFFIX}"]
        table = table.merge(cells, on=keys, how="left")
        table[f"{kind}{N_SUFFIX}"] = table[f"{kind}{N_SUFFIX}"].fillna(0).astype(int)
    return table


def grid_model(runs: pd.DataFrame) -> pd.Series:
    """Each run's GRID_MODELS kind from its runs.csv settings: a TopK SAE without regulariser
    is 'SAE', with group sparsity λ > 0 'GSAE', with λ > 0 and masking p > 0 'MGSAE'; other
    runs (another type, alignment, masking without λ) are none of them (NaN)."""
    import numpy as np
    import pandas as pd

    weight = {
        key: pd.to_numeric(runs.get(f"train_{key}", 0.0), errors="coerce").fillna(0.0)
        for key in ("alignment", "group_sparsity", "mask_probability")
    }
    topk = (runs["type"] == "topk") & (weight["alignment"] == 0)
    lam, mask = weight["group_sparsity"] > 0, weight["mask_probability"] > 0
    kind = pd.Series(np.nan, index=runs.index, dtype=object)
    kind[topk & ~lam & ~mask] = "SAE"
    kind[topk & lam & ~mask] = "GSAE"
    kind[topk & lam & mask] = "MGSAE"
    return kind


def _ratio(numerator: float, denominator: float) -> float | int:
    """numerator / denominator, an int where it is one (an expansion factor 16, not 16.0)."""
    value = numerator / denominator
    return int(value) if float(value).is_integer() else round(value, 4)


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
    import numpy as np

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
