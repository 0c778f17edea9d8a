import json

import pandas as pd
import pytest

from vlmsae.tables import run_stability, summary_table


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
