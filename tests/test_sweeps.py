import pandas as pd
import pytest

from vlmsae.sweeps import point_variant, resolve_variant, select, sweep_points, swept_parameters

SETTINGS = {
    "alignment": {"values": [1e-4, 1e-3, 1e-2], "max_r2_drop": 0.05},
    "group_sparsity": {"values": [0.01, 0.05, 0.1, 0.2], "l0_tolerance": 0.01},
    "mask_probability": {"values": [0.1, 0.2, 0.3, 0.4], "r2_tolerance": 0.01},
}


def test_alignment_takes_the_largest_beta_within_the_r2_budget():
    table = pd.DataFrame({"value": [0.0, 1e-4, 1e-3, 1e-2], "r2": [0.90, 0.89, 0.86, 0.70],
                          "l0": [20.0] * 4})
    result = select("alignment", table, SETTINGS, k=20)
    assert result["chosen"] == 1e-3  # drops 0.01, 0.04 pass; 0.20 fails
    assert [row["chosen"] for row in result["table"]] == [False, False, True, False]


def test_alignment_falls_back_to_zero_when_every_beta_costs_too_much():
    table = pd.DataFrame({"value": [0.0, 1e-4], "r2": [0.9, 0.8], "l0": [20.0, 20.0]})
    assert select("alignment", table, SETTINGS, k=20)["chosen"] == 0.0


def test_group_sparsity_keeps_l0_at_k():
    table = pd.DataFrame({"value": [0.01, 0.05, 0.1, 0.2], "r2": [0.9] * 4,
                          "l0": [32.0, 31.8, 30.0, 25.0]})
    # floor = 32 · 0.99 = 31.68: λ = 0.05 is the largest that keeps it.
    assert select("group_sparsity", table, SETTINGS, k=32)["chosen"] == 0.05
    with pytest.raises(ValueError, match="needs the variant's k"):
        select("group_sparsity", table, SETTINGS, k=None)


def test_mask_probability_matches_the_unmasked_r2():
    table = pd.DataFrame({"value": [0.0, 0.1, 0.2, 0.3, 0.4], "r2": [0.80, 0.805, 0.795, 0.78,
                                                                       0.75], "l0": [32.0] * 5})
    assert select("mask_probability", table, SETTINGS, k=32)["chosen"] == 0.2
    far = table.assign(r2=[0.8, 0.7, 0.65, 0.6, 0.5])
    result = select("mask_probability", far, SETTINGS, k=32)
    assert result["chosen"] == 0.1 and "closest" in result["rule"]


def test_sweep_points_include_the_baseline_where_the_rule_needs_it():
    assert sweep_points("alignment", SETTINGS) == [0.0, 1e-4, 1e-3, 1e-2]
    assert sweep_points("group_sparsity", SETTINGS) == [0.01, 0.05, 0.1, 0.2]
    assert sweep_points("mask_probability", SETTINGS)[0] == 0.0


def test_resolution_order_and_points():
    variant = {"type": "topk", "k": 32, "group_sparsity": "sweep", "mask_probability": "sweep"}
    assert swept_parameters(variant) == ["group_sparsity", "mask_probability"]
    assert point_variant(variant, "group_sparsity", 0.1, {})["mask_probability"] == 0.0
    assert point_variant(variant, "mask_probability", 0.3, {"group_sparsity": 0.05}) == {
        **variant, "group_sparsity": 0.05, "mask_probability": 0.3}
    with pytest.raises(KeyError, match="has not run"):
        resolve_variant(variant, {"group_sparsity": 0.05})
