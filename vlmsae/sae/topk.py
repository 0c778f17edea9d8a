"""TopK SAE (Gao et al. 2024): keep the k largest pre-activations of each sample, then ReLU."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmsae.registry_base import setting
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.variant_registry import KWithinAtoms, SAESettings, register


def topk_coordinates(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the k largest entries of each row of pre [B, p] that are positive."""
    values, cols = pre.topk(k, dim=1, sorted=False)
    rows = torch.arange(len(pre), device=pre.device).unsqueeze(1).expand_as(cols)
    positive = values > 0
    if pre.device.type == "cpu" and bool(positive.all()):
        # The usual case, without the boolean-mask gathers (same coordinates, same order).
        return rows.reshape(-1), cols.reshape(-1)
    return rows[positive], cols[positive]


@dataclass(frozen=True, kw_only=True)
class TopKSettings(KWithinAtoms, SAESettings):
    k: int = setting(description="active atoms per sample", minimum=1)


@register
class TopK(SparseAutoencoder):
    variant = "topk"
    Settings = TopKSettings

    def __init__(self, d: int, settings: TopKSettings):
        super().__init__(d, settings)
        self.k = settings.k

    def pre_activation(
        self, x_centred: torch.Tensor, atom_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """As the base class's, with b_enc added by the matrix product itself (addmm).

        This saves a pass over the [B, p] result, a sizeable part of a training step. Under
        autocast addmm would also round b_enc to the low precision: the base class's form is kept.
        """
        if torch.is_autocast_enabled(x_centred.device.type):
            return super().pre_activation(x_centred, atom_mask)
        pre = torch.addmm(self.b_enc, x_centred, self.W_enc.T)
        if atom_mask is not None:
            pre = pre.masked_fill(~atom_mask, float("-inf"))
        return pre

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return topk_coordinates(pre, self.k)

    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        values, cols = pre.topk(self.k, dim=1)
        return torch.zeros_like(pre).scatter(1, cols, values.relu())
