"""Gather per-run results into the tables of results/tables/ (schemas in docs/results.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

RUN_KEYS = ("dataset", "model", "variant", "mixture", "seed")


def summary_table(runs: Iterable[dict], summary_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run: the run's keys, then every scalar of its summary.json."""
    rows = []
    for run, path in zip(runs, summary_paths, strict=True):
        summary = json.loads(Path(path).read_text())
        rows.append({**{key: run[key] for key in RUN_KEYS}, **summary})
    return pd.DataFrame(rows)


def atoms_table(runs: Iterable[dict], atoms_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Per-atom rows of several runs stacked, each prefixed by its run's keys."""
    frames = [
        pd.read_parquet(path).assign(**{key: run[key] for key in RUN_KEYS})
        for run, path in zip(runs, atoms_paths, strict=True)
    ]
    return pd.concat(frames, ignore_index=True)
