"""Regularisers on paired batches (row i of the image half pairs with row i of the text half).

- iso-energy alignment (Dhimoïla et al. eq. 1): L_align = −(1/b)·Tr(Ẑ_I Ẑ_Tᵀ), codes row-normalised;
- group sparsity (Kaushik et al. eq. 3): L_gs = mean over pairs of Σ_k sqrt(z_I,k² + z_T,k²);
- cross-modal masking (Kaushik et al. §4): one random mask per pair, shared by both modalities,
  applied to the pre-activations before TopK.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

REGULARISER_KEYS = ("alignment", "group_sparsity", "mask_probability")


@dataclass(frozen=True)
class Regularisers:
    alignment: float = 0.0  # β
    group_sparsity: float = 0.0  # λ
    mask_probability: float = 0.0  # p

    @property
    def paired(self) -> bool:
        """Whether training needs aligned pairs in every batch."""
        return any(getattr(self, key) > 0 for key in REGULARISER_KEYS)

    @classmethod
    def from_variant(cls, variant: dict) -> Regularisers:
        return cls(**{key: float(variant.get(key, 0.0)) for key in REGULARISER_KEYS})


def alignment_loss(codes_image: torch.Tensor, codes_text: torch.Tensor) -> torch.Tensor:
    """−(1/b) Σ_i ⟨ẑ_I,i, ẑ_T,i⟩ for codes [b, p] each; an all-zero code contributes 0."""
    return -(F.normalize(codes_image, dim=1) * F.normalize(codes_text, dim=1)).sum(dim=1).mean()


def group_sparsity_loss(codes_image: torch.Tensor, codes_text: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of the L2,1 norm Σ_k ‖(z_I,k, z_T,k)‖₂ for codes [b, p] each."""
    return torch.linalg.vector_norm(torch.stack([codes_image, codes_text]), dim=0).sum(dim=1).mean()


def shared_mask(
    n_pairs: int,
    n_atoms: int,
    drop_probability: float,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """[2·n_pairs, p] bool keep-mask: row i and row n_pairs + i (a pair) share one draw."""
    keep = torch.rand(n_pairs, n_atoms, generator=generator, device=device) >= drop_probability
    return torch.cat([keep, keep])
