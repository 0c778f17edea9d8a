"""Training killed hard (`os._exit` at a named fault point, as a SIGKILL would) at every step of a
run's life, for five variants, then run again: the weights equal those of a run never killed.

Each kill is a child process (vlmsae.faults: `VLMSAE_FAULT=<point>`) forked by a multiprocessing
fork server that imported torch and vlmsae once (a plain fork of this process can hang on locks
that its zarr and torch threads hold); the re-run is in this process, as Snakemake's re-run of the
failed job would be. The points (trainer.TRAIN_FAULT_POINTS):
a step before the first checkpoint, a step after it, inside the checkpoint write (three places),
inside sae.save (two places), and after the run is saved but before its checkpoint is removed.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_trainer import PAIRED, VARIANT, _variant

from vlmsae.faults import FAULT_EXIT, FAULT_VARIABLE
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.manifest import verify_folder
from vlmsae.training.checkpoint import CHECKPOINT_FILE
from vlmsae.training.trainer import TRAIN_FAULT_POINTS, TrainSettings, train

# Checkpoints at steps 30 and 60 of 80.
SETTINGS = TrainSettings(
    steps=80,
    batch_size=64,
    lr=3e-3,
    warmup_steps=10,
    log_every=20,
    buffer_rows=256,
    checkpoint_every=30,
)
VARIANTS = {
    "topk": VARIANT,
    "batchtopk": {**VARIANT, "type": "batchtopk"},
    "jumprelu": {"type": "jumprelu", "n_atoms": 64},
    "mp": {"type": "mp", "n_atoms": 64, "k": 4},
    "paired": PAIRED,
}
POINTS = ["train:step-7", "train:step-45", *TRAIN_FAULT_POINTS[1:]]


def test_every_fault_point_of_a_run_is_killed_here():
    steps = [point for point in POINTS if point.startswith("train:step-")]
    assert set(POINTS) - set(steps) == set(TRAIN_FAULT_POINTS[1:])
    assert len(POINTS) * len(VARIANTS) >= 35


@functools.cache
def _reference(store_path: Path, variant: str, root: Path) -> dict[str, torch.Tensor]:
    out = root / f"reference-{variant}"
    train(
        EmbeddingStore(store_path),
        _variant(VARIANTS[variant]),
        SETTINGS,
        "1-1",
        0,
        out,
        progress=False,
    )
    return load_file(out / "sae.safetensors")


def _train_until(point: str, store: str, variant: str, out: str) -> None:
    """The child: train with `VLMSAE_FAULT=point`, which ends it there."""
    os.environ[FAULT_VARIABLE] = point
    train(
        EmbeddingStore(store), _variant(VARIANTS[variant]), SETTINGS, "1-1", 0, out, progress=False
    )


@functools.cache
def _fork_server() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    # torch._dynamo: torch.optim imports it when the first optimizer is built (1.5 s, a thousand
    # modules), which every child would otherwise do again.
    context.set_forkserver_preload(
        ["torch", "torch._dynamo", "vlmsae.stores.embedding_store", "vlmsae.training.trainer"]
    )
    return context


def _killed_at(point: str, store: EmbeddingStore, variant: str, out: Path) -> None:
    child = _fork_server().Process(
        target=_train_until, args=(point, str(store.path), variant, str(out))
    )
    child.start()
    child.join(timeout=600)
    assert child.exitcode == FAULT_EXIT, f"{point} was not reached (exit {child.exitcode})"


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_run_killed_at_any_point_then_run_again_equals_one_never_killed(
    tmp_path, tmp_path_factory, tiny_store, variant, point
):
    reference = _reference(tiny_store.path, variant, tmp_path_factory.getbasetemp())
    out = tmp_path / "run"
    _killed_at(point, tiny_store, variant, out)
    if point == "train:step-7":
        assert not (out / CHECKPOINT_FILE).exists()  # killed before any checkpoint
    train(tiny_store, _variant(VARIANTS[variant]), SETTINGS, "1-1", 0, out, progress=False)
    resumed = load_file(out / "sae.safetensors")
    assert resumed.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)
    verify_folder(out, "train")
    assert not (out / CHECKPOINT_FILE).exists()
