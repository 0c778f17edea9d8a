"""Group-sparse Table 2: the dense CLAP row and one row per variant (and the dataset its SAE was
trained on), a column per benchmark."""

import numpy as np
import pandas as pd
import pytest

from vlmsae.tables.audio_benchmarks import KEYS, audio_benchmark_table, benchmark_columns
from vlmsae.tables.papers import SEEDS, markdown

SOURCES = {"g": "gtzan", "n": "nsynth", "f": "fmacaps", "c": "coco"}
GTZAN, NSYNTH, FMACAPS = (
    "GTZAN genres (acc.)",
    "NSynth instruments (acc.)",
    "FMACaps retrieval (MRR)",
)


def summary() -> pd.DataFrame:
    """Two seeds of sae and gsae on GTZAN and FMACaps, one on NSynth, each scoring the SAEs
    trained on dataset j (the paper's protocol); a COCO run beside."""
    return pd.DataFrame(
        {
            "dataset": ["g"] * 4 + ["n"] * 2 + ["f"] * 4 + ["c"],
            "model": ["clap"] * 10 + ["clip"],
            "variant": ["sae", "sae", "gsae", "gsae"]
            + ["sae", "gsae"]
            + ["sae", "sae", "gsae", "gsae"]
            + ["sae"],
            "mixture": ["1-1"] * 11,
            "seed": [0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0],
            "trained_on": ["j"] * 10 + ["c"],
            "zero_shot_top1_codes": [0.3, 0.4, 0.6, 0.7, 0.2, 0.25] + [np.nan] * 4 + [0.5],
            "mrr_t2i_codes": [0.9] * 6 + [0.02, 0.04, 0.05, 0.07] + [0.9],
        }
    )


def stores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": ["g", "n", "f", "c"],
            "model": ["clap", "clap", "clap", "clip"],
            "zero_shot_top1_dense": [0.71, 0.34, np.nan, 0.9],
            "mrr_t2i_dense": [0.5, 0.5, 0.075, 0.5],
        }
    )


def test_table_2_by_hand():
    table = audio_benchmark_table(summary(), stores(), SOURCES)
    assert list(table.columns) == [
        *KEYS,
        SEEDS,
        *(f"{c}{suffix}" for c in (GTZAN, NSYNTH, FMACAPS) for suffix in ("", " std", " n")),
    ]
    # The dense row first, then the variants in the order of summary.csv, each one SAE trained
    # on j across the three benchmarks; COCO has no column.
    assert table[list(KEYS)].values.tolist() == [
        ["clap", "dense", "", ""],
        ["clap", "sae", "1-1", "j"],
        ["clap", "gsae", "1-1", "j"],
    ]
    np.testing.assert_allclose(table[GTZAN], [0.71, 0.35, 0.65])
    np.testing.assert_allclose(table[NSYNTH], [0.34, 0.2, 0.25])
    np.testing.assert_allclose(table[FMACAPS], [0.075, 0.03, 0.06])
    assert table[f"{GTZAN} std"].iloc[1] == pytest.approx(np.std([0.3, 0.4], ddof=1))
    # A dense value is one measurement: no spread; NSynth has one seed per variant.
    assert np.isnan(table[f"{GTZAN} std"].iloc[0])
    assert table[f"{NSYNTH} n"].tolist() == [1, 1, 1]
    assert table[SEEDS].tolist() == [0, 2, 2]
    lines = markdown(table, (*KEYS, SEEDS)).splitlines()
    assert lines[0] == (
        f"| model | variant | mixture | trained_on | seeds | {GTZAN} | {NSYNTH} | {FMACAPS} |"
    )
    assert lines[2] == "| clap | dense |  |  | 0 | 0.71 | 0.34 | 0.075 |"
    assert lines[3].startswith("| clap | sae | 1-1 | j | 2 | 0.35 ± 0.071 | 0.2 (n=1) | 0.03 ± ")


def test_saes_trained_on_each_benchmark_get_a_row_each():
    """Without sae_from, each benchmark's SAE is a different one: never merged into one row."""
    own = summary().assign(trained_on=summary()["dataset"])
    table = audio_benchmark_table(own, stores(), SOURCES).set_index(["variant", "trained_on"])
    assert sorted(table.index) == sorted(
        [("dense", ""), *((v, d) for v in ("sae", "gsae") for d in ("g", "n", "f"))]
    )
    columns = [GTZAN, NSYNTH, FMACAPS]
    assert table.loc[("sae", "g"), columns].tolist()[0] == pytest.approx(0.35)
    assert table.loc[("sae", "g"), columns[1:]].isna().all()
    assert table.loc[("gsae", "n"), NSYNTH] == pytest.approx(0.25)
    assert table.loc[("gsae", "f"), FMACAPS] == pytest.approx(0.06)
    assert table.loc[("gsae", "f"), columns[:2]].isna().all()


def test_columns_come_from_the_sources_and_empty_ones_are_left_out():
    # A second GTZAN store gets a column of its own; zero-shot is undefined on every run and
    # store of FMACaps, so only its MRR counts (and NSynth, absent here, has no column).
    sources = {"f": "fmacaps", "g": "gtzan", "g2": "gtzan"}
    assert [column for column, _, _ in benchmark_columns(sources)] == [
        f"{GTZAN} [g]",
        f"{GTZAN} [g2]",
        FMACAPS,
    ]
    table = audio_benchmark_table(summary(), stores(), sources)
    assert f"{GTZAN} [g]" in table and FMACAPS in table
    assert f"{GTZAN} [g2]" not in table  # no store, no run
    no_mrr = audio_benchmark_table(summary().drop(columns="mrr_t2i_codes"), stores(), SOURCES)
    assert no_mrr[FMACAPS].iloc[0] == 0.075 and no_mrr[FMACAPS].iloc[1:].isna().all()
    assert no_mrr[f"{FMACAPS} n"].tolist() == [1, 0, 0]


def test_a_config_without_benchmarks_gives_the_key_columns():
    table = audio_benchmark_table(summary(), stores(), {"c": "coco"})
    assert table.empty and list(table.columns) == [*KEYS, SEEDS]
    assert (
        markdown(table, (*KEYS, SEEDS))
        == "| model | variant | mixture | trained_on | seeds |\n|---|---|---|---|---|\n"
    )
