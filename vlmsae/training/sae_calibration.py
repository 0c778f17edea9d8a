"""What is set on a trained SAE once its weights are final: its `calibrated` record in
config.json (the BatchTopK inference threshold; a steered penalised variant's λ and L0).

Not to be confused with `vlmsae.calibration`, which fits the synthetic generator to a store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from vlmsae.errors import InputFileError
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.batchtopk import BatchTopK
from vlmsae.sae.penalty import Penalised
from vlmsae.stores.embedding_store import EmbeddingStore

if TYPE_CHECKING:
    from vlmsae.training.trainer import Batches

log = logging.getLogger(__name__)

# A steered run whose final training L0 is off its target_l0 by more than this share warns.
STEERING_TOLERANCE = 0.2


@torch.no_grad()
def calibrate(
    model: SparseAutoencoder,
    store: EmbeddingStore,
    batches: Batches,
    seed: int,
    device: torch.device,
    train_l0: float,
) -> dict:
    """What is set once the weights are final, recorded in config.json as `calibrated`.

    BatchTopK (and Matryoshka) estimate their inference threshold on `threshold_rows` rows:
    the next batches of the run's own training stream (so a resumed run reads the same rows), or
    the store's val pairs. A penalised variant with target_l0 reports the λ it was steered to and
    the L0 it reached (train_l0, of the last logged batches), with a warning when it missed.
    """
    if isinstance(model, BatchTopK):
        n_rows = model.settings.threshold_rows
        if model.settings.threshold_split == "val":
            rows = _val_batches(store, n_rows, batches.size, seed)
        else:
            rows = [batches.next() for _ in range(-(-n_rows // batches.size))]
        return model.calibrate_threshold([(x.to(device), m.to(device)) for x, m in rows])
    if isinstance(model, Penalised) and model.target_l0 is not None:
        if abs(train_l0 - model.target_l0) > STEERING_TOLERANCE * model.target_l0:
            log.warning(
                "target_l0 %d missed: the last training batches kept %.1f atoms per row at %s = "
                "%.3g; more steps, or for jumprelu a bandwidth nearer the pre-activations' scale",
                model.target_l0,
                train_l0,
                model.settings.penalty,
                float(model.penalty_coefficient),
            )
        return model.calibration(train_l0)
    return {}


def _val_batches(
    store: EmbeddingStore, n_rows: int, batch_size: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Both rows of the store's val pairs, at most n_rows (a seeded draw of pairs), as batches
    (x [B, d], modality [B]) of at most batch_size rows, each pair's two rows in one batch."""
    pairs = store.split_pairs("val")
    if len(pairs) == 0:
        raise InputFileError(
            str(store.path),
            "no val pairs to set the BatchTopK threshold on (threshold_split: val)",
            "use threshold_split: train, or a store with a val split (datasets.*.val_fraction)",
        )
    keep = min(len(pairs), max(1, n_rows // 2))
    pairs = pairs[np.sort(np.random.default_rng(seed).choice(len(pairs), keep, replace=False))]
    per_batch = max(1, batch_size // 2)
    out = []
    for start in range(0, len(pairs), per_batch):
        chunk = pairs[start : start + per_batch]
        image, text = store.rows("image", chunk[:, 0]), store.rows("text", chunk[:, 1])
        modality = torch.arange(2).repeat_interleave(len(chunk))
        out.append((torch.from_numpy(np.concatenate([image, text])), modality))
    return out
