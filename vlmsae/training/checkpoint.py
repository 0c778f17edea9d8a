"""A training run's checkpoint: the complete state a re-run with the same settings continues from.

Every `checkpoint_every` steps, and on SIGTERM (vlmsae.training.preemption), the state (model,
optimiser, scheduler, the step its learning rate decays from, RNG, stream positions, dead-atom
counters, log; `snapshot`) goes to the run folder as `checkpoint.safetensors` (every tensor) and
`checkpoint.json` (the rest, and the SHA-256 of the tensors file), no pickle. It is resumed only
by a run with the same `fingerprint`, and removed once the run is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vlmsae.errors import InputFileError
from vlmsae.faults import fault
from vlmsae.stores.embedding_store import EmbeddingStore

if TYPE_CHECKING:
    from vlmsae.training.trainer import Batches, Trainer, TrainSettings
    from vlmsae.training.variants import Variant

log = logging.getLogger(__name__)

# The JSON is written last and names the SHA-256 of the tensors: it commits a checkpoint.
CHECKPOINT_FILE, CHECKPOINT_TENSORS = "checkpoint.json", "checkpoint.safetensors"
LEGACY_CHECKPOINT = "checkpoint.pt"  # the pickled format of earlier versions, no longer read
# Settings that change how a run is watched, not what it computes: not part of its fingerprint
# (log_every is, under a stop rule: the rule reads the log rows).
NON_SEMANTIC = ("log_every", "checkpoint_every", "device", "buffer_rows")


def fingerprint(
    variant: Variant, settings: TrainSettings, mixture: str, seed: int, store: EmbeddingStore
) -> str:
    """What a checkpoint must match to be resumed: everything that changes the result."""
    ignored = set(NON_SEMANTIC) - ({"log_every"} if settings.stop_rule() else set())
    semantic = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ignored}
    identity = {
        "variant": variant.as_config(),
        "settings": semantic,
        "mixture": mixture,
        "seed": seed,
        "store": [
            str(store.path.resolve()),
            store.attrs.get("dataset"),
            store.attrs.get("model"),
            store.array("image").shape[0],
        ],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def snapshot(
    run_id: str,
    step: int,
    trainer: Trainer,
    batches: Batches,
    rows: list[dict],
    window: dict,
    seconds: float,
) -> dict:
    """The state of run `run_id` after `step` steps, as `save_checkpoint` writes it."""
    return {
        "fingerprint": run_id,
        "step": step,
        "trainer": trainer.state_dict(),
        "batches": batches.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "rows": rows,
        "window": window,
        "seconds": seconds,
    }


def restore(state: dict, trainer: Trainer, batches: Batches) -> tuple[list[dict], int, dict, float]:
    """Put a `snapshot` back into trainer, batches and torch's RNG; returns its
    (rows, step, window, seconds)."""
    trainer.load_state_dict(state["trainer"])
    batches.load_state_dict(state["batches"])
    torch.set_rng_state(state["torch_rng"])
    return state["rows"], state["step"], state["window"], state["seconds"]


# In checkpoint.json each tensor is a reference {"__tensor__": name} into checkpoint.safetensors;
# a dict with keys other than strings (the optimiser's per-parameter state) is {"__items__": pairs}.
_TENSOR, _ITEMS = "__tensor__", "__items__"


def _encode(value, name: str, tensors: dict[str, torch.Tensor]):
    """`value` as JSON data, its tensors moved into `tensors` under their path from `name`."""
    if isinstance(value, torch.Tensor):
        tensors[name] = value.detach().cpu().contiguous()
        return {_TENSOR: name}
    if isinstance(value, dict):
        items = {key: _encode(item, f"{name}/{key}", tensors) for key, item in value.items()}
        if all(isinstance(key, str) for key in items):
            return items
        return {_ITEMS: [[key, item] for key, item in items.items()]}
    if isinstance(value, list | tuple):
        return [_encode(item, f"{name}/{index}", tensors) for index, item in enumerate(value)]
    return value


def _decode(value, tensors: dict[str, torch.Tensor]):
    """The inverse of `_encode` (tuples come back as lists)."""
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        return tensors[value[_TENSOR]]
    pairs = value[_ITEMS] if _ITEMS in value else value.items()
    return {key: _decode(item, tensors) for key, item in pairs}


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def save_checkpoint(state: dict, directory: Path) -> None:
    """The tensors, then the JSON naming their hash, each renamed into place once written whole.

    An interruption at any point leaves the previous checkpoint, or a pair whose hashes disagree,
    which `load_checkpoint` reports; never a half-written file under the final names.
    """
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, "state", tensors)
    weights, marker = directory / CHECKPOINT_TENSORS, directory / CHECKPOINT_FILE
    save_file(tensors, _partial(weights))
    fault("checkpoint:tensors-written")
    record = {"tensors_sha256": _sha256(_partial(weights)), "state": encoded}
    os.replace(_partial(weights), weights)
    fault("checkpoint:tensors-renamed")
    _partial(marker).write_text(json.dumps(record))
    fault("checkpoint:marker-written")
    os.replace(_partial(marker), marker)


def remove_checkpoint(directory: Path) -> None:
    """The JSON first: without it, any file left behind is ignored and later overwritten."""
    for path in (directory / CHECKPOINT_FILE, directory / CHECKPOINT_TENSORS):
        path.unlink(missing_ok=True)
        _partial(path).unlink(missing_ok=True)


def load_checkpoint(directory: Path, run_id: str) -> dict | None:
    """The state `save_checkpoint` left in `directory` for this run (fingerprint run_id), if any.

    Raises InputFileError, naming the file and the fix, when the checkpoint is damaged.
    """
    legacy = directory / LEGACY_CHECKPOINT
    if legacy.exists():
        log.warning("ignoring %s: older pickled checkpoints are not read; delete it", legacy)
    marker, weights = directory / CHECKPOINT_FILE, directory / CHECKPOINT_TENSORS
    if not marker.exists():
        return None
    try:
        record = json.loads(marker.read_text())
        stored_id, digest = record["state"]["fingerprint"], record["tensors_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _damaged(marker, _unreadable(error)) from error
    if stored_id != run_id:
        log.warning("ignoring %s: it belongs to other settings", marker)
        return None
    if not weights.exists():
        raise _damaged(weights, f"missing, though {CHECKPOINT_FILE} refers to it")
    if _sha256(weights) != digest:
        raise _damaged(weights, f"its SHA-256 differs from the one in {CHECKPOINT_FILE}")
    try:
        return _decode(record["state"], load_file(weights))
    except (SafetensorError, KeyError, TypeError, ValueError) as error:
        raise _damaged(marker, _unreadable(error)) from error


def _unreadable(error: Exception) -> str:
    return f"unreadable: {type(error).__name__}: {error}"


def _damaged(path: Path, problem: str) -> InputFileError:
    return InputFileError(
        str(path),
        f"damaged training checkpoint, {problem}",
        f"delete {CHECKPOINT_FILE} and {CHECKPOINT_TENSORS} in {path.parent} to restart the run "
        "from step 0",
    )
