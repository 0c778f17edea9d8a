"""The stop rule (vlmsae.training.schedule): a run ends once its logged loss reaches a plateau,
after a learning-rate decay; `steps` is a cap; a killed run resumes bit-identically."""

import csv
import json

import pytest
import torch
from test_trainer import VARIANT, _interrupt_at, _raise_interrupt, _variant

from vlmsae import sae
from vlmsae.training.checkpoint import CHECKPOINT_FILE, fingerprint
from vlmsae.training.schedule import Schedule, StopRule, lr_factor, plateau
from vlmsae.training.trainer import TrainSettings, train

RULE = StopRule(tolerance=0.05, window=2, decay_steps=40)
# On the tiny store the loss falls by more than 12 % over 40 steps until step 110 or so.
STOPPING = TrainSettings(
    steps=400,
    batch_size=64,
    lr=3e-3,
    warmup_steps=10,
    log_every=10,
    buffer_rows=256,
    checkpoint_every=40,
    stop_tolerance=0.12,
    stop_window=4,
    stop_decay_steps=40,
)


def _log(path):
    return list(csv.DictReader(open(path / "train_log.csv")))


def test_plateau_fires_on_a_flat_loss_only():
    assert plateau([1.0, 0.8, 0.6, 0.4], RULE) is None  # still falling
    assert plateau([1.0, 0.5, 0.49, 0.48], RULE) is not None  # 2 % over the last 2 rows
    assert plateau([1.0, 0.5, 0.49, 0.52], RULE) is not None  # rising counts as flat
    assert plateau([0.5, 0.49], RULE) is None  # fewer rows than the window
    assert "over the last 2 log rows" in plateau([0.5, 0.5, 0.5], RULE)


def test_without_a_rule_the_schedule_is_the_cosine_over_steps():
    schedule = Schedule(100, 10, None)
    assert schedule.end == 100 and schedule.record() == {}
    assert [schedule.factor(step) for step in range(101)] == [
        lr_factor(step, 10, 100) for step in range(101)
    ]
    schedule.observe(50, [1.0] * 10)  # a flat loss changes nothing without a rule
    assert schedule.end == 100


def test_with_a_rule_the_learning_rate_is_stable_until_the_plateau_then_decays():
    schedule = Schedule(1000, 10, RULE)
    # Until a plateau, the cap: the decay takes the last decay_steps.
    assert (schedule.decay_from, schedule.end) == (960, 1000)
    assert schedule.factor(4) == pytest.approx(0.5) and schedule.factor(500) == 1.0
    schedule.observe(5, [1.0] * 5)  # no stop during the warmup
    schedule.observe(200, [1.0, 0.8, 0.6])  # still falling
    assert schedule.decay_from == 960
    schedule.observe(300, [1.0, 0.6, 0.599, 0.598])
    assert (schedule.decay_from, schedule.end) == (300, 340)
    assert schedule.factor(300) == 1.0
    assert schedule.factor(320) == pytest.approx(0.5)
    assert schedule.factor(340) == pytest.approx(0.0)
    schedule.observe(330, [0.5] * 10)  # once decaying, the end stays
    assert schedule.end == 340
    restored = Schedule(1000, 10, RULE)
    restored.load_state_dict(json.loads(json.dumps(schedule.state_dict())))
    assert (restored.decay_from, restored.end, restored.reason) == (300, 340, schedule.reason)


@pytest.fixture(scope="module")
def stopped_run(tiny_store, tmp_path_factory):
    """A run of STOPPING, never interrupted: its folder."""
    out = tmp_path_factory.mktemp("stopped")
    train(tiny_store, _variant(VARIANT), STOPPING, "1-1", 0, out, progress=False)
    return out


def test_a_run_stops_at_the_first_plateau_of_its_log_after_a_decay(stopped_run):
    training = json.loads((stopped_run / "config.json").read_text())["training"]
    rows = _log(stopped_run)
    steps, losses = [int(row["step"]) for row in rows], [float(row["loss"]) for row in rows]
    decay_from = training["decay_from"]
    assert training["stop_reason"].startswith("plateau")
    assert steps[-1] == training["steps_run"] == decay_from + 40 < STOPPING.steps
    # The rule fired at the first logged step after warmup whose loss had stopped falling.
    fired = steps.index(decay_from) + 1
    rule = STOPPING.stop_rule()
    assert plateau(losses[:fired], rule) is not None
    assert all(plateau(losses[:n], rule) is None for n in range(1, fired))
    # The learning rate was constant until the decay started, and 0 after the last step.
    assert {float(row["lr"]) for row in rows[:fired]} == {STOPPING.lr}
    assert float(rows[-1]["lr"]) == pytest.approx(0.0, abs=1e-12)


def test_a_run_that_never_reaches_a_plateau_decays_at_the_cap(tmp_path, tiny_store):
    # The loss falls by more than 1 % over each 2 log rows of the 40 steps before the cap.
    settings = TrainSettings(
        **{**STOPPING.__dict__, "steps": 80, "stop_tolerance": 0.01, "stop_window": 2}
    )
    train(tiny_store, _variant(VARIANT), settings, "1-1", 0, tmp_path, progress=False)
    training = json.loads((tmp_path / "config.json").read_text())["training"]
    assert training["stop_reason"] == "cap: no plateau before step 40"
    assert (training["decay_from"], training["steps_run"]) == (40, 80)
    assert int(_log(tmp_path)[-1]["step"]) == 80


def test_a_run_killed_after_its_plateau_resumes_to_the_same_weights(
    tmp_path, tiny_store, stopped_run, monkeypatch
):
    decay_from = json.loads((stopped_run / "config.json").read_text())["training"]["decay_from"]
    with monkeypatch.context() as patch:
        # Killed during the decay, after a checkpoint that holds where the decay started.
        _interrupt_at(patch, decay_from + 25, _raise_interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_store, _variant(VARIANT), STOPPING, "1-1", 0, tmp_path, progress=False)
    checkpoint = json.loads((tmp_path / CHECKPOINT_FILE).read_text())["state"]
    assert checkpoint["step"] >= decay_from
    assert checkpoint["trainer"]["schedule"]["decay_from"] == decay_from
    resumed = train(tiny_store, _variant(VARIANT), STOPPING, "1-1", 0, tmp_path, progress=False)
    expected = sae.load(stopped_run).state_dict()
    for name, tensor in resumed.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)
    for row_a, row_b in zip(_log(stopped_run), _log(tmp_path), strict=True):
        assert {k: v for k, v in row_a.items() if k != "seconds"} == {
            k: v for k, v in row_b.items() if k != "seconds"
        }


def test_under_a_stop_rule_log_every_is_part_of_the_fingerprint(tiny_store):
    variant = _variant(VARIANT)

    def run_id(settings: TrainSettings) -> str:
        return fingerprint(variant, settings, "1-1", 0, tiny_store)

    logged_less = {"log_every": 20}
    fixed = TrainSettings(**{**STOPPING.__dict__, "stop_tolerance": None})
    assert run_id(fixed) == run_id(TrainSettings(**{**fixed.__dict__, **logged_less}))
    assert run_id(STOPPING) != run_id(TrainSettings(**{**STOPPING.__dict__, **logged_less}))
