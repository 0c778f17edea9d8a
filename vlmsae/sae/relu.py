"""ReLU SAE with an L1 penalty (Bricken et al. 2023): z = ReLU((x − b_dec)·W_encᵀ + b_enc).

The sparsity penalty weights each code by its decoder norm, λ·Σ_k |z_k|·‖W_dec[k]‖, so that the
penalty cannot be dodged by shrinking codes and growing decoder rows. With `target_l0`, λ is
steered to reach that L0 (vlmsae.sae.penalty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmsae.registry_base import setting
from vlmsae.sae.base import Modality
from vlmsae.sae.codes import Codes
from vlmsae.sae.penalty import Penalised, PenalisedSettings
from vlmsae.sae.variant_registry import register


@dataclass(frozen=True, kw_only=True)
class ReLUSettings(PenalisedSettings):
    l1_coefficient: float = setting(
        1e-3, "weight λ of the L1 penalty (the start of its steering with target_l0)", minimum=0
    )

    penalty = "l1_coefficient"


@register
class ReLU(Penalised):
    variant = "relu"
    Settings = ReLUSettings
    sparse_path = False  # early in training most codes are non-zero

    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre.relu()

    def losses(
        self, x: torch.Tensor, codes: Codes, reconstruction: torch.Tensor, modality: Modality = None
    ) -> dict[str, torch.Tensor]:
        """Adds `l1` = λ · mean over rows of Σ_k |z_k|·‖W_dec[k]‖."""
        terms = super().losses(x, codes, reconstruction, modality)
        weighted = codes.dense().abs() * self.W_dec.norm(dim=1)
        terms["l1"] = self.penalty_coefficient * weighted.sum(dim=1).mean()
        return terms
