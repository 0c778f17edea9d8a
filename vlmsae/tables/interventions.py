"""The interventions' tables of results/tables/ (schemas in docs/results.md), from per-run files.

- gap_closing.csv: one row per (run, edit), edit `dense` (the run's store as it is) and each
  edited store, with every store-level metric of the store's row of stores.csv;
- gap_histograms.csv: the k-th-nearest-image distance histograms of the same rows;
- vector_arithmetic.csv and arithmetic_histograms.csv: one row per (run, query kind);
- probe_concepts.csv and steering.csv: the per-run tables stacked.
Every row starts with the run's keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from vlmsae.tables.summary import RUN_KEYS

DENSE = "dense"


def _keys(run: dict) -> dict:
    return {key: run[key] for key in RUN_KEYS}


def gap_closing_table(
    runs: Iterable[dict],
    dense_paths: Iterable[str | Path],
    edited_paths: Iterable[dict[str, str | Path]],
) -> pd.DataFrame:
    """Rows (run keys, edit, the store.json scalars) for each run's dense store and its edits.

    dense_paths: each run's store.json; edited_paths: each run's {edit: edited store.json}.
    """
    rows = []
    for run, dense, edits in zip(runs, dense_paths, edited_paths, strict=True):
        for edit, path in {DENSE: dense, **edits}.items():
            rows.append({**_keys(run), "edit": edit, **json.loads(Path(path).read_text())})
    return pd.DataFrame(rows)


def gap_histograms_table(
    runs: Iterable[dict],
    edits: list[str],
    distance_paths: Iterable[list[str | Path]],
    cone_paths: Iterable[list[str | Path]],
) -> pd.DataFrame:
    """Long histograms (run keys, edit, measure, population, bin_left, bin_right, count).

    measure `nn_distance`: the k-th-nearest-image distances of images and captions
    (gap_histograms.parquet, populations image and text); measure `cosine`: the image–caption
    cosines of pairs and non-pairs (cone_histograms.parquet, populations paired and unpaired).
    distance_paths, cone_paths: each run's files, one per edit in the order of `edits`.
    """
    frames = []
    for run, distances, cones in zip(runs, distance_paths, cone_paths, strict=True):
        for edit, distance, cone in zip(edits, distances, cones, strict=True):
            nn = pd.read_parquet(distance).assign(measure="nn_distance")
            cosine = pd.read_parquet(cone).melt(
                id_vars=["bin_left", "bin_right"],
                value_vars=["paired", "unpaired"],
                var_name="population",
                value_name="count",
            )
            for frame in (nn, cosine.assign(measure="cosine")):
                frames.append(frame.assign(**_keys(run), edit=edit))
    columns = [*RUN_KEYS, "edit", "measure", "population", "bin_left", "bin_right", "count"]
    return pd.concat(frames, ignore_index=True)[columns]


def stacked(
    runs: Iterable[dict],
    paths: Iterable[str | Path],
    column: str | None = None,
    labels: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Per-run parquet tables stacked, each row prefixed by its run's keys (and `column` =
    its label, when given: the edit of a histogram)."""
    paths = list(paths)
    labels = list(labels) if labels is not None else [None] * len(paths)
    frames = []
    for run, path, label in zip(runs, paths, labels, strict=True):
        extra = {column: label} if column else {}
        frame = pd.read_parquet(path)
        frames.append(frame.assign(**_keys(run), **extra)[[*RUN_KEYS, *extra, *frame.columns]])
    return pd.concat(frames, ignore_index=True)
