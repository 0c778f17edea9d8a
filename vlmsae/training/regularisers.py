"""Regularisers on paired batches (row i of the image half pairs with row i of the text half).

- iso-energy alignment (Dhimoïla et al. eq. 1), in one of two forms (`alignment_form`):
  "paper": L_align = −(1/b)·Tr(Ẑ_I Ẑ_Tᵀ), codes row-normalised, as eq. 1 writes it;
  "authors": the same mean negative cosine after zeroing, in both codes of a pair, the top-1 atom
  of each side, as the authors' code trains SAE-A;
- group sparsity (Kaushik et al. eq. 3): L_gs = mean over pairs of Σ_k sqrt(z_I,k² + z_T,k²);
- cross-modal masking (Kaushik et al. §4): one random mask per pair, shared by both modalities,
  applied to the pre-activations before TopK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

# A value > 0 of any of these switches a regulariser on (and training onto aligned pairs).
REGULARISER_KEYS = ("alignment", "group_sparsity", "mask_probability")
# How a regulariser is computed: variant keys that are neither SAE settings nor weights.
REGULARISER_OPTIONS = ("alignment_form",)

AlignmentForm = Literal["authors", "paper"]
# The value of a weight that its selection sweep (vlmsae.sweeps) has still to choose.
SWEEP = "sweep"
Swept = Literal["sweep"]


@dataclass(frozen=True)
class Regularisers:
    """A variant's regulariser weights; a weight still to be swept (vlmsae.sweeps) is 'sweep'."""

    alignment: float | Swept = 0.0  # β
    group_sparsity: float | Swept = 0.0  # λ
    mask_probability: float | Swept = 0.0  # p
    alignment_form: AlignmentForm = "paper"

    def __post_init__(self) -> None:
        for key in REGULARISER_KEYS:
            value = getattr(self, key)
            if isinstance(value, str) and value != SWEEP:
                raise ValueError(f"{key}={value!r} is neither a weight nor '{SWEEP}'")

    @property
    def paired(self) -> bool:
        """Whether training needs aligned pairs in every batch (a swept weight will be > 0)."""
        return any(_on(getattr(self, key)) for key in REGULARISER_KEYS)

    @classmethod
    def from_variant(cls, variant: dict) -> Regularisers:
        weights = {key: _weight(variant.get(key, 0.0)) for key in REGULARISER_KEYS}
        return cls(**weights, alignment_form=variant.get("alignment_form", "paper"))


def _weight(value: float | str) -> float | str:
    return value if value == SWEEP else float(value)


def _on(value: float | str) -> bool:
    return value == SWEEP or value > 0


def alignment_loss(
    codes_image: torch.Tensor, codes_text: torch.Tensor, form: AlignmentForm = "paper"
) -> torch.Tensor:
    """−(1/b) Σ_i ⟨ẑ_I,i, ẑ_T,i⟩ for codes [b, p] each; an all-zero code contributes 0.

    form "authors" first zeroes, in both codes of pair i, the atom with the largest |code| of
    the image code and the one of the text code (for non-negative codes, the largest code): the
    dominant atom of each side, typically a modality's own bias atom, then neither rewards nor
    costs alignment. Which atoms are zeroed carries no gradient.
    """
    if form == "authors":
        drop = torch.zeros_like(codes_image, dtype=torch.bool)
        for codes in (codes_image, codes_text):
            # An all-zero code's "top" atom is arbitrary, but its pair's cosine is 0 either way.
            drop.scatter_(1, codes.detach().abs().argmax(dim=1, keepdim=True), True)
        codes_image = codes_image.masked_fill(drop, 0)
        codes_text = codes_text.masked_fill(drop, 0)
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
