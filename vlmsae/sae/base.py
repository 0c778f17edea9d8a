"""What every SAE variant shares: x̂ = z·D + b_dec, z = activate((x − b_dec)·W_enc + b_enc).

Shapes: x [B, d], codes z [B, p], W_enc [d, p], W_dec [p, d] (rows are atoms, kept unit-norm).
A variant overrides `activate` (and `extra_losses` when it has a sparsity penalty).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class SparseAutoencoder(nn.Module):
    variant: ClassVar[str]

    def __init__(self, d: int, n_atoms: int, **hyper):
        super().__init__()
        self.d, self.n_atoms, self.hyper = d, n_atoms, hyper
        decoder = torch.randn(n_atoms, d)
        decoder /= decoder.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(decoder)
        self.W_enc = nn.Parameter(decoder.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(n_atoms))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """[B, p] encoder pre-activations."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, d] → [B, p] sparse codes."""
        return self.activate(self.pre_activation(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, p] → [B, d]."""
        return codes @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.encode(x)
        return codes, self.decode(codes)

    def extra_losses(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Variant-specific loss terms added to the reconstruction loss (none by default)."""
        return {}

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Project the decoder rows back onto the unit sphere (called after each step)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def config(self) -> dict:
        """Everything `vlmsae.sae.build` needs to rebuild this module."""
        return {"variant": self.variant, "d": self.d, "n_atoms": self.n_atoms, **self.hyper}
