import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
import zarr
from snakemake_runs import dry_run_jobs, snakemake, tiny_config

from vlmsae import sae
from vlmsae.stores.embedding_store import EVAL, EmbeddingStore, assign_pair_splits, write_store
from vlmsae.sweeps import (
    SELECTION_SPLIT,
    extension,
    point_variant,
    resolve_variant,
    round_values,
    score_point,
    select,
    sweep_points,
    sweep_round,
)
from vlmsae.training.variants import Variant

SETTINGS = {
    "alignment": {
        "values": [1e-4, 1e-3, 1e-2],
        "max_r2_drop": 0.05,
        "extension_factor": 10,
        "extension_cap": 1.0,
    },
    "group_sparsity": {"values": [0.01, 0.05, 0.1, 0.2], "l0_tolerance": 0.01},
    "mask_probability": {"values": [0.1, 0.2, 0.3, 0.4], "r2_tolerance": 0.01},
}


def test_alignment_takes_the_largest_beta_within_the_r2_budget():
    # The rule reads the authors' R² around one overall mean; the per-dimension R² (here
    # falling fast) does not decide.
    table = pd.DataFrame(
        {
            "value": [0.0, 1e-4, 1e-3, 1e-2],
            "r2_overall": [0.90, 0.89, 0.86, 0.70],
            "r2": [0.90, 0.70, 0.60, 0.50],
            "l0": [20.0] * 4,
        }
    )
    result = select("alignment", table, SETTINGS, k=20)
    assert result["chosen"] == 1e-3  # drops 0.01, 0.04 pass; 0.20 fails
    assert [row["chosen"] for row in result["table"]] == [False, False, True, False]


def test_alignment_falls_back_to_zero_when_every_beta_costs_too_much():
    table = pd.DataFrame(
        {"value": [0.0, 1e-4], "r2_overall": [0.9, 0.8], "r2": [0.9, 0.9], "l0": [20.0, 20.0]}
    )
    assert select("alignment", table, SETTINGS, k=20)["chosen"] == 0.0


def test_group_sparsity_keeps_l0_at_k():
    table = pd.DataFrame(
        {"value": [0.01, 0.05, 0.1, 0.2], "r2": [0.9] * 4, "l0": [32.0, 31.8, 30.0, 25.0]}
    )
    # floor = 32 · 0.99 = 31.68: λ = 0.05 is the largest that keeps it.
    assert select("group_sparsity", table, SETTINGS, k=32)["chosen"] == 0.05
    with pytest.raises(ValueError, match="needs the variant's k"):
        select("group_sparsity", table, SETTINGS, k=None)


def test_mask_probability_matches_the_unmasked_r2():
    table = pd.DataFrame(
        {
            "value": [0.0, 0.1, 0.2, 0.3, 0.4],
            "r2": [0.80, 0.805, 0.795, 0.78, 0.75],
            "l0": [32.0] * 5,
        }
    )
    assert select("mask_probability", table, SETTINGS, k=32)["chosen"] == 0.2
    far = table.assign(r2=[0.8, 0.7, 0.65, 0.6, 0.5])
    result = select("mask_probability", far, SETTINGS, k=32)
    assert result["chosen"] == 0.1 and "closest" in result["rule"]


def test_sweep_points_include_the_baseline_where_the_rule_needs_it():
    assert sweep_points("alignment", SETTINGS) == [0.0, 1e-4, 1e-3, 1e-2]
    assert sweep_points("group_sparsity", SETTINGS) == [0.01, 0.05, 0.1, 0.2]
    assert sweep_points("mask_probability", SETTINGS)[0] == 0.0


def test_resolution_order_and_points():
    entry = {"type": "topk", "k": 32, "group_sparsity": "sweep", "mask_probability": "sweep"}
    variant = Variant.from_config("gsae", entry)
    assert variant.swept == ["group_sparsity", "mask_probability"]
    assert point_variant(variant, "group_sparsity", 0.1, {}).regularisers.mask_probability == 0.0
    assert point_variant(variant, "mask_probability", 0.3, {"group_sparsity": 0.05}) == (
        Variant.from_config("gsae", {**entry, "group_sparsity": 0.05, "mask_probability": 0.3})
    )
    with pytest.raises(KeyError, match="has not run"):
        resolve_variant(variant, {"group_sparsity": 0.05})


def _store_with_eval_rows(path, eval_rows: str) -> EmbeddingStore:
    """A store of 1000 random pairs (20 % eval) whose eval rows are NaN or another draw.

    NaN rows are written behind the store's back (write_store refuses them), so the store
    fails verification: it is opened without it."""
    rng = np.random.default_rng(0)
    image, text = rng.standard_normal((2, 1000, 16)).astype(np.float32)
    split = assign_pair_splits(1000, 0.2, seed=0)
    is_eval = split == EVAL
    other = np.random.default_rng(1)
    image[is_eval], text[is_eval] = other.standard_normal((2, is_eval.sum(), 16))
    pairs = np.stack([np.arange(1000)] * 2, axis=1)
    write_store(
        path, image=image, text=text, pairs=pairs, image_split=split, text_split=split, attrs={}
    )
    if eval_rows == "nan":
        root = zarr.open_group(path, mode="r+")
        for name, rows in (("image", image), ("text", text)):
            rows[is_eval] = np.nan
            root[name][...] = rows
    return EmbeddingStore(path)


def test_sweep_points_are_scored_on_val_and_never_read_eval(tmp_path):
    torch.manual_seed(0)
    model = sae.build("topk", d=16, n_atoms=32, k=4).eval()
    poisoned = score_point(model, _store_with_eval_rows(tmp_path / "nan.zarr", "nan"), {})
    other = score_point(model, _store_with_eval_rows(tmp_path / "other.zarr", "random"), {})
    assert poisoned["split"] == other["split"] == SELECTION_SPLIT == "val"
    for key in ("r2", "r2_overall", "l0", "dead_atoms"):
        # Equal up to float rounding (torch's first forward pass may round differently).
        assert math.isfinite(poisoned[key]) and poisoned[key] == pytest.approx(other[key], rel=1e-6)


def _points(r2_by_value: dict[float, float]) -> list[dict]:
    """point.json records of an alignment sweep, R² per β."""
    return [
        {"value": value, "split": "val", "r2": r2, "r2_overall": r2, "l0": 20.0, "dead_atoms": 0}
        for value, r2 in r2_by_value.items()
    ]


def test_a_choice_at_the_top_of_the_grid_extends_it_one_value_per_round():
    r2 = {0.0: 0.90, 1e-4: 0.90, 1e-3: 0.89, 1e-2: 0.88, 0.1: 0.87, 1.0: 0.70}
    first = sweep_round(
        "alignment", _points({v: r2[v] for v in (0.0, 1e-4, 1e-3, 1e-2)}), None, SETTINGS, k=None
    )
    assert (first["chosen"], first["at_grid_edge"], first["extend_to"]) == (1e-2, True, 0.1)
    assert round_values("alignment", SETTINGS, None) == [0.0, 1e-4, 1e-3, 1e-2]
    values = round_values("alignment", SETTINGS, first)
    assert values == [0.0, 1e-4, 1e-3, 1e-2, 0.1]
    second = sweep_round("alignment", _points({v: r2[v] for v in values}), first, SETTINGS, None)
    assert (second["round"], second["extend_to"]) == (1, 1.0)
    values = round_values("alignment", SETTINGS, second)
    third = sweep_round("alignment", _points({v: r2[v] for v in values}), second, SETTINGS, None)
    # β = 1 drops R² by 0.2: 0.1 is now interior, and the sweep is done.
    assert (third["chosen"], third["at_grid_edge"], third["extend_to"]) == (0.1, False, None)
    table = pd.DataFrame(third["table"])
    assert table["round"].tolist() == [0, 0, 0, 0, 1, 2]
    assert not table["at_grid_edge"].any() and table["chosen"].sum() == 1


def test_the_cap_stops_the_extension_and_the_table_says_the_choice_is_at_the_edge():
    points = _points({0.0: 0.9, 1e-4: 0.9, 1e-3: 0.9, 1e-2: 0.9, 0.1: 0.9, 1.0: 0.9})
    result = select("alignment", pd.DataFrame(points), SETTINGS, k=None)
    assert result["chosen"] == 1.0 and result["at_grid_edge"]
    assert all(row["at_grid_edge"] for row in result["table"])
    assert extension("alignment", result, SETTINGS) is None  # 10 would pass extension_cap = 1


def test_only_beta_extends():
    table = pd.DataFrame({"value": [0.01, 0.05, 0.1, 0.2], "r2": [0.9] * 4, "l0": [32.0] * 4})
    result = select("group_sparsity", table, SETTINGS, k=32)
    assert result["chosen"] == 0.2 and result["at_grid_edge"]
    assert extension("group_sparsity", result, SETTINGS) is None


@pytest.mark.slow
def test_sweeps_choose_values_that_runs_then_use(tmp_path):
    config = tiny_config()
    config["variants"] = {
        "sae-a": {"preset": "sae-a", "n_atoms": 32, "k": 3, "alignment": "sweep"},
        "mgsae": {
            "preset": "mgsae",
            "n_atoms": 32,
            "k": 3,
            "group_sparsity": "sweep",
            "mask_probability": "sweep",
        },
    }
    config["sweeps"] = {
        "alignment": {"values": [1e-3, 1e-1]},
        "group_sparsity": {"values": [0.01, 0.1]},
        "mask_probability": {"values": [0.1, 0.3]},
    }
    dry = snakemake(tmp_path, "-n", config=config)
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = dry_run_jobs(dry)
    points = sorted(w.split("parameter=")[1] for r, w in jobs if r == "train_sweep_point")
    # β ∈ {0, 1e-3, 1e-1}; λ ∈ {0.01, 0.1}; p ∈ {0, 0.1, 0.3}; paired variants train at 1-1 only.
    assert len(points) == 8
    assert sorted(w for r, w in jobs if r == "train") == [
        "dataset=tiny, model=generator, variant=mgsae, mixture=1-1, seed=0",
        "dataset=tiny, model=generator, variant=sae-a, mixture=1-1, seed=0",
    ]
    # The runs, measured: each trained at its chosen values (the stages after metrics, which
    # read a run the same way whatever chose its settings, are left out).
    result = snakemake(tmp_path, "results/tables/summary.csv", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "results/tables/summary.csv")
    assert sorted(summary["variant"]) == ["mgsae", "sae-a"] and summary["r2"].notna().all()
    sweeps = tmp_path / "results/sweeps/tiny/generator"
    for variant, parameter in (
        ("sae-a", "alignment"),
        ("mgsae", "group_sparsity"),
        ("mgsae", "mask_probability"),
    ):
        chosen = yaml.safe_load((sweeps / variant / f"{parameter}.json").read_text())["chosen"]
        table = pd.read_csv(sweeps / variant / f"{parameter}.csv")
        assert table["chosen"].sum() == 1 and chosen in set(table["value"])
        run_config = yaml.safe_load(
            (tmp_path / f"results/sae/tiny/generator/{variant}/1-1/seed0/config.json").read_text()
        )
        assert run_config["training"][parameter] == chosen
