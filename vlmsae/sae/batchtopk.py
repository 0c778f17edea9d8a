"""BatchTopK SAE (Bussmann et al. 2024): keep the k·B largest activations over the whole batch.

At inference a per-sample rule replaces the batch rule: z = ReLU(pre)·[pre > θ]. θ is estimated
as the paper does, so that inference keeps k activations per row on average over many rows:
after training, `calibrate_threshold` pools the pre-activations of `threshold_rows` rows (the
next training batches, or the store's val rows with `threshold_split: val`) and sets θ to the
(k·N + 1)-th largest, i.e. BatchTopK's own rule applied to one batch of N rows. A small store
shows why val exists: on 400 COCO pairs an SAE trained for 2000 steps keeps k = 8 atoms on its
training rows but 16–22 on held-out ones, whatever the estimator of θ on training rows.
During training θ follows an exponential moving average of the smallest activation kept, a
provisional estimate (for checkpoints evaluated mid-run) that lags the weights and that the
calibration replaces. θ is a registered buffer, so it is saved and loaded with the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from vlmsae.registry_base import setting
from vlmsae.sae.base import Modality, SparseAutoencoder
from vlmsae.sae.variant_registry import KWithinAtoms, SAESettings, register

# `largest` samples every SAMPLE_STRIDE-th entry: a prime, so that a sample of a flattened
# [B, p] matrix visits every column rather than a few.
SAMPLE_STRIDE = 31


def largest(flat: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the `count` largest entries of flat [n], in no particular order.

    The same set as `flat.topk(count)` when no two entries tie at the boundary, found about
    3x faster at a training batch's size: a strided sample gives a threshold that about 5/4·count
    entries exceed, and top-k runs on those candidates only. The set is exact whatever the
    sample: when fewer than `count` entries exceed the threshold, top-k runs on all of flat.
    """
    sample = flat[::SAMPLE_STRIDE]
    wanted = count * 5 // (4 * SAMPLE_STRIDE) + 1
    if count >= len(flat) or wanted >= len(sample):
        return flat.topk(count, sorted=False)
    threshold = sample.topk(wanted, sorted=False).values.min()
    candidates = (flat > threshold).nonzero().squeeze(1)
    if len(candidates) < count:
        return flat.topk(count, sorted=False)
    values, chosen = flat.index_select(0, candidates).topk(count, sorted=False)
    return values, candidates.index_select(0, chosen)


@dataclass(frozen=True, kw_only=True)
class BatchTopKSettings(KWithinAtoms, SAESettings):
    k: int = setting(description="active atoms per sample on average over a batch", minimum=1)
    threshold_rows: int = setting(
        8192,
        "rows pooled after training to set the inference threshold θ so that they keep k atoms "
        "per row on average (train: at least this many, in whole batches; val: at most)",
        minimum=1,
    )
    threshold_split: Literal["train", "val"] = setting(
        "train",
        "rows θ is set on: train, the next training batches (the paper's rule, mean L0 = k on the "
        "training mixture); val, the store's val pairs, both modalities (held out from training: "
        "mean L0 = k on held-out rows even when the SAE overfits a small store)",
    )


@register
class BatchTopK(SparseAutoencoder):
    variant = "batchtopk"
    Settings = BatchTopKSettings
    threshold_momentum = 0.01

    def __init__(self, d: int, settings: BatchTopKSettings):
        super().__init__(d, settings)
        self.k = settings.k
        self.register_buffer("threshold", torch.tensor(float("nan")))

    def _batch_mask(self, pre: torch.Tensor) -> torch.Tensor:
        """[B, p] bool: the k·B largest positive entries of the batch (training rule)."""
        flat = pre.flatten()
        values, indices = largest(flat, min(self.k * pre.shape[0], flat.numel()))
        kept = indices[values > 0]
        if self.training:
            self._update_threshold(flat[kept])
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[kept] = True
        return mask.view_as(pre)

    def _inference_mask(self, pre: torch.Tensor) -> torch.Tensor:
        if torch.isnan(self.threshold):
            raise RuntimeError("BatchTopK threshold was never estimated: train before encoding")
        return (pre > self.threshold) & (pre > 0)

    def _mask(self, pre: torch.Tensor) -> torch.Tensor:
        return self._batch_mask(pre) if self.training else self._inference_mask(pre)

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows, cols = self._mask(pre).nonzero(as_tuple=True)
        return rows, cols

    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mask = self._mask(pre.detach())
        return pre.relu() * mask

    @torch.no_grad()
    def calibrate_threshold(self, batches: Sequence[tuple[torch.Tensor, Modality]]) -> dict:
        """Set θ from batches (x [B, d], modality) of N rows in all; returns what was set.

        θ is the (k·N + 1)-th largest pre-activation over the N rows, clamped at 0 from below,
        so exactly k·N of them exceed it: on these rows inference keeps k per row on average.
        The batches' pre-activations are visited one batch at a time, keeping only the k·N + 1
        largest values seen so far.
        """
        n_rows = sum(len(x) for x, _ in batches)
        if n_rows == 0:
            raise ValueError("no rows to estimate the BatchTopK threshold from")
        rank = self.k * n_rows + 1
        kept = None
        for x, modality in batches:
            pre = self.pre_activation(x - self.bias(modality), None).float().flatten()
            pool = pre if kept is None else torch.cat([kept, pre])
            kept = pool.topk(min(rank, len(pool)), sorted=False).values
        theta = kept.min().clamp_min(0) if len(kept) == rank else kept.new_zeros(())
        self.threshold.copy_(theta)
        return {"threshold": float(theta), "threshold_rows": n_rows}

    @torch.no_grad()
    def _update_threshold(self, kept: torch.Tensor) -> None:
        if kept.numel() == 0:
            return
        smallest = kept.min().float()
        if torch.isnan(self.threshold):
            self.threshold.copy_(smallest)
        else:
            self.threshold.lerp_(smallest, self.threshold_momentum)
