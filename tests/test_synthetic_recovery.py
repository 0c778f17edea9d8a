"""The synthetic recovery table: mean ± std over seeds per (τ1, variant), by hand."""

import numpy as np
import pandas as pd
import pytest

from vlmsae.tables.papers import markdown
from vlmsae.tables.recovery import KEYS, recovery_table, synthetic_datasets


def _summary() -> pd.DataFrame:
    rows = []
    for dataset, w in (("tau-1", (0.4, 0.2)), ("tau-0.5", (0.1, 0.3))):
        for seed, value in enumerate(w):
            rows.append(
                {
                    "dataset": dataset,
                    "model": "generator",
                    "variant": "sae",
                    "mixture": "1-1",
                    "seed": seed,
                    "recovery_w": value,
                    "recovery_mma": 1 - value,
                    "r2_overall": 0.99,
                    "l0": 10.0,
                }
            )
    rows.append({**rows[0], "dataset": "coco", "recovery_w": np.nan})
    return pd.DataFrame(rows)


def test_mean_and_std_over_seeds_per_tau1():
    table = recovery_table(_summary(), {"tau-1": 1.0, "tau-0.5": 0.5})
    assert list(table["tau1"]) == [1.0, 0.5]  # iso-energy holds first; real data left out
    assert table["W"].tolist() == pytest.approx([0.3, 0.2])
    assert table["W std"].tolist() == pytest.approx([np.std([0.4, 0.2], ddof=1)] * 2)
    assert table["mma"].tolist() == pytest.approx([0.7, 0.8])
    assert table["seeds"].tolist() == [2, 2]
    text = markdown(table, KEYS)
    assert text.splitlines()[0].startswith("| tau1 | dataset |")
    assert "0.3 ± 0.14" in text
    assert "naming accuracy" not in table.columns  # the runs named no atom


def test_naming_accuracy_is_a_column_when_the_runs_named_their_atoms():
    summary = _summary().assign(naming_accuracy=[1.0, 0.5, 0.25, 0.75, np.nan])
    table = recovery_table(summary, {"tau-1": 1.0, "tau-0.5": 0.5})
    assert table["naming accuracy"].tolist() == pytest.approx([0.75, 0.5])
    assert table["naming accuracy std"].tolist() == pytest.approx([np.sqrt(0.125)] * 2)


def test_config_datasets_and_no_synthetic_run():
    config = {
        "datasets": {
            "a": {"source": "synthetic", "synthetic": {"tau1": 0.75}},
            "b": {"source": "precomputed", "precomputed": {}},
        }
    }
    assert synthetic_datasets(config) == {"a": 0.75}
    with pytest.raises(ValueError, match="no run of a synthetic dataset"):
        recovery_table(_summary(), {"elsewhere": 1.0})
