"""The papers' tables: one row per (dataset, model, variant, mixture), mean ± std over seeds."""

import numpy as np
import pandas as pd

from vlmsae.tables.papers import PAPER_TABLES, markdown, paper_table, seed_statistics


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
