"""TopK SAE (Gao et al. 2024): keep the k largest pre-activations of each sample, then ReLU."""

from __future__ import annotations

import torch

from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.registry import register


def topk_coordinates(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the k largest entries of each row of pre [B, p] that are positive."""
    values, cols = pre.topk(k, dim=1, sorted=False)
    rows = torch.arange(len(pre), device=pre.device).unsqueeze(1).expand_as(cols)
    positive = values > 0
    return rows[positive], cols[positive]


@register
class TopK(SparseAutoencoder):
    variant = "topk"

    def __init__(self, d: int, n_atoms: int, k: int, **common):
        super().__init__(d, n_atoms, k=k, **common)
        self.k = k

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return topk_coordinates(pre, self.k)

    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        values, cols = pre.topk(self.k, dim=1)
        return torch.zeros_like(pre).scatter(1, cols, values.relu())
