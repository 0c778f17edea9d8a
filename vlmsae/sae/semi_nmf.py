"""Semi-NMF (Ding, Li & Jordan 2010): X ≈ Z·D + b_dec with Z ≥ 0 and D unconstrained.

The non-SAE baseline of linear-structure Fig. 1. There is no encoder: each batch's codes solve
the non-negative least-squares problem
    z = argmin_{z ≥ 0} ‖x − b_dec − z·D‖²
for the current dictionary D = W_dec [p, d], by projected gradient with step 1/L,
L = λ_max(D·Dᵀ), optionally keeping the k largest codes per row. Codes carry no gradient: the
trainer learns D and b_dec through decoding, i.e. alternating minimisation with an SGD step on
D. Decoder rows stay unit-norm, which only fixes the scale split between Z and D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlmsae.registry_base import setting
from vlmsae.sae.base import Modality, SparseAutoencoder
from vlmsae.sae.codes import Codes
from vlmsae.sae.variant_registry import KWithinAtoms, SAESettings, register


def largest_eigenvalue(dictionary: torch.Tensor, iterations: int) -> torch.Tensor:
    """λ_max(D·Dᵀ) = λ_max(Dᵀ·D) for D [p, d], by power iteration on the d-dimensional side.

    The start is a fixed pseudo-random vector, so codes are a deterministic function of D.
    """
    start = torch.randn(dictionary.shape[1], generator=torch.Generator().manual_seed(0))
    v = start.to(dictionary)
    for _ in range(iterations):
        v = dictionary.T @ (dictionary @ v)
        v = v / v.norm().clamp_min(1e-30)
    return (dictionary @ v).pow(2).sum()


def keep_largest(codes: torch.Tensor, k: int | None) -> torch.Tensor:
    """[B, p] codes with all but the k largest of each row zeroed (k None: unchanged)."""
    if k is None or k >= codes.shape[1]:
        return codes
    values, cols = codes.topk(k, dim=1)
    return torch.zeros_like(codes).scatter(1, cols, values)


@dataclass(frozen=True, kw_only=True)
class SemiNMFSettings(KWithinAtoms, SAESettings):
    n_iter: int = setting(50, "projected-gradient iterations per batch", minimum=1)
    k: int | None = setting(None, "optional cap on active atoms per sample", minimum=1)


@register
class SemiNMF(SparseAutoencoder):
    variant = "semi_nmf"
    Settings = SemiNMFSettings
    has_encoder = False
    sparse_path = False
    # The Rayleigh quotient under-estimates λ_max, but projected gradient converges for any
    # step below 2/λ_max, so an estimate within a factor 2 is enough.
    power_iterations = 20

    def __init__(self, d: int, settings: SemiNMFSettings):
        super().__init__(d, settings)
        self.n_iter, self.k = settings.n_iter, settings.k

    @torch.no_grad()
    def encode(
        self, x: torch.Tensor, modality: Modality = None, atom_mask: torch.Tensor | None = None
    ) -> Codes:
        """[B, d] → dense non-negative codes [B, p]; masked atoms are held at zero."""
        # float32 throughout: bf16 rounding under autocast would stall the iterations.
        with torch.autocast(x.device.type, enabled=False):
            target = (x - self.bias(modality)).float()
            dictionary = self.W_dec.float()
            step = 1.0 / largest_eigenvalue(dictionary, self.power_iterations).clamp_min(1e-12)
            codes = torch.zeros(len(x), self.n_atoms, device=x.device)
            for _ in range(self.n_iter):
                gradient = (codes @ dictionary - target) @ dictionary.T
                codes = (codes - step * gradient).relu()
                if atom_mask is not None:
                    codes = codes * atom_mask
        return Codes.from_dense(keep_largest(codes, self.k))

    def reference_forward(
        self, x: torch.Tensor, modality: Modality = None, atom_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact codes by scipy's active-set NNLS, one row at a time (small problems only)."""
        # Imported here: scipy.optimize costs every job that loads an SAE 0.2 s, and only this
        # reference path (tests) needs it.
        from scipy.optimize import nnls

        bias = self.bias(modality)
        target = (x - bias).detach().double().cpu().numpy()
        dictionary = self.W_dec.detach().double().cpu().numpy()
        allowed = (
            np.ones((len(x), self.n_atoms), bool) if atom_mask is None else atom_mask.cpu().numpy()
        )
        solution = np.zeros((len(x), self.n_atoms))
        for row, (y, keep) in enumerate(zip(target, allowed, strict=True)):
            solution[row, keep] = nnls(dictionary[keep].T, y)[0]
        codes = keep_largest(torch.from_numpy(solution).to(x), self.k)
        return codes, codes @ self.W_dec + bias
