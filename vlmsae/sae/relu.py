"""ReLU SAE with an L1 penalty (Bricken et al. 2023): z = ReLU((x − b_dec)·W_encᵀ + b_enc).

The sparsity penalty weights each code by its decoder norm, λ·Σ_k |z_k|·‖W_dec[k]‖, so that the
penalty cannot be dodged by shrinking codes and growing decoder rows.
"""

from __future__ import annotations

import torch

from vlmsae.sae.base import Modality, SparseAutoencoder
from vlmsae.sae.codes import Codes
from vlmsae.sae.registry import register


@register
class ReLU(SparseAutoencoder):
    variant = "relu"
    sparse_path = False  # early in training most codes are non-zero

    def __init__(self, d: int, n_atoms: int, l1_coefficient: float = 1e-3, **common):
        super().__init__(d, n_atoms, l1_coefficient=l1_coefficient, **common)
        self.l1_coefficient = l1_coefficient

    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        return pre.relu()

    def losses(
        self, x: torch.Tensor, codes: Codes, reconstruction: torch.Tensor, modality: Modality = None
    ) -> dict[str, torch.Tensor]:
        """Adds `l1` = λ · mean over rows of Σ_k |z_k|·‖W_dec[k]‖."""
        terms = super().losses(x, codes, reconstruction, modality)
        weighted = codes.dense().abs() * self.W_dec.norm(dim=1)
        terms["l1"] = self.l1_coefficient * weighted.sum(dim=1).mean()
        return terms
