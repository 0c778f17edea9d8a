import csv
import json
import os
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlmsae import sae
from vlmsae.errors import VlmsaeError
from vlmsae.metrics.evaluate import encode
from vlmsae.training import trainer as trainer_module
from vlmsae.training.checkpoint import CHECKPOINT_FILE, CHECKPOINT_TENSORS
from vlmsae.training.schedule import lr_factor
from vlmsae.training.trainer import TrainSettings, train
from vlmsae.training.variants import Variant

SETTINGS = TrainSettings(
    steps=150, batch_size=64, lr=3e-3, warmup_steps=10, log_every=50, buffer_rows=256
)
VARIANT = {"type": "topk", "n_atoms": 64, "k": 6}


def _variant(entry: dict) -> Variant:
    """The Variant of a config entry, as a train job builds it."""
    return Variant.from_config(entry["type"], entry)


def _log(path):
    return list(csv.DictReader(open(path / "train_log.csv")))


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)


@pytest.mark.parametrize("variant_type", ["topk", "batchtopk"])
def test_training_writes_a_loadable_run_and_learns(tmp_path, tiny_store, variant_type):
    train(
        tiny_store,
        _variant({**VARIANT, "type": variant_type}),
        SETTINGS,
        "1-1",
        0,
        tmp_path,
        progress=False,
    )
    rows = _log(tmp_path)
    assert [int(r["step"]) for r in rows] == [50, 100, 150]
    assert float(rows[-1]["r2"]) > float(rows[0]["r2"])
    model = sae.load(tmp_path)
    assert model.variant == variant_type
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(64))
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    assert not (tmp_path / CHECKPOINT_TENSORS).exists()


def test_same_seed_gives_the_same_weights(tmp_path, tiny_store):
    first = train(tiny_store, _variant(VARIANT), SETTINGS, "5-1", 3, tmp_path / "a", progress=False)
    second = train(
        tiny_store, _variant(VARIANT), SETTINGS, "5-1", 3, tmp_path / "b", progress=False
    )
    other = train(tiny_store, _variant(VARIANT), SETTINGS, "5-1", 4, tmp_path / "c", progress=False)
    torch.testing.assert_close(first.W_dec, second.W_dec, rtol=0, atol=0)
    assert not torch.allclose(first.W_dec, other.W_dec)


PAIRED = {
    "type": "topk",
    "n_atoms": 64,
    "k": 6,
    "modality_biases": True,
    "alignment": 0.01,
    "group_sparsity": 0.05,
    "mask_probability": 0.2,
}


def _interrupt_at(monkeypatch, calls: int, how):
    original = trainer_module.Trainer.step
    count = {"n": 0}

    def step(self, x, modality):
        count["n"] += 1
        if count["n"] == calls:
            how()
        return original(self, x, modality)

    monkeypatch.setattr(trainer_module.Trainer, "step", step)


def _raise_interrupt():
    raise KeyboardInterrupt


def _send_sigterm():
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("variant", [VARIANT, PAIRED], ids=["topk", "paired-regularised"])
@pytest.mark.parametrize("how", [_raise_interrupt, _send_sigterm], ids=["killed", "sigterm"])
def test_interrupted_run_resumes_to_the_same_weights(
    tmp_path, tiny_store, monkeypatch, variant, how
):
    settings = TrainSettings(**{**SETTINGS.__dict__, "checkpoint_every": 40, "dead_window": 20})
    reference = train(
        tiny_store, _variant(variant), settings, "1-1", 0, tmp_path / "straight", progress=False
    )
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 97, how)
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            train(
                tiny_store,
                _variant(variant),
                settings,
                "1-1",
                0,
                tmp_path / "resumed",
                progress=False,
            )
    assert (tmp_path / "resumed" / CHECKPOINT_FILE).exists()
    assert (tmp_path / "resumed" / CHECKPOINT_TENSORS).exists()
    assert not (tmp_path / "resumed" / "sae.safetensors").exists()
    resumed = train(
        tiny_store, _variant(variant), settings, "1-1", 0, tmp_path / "resumed", progress=False
    )
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    straight, again = _log(tmp_path / "straight"), _log(tmp_path / "resumed")
    for row_a, row_b in zip(straight, again, strict=True):
        assert {k: v for k, v in row_a.items() if k != "seconds"} == {
            k: v for k, v in row_b.items() if k != "seconds"
        }


def test_checkpoint_of_other_settings_is_ignored(tmp_path, tiny_store, monkeypatch):
    settings = TrainSettings(**{**SETTINGS.__dict__, "checkpoint_every": 40})
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 60, _raise_interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_store, _variant(VARIANT), settings, "1-1", 0, tmp_path, progress=False)
    changed = {**VARIANT, "k": 5}
    fresh = train(
        tiny_store, _variant(changed), settings, "1-1", 0, tmp_path / "fresh", progress=False
    )
    reused = train(tiny_store, _variant(changed), settings, "1-1", 0, tmp_path, progress=False)
    torch.testing.assert_close(reused.W_dec, fresh.W_dec, rtol=0, atol=0)


def _interrupted_run(tmp_path, store, monkeypatch):
    """A run folder holding the checkpoint of step 40 (killed at step 60)."""
    settings = TrainSettings(**{**SETTINGS.__dict__, "checkpoint_every": 40})
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 60, _raise_interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(store, _variant(VARIANT), settings, "1-1", 0, tmp_path, progress=False)
    return settings


def test_checkpoint_is_safetensors_and_json(tmp_path, tiny_store, monkeypatch):
    _interrupted_run(tmp_path, tiny_store, monkeypatch)
    record = json.loads((tmp_path / CHECKPOINT_FILE).read_text())
    state = record["state"]
    assert state["step"] == 40 and len(state["fingerprint"]) == 64
    tensors = load_file(tmp_path / CHECKPOINT_TENSORS)
    assert tensors["state/window/loss"].shape == ()  # the metrics summed since the last log row
    assert tensors["state/trainer/model/W_dec"].shape == (64, tiny_store.dim)
    assert tensors["state/torch_rng"].dtype == torch.uint8
    assert tensors["state/trainer/generator"].dtype == torch.uint8
    # The optimiser's state is keyed by parameter index: ints survive the JSON round trip.
    keys = [key for key, _ in state["trainer"]["optimiser"]["state"]["__items__"]]
    assert keys == list(range(len(keys))) and keys
    assert not list(tmp_path.glob("*.partial"))


def _truncate_json(folder):
    path = folder / CHECKPOINT_FILE
    path.write_text(path.read_text()[:100])


def _flip_a_tensor_byte(folder):
    path = folder / CHECKPOINT_TENSORS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_tensors(folder):
    (folder / CHECKPOINT_TENSORS).unlink()


@pytest.mark.parametrize(
    "damage, named",
    [
        (_truncate_json, CHECKPOINT_FILE),
        (_flip_a_tensor_byte, CHECKPOINT_TENSORS),
        (_drop_tensors, CHECKPOINT_TENSORS),
    ],
    ids=["truncated-json", "other-tensors", "missing-tensors"],
)
def test_damaged_checkpoint_is_one_line_error(tmp_path, tiny_store, monkeypatch, damage, named):
    settings = _interrupted_run(tmp_path, tiny_store, monkeypatch)
    damage(tmp_path)
    with pytest.raises(VlmsaeError) as raised:
        train(tiny_store, _variant(VARIANT), settings, "1-1", 0, tmp_path, progress=False)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / named))
    assert f"delete {CHECKPOINT_FILE} and {CHECKPOINT_TENSORS}" in message


def test_tensors_without_their_json_are_ignored(tmp_path, tiny_store, monkeypatch):
    """A run killed after writing its first tensors, before the JSON that commits them."""
    settings = _interrupted_run(tmp_path, tiny_store, monkeypatch)
    (tmp_path / CHECKPOINT_FILE).unlink()
    fresh = train(
        tiny_store, _variant(VARIANT), settings, "1-1", 0, tmp_path / "fresh", progress=False
    )
    restarted = train(tiny_store, _variant(VARIANT), settings, "1-1", 0, tmp_path, progress=False)
    torch.testing.assert_close(restarted.W_dec, fresh.W_dec, rtol=0, atol=0)
    assert not (tmp_path / CHECKPOINT_TENSORS).exists()


def test_paired_training_logs_every_regulariser(tmp_path, tiny_store):
    settings = TrainSettings(**{**SETTINGS.__dict__, "dead_window": 5})
    # Many atoms for 32 pairs a batch: some fall silent, so AuxK has dead latents to revive.
    model = train(
        tiny_store,
        _variant({**PAIRED, "n_atoms": 1024}),
        settings,
        "1-1",
        0,
        tmp_path,
        progress=False,
    )
    header = open(tmp_path / "train_log.csv").readline().strip().split(",")
    assert {"loss_align", "loss_group", "loss_aux"} <= set(header)
    rows = _log(tmp_path)
    assert float(rows[-1]["loss_align"]) < 0  # −β·mean cosine of paired codes
    assert model.b_dec.shape == (2, tiny_store.dim)


def test_modality_biases_start_at_each_modality_mean(tmp_path, tiny_store):
    settings = TrainSettings(steps=1, batch_size=512, lr=1e-9, warmup_steps=1, log_every=1)
    model = train(
        tiny_store,
        _variant({**VARIANT, "modality_biases": True}),
        settings,
        "1-1",
        0,
        tmp_path,
        progress=False,
    )
    image_mean = torch.from_numpy(tiny_store.rows("image").mean(axis=0))
    text_mean = torch.from_numpy(tiny_store.rows("text").mean(axis=0))
    assert torch.dist(model.b_dec[0], image_mean) < 0.1 < torch.dist(model.b_dec[0], text_mean)
    assert torch.dist(model.b_dec[1], text_mean) < 0.1


# ---- sparsity reached on held-out rows: BatchTopK's threshold, target_l0 -----------------------
SPARSITY = TrainSettings(
    steps=300, batch_size=128, lr=3e-3, warmup_steps=20, log_every=50, buffer_rows=1024
)


def _eval_l0(model, store) -> float:
    """Mean active atoms per row over the store's eval rows, both modalities (as metrics' l0)."""
    counts = [
        encode(model, store.rows(m, store.split_rows(m, "eval")), 4096, index)[0].getnnz(axis=1)
        for index, m in enumerate(("image", "text"))
    ]
    return float(torch.from_numpy(np.concatenate(counts)).double().mean())


@pytest.mark.parametrize("split", ["train", "val"])
def test_batchtopk_threshold_keeps_k_on_held_out_rows(tmp_path, tiny_store, split):
    """150 steps: the moving average of the smallest kept activation lags the weights (eval L0
    3.7–5.9 for k = 8 on this store); θ set on training (or val) rows after training gives k."""
    settings = TrainSettings(**{**SPARSITY.__dict__, "steps": 150})
    variant = {"type": "batchtopk", "n_atoms": 128, "k": 8, "threshold_split": split}
    model = train(tiny_store, _variant(variant), settings, "1-1", 0, tmp_path, progress=False)
    # Eval rows are drawn like the training rows, so only sampling separates their mean L0 from
    # the k of the calibration rows: 15 % leaves room for it and none for the lag.
    assert _eval_l0(model, tiny_store) == pytest.approx(8, rel=0.15)
    calibrated = json.loads((tmp_path / "config.json").read_text())["calibrated"]
    assert calibrated["threshold"] == pytest.approx(model.threshold.item())
    # train: whole batches, at least threshold_rows; val: both rows of every val pair (fewer).
    rows = calibrated["threshold_rows"]
    assert rows >= 8192 if split == "train" else rows == 2 * len(tiny_store.split_pairs("val"))


@pytest.mark.parametrize(
    ("variant", "tolerance"),
    [
        ({"type": "relu"}, 0.1),
        # θ learns slowly (log θ moves about lr per step) and only through its kernel: wider.
        ({"type": "jumprelu", "bandwidth": 0.01}, 0.2),
    ],
    ids=["relu", "jumprelu"],
)
def test_target_l0_is_reached_on_held_out_rows(tmp_path, tiny_store, variant, tolerance):
    """Steered λ: the default λ = 1e-3 leaves these codes dense (L0 ≈ 40–55 of 128)."""
    model = train(
        tiny_store,
        _variant({**variant, "n_atoms": 128, "target_l0": 8}),
        SPARSITY,
        "1-1",
        0,
        tmp_path,
        progress=False,
    )
    assert _eval_l0(model, tiny_store) == pytest.approx(8, rel=tolerance)
    config = json.loads((tmp_path / "config.json").read_text())
    penalty = model.settings.penalty
    assert config["calibrated"][penalty] == pytest.approx(model.penalty_coefficient.item())
    assert config["calibrated"]["target_l0"] == 8 and config["sae"][penalty] == 1e-3
    assert sae.load(tmp_path).penalty_coefficient.item() == pytest.approx(
        config["calibrated"][penalty]
    )


def test_steered_run_resumes_to_the_same_weights_and_penalty(tmp_path, tiny_store, monkeypatch):
    settings = TrainSettings(**{**SETTINGS.__dict__, "checkpoint_every": 40})
    variant = {"type": "relu", "n_atoms": 64, "target_l0": 6}
    reference = train(
        tiny_store, _variant(variant), settings, "1-1", 0, tmp_path / "a", progress=False
    )
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 97, _raise_interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_store, _variant(variant), settings, "1-1", 0, tmp_path / "b", progress=False)
    resumed = train(
        tiny_store, _variant(variant), settings, "1-1", 0, tmp_path / "b", progress=False
    )
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)


def test_sae_a_as_the_authors_train_it(tmp_path, tiny_store):
    """MP without decoder bias, aligned by the authors' form: b_dec stays zero, β·loss < 0."""
    variant = {
        "type": "mp",
        "n_atoms": 64,
        "k": 4,
        "decoder_bias": False,
        "alignment": 0.01,
        "alignment_form": "authors",
    }
    model = train(tiny_store, _variant(variant), SETTINGS, "1-1", 0, tmp_path, progress=False)
    assert not model.b_dec.any() and "b_dec" not in dict(model.named_parameters())
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["training"]["alignment_form"] == "authors" and config["training"]["paired"]
    assert config["sae"]["decoder_bias"] is False
    assert float(_log(tmp_path)[-1]["loss_align"]) < 0


# ---- a damaged store: named before training reads it, and behind a non-finite loss ------------


def _small_store(path):
    """200 unit-norm pairs, one zstd chunk per array, as `write_store` writes every store."""
    from vlmsae.stores.embedding_store import write_store

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((2, 200, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=2, keepdims=True)
    split = np.zeros(200, np.int8)
    split[::5] = 1
    return write_store(
        path,
        image=rows[0],
        text=rows[1],
        pairs=np.stack([np.arange(200)] * 2, axis=1),
        image_split=split,
        text_split=split,
        attrs={"dataset": "d", "model": "m", "normalised": True},
    )


def _keeping_mtime(path, damage):
    stat = path.stat()
    damage(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _truncate_chunk(store):
    chunk = store / "image" / "c" / "0" / "0"
    _keeping_mtime(chunk, lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]))


def _flip_8_bytes(store):
    """8 bytes of the text chunk flipped where zstd (no content checksum) still decodes the
    chunk, to rows holding NaN: only the manifest's CRC-32 tells it from a good chunk."""
    import zarr

    chunk = store / "text" / "c" / "0" / "0"
    original = chunk.read_bytes()

    def flip(path):
        for offset in range(len(original) // 10, len(original) - 8, 97):
            data = bytearray(original)
            data[offset : offset + 8] = bytes(b ^ 0xFF for b in data[offset : offset + 8])
            path.write_bytes(bytes(data))
            try:
                rows = zarr.open_group(store, mode="r")["text"][...]
            except RuntimeError:  # this offset breaks the zstd frame: try the next
                continue
            if not np.isfinite(rows[np.arange(200) % 5 != 0]).all():  # NaN in a train row
                return
        raise AssertionError("no 8-byte flip of the chunk decodes to NaN")

    _keeping_mtime(chunk, flip)


STORE_DAMAGE = {
    "image chunk truncated": (_truncate_chunk, r"s\.zarr/image: chunk 0"),
    "image zarr.json deleted": (
        lambda store: (store / "image" / "zarr.json").unlink(),
        r"s\.zarr/image: array missing",
    ),
    "text chunk 8 bytes flipped": (_flip_8_bytes, r"s\.zarr/text: chunk 0 .* differs"),
}
DAMAGE_SETTINGS = TrainSettings(
    steps=40, batch_size=32, warmup_steps=5, log_every=10, buffer_rows=64, checkpoint_every=20
)


def _damaged_run_error(tmp_path, kind: str, verify_store: bool) -> str:
    """The DamagedOutputError message of a run on a store damaged as STORE_DAMAGE[kind] says."""
    from vlmsae.errors import DamagedOutputError
    from vlmsae.stores.embedding_store import EmbeddingStore

    damage, named = STORE_DAMAGE[kind]
    store = _small_store(tmp_path / "s.zarr")
    damage(store)
    with pytest.raises(DamagedOutputError, match=named) as error:
        train(
            EmbeddingStore(store),
            _variant(VARIANT),
            DAMAGE_SETTINGS,
            "1-1",
            0,
            tmp_path / "run",
            progress=False,
            verify_store=verify_store,
        )
    return str(error.value)


@pytest.mark.parametrize("kind", list(STORE_DAMAGE))
def test_a_damaged_store_is_named_before_training_reads_it(tmp_path, kind):
    message = _damaged_run_error(tmp_path, kind, verify_store=True)
    assert "\n" not in message and "--forcerun embed" in message and "train.lr" not in message
    assert list((tmp_path / "run").iterdir()) == []  # no weights, no checkpoint


@pytest.mark.parametrize("kind", ["image chunk truncated", "text chunk 8 bytes flipped"])
def test_a_failing_or_non_finite_run_rechecks_its_store_first(tmp_path, kind):
    """Without the check up front (verify_store False), a read that fails or a loss that turns
    NaN is first put down to the store when the store is damaged, not to train.lr."""
    assert "train.lr" not in _damaged_run_error(tmp_path, kind, verify_store=False)
    assert not (tmp_path / "run" / "sae.safetensors").exists()
