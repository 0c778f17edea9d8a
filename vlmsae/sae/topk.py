"""TopK SAE (Gao et al. 2024): keep the k largest pre-activations of each sample, then ReLU."""

from __future__ import annotations

import torch

from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.registry import register


def topk_per_row(pre: torch.Tensor, k: int) -> torch.Tensor:
    """[B, p] → [B, p] with all but the k largest entries of each row zeroed, then ReLU."""
    values, indices = pre.topk(k, dim=1)
    return torch.zeros_like(pre).scatter(1, indices, values.relu())


@register
class TopK(SparseAutoencoder):
    variant = "topk"

    def __init__(self, d: int, n_atoms: int, k: int):
        super().__init__(d, n_atoms, k=k)
        self.k = k

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return topk_per_row(pre, self.k)
