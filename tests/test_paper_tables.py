"""The papers' tables: one row per (dataset, model, variant, mixture), mean ± std over seeds."""

from itertools import product

import numpy as np
import pandas as pd

from vlmsae.tables.papers import (
    GRID_KEYS,
    GRID_MODELS,
    PAPER_TABLES,
    SEEDS,
    grid_model,
    group_sparse_grid,
    markdown,
    paper_table,
    seed_statistics,
)


def summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": ["d", "d", "d", "d"],
            "model": ["m", "m", "m", "m"],
            "variant": ["topk", "topk", "topk", "mp"],
            "mixture": ["1-1", "1-1", "5-1", "1-1"],
            "seed": [0, 1, 0, 0],
            "p_acc": [0.6, 0.8, 0.5, 0.9],
            "rho": [2.0, np.nan, 1.0, 3.0],  # undefined for one seed
            "mse_sum": [1.0, 1.0, 2.0, 0.5],
        }
    )


def test_seed_statistics_by_hand():
    stats = seed_statistics(summary(), ["p_acc", "rho"])
    assert stats[["variant", "mixture"]].values.tolist() == [
        ["topk", "1-1"],
        ["topk", "5-1"],
        ["mp", "1-1"],
    ]
    assert stats["seeds"].tolist() == [2, 1, 1]
    assert np.allclose(stats["p_acc"], [0.7, 0.5, 0.9])
    assert np.isclose(stats["p_acc_std"].iloc[0], np.std([0.6, 0.8], ddof=1))
    assert stats["p_acc_std"].iloc[1:].isna().all()  # one seed: no spread
    assert stats["rho"].tolist() == [2.0, 1.0, 3.0]  # the undefined value is skipped


def test_paper_table_names_columns_as_the_paper_and_leaves_out_what_is_absent():
    table = paper_table("iso_energy", summary())
    names = dict(PAPER_TABLES["iso_energy"])
    assert names["ρ"] == "rho" and names["MSE"] == "mse_sum"
    assert list(table.columns) == [
        "dataset",
        "model",
        "variant",
        "mixture",
        "seeds",
        "MSE",
        "MSE std",
        "MSE n",
        "p_acc",
        "p_acc std",
        "p_acc n",
        "ρ",
        "ρ std",
        "ρ n",
    ]  # R², W, mma, FDA, δ_r: no run has them
    assert table["ρ n"].tolist() == [1, 1, 1]  # undefined for one of the first row's seeds
    assert np.allclose(table["p_acc"], [0.7, 0.5, 0.9])


def test_store_level_baselines_join_each_row_of_their_store():
    stores = pd.DataFrame({"dataset": ["d"], "model": ["m"], "zero_shot_top1_dense": [0.4]})
    rows = summary().assign(zero_shot_top1_codes=[0.3, 0.5, 0.2, 0.1])
    table = paper_table("group_sparse", rows, stores)
    assert table["zero-shot top-1 (dense)"].tolist() == [0.4, 0.4, 0.4]
    assert np.allclose(table["zero-shot top-1 (codes)"], [0.4, 0.2, 0.1])


def test_markdown_writes_mean_plus_minus_std():
    text = markdown(paper_table("iso_energy", summary()))
    lines = text.splitlines()
    assert lines[0] == "| dataset | model | variant | mixture | seeds | MSE | p_acc | ρ |"
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    # ρ is defined for one of the row's two seeds: its cell says so.
    assert lines[2] == "| d | m | topk | 1-1 | 2 | 1 ± 0 | 0.7 ± 0.14 | 2 (n=1) |"
    assert lines[3] == "| d | m | topk | 5-1 | 1 | 2 | 0.5 | 1 |"


def test_a_value_measured_once_shows_n_not_a_zero_spread():
    """Two seeds give one pair: each run carries that pair's stability, which has no spread. A
    store-level value repeats on each run of its store: measured once too."""
    rows = summary().assign(stability_seed=[0.81, 0.81, np.nan, np.nan], r2=[0.5, 0.7, 0.6, 0.4])
    stores = pd.DataFrame({"dataset": ["d"], "model": ["m"], "zero_shot_top1_dense": [0.4]})
    rows = rows.assign(zero_shot_top1_codes=[0.3, 0.5, 0.2, 0.1])
    linear = paper_table("linear_structure", rows)
    assert linear["stability (seeds)"].iloc[0] == 0.81
    assert np.isnan(linear["stability (seeds) std"].iloc[0])  # not 0: one pair, no spread
    assert "| 0.6 ± 0.14 | 0.81 (n=1) |" in markdown(linear).splitlines()[2]
    group = paper_table("group_sparse", rows, stores)
    assert group["zero-shot top-1 (dense) std"].isna().all()
    assert "0.4 (n=1)" in markdown(group).splitlines()[2]
    assert "± 0 " not in markdown(linear) + markdown(group)


def _grid_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, runs) of an expansion × K grid on d = 16: SAE, GSAE and MGSAE at n_atoms 32 and
    64, k 4 and 8, two seeds (one MGSAE seed without zero-shot), plus runs outside the grid."""
    kinds = {"sae": (0.0, 0.0), "gsae": (0.01, 0.0), "mgsae": (0.01, 0.05)}
    summary, runs = [], []
    for (name, (lam, p)), n_atoms, k, seed in product(kinds.items(), (32, 64), (4, 8), (0, 1)):
        keys = {
            "dataset": "d",
            "model": "m",
            "variant": f"{name}-natoms{n_atoms}-k{k}",
            "mixture": "1-1",
            "seed": seed,
        }
        accuracy = 0.1 * list(kinds).index(name) + n_atoms / 1000 + k / 100 + 0.02 * seed
        summary.append({**keys, "zero_shot_top1_codes": accuracy})
        runs.append(
            {
                **keys,
                "type": "topk",
                "d": 16,
                "n_atoms": n_atoms,
                "k": k,
                "train_alignment": 0.0,
                "train_group_sparsity": lam,
                "train_mask_probability": p,
            }
        )
    summary = pd.DataFrame(summary)
    last = summary.index[-1]  # mgsae-natoms64-k8, seed 1: zero-shot undefined
    summary.loc[last, "zero_shot_top1_codes"] = np.nan
    runs = pd.DataFrame(runs)
    # Outside the grid: another type, an aligned TopK (SAE-A like), masking without λ.
    others = runs.iloc[:3].assign(variant=["bt", "aligned", "masked"])
    others["type"] = ["batchtopk", "topk", "topk"]
    others["train_alignment"] = [0.0, 1e-4, 0.0]
    others["train_mask_probability"] = [0.0, 0.0, 0.2]
    extra = summary.iloc[:3].assign(variant=["bt", "aligned", "masked"], zero_shot_top1_codes=0.9)
    return pd.concat([summary, extra]), pd.concat([runs, others])


def test_grid_model_kinds():
    _, runs = _grid_runs()
    kinds = grid_model(runs.reset_index(drop=True))
    assert kinds.iloc[:24].tolist() == ["SAE"] * 8 + ["GSAE"] * 8 + ["MGSAE"] * 8
    assert kinds.iloc[24:].isna().all()


def test_group_sparse_grid_by_hand():
    summary, runs = _grid_runs()
    table = group_sparse_grid(summary, runs)
    assert list(table.columns) == [
        *GRID_KEYS,
        "seeds",
        *(f"{kind}{suffix}" for kind in GRID_MODELS for suffix in ("", " std", " n")),
    ]
    # Rows: expansion n_atoms / d ∈ {2, 4} × K ∈ {4, 8}, in the paper's order.
    assert table[["expansion", "K"]].values.tolist() == [[2, 4], [2, 8], [4, 4], [4, 8]]
    # SAE at expansion 2 (n_atoms 32), K 4: seeds 0.032 + 0.04 and the same + 0.02.
    assert np.isclose(table["SAE"].iloc[0], 0.082)
    assert np.isclose(table["SAE std"].iloc[0], np.std([0.072, 0.092], ddof=1))
    assert np.allclose(table["GSAE"] - table["SAE"], 0.1)
    # The undefined seed is skipped: one measurement, no spread, n = 1.
    assert np.isclose(table["MGSAE"].iloc[3], 0.2 + 0.064 + 0.08)
    assert np.isnan(table["MGSAE std"].iloc[3]) and table["MGSAE n"].tolist() == [2, 2, 2, 1]
    assert table["seeds"].tolist() == [2, 2, 2, 2]
    lines = markdown(table, (*GRID_KEYS, SEEDS)).splitlines()
    assert lines[0] == "| dataset | model | mixture | expansion | K | seeds | SAE | GSAE | MGSAE |"
    assert lines[2] == "| d | m | 1-1 | 2 | 4 | 2 | 0.082 ± 0.014 | 0.182 ± 0.014 | 0.282 ± 0.014 |"
    assert lines[5].endswith("| 0.344 (n=1) |")


def test_group_sparse_grid_leaves_out_what_is_not_measured():
    summary, runs = _grid_runs()
    # A fractional expansion factor stays a fraction.
    assert group_sparse_grid(summary, runs.assign(d=64))["expansion"].tolist() == [
        0.5,
        0.5,
        1,
        1,
    ]
    only_sae = group_sparse_grid(summary[summary["variant"].str.startswith("sae")], runs)
    assert [c for c in only_sae.columns if c in GRID_MODELS] == ["SAE"]
    empty = group_sparse_grid(summary.drop(columns="zero_shot_top1_codes"), runs)
    assert empty.empty and list(empty.columns) == [*GRID_KEYS, SEEDS]
