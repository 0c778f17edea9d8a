"""Group-sparse Table 2 (Kaushik et al.): zero-shot audio–text tasks of a CLAP model, from its
dense embeddings and from each SAE's codes.

Rows, per model: `dense` (the store's own embeddings, one measurement per store, `seeds` 0),
then each (variant, mixture, trained_on) measured on the benchmark stores, in order of first
appearance. `trained_on` is the dataset whose SAE the runs score (summary.csv): with the paper's
protocol (`sae_from: jamendo` on each benchmark) one SAE per variant fills every column of its
row; SAEs trained on each benchmark itself get a row per benchmark.
Columns, one per benchmark store, found by its source: GTZAN genres and NSynth instruments
(zero-shot top-1 accuracy, `zero_shot_top1_{dense,codes}`), FMACaps retrieval (text-to-music
mean reciprocal rank, `mrr_t2i_{dense,codes}`). Each cell is the mean over the seeds of that
store's runs, with `<column> std` and `<column> n` as in the other paper tables
(vlmsae.tables.papers); `seeds` is the most runs behind a cell of the row. A second store of one
source gets its own column, named with its dataset. A column no row has a value for is left out;
a config without a benchmark store gives the key columns only.
"""

from __future__ import annotations

from functools import reduce

import pandas as pd

from vlmsae.tables.papers import GROUP_KEYS, N_SUFFIX, SEEDS, STD_SUFFIX, seed_statistics
from vlmsae.tables.summary import TRAINED_ON

KEYS = ("model", "variant", "mixture", TRAINED_ON)
DENSE = "dense"
# (source, paper's column, metric without its _dense / _codes suffix), in the paper's order.
BENCHMARKS = (
    ("gtzan", "GTZAN genres (acc.)", "zero_shot_top1"),
    ("nsynth", "NSynth instruments (acc.)", "zero_shot_top1"),
    ("fmacaps", "FMACaps retrieval (MRR)", "mrr_t2i"),
)


def benchmark_columns(sources: dict[str, str]) -> list[tuple[str, str, str]]:
    """(column, dataset, metric) of every dataset whose source (`sources`: {dataset: source})
    is a benchmark, in BENCHMARKS order; a source held by several datasets names each column
    with its dataset."""
    columns = []
    for source, label, metric in BENCHMARKS:
        datasets = [name for name, held in sources.items() if held == source]
        for dataset in datasets:
            column = label if len(datasets) == 1 else f"{label} [{dataset}]"
            columns.append((column, dataset, metric))
    return columns


def _cells(
    summary: pd.DataFrame, stores: pd.DataFrame, column: str, dataset: str, metric: str
) -> pd.DataFrame:
    """KEYS, `seeds`, and the column's mean, std and n of one benchmark store: its dense row
    from stores.csv, then its runs' codes from summary.csv."""
    names = [column, f"{column}{STD_SUFFIX}", f"{column}{N_SUFFIX}"]
    parts = []
    dense = stores[stores["dataset"] == dataset]
    if f"{metric}_dense" in dense:
        parts.append(
            pd.DataFrame(
                {
                    "model": dense["model"],
                    "variant": DENSE,
                    "mixture": "",
                    TRAINED_ON: "",
                    SEEDS: 0,
                    names[0]: dense[f"{metric}_dense"],
                    names[1]: float("nan"),
                    names[2]: dense[f"{metric}_dense"].notna().astype(int),
                }
            )
        )
    runs = summary[summary["dataset"] == dataset]
    codes = f"{metric}_codes"
    if codes in runs and len(runs):
        stats = seed_statistics(runs, [codes], keys=(*GROUP_KEYS, TRAINED_ON))
        stats = stats[[*KEYS, SEEDS, codes, f"{codes}_std", f"{codes}_n"]]
        parts.append(stats.set_axis([*KEYS, SEEDS, *names], axis=1))
    if not parts:
        return pd.DataFrame(columns=[*KEYS, SEEDS, *names])
    return pd.concat(parts, ignore_index=True)


def audio_benchmark_table(
    summary: pd.DataFrame, stores: pd.DataFrame, sources: dict[str, str]
) -> pd.DataFrame:
    """Table 2 of group-sparse (module docstring) from summary.csv, stores.csv and the config's
    {dataset: source}: KEYS, `seeds`, then per benchmark store its column, `<column> std` and
    `<column> n`."""
    frames = []
    for column, dataset, metric in benchmark_columns(sources):
        cells = _cells(summary, stores, column, dataset, metric)
        if cells[column].notna().any():
            frames.append(cells.rename(columns={SEEDS: f"{SEEDS} {column}"}))
    if not frames:
        return pd.DataFrame(columns=[*KEYS, SEEDS])
    table = reduce(lambda left, right: left.merge(right, on=list(KEYS), how="outer"), frames)
    seeds = [column for column in table if column.startswith(f"{SEEDS} ")]
    table.insert(len(KEYS), SEEDS, table[seeds].max(axis=1).astype(int))
    table = table.drop(columns=seeds)
    for column in table.columns:
        if column.endswith(N_SUFFIX):
            table[column] = table[column].fillna(0).astype(int)
    # Models as they first appear; in each, the dense row, then the variants in summary order.
    models = {model: rank for rank, model in enumerate(table["model"].unique())}
    variants = {variant: rank for rank, variant in enumerate(dict.fromkeys(summary["variant"]))}
    order = [
        (models[model], -1 if variant == DENSE else variants.get(variant, len(variants)))
        for model, variant in zip(table["model"], table["variant"], strict=True)
    ]
    rows = sorted(range(len(table)), key=lambda row: order[row])
    return table.iloc[rows].reset_index(drop=True)
