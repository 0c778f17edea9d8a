import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlmsae import sae
from vlmsae.tables.summary import (
    OTHER_FAMILY,
    RUN_KEYS,
    group_by_family,
    health_table,
    long_table,
    metric_family,
    run_stability,
    runs_table,
    split_modality,
    summary_table,
)

RESULTS_DOC = Path(__file__).resolve().parent.parent / "docs" / "results.md"
BASE = {"dataset": "d", "model": "m", "variant": "v"}


def write_summaries(tmp_path: Path, summaries: list[dict]) -> list[Path]:
    paths = []
    for i, summary in enumerate(summaries):
        paths.append(tmp_path / f"summary{i}.json")
        paths[-1].write_text(json.dumps(summary))
    return paths


def test_run_stability_averages_the_pairs_of_each_run(tmp_path):
    base = {"dataset": "d", "model": "m", "variant": "v"}
    stability = pd.DataFrame(
        [
            {
                **base,
                "kind": "seed",
                "mixture_a": "1-1",
                "mixture_b": "1-1",
                "seed_a": 0,
                "seed_b": 1,
                "stability": 0.4,
                "stability_top2": 0.9,
            },
            {
                **base,
                "kind": "seed",
                "mixture_a": "1-1",
                "mixture_b": "1-1",
                "seed_a": 0,
                "seed_b": 2,
                "stability": 0.6,
                "stability_top2": 0.7,
            },
            {
                **base,
                "kind": "mixture",
                "mixture_a": "1-1",
                "mixture_b": "5-1",
                "seed_a": 0,
                "seed_b": 0,
                "stability": 0.3,
                "stability_top2": 0.8,
            },
        ]
    )
    per_run = run_stability(stability).set_index(["mixture", "seed"])
    assert per_run.loc[("1-1", 0), "stability_seed"] == pytest.approx(0.5)
    assert per_run.loc[("1-1", 0), "stability_seed_top2"] == pytest.approx(0.8)
    assert per_run.loc[("1-1", 1), "stability_seed"] == pytest.approx(0.4)
    assert per_run.loc[("5-1", 0), "stability_mixture"] == pytest.approx(0.3)
    assert pd.isna(per_run.loc[("5-1", 0), "stability_seed"])

    runs = [{**base, "mixture": "1-1", "seed": 0}, {**base, "mixture": "5-1", "seed": 0}]
    paths = []
    for i in range(len(runs)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps({"r2": 0.9 + i / 100}))
    table = summary_table(runs, paths, stability)
    assert list(table["r2"]) == [0.9, 0.91]
    assert table.loc[0, "stability_mixture"] == pytest.approx(0.3)


def test_summary_keeps_metrics_and_leaves_undefined_ones_empty(tmp_path):
    runs = [{**BASE, "mixture": "1-1", "seed": seed} for seed in (0, 1)]
    paths = write_summaries(
        tmp_path,
        [{"n_atoms": 8, "eval_pairs": 50, "r2": 0.9, "rho": 1.5}, {"n_atoms": 8, "r2": 0.8}],
    )
    table = summary_table(runs, paths)
    assert list(table.columns) == [*RUN_KEYS, "trained_on", "r2", "rho"]
    table.to_csv(tmp_path / "summary.csv", index=False)
    assert (tmp_path / "summary.csv").read_text().splitlines()[2] == "d,m,v,1-1,1,d,0.8,"
    assert pd.isna(pd.read_csv(tmp_path / "summary.csv").loc[1, "rho"])


def test_health_sits_beside_the_run_keys_and_stays_out_of_the_long_table(tmp_path):
    runs = [{**BASE, "mixture": "1-1", "seed": seed} for seed in (0, 1)]
    flags = "r2_text -2.67 < 0; dead_atoms 160/256 = 62% > 50%"
    paths = write_summaries(
        tmp_path, [{"r2": 0.9, "health": "ok"}, {"r2": 0.42, "r2_text": -2.67, "health": flags}]
    )
    table = summary_table(runs, paths)
    assert list(table.columns) == [*RUN_KEYS, "trained_on", "health", "r2", "r2_text"]
    assert health_table(table).to_dict("list") == {
        **{key: [run[key] for run in runs] for key in RUN_KEYS},
        "health": ["ok", flags],
    }
    long = long_table(table.assign(r2_image_undefined=[np.nan, "every image row is the same"]))
    assert "health" not in set(long["metric"]) and len(long) == 3
    assert long["value"].dtype == np.float64
    assert metric_family("health") == "health"


def test_long_table_has_one_row_per_defined_metric(tmp_path):
    summary = pd.DataFrame(
        [
            {**BASE, "mixture": "1-1", "seed": 0, "r2": 0.9, "r2_image": 0.8, "rho": np.nan},
            {**BASE, "mixture": "5-1", "seed": 0, "r2": 0.7, "r2_image": 0.6, "rho": 2.0},
        ]
    )
    long = long_table(summary)
    assert list(long.columns) == [
        "dataset",
        "model",
        "variant",
        "mixture",
        "seed",
        "metric",
        "modality",
        "value",
    ]
    assert long[["mixture", "metric", "modality", "value"]].values.tolist() == [
        ["1-1", "r2", "all", 0.9],
        ["1-1", "r2", "image", 0.8],
        ["5-1", "r2", "all", 0.7],
        ["5-1", "r2", "image", 0.6],
        ["5-1", "rho", "all", 2.0],
    ]


@pytest.mark.parametrize(
    "key, metric, modality",
    [
        ("r2", "r2", "all"),
        ("r2_text", "r2", "text"),
        ("dead_atoms_image", "dead_atoms", "image"),
        ("r2_train", "r2_train", "all"),
        ("r2_image_train", "r2_train", "image"),
        ("mms_image_text", "mms_image_text", "all"),
        ("mms_text_text", "mms_text_text", "all"),
        ("modality_atoms_image", "modality_atoms_image", "all"),
        ("modality_energy_share_text", "modality_energy_share_text", "all"),
        ("cone_cos_within_image_mean", "cone_cos_within_image_mean", "all"),
    ],
)
def test_the_modality_of_a_metric_is_its_last_word(key, metric, modality):
    assert split_modality(key) == (metric, modality)


@pytest.mark.parametrize(
    "key, family",
    [
        ("r2_image", "reconstruction"),
        ("r2_train", "reconstruction"),
        ("l0_train", "sparsity and dead atoms"),
        ("dead_atoms_text", "sparsity and dead atoms"),
        ("retrieval_seed", "settings"),
        ("retrieval_pairs", "settings"),
        ("recall_inbatch_i2t_dense", "retrieval"),
        ("rho", "bridge"),
        ("stability_seed_top10", "stability"),
        ("something_new", OTHER_FAMILY),
    ],
)
def test_the_family_of_a_key_is_its_longest_prefix(key, family):
    assert metric_family(key) == family


def test_families_come_in_a_fixed_order():
    groups = group_by_family(["new", "mms_image_text", "r2", "l0", "mse", "eval_seed"])
    assert groups == [
        ("settings", ["eval_seed"]),
        ("reconstruction", ["r2", "mse"]),
        ("sparsity and dead atoms", ["l0"]),
        ("MMS", ["mms_image_text"]),
        (OTHER_FAMILY, ["new"]),
    ]


def documented_summary_keys() -> list[str]:
    """The keys of the summary.json table of docs/results.md, placeholders made words."""
    section = RESULTS_DOC.read_text().split("### `summary.json`")[1].split("\n\n")[0]
    keys = []
    for line in section.splitlines()[3:]:
        first_cell = line.split("|")[1]
        for name in re.findall(r"`([^`]+)`", first_cell):
            if not name.startswith("_"):  # `(+ _sq)` suffixes
                keys.append(re.sub(r"\{[^}]*\}|<[^>]*>", "x", name))
    return keys


def test_every_documented_summary_key_has_a_family():
    keys = documented_summary_keys()
    assert "r2" in keys and len(keys) > 30
    assert [key for key in keys if metric_family(key) == OTHER_FAMILY] == []


def test_runs_table_holds_each_run_settings(tmp_path):
    runs, configs = [], []
    for seed, (variant, hyper) in enumerate([("topk", {"k": 3}), ("relu", {})]):
        runs.append({**BASE, "variant": variant, "mixture": "1-1", "seed": seed})
        training = {"steps": 40, "lr": 0.001, "mixture": "1-1", "seed": seed, "alignment": 0.0}
        sae.save(sae.build(variant, 4, 8, **hyper), tmp_path / variant, {"training": training})
        configs.append(tmp_path / variant / "config.json")
    summaries = write_summaries(tmp_path, [{"n_atoms": 8, "eval_pairs": 50, "r2": 0.9}] * 2)
    table = runs_table(runs, configs, summaries).set_index("variant")
    assert list(table["type"]) == ["topk", "relu"]
    assert table.loc["topk", "k"] == 3 and pd.isna(table.loc["relu", "k"])
    assert (table["n_atoms"] == 8).all() and (table["eval_pairs"] == 50).all()
    assert (table["train_steps"] == 40).all() and (table["train_alignment"] == 0).all()
    assert "r2" not in table and "train_seed" not in table and "train_mixture" not in table
