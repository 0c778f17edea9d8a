import csv

import pytest
import torch

from vlmsae import sae
from vlmsae.training.trainer import TrainSettings, lr_factor, train

SETTINGS = TrainSettings(steps=150, batch_size=64, lr=3e-3, warmup_steps=10, log_every=50)
VARIANT = {"type": "topk", "n_atoms": 64, "k": 6}


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)


@pytest.mark.parametrize("variant_type", ["topk", "batchtopk"])
def test_training_writes_a_loadable_run_and_learns(tmp_path, tiny_store, variant_type):
    train(
        tiny_store, {**VARIANT, "type": variant_type}, SETTINGS, "1-1", 0, tmp_path, progress=False
    )
    rows = list(csv.DictReader(open(tmp_path / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [50, 100, 150]
    assert float(rows[-1]["r2"]) > float(rows[0]["r2"])
    model = sae.load(tmp_path)
    assert model.variant == variant_type
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(64))


def test_same_seed_gives_the_same_weights(tmp_path, tiny_store):
    first = train(tiny_store, VARIANT, SETTINGS, "5-1", 3, tmp_path / "a", progress=False)
    second = train(tiny_store, VARIANT, SETTINGS, "5-1", 3, tmp_path / "b", progress=False)
    other = train(tiny_store, VARIANT, SETTINGS, "5-1", 4, tmp_path / "c", progress=False)
    torch.testing.assert_close(first.W_dec, second.W_dec, rtol=0, atol=0)
    assert not torch.allclose(first.W_dec, other.W_dec)
