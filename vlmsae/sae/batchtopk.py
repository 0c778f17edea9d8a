"""BatchTopK SAE (Bussmann et al. 2024): keep the k·B largest activations over the whole batch.

At inference a per-sample rule replaces the batch rule: z = ReLU(pre)·[pre > θ], with θ an
exponential moving average of the smallest activation kept during training. θ is a registered
buffer, so it is saved and loaded with the weights.
"""

from __future__ import annotations

import torch

from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.registry import register


@register
class BatchTopK(SparseAutoencoder):
    variant = "batchtopk"
    threshold_momentum = 0.01

    def __init__(self, d: int, n_atoms: int, k: int):
        super().__init__(d, n_atoms, k=k)
        self.k = k
        self.register_buffer("threshold", torch.tensor(float("nan")))

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        positive = pre.relu()
        if not self.training:
            if torch.isnan(self.threshold):
                raise RuntimeError("BatchTopK threshold was never estimated: train before encoding")
            return positive * (pre > self.threshold)
        flat = positive.flatten()
        values, indices = flat.topk(min(self.k * pre.shape[0], flat.numel()))
        codes = torch.zeros_like(flat).scatter(0, indices, values).view_as(pre)
        self._update_threshold(values)
        return codes

    @torch.no_grad()
    def _update_threshold(self, kept: torch.Tensor) -> None:
        kept = kept[kept > 0]
        if kept.numel() == 0:
            return
        smallest = kept.min()
        if torch.isnan(self.threshold):
            self.threshold.copy_(smallest)
        else:
            self.threshold.lerp_(smallest, self.threshold_momentum)
