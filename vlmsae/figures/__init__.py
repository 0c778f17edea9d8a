"""Figures of results/figures/, each drawn from the tidy tables (never from private state).

A figure is a module that declares its options as a Settings dataclass and registers its draw
function: `@FIGURES.register(name, Settings, scope=..., tables=(...), paper=..., applies=...)`
on `draw(tables: dict[str, DataFrame], settings, subject: str) -> matplotlib Figure`.
- scope "all": one figure over every run, results/figures/{name}.png; `tables` names tables of
  results/tables/ (summary, stability, bridge_top, stores, runs, metrics_long).
- scope "store": one figure per store, results/figures/{name}/{dataset}/{model}.png; `tables`
  may also name a per-run file of RUN_FILES (atoms, bridge_top: the store's runs' files
  stacked, each row prefixed by its run's keys) or a per-store file of STORE_FILES
  (cone_histograms, atom_map, embedding_pca, mms_dense); a results/tables/ table is cut to the
  store's rows.
- paper (optional): the paper whose figure it reproduces, the report's category.
- applies (optional): `applies(config, runs) -> bool`, whether the config feeds the figure for
  those runs (the store's at scope "store"); the DAG does not ask for a figure that would have
  nothing to draw (`figure_targets`).
Every table with a `variant` column gets a `family` column (config `variants.<name>.family`,
the variant's own name by default), so a variant run at several k draws as one family.
`subject` names what the figure covers (for titles). Options come from config `figures.<name>`.
Each figure is written as PNG and SVG (`save`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmsae.registry_base import Registry
from vlmsae.run_path import run_path

FIGURES: Registry[Any] = Registry("figure", "vlmsae.figures")
SCOPES = ("all", "store")
DPI = 150
FORMATS = ("png", "svg")
RUN_KEYS = ("dataset", "model", "variant", "mixture", "seed")
# Files below results/metrics/ a store-scope figure may read, by table name.
RUN_FILES = {
    "atoms": "atoms.parquet",
    "bridge_top": "bridge_top.parquet",
}
STORE_FILES = {
    "cone_histograms": "cone_histograms.parquet",
    "atom_map": "atom_maps.parquet",
    "embedding_pca": "embedding_pca.parquet",
    "mms_dense": "mms_dense.parquet",
}


def save(figure: Any, path: str | Path) -> None:
    """Write the figure as PNG at `path` and as SVG beside it (same stem), then close it."""
    from vlmsae.figures.style import pyplot  # the backend and SVG settings of every figure

    path = Path(path)
    for suffix in FORMATS:
        # No date in the SVG, so that the same tables give the same file (and svg.hashsalt, style).
        metadata = {"Date": None} if suffix == "svg" else None
        figure.savefig(path.with_suffix(f".{suffix}"), dpi=DPI, metadata=metadata)
        # The layout is solved by the first save; the others keep it instead of solving again.
        figure.set_layout_engine("none")
    pyplot().close(figure)


def figures_of_scope(scope: str) -> list[str]:
    """Names of the registered figures drawn once per `scope` ("all" or "store")."""
    return [entry.name for entry in FIGURES if entry.extra.get("scope") == scope]


def applies(name: str, config: dict, runs: list[dict]) -> bool:
    """Whether figure `name` has something to draw for `runs` under `config`."""
    check = FIGURES.get(name).extra.get("applies")
    return check is None or bool(check(config, runs))


def _stores(runs: Iterable[dict]) -> list[tuple[str, str]]:
    return sorted({(run["dataset"], run["model"]) for run in runs})


@dataclass(frozen=True)
class FigureJob:
    """The figures one job draws: every figure of a scope that applies, over the same runs.

    One process per scope rather than per figure: a figure takes a second or less to draw, and
    starting a process for it (Python, pandas, matplotlib) took about as long again.
    """

    rule: str  # `figures` for the figures over every run, `figures_<dataset>_<model>` a store's
    subject: str  # "every store", or "<dataset>/<model>"
    runs: list[dict]
    figures: dict[str, str]  # figure name → its PNG path (the SVG lies beside it)


def figure_jobs(config: dict, runs: list[dict]) -> list[FigureJob]:
    """The figure jobs of `runs`: the figures drawn once, then each store's (jobs without a
    figure that applies are left out)."""
    jobs = [
        FigureJob(
            "figures",
            "every store",
            runs,
            {
                name: f"results/figures/{name}.png"
                for name in figures_of_scope("all")
                if applies(name, config, runs)
            },
        )
    ]
    for dataset, model in _stores(runs):
        store_runs = [run for run in runs if (run["dataset"], run["model"]) == (dataset, model)]
        figures = {
            name: f"results/figures/{name}/{dataset}/{model}.png"
            for name in figures_of_scope("store")
            if applies(name, config, store_runs)
        }
        rule = re.sub(r"\W", "_", f"figures_{dataset}_{model}")
        jobs.append(FigureJob(rule, f"{dataset}/{model}", store_runs, figures))
    return [job for job in jobs if job.figures]


def job_targets(jobs: list[FigureJob]) -> list[str]:
    """The PNG of every figure the jobs draw."""
    return [path for job in jobs for path in job.figures.values()]


def figure_targets(config: dict, runs: list[dict]) -> list[str]:
    """The PNG of every registered figure that applies: once, or once per store."""
    return job_targets(figure_jobs(config, runs))


def job_inputs(job: FigureJob, table_paths: dict[str, str]) -> dict[str, list[str]]:
    """The files the job's figures read, by table name (figures reading one table over the same
    runs read the same files)."""
    inputs: dict[str, list[str]] = {}
    for name in job.figures:
        inputs.update(input_paths(name, job.runs, table_paths))
    return inputs


def input_paths(name: str, runs: list[dict], table_paths: dict[str, str]) -> dict[str, list[str]]:
    """The files figure `name` reads for `runs`, by table name (the keys of its `tables`)."""
    entry = FIGURES.get(name)
    per_store = entry.extra["scope"] == "store"
    inputs = {}
    for table in entry.extra["tables"]:
        if per_store and table in RUN_FILES:
            inputs[table] = [f"results/metrics/{run_path(run)}/{RUN_FILES[table]}" for run in runs]
        elif per_store and table in STORE_FILES:
            inputs[table] = [
                f"results/metrics/{dataset}/{model}/{STORE_FILES[table]}"
                for dataset, model in _stores(runs)
            ]
        else:
            inputs[table] = [table_paths[table]]
    return inputs


def _read_table(name: str, paths: list[str], runs: list[dict]) -> Any:
    """A figure's input table: per-run files stacked with their run keys, other files stacked."""
    import pandas as pd

    from vlmsae.tables.summary import atoms_table

    if all(str(path).endswith(".csv") for path in paths):
        return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    if name in RUN_FILES:
        return atoms_table(runs, paths)
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)


def _prepared(table: Any, runs: list[dict], per_store: bool) -> Any:
    """The table cut to the runs' stores (scope "store") and with the variants' `family`."""
    if per_store and {"dataset", "model"} <= set(table.columns):
        stores = _stores(runs)
        keep = [pair in stores for pair in zip(table["dataset"], table["model"], strict=True)]
        table = table[keep].reset_index(drop=True)
    if "variant" in table.columns and "family" not in table.columns:
        families = {run["variant"]: run.get("family", run["variant"]) for run in runs}
        table = table.assign(family=table["variant"].map(families).fillna(table["variant"]))
    return table


def draw_registered(
    name: str,
    inputs: dict[str, list[str]],
    runs: list[dict],
    settings: dict | None,
    path: str | Path,
) -> None:
    """Draw registered figure `name` from its input files and write it to `path` (and SVG).

    runs: the runs the figure covers (every run, or the store's), with an optional `family`.
    """
    from vlmsae.registry_base import parse_settings

    entry = FIGURES.get(name)
    options = parse_settings(entry.settings, settings, f"figures.{name}")
    per_store = entry.extra["scope"] == "store"
    tables = {
        table: _prepared(_read_table(table, paths, runs), runs, per_store)
        for table, paths in inputs.items()
    }
    stores = _stores(runs)
    subject = "/".join(stores[0]) if len(stores) == 1 else "every run"
    save(entry.obj(tables, options, subject), path)


def draw_job(
    figures: dict[str, str],
    inputs: dict[str, list[str]],
    runs: list[dict],
    settings: dict[str, dict],
) -> None:
    """Draw every figure of a job (`FigureJob.figures`: name → PNG path) from the job's input
    files by table name; settings: config `figures.<name>` of each."""
    for name, path in figures.items():
        tables = FIGURES.get(name).extra["tables"]
        draw_registered(
            name, {table: inputs[table] for table in tables}, runs, settings.get(name), path
        )
