"""JumpReLU SAE (Rajamanoharan et al. 2024): z = pre · H(pre − θ), one learned threshold per atom.

θ = exp(log_threshold) stays positive. H has no useful derivative, so θ learns through the
paper's straight-through pseudo-derivatives, with a rectangle kernel K(u) = 1[|u| < 1/2] of
bandwidth ε:
    ∂/∂θ JumpReLU_θ(pre) := −(θ/ε)·K((pre − θ)/ε),    ∂/∂θ H(pre − θ) := −(1/ε)·K((pre − θ)/ε).
The pre-activations get the exact gradient H(pre − θ) through the activation and none through the
L0 penalty, as in the paper.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vlmsae.sae.base import Modality, SparseAutoencoder
from vlmsae.sae.codes import Codes
from vlmsae.sae.registry import register


def _kernel(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """[B, p] (1/ε)·K((pre − θ)/ε) with the rectangle kernel K."""
    u = (pre - threshold) / bandwidth
    return ((u > -0.5) & (u < 0.5)).to(pre.dtype) / bandwidth


class JumpReLUFunction(torch.autograd.Function):
    """pre [B, p], θ [p] → pre·H(pre − θ); θ's gradient by the straight-through estimator."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        # `where`, not a product: masked atoms hold −inf and −inf·0 is nan.
        return torch.where(pre > threshold, pre, 0.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        pre, threshold = ctx.saved_tensors
        grad_threshold = -threshold * _kernel(pre, threshold, ctx.bandwidth) * grad
        grad_pre = grad * (pre > threshold)
        return grad_pre, grad_threshold.sum_to_size(threshold.shape).to(threshold.dtype), None


class StepFunction(torch.autograd.Function):
    """pre [B, p], θ [p] → H(pre − θ); gradient to θ only (straight-through), none to pre."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        pre, threshold = ctx.saved_tensors
        grad_threshold = -_kernel(pre, threshold, ctx.bandwidth) * grad
        return None, grad_threshold.sum_to_size(threshold.shape).to(threshold.dtype), None


@register
class JumpReLU(SparseAutoencoder):
    variant = "jumprelu"
    sparse_path = False  # the fast path shares the straight-through Functions with the reference

    def __init__(
        self,
        d: int,
        n_atoms: int,
        initial_threshold: float = 1e-3,
        bandwidth: float = 1e-3,
        l0_coefficient: float = 1e-3,
        **common,
    ):
        super().__init__(
            d,
            n_atoms,
            initial_threshold=initial_threshold,
            bandwidth=bandwidth,
            l0_coefficient=l0_coefficient,
            **common,
        )
        self.bandwidth, self.l0_coefficient = bandwidth, l0_coefficient
        self.log_threshold = nn.Parameter(torch.full((n_atoms,), math.log(initial_threshold)))

    @property
    def threshold(self) -> torch.Tensor:
        """[p] θ = exp(log_threshold)."""
        return self.log_threshold.exp()

    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        return JumpReLUFunction.apply(pre, self.threshold, self.bandwidth)

    def losses(
        self, x: torch.Tensor, codes: Codes, reconstruction: torch.Tensor, modality: Modality = None
    ) -> dict[str, torch.Tensor]:
        """Adds `l0` = λ · mean over rows of Σ_k H(pre_k − θ_k) from the detached pre."""
        terms = super().losses(x, codes, reconstruction, modality)
        active = StepFunction.apply(codes.pre, self.threshold, self.bandwidth)
        terms["l0"] = self.l0_coefficient * active.sum(dim=1).mean()
        return terms
