"""Run health (vlmsae.health): every flag on hand-computable summaries and train logs, the
thresholds as config keys, and runs whose reconstruction collapsed on one modality flagged."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from oracles import oracle_topk

from vlmsae.config import check_config
from vlmsae.errors import ConfigError
from vlmsae.health import HealthSettings, health_flags, health_text, rise, warn, with_health
from vlmsae.metrics.evaluate import EvalSettings, evaluate_run
from vlmsae.metrics.rows import unit_rows
from vlmsae.registry_base import parse_settings
from vlmsae.runs import Run
from vlmsae.stores.embedding_store import (
    EVAL,
    TRAIN,
    EmbeddingStore,
    assign_pair_splits,
    write_store,
)
from vlmsae.tables.summary import RUN_KEYS

DEFAULTS = HealthSettings()
N_PAIRS = 200
# A healthy run: every value on the right side of its threshold.
HEALTHY = {
    "n_atoms": 256,
    "r2": 0.8,
    "r2_image": 0.7,
    "r2_text": 0.9,
    "r2_train": 0.85,
    "dead_atoms": 128,  # exactly half: not above the share
}


def train_log(loss, mse=None) -> pd.DataFrame:
    """A train log logged every 100 steps (steps 100, 200, ...)."""
    loss = np.asarray(loss, dtype=float)
    return pd.DataFrame(
        {
            "step": 100 * np.arange(1, len(loss) + 1),
            "loss": loss,
            "mse": loss if mse is None else np.asarray(mse, dtype=float),
        }
    )


FALLING = train_log([5, 4, 3, 2, 1.5, 1.2, 1.1, 1.05, 1.0, 1.0])


def test_a_healthy_run_is_ok():
    assert health_flags(HEALTHY, FALLING, DEFAULTS) == []
    assert health_text([]) == "ok"
    summary, flags = with_health(HEALTHY, FALLING, DEFAULTS)
    assert flags == [] and summary == {**HEALTHY, "health": "ok"}
    assert list(summary)[-1] == "health"


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"r2": 0.42, "r2_train": 0.45}, "r2 0.42 < 0.5"),
        ({"r2_text": -2.67}, "r2_text -2.67 < 0"),
        ({"r2_image": -0.5}, "r2_image -0.5 < 0"),
        # 160 / 256 = 62.5 %, printed to the percent.
        ({"dead_atoms": 160}, "dead_atoms 160/256 = 62% > 50%"),
        # r2_train − r2 = 0.9 − 0.6 = 0.3 > 0.2.
        ({"r2": 0.6, "r2_train": 0.9}, "train_gap r2_train 0.9 - r2 0.6 = 0.3 > 0.2"),
    ],
)
def test_each_summary_check_names_its_numbers(change, flag):
    assert health_flags({**HEALTHY, **change}, FALLING, DEFAULTS) == [flag]


def test_flags_join_in_one_health_string():
    collapsed = {**HEALTHY, "r2": 0.42, "r2_text": -2.67, "r2_train": 0.45}
    summary, flags = with_health(collapsed, None, DEFAULTS)
    assert flags == ["r2 0.42 < 0.5", "r2_text -2.67 < 0"]
    assert summary["health"] == "r2 0.42 < 0.5; r2_text -2.67 < 0"


def test_checks_whose_keys_are_absent_are_skipped():
    # No train-split keys (evaluation.train_pairs 0), no atoms count: nothing to compare.
    assert health_flags({"r2": 0.9, "dead_atoms": 100}, None, DEFAULTS) == []


def test_rise_by_hand():
    # 10 rows, tail_share 0.2: windows of w = 2 rows; moving means 4.5 3.5 2.5 1.5 1 1 1 1.25 1.5;
    # the tail 1.5 against the minimum 1 (rows 5-6, the window ending at step 600): +50 %.
    values = np.array([5, 4, 3, 2, 1, 1, 1, 1, 1.5, 1.5])
    found = rise(values, 100 * np.arange(1, 11), 0.2)
    assert (found.tail_mean, found.minimum, found.minimum_step) == (1.5, 1.0, 600)
    assert found.relative == pytest.approx(0.5)
    # One row: the tail is the minimum.
    assert rise(np.array([3.0]), np.array([100]), 0.2).relative == 0
    # A minimum ≤ 0 (a negative alignment term) leaves the relative rise undefined.
    assert math.isnan(rise(np.array([0.1, -0.2, 0.0]), np.arange(3), 0.5).relative)


def test_a_loss_risen_at_the_end_is_flagged_with_its_numbers():
    log = train_log([5, 4, 3, 2, 1, 1, 1, 1, 1.5, 1.5], mse=FALLING["mse"])
    assert health_flags(HEALTHY, log, DEFAULTS) == [
        "loss_rise 50% > 10%: mean of the last 20% of logged steps 1.5, smoothed minimum 1 at "
        "step 600"
    ]
    # 4 rows: windows of one row. A rise of 10 % exactly (1.25 to 1.375) is not above the
    # threshold; of 12.5 % it is, against the first row of the minimum.
    log = train_log([2, 1.25, 1.25, 1.375], [2, 1, 1, 1.125])
    assert health_flags(HEALTHY, log, DEFAULTS) == [
        "mse_rise 12% > 10%: mean of the last 20% of logged steps 1.12, smoothed minimum 1 at "
        "step 200"
    ]


def test_reconstruction_worsening_under_a_falling_total_loss_is_flagged():
    # An alignment term pulls the total loss below 0 while the mse rises: the loss rise is
    # undefined (minimum ≤ 0), the mse rise is not.
    mse = np.array([0.3, 0.1, 0.05, 0.05, 0.06, 0.07, 0.08, 0.08, 0.08, 0.08])
    log = train_log(mse - np.linspace(0, 0.5, 10), mse)
    (flag,) = health_flags(HEALTHY, log, DEFAULTS)
    assert flag.startswith("mse_rise 60% > 10%:") and "smoothed minimum 0.05 at step 400" in flag


def test_non_finite_values_are_flagged_and_dropped_from_the_summary():
    summary = {**HEALTHY, "mms_image_text": math.nan, "rho": math.inf}
    log = train_log([5, 4, math.nan, 2, 1, 1, 1, 1, 1, 1], mse=FALLING["mse"])
    written, flags = with_health(summary, log, DEFAULTS)
    assert flags == ["non_finite mms_image_text, rho, train_log loss (1 rows)"]
    assert "mms_image_text" not in written and "rho" not in written
    json.dumps(written, allow_nan=False)  # what rule metrics writes


def test_thresholds_are_config_keys_with_defaults(tmp_path):
    config = yaml.safe_load(open("tests/tiny_config.yaml"))
    checked = check_config(config, "tests")
    assert checked["evaluation"]["health"] == {
        "min_r2": 0.5,
        "max_dead_share": 0.5,
        "max_train_gap": 0.2,
        "max_loss_rise": 0.1,
        "tail_share": 0.2,
    }
    looser = parse_settings(HealthSettings, {"min_r2": 0.3}, "evaluation.health")
    assert health_flags({**HEALTHY, "r2": 0.42, "r2_train": 0.45}, None, looser) == []
    config = yaml.safe_load(open("tests/tiny_config.yaml"))
    config["evaluation"]["health"] = {"min_r2": 0.3, "max_dead": 0.9}
    with pytest.raises(ConfigError, match="max_dead"):
        check_config(config, "tests")


def test_each_flag_is_one_warning_line_of_the_job_log(capsys):
    warn("tiny/generator/mp/1-1/seed0", ["r2 0.42 < 0.5", "r2_text -2.67 < 0"])
    assert capsys.readouterr().out.splitlines() == [
        "vlmsae: warning: tiny/generator/mp/1-1/seed0: r2 0.42 < 0.5",
        "vlmsae: warning: tiny/generator/mp/1-1/seed0: r2_text -2.67 < 0",
    ]


def split_store(path: Path) -> EmbeddingStore:
    """N_PAIRS pairs, every other one in eval: images with non-negative coordinates on e0..e7,
    captions on e8..e15 around the mean direction e8 with a little of e0 (unit rows, d = 16)."""
    rng = np.random.default_rng(0)
    image = np.zeros((N_PAIRS, 16))
    image[:, :8] = rng.random((N_PAIRS, 8))
    text = np.zeros((N_PAIRS, 16))
    text[:, 8:] = rng.random((N_PAIRS, 8)) * 0.3
    text[:, 8] += 1
    text[:, 0] = 0.05
    split = np.where(np.arange(N_PAIRS) % 2 == 0, EVAL, TRAIN).astype(np.int8)
    write_store(
        path,
        image=unit_rows(image).astype(np.float32),
        text=unit_rows(text).astype(np.float32),
        pairs=np.stack([np.arange(N_PAIRS)] * 2, axis=1),
        image_split=split,
        text_split=split,
        attrs={"dataset": "split", "model": "enc", "normalised": True},
    )
    return EmbeddingStore(path)


def test_a_run_whose_text_side_collapsed_is_flagged_in_its_summary(tmp_path):
    """An SAE whose atoms span the image rows only (e0..e7, decoder bias 0) reconstructs the
    images exactly and each caption t by its e0 part alone: R²_text = 1 − Σ‖t_8..15‖² /
    Σ‖t − t̄‖² < 0, the captions being far from the origin and close to their mean. The summary
    rule `metrics` writes names the collapse with its number, and is valid JSON."""
    store = split_store(tmp_path / "split.zarr")
    model = oracle_topk(np.eye(8, 16), k=8)
    settings = EvalSettings(max_pairs=N_PAIRS, metrics={"atom_usage": {"energy_top_m": [4]}})
    _, summary, _ = evaluate_run(model, store, settings)
    text = store.rows("text", store.split_pairs("eval")[:, 1]).astype(np.float64)
    expected = 1 - (text[:, 8:] ** 2).sum() / ((text - text.mean(axis=0)) ** 2).sum()
    assert summary["r2_text"] == pytest.approx(expected, rel=1e-5) and expected < 0
    assert summary["r2_image"] == pytest.approx(1, abs=1e-5)
    written, flags = with_health(summary, None, DEFAULTS)
    assert f"r2_text {summary['r2_text']:.3g} < 0" in flags
    assert json.loads(json.dumps(written, allow_nan=False))["health"] == health_text(flags)


@pytest.mark.slow
def test_the_workflow_writes_each_runs_health_to_every_place(tiny_workflow):
    """summary.json, summary.csv (beside the run keys), health.csv and one log line per flag."""
    summary = pd.read_csv(tiny_workflow / "results/tables/summary.csv")
    health = pd.read_csv(tiny_workflow / "results/tables/health.csv")
    assert list(summary.columns[:7]) == [*RUN_KEYS, "trained_on", "health"]
    assert health.equals(summary[[*RUN_KEYS, "health"]])
    for row in health.itertuples():
        run = Run(row.dataset, row.model, row.variant, row.mixture, row.seed).path
        written = json.loads((tiny_workflow / "results/metrics" / run / "summary.json").read_text())
        assert written["health"] == row.health
        log = (tiny_workflow / "logs/metrics" / f"{run}.log").read_text().splitlines()
        prefix = f"vlmsae: warning: {run}: "
        warnings = [line.removeprefix(prefix) for line in log if line.startswith(prefix)]
        assert warnings == ([] if row.health == "ok" else row.health.split("; "))


def class_text_store(path: Path, n: int = 2000, d: int = 32, n_classes: int = 10) -> EmbeddingStore:
    """The store of the SAE-A collapse (issue 24): CLIP-like offsets (image and text means
    orthogonal), images of 10 classes with varied noise, and each image's text the one vector of
    its class, so the text side has 10 distinct rows."""
    rng = np.random.default_rng(0)
    offsets = unit_rows(rng.normal(size=(2, d)))
    offsets[1] = unit_rows((offsets[1] - (offsets[1] @ offsets[0]) * offsets[0])[None])[0]
    classes = unit_rows(rng.normal(size=(n_classes, d)))
    label = rng.integers(0, n_classes, n)
    noise = rng.uniform(0.2, 0.8, (n, 1)) * unit_rows(rng.normal(size=(n, d)))
    image = unit_rows(offsets[0] + 0.7 * classes[label] + noise)
    class_text = unit_rows(
        offsets[1] + 0.6 * classes + 0.3 * unit_rows(rng.normal(size=(n_classes, d)))
    )
    split = assign_pair_splits(n, 0.2, 0)
    write_store(
        path,
        image=image.astype(np.float32),
        text=class_text[label].astype(np.float32),
        pairs=np.stack([np.arange(n)] * 2, axis=1),
        image_split=split,
        text_split=split,
        label=label,
        class_prompts=class_text[:, None, :].astype(np.float32),
        attrs={"dataset": "classes", "model": "enc", "normalised": True},
    )
    return EmbeddingStore(path)


def test_sae_a_with_an_alignment_that_outweighs_the_mse_collapses_and_is_flagged(tmp_path):
    """The cause of the SAE-A collapse: an alignment term large enough to outweigh the MSE
    (its gradient does not shrink as the fit improves) pulls image and text codes onto a few
    shared atoms; the train-batch R² peaks early, then falls. β = 0 on the same store trains
    fine, so neither the duplicated texts nor the missing decoder bias is the cause. Every
    flag comes from the defaults."""
    from vlmsae.training.trainer import TrainSettings, train
    from vlmsae.training.variants import VARIANT_PRESETS, Variant

    store = class_text_store(tmp_path / "classes.zarr")
    settings = TrainSettings(
        steps=600, batch_size=256, lr=1e-3, warmup_steps=50, log_every=25,
        checkpoint_every=10**9, device="cpu",
    )  # fmt: skip
    health = {}
    for beta in (0.0, 10.0):
        variant = {**VARIANT_PRESETS["sae-a"], "n_atoms": 64, "k": 8, "alignment": beta}
        model = train(
            store, Variant.from_config("v", variant), settings, "1-1", 0, tmp_path / f"beta{beta}"
        )
        _, summary, _ = evaluate_run(model, store, EvalSettings(max_pairs=400, train_pairs=400))
        log = pd.read_csv(tmp_path / f"beta{beta}" / "train_log.csv")
        health[beta] = with_health(summary, log, DEFAULTS)[1]
        if beta:
            assert log["r2"].idxmax() < len(log) // 2  # peaked in the first half of training
    assert health[0.0] == []
    names = {flag.split()[0] for flag in health[10.0]}
    assert {"r2", "r2_image"} <= names
