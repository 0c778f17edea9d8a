"""Gather per-run results into the tables of results/tables/ (schemas in docs/results.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

RUN_KEYS = ("dataset", "model", "variant", "mixture", "seed")


def summary_table(
    runs: Iterable[dict], summary_paths: Iterable[str | Path], stability: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per run: the run's keys, every scalar of its summary.json, and its stability.

    A run's `stability_seed*` / `stability_mixture*` columns are the means over the rows of the
    stability table (vlmsae.metrics.stability) that involve it; absent when it has no partner.
    """
    rows = []
    for run, path in zip(runs, summary_paths, strict=True):
        summary = json.loads(Path(path).read_text())
        rows.append({**{key: run[key] for key in RUN_KEYS}, **summary})
    table = pd.DataFrame(rows)
    if stability is None or stability.empty:
        return table
    return table.merge(run_stability(stability), on=list(RUN_KEYS), how="left")


def run_stability(stability: pd.DataFrame) -> pd.DataFrame:
    """Per run and kind ('seed', 'mixture'): mean of every stability column over its pairs."""
    values = [c for c in stability.columns if c.startswith("stability")]
    sides = [
        stability.rename(columns={f"mixture_{side}": "mixture", f"seed_{side}": "seed"})[
            ["dataset", "model", "variant", "mixture", "seed", "kind", *values]
        ]
        for side in ("a", "b")
    ]
    means = pd.concat(sides).groupby([*RUN_KEYS, "kind"])[values].mean().unstack("kind")
    means.columns = [
        value.replace("stability", f"stability_{kind}") for value, kind in means.columns
    ]
    return means.reset_index()


def atoms_table(runs: Iterable[dict], atoms_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Per-atom rows of several runs stacked, each prefixed by its run's keys."""
    frames = [
        pd.read_parquet(path).assign(**{key: run[key] for key in RUN_KEYS})
        for run, path in zip(runs, atoms_paths, strict=True)
    ]
    return pd.concat(frames, ignore_index=True)
