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

    def __init__(self, d: int, n_atoms: int, k: int, **common):
        super().__init__(d, n_atoms, k=k, **common)
        self.k = k
        self.register_buffer("threshold", torch.tensor(float("nan")))

    def _batch_mask(self, pre: torch.Tensor) -> torch.Tensor:
        """[B, p] bool: the k·B largest positive entries of the batch (training rule)."""
        flat = pre.flatten()
        values, indices = flat.topk(min(self.k * pre.shape[0], flat.numel()), sorted=False)
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
    def _update_threshold(self, kept: torch.Tensor) -> None:
        if kept.numel() == 0:
            return
        smallest = kept.min().float()
        if torch.isnan(self.threshold):
            self.threshold.copy_(smallest)
        else:
            self.threshold.lerp_(smallest, self.threshold_momentum)
