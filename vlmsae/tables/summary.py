"""Gather per-run results into the tables of results/tables/ (schemas in docs/results.md).

Three views of the runs: `summary.csv` (wide: one row per run, one column per metric),
`metrics_long.csv` (long: one row per run, metric and modality) and `runs.csv` (how each run was
trained and measured). Metric names are read by their words: a trailing `_image` / `_text` names
the modality of the rows measured, a trailing `_train` the training split (docs/results.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

# pandas is imported inside the functions: `vlmsae runs` reads the metric families here.
if TYPE_CHECKING:
    import pandas as pd

RUN_KEYS = ("dataset", "model", "variant", "mixture", "seed")
# The dataset whose SAE a run scores (vlmsae.runs.Run.trained_on: its own, or its `sae_from`):
# beside the run keys in summary.csv and runs.csv.
TRAINED_ON = "trained_on"
# summary.json keys that record how a run was measured, not what was measured: they belong to
# runs.csv, beside the training settings, and stay out of summary.csv and metrics_long.csv.
SETTING_KEYS = (
    "n_atoms",
    "eval_pairs",
    "eval_seed",
    "retrieval_seed",
    "retrieval_pairs",
    "retrieval_batch",
    "retrieval_grouping",
    "retrieval_groups_image",
    "retrieval_groups_text",
)
# The run's health (vlmsae.health): words, not a number, so it sits beside the run keys in
# summary.csv and is left out of metrics_long.csv, whose values are numbers.
HEALTH_KEY = "health"
MODALITIES = ("image", "text")
ALL_MODALITIES = "all"
TRAIN_SUFFIX = "_train"
# Keys whose last word is an atom kind (modality_atoms_image counts image atoms), not the modality
# of the rows measured: their suffix stays in the metric name.
ATOM_KIND_PREFIXES = ("modality_atoms", "modality_energy_share")
# Families of summary keys in display order, each with the key prefixes (whole words) it holds;
# the longest matching prefix wins, so `retrieval_seed` is a setting and `recall_*` retrieval.
METRIC_FAMILIES = (
    ("health", (HEALTH_KEY,)),
    ("settings", SETTING_KEYS),
    ("reconstruction", ("mse", "r2")),
    ("sparsity and dead atoms", ("l0", "atoms_active", "dead_atoms")),
    ("energy", ("energy",)),
    ("modality", ("modality",)),
    ("cones", ("cone",)),
    ("classifier", ("classifier",)),
    ("probing", ("p_acc",)),
    ("gap", ("gap",)),
    ("bridge", ("bridge", "rho", "fda")),
    ("retrieval", ("recall", "mrr", "delta_r", "retrieval")),
    ("MMS", ("mms",)),
    ("zero-shot", ("zero_shot",)),
    ("recovery", ("recovery",)),
    ("naming", ("naming",)),
    ("stability", ("stability",)),
)
OTHER_FAMILY = "other"


def metric_family(key: str) -> str:
    """The family of a summary key, from its longest matching prefix; OTHER_FAMILY if none.

    A train-split key (`r2_train`, `l0_train`) sits in the family of its eval-split key.
    """
    key = key.removesuffix(TRAIN_SUFFIX)
    matches = [
        (len(prefix), family)
        for family, prefixes in METRIC_FAMILIES
        for prefix in prefixes
        if key == prefix or key.startswith(f"{prefix}_")
    ]
    return max(matches)[1] if matches else OTHER_FAMILY


def group_by_family(keys: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(family, keys) in the order of METRIC_FAMILIES, then OTHER_FAMILY; keys keep their order."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(metric_family(key), []).append(key)
    order = [family for family, _ in METRIC_FAMILIES] + [OTHER_FAMILY]
    return [(family, groups[family]) for family in order if family in groups]


def split_modality(key: str) -> tuple[str, str]:
    """(metric, modality) of a summary key: `r2_image` → (r2, image), `r2_image_train` →
    (r2_train, image), `r2` → (r2, all).

    Keys ending in two modality words name a pair of modalities (`mms_image_text`) and keys
    ending in an atom kind (`modality_atoms_image`) are whole metrics: (key, all).
    """
    base = key.removesuffix(TRAIN_SUFFIX)
    split = TRAIN_SUFFIX if base != key else ""
    *head, last = base.split("_")
    if (
        head
        and last in MODALITIES
        and head[-1] not in MODALITIES
        and not base.startswith(ATOM_KIND_PREFIXES)
    ):
        return "_".join(head) + split, last
    return key, ALL_MODALITIES


def summary_table(
    runs: Iterable[dict], summary_paths: Iterable[str | Path], stability: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per run: the run's keys, every metric of its summary.json, and its stability.

    SETTING_KEYS go to `runs_table` instead; `trained_on`, then `health`, come right after the
    run keys. A key a
    run's summary.json lacks (undefined for that run) is NaN, an empty cell in the CSV. A run's
    `stability_seed*` / `stability_mixture*`
    columns are the means over the rows of the stability table (vlmsae.metrics.stability) that
    involve it; NaN when it has no partner of that kind.
    """
    import pandas as pd

    rows = []
    for run, path in zip(runs, summary_paths, strict=True):
        summary = json.loads(Path(path).read_text())
        health = {HEALTH_KEY: summary[HEALTH_KEY]} if HEALTH_KEY in summary else {}
        metrics = {key: value for key, value in summary.items() if key not in SETTING_KEYS}
        rows.append({**_run_columns(run), **health, **metrics})
    table = pd.DataFrame(rows)
    if stability is None or stability.empty:
        return table
    return table.merge(run_stability(stability), on=list(RUN_KEYS), how="left")


def _run_columns(run: dict) -> dict:
    """RUN_KEYS and TRAINED_ON of a run dict (one without TRAINED_ON trained on its dataset)."""
    return {**{key: run[key] for key in RUN_KEYS}, TRAINED_ON: run.get(TRAINED_ON, run["dataset"])}


def health_table(summary: pd.DataFrame) -> pd.DataFrame:
    """health.csv: RUN_KEYS and `health` of each run of summary.csv (empty where unknown)."""
    return summary.reindex(columns=[*RUN_KEYS, HEALTH_KEY])


def long_table(summary: pd.DataFrame) -> pd.DataFrame:
    """metrics_long.csv from the wide summary table: one row per run and defined metric.

    Columns: RUN_KEYS, `metric`, `modality` (`split_modality`), `value`. Undefined (NaN) cells
    and the text columns (`health`, the `<metric>_undefined` reasons) have no row. Rows follow
    the runs' order, then the summary's column order.
    """
    import pandas as pd

    metrics = [
        column
        for column in summary.columns
        if column not in (*RUN_KEYS, TRAINED_ON, HEALTH_KEY)
        and (pd.api.types.is_numeric_dtype(summary[column]) or summary[column].isna().all())
    ]
    long = summary.reset_index(names="run_order").melt(
        id_vars=["run_order", *RUN_KEYS], value_vars=metrics, var_name="key", value_name="value"
    )
    # melt lays the rows out metric by metric; a stable sort brings each run's rows together.
    long = long.dropna(subset=["value"]).sort_values("run_order", kind="stable")
    names = pd.DataFrame(long["key"].map(split_modality).tolist(), columns=["metric", "modality"])
    return pd.concat(
        [long[list(RUN_KEYS)].reset_index(drop=True), names, long["value"].reset_index(drop=True)],
        axis=1,
    )


def run_settings(config: dict) -> dict:
    """runs.csv columns of one run's config.json: `type` (the SAE variant) and the SAE's
    hyper-parameters under their own names, every training setting as `train_<name>`."""
    sae = dict(config["sae"])
    settings = {"type": sae.pop("variant"), **sae}
    for key, value in config["training"].items():
        if key not in RUN_KEYS:  # mixture and seed are the run's own keys
            settings[f"train_{key}"] = value
    return settings


def runs_table(
    runs: Iterable[dict], config_paths: Iterable[str | Path], summary_paths: Iterable[str | Path]
) -> pd.DataFrame:
    """runs.csv: one row per run, its keys, `trained_on`, `run_settings` (of the config.json of
    the SAE it scores) and the SETTING_KEYS of its summary.

    A setting a variant does not have (`k` of a ReLU SAE) is an empty cell.
    """
    import pandas as pd

    rows = []
    for run, config_path, summary_path in zip(runs, config_paths, summary_paths, strict=True):
        settings = run_settings(json.loads(Path(config_path).read_text()))
        summary = json.loads(Path(summary_path).read_text())
        measured = {k: summary[k] for k in SETTING_KEYS if k in summary and k not in settings}
        rows.append({**_run_columns(run), **settings, **measured})
    return pd.DataFrame(rows)


def run_stability(stability: pd.DataFrame) -> pd.DataFrame:
    """Per run and kind ('seed', 'mixture'): mean of every stability column over its pairs."""
    import pandas as pd

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
    import pandas as pd

    frames = [
        pd.read_parquet(path).assign(**{key: run[key] for key in RUN_KEYS})
        for run, path in zip(runs, atoms_paths, strict=True)
    ]
    return pd.concat(frames, ignore_index=True)


def stores_table(stores: Iterable[dict], summary_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per store: its keys (dataset, model) and the scalars of its store.json."""
    import pandas as pd

    rows = [
        {**store, **json.loads(Path(path).read_text())}
        for store, path in zip(stores, summary_paths, strict=True)
    ]
    return pd.DataFrame(rows)
