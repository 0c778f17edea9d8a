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
from dataclasses import dataclass

import torch
from torch import nn

from vlmsae.registry_base import setting
from vlmsae.sae.base import Modality
from vlmsae.sae.codes import Codes
from vlmsae.sae.penalty import Penalised, PenalisedSettings
from vlmsae.sae.variant_registry import register


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


@dataclass(frozen=True, kw_only=True)
class JumpReLUSettings(PenalisedSettings):
    initial_threshold: float = setting(1e-3, "initial θ of every atom", exclusiveMinimum=0)
    bandwidth: float = setting(1e-3, "width ε of the straight-through kernel", exclusiveMinimum=0)
    l0_coefficient: float = setting(
        1e-3, "weight λ of the L0 penalty (the start of its steering with target_l0)", minimum=0
    )

    penalty = "l0_coefficient"


@register
class JumpReLU(Penalised):
    variant = "jumprelu"
    Settings = JumpReLUSettings
    sparse_path = False  # the fast path shares the straight-through Functions with the reference

    def __init__(self, d: int, settings: JumpReLUSettings):
        super().__init__(d, settings)
        self.bandwidth = settings.bandwidth
        self.log_threshold = nn.Parameter(
            torch.full((settings.n_atoms,), math.log(settings.initial_threshold))
        )

    @property
    def threshold(self) -> torch.Tensor:
        """[p] θ = exp(log_threshold)."""
        return self.log_threshold.exp()

    @torch.no_grad()
    def initialise_for_target(self, pre: torch.Tensor) -> None:
        """θ_j at the (1 − target_l0/p) quantile of atom j's pre-activations [N, p] (at least
        initial_threshold), so training starts at the target L0.

        Needed because log θ under Adam moves by about lr per step: θ can change only by a
        factor e^(lr·steps) in a run (e^3 for 3000 steps at 1e-3), too little to climb from a tiny
        initial θ to the scale of the pre-activations, whatever the penalty's weight, or to follow
        the pre-activations' drift during the warmup (hence the second call after it).
        """
        rank = max(1, math.ceil((1 - self.target_l0 / self.n_atoms) * len(pre)))
        quantile = pre.float().kthvalue(rank, dim=0).values
        self.log_threshold.copy_(quantile.clamp_min(self.settings.initial_threshold).log())

    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        return JumpReLUFunction.apply(pre, self.threshold, self.bandwidth)

    def losses(
        self, x: torch.Tensor, codes: Codes, reconstruction: torch.Tensor, modality: Modality = None
    ) -> dict[str, torch.Tensor]:
        """Adds `l0` = λ · mean over rows of Σ_k H(pre_k − θ_k) from the detached pre."""
        terms = super().losses(x, codes, reconstruction, modality)
        active = StepFunction.apply(codes.pre, self.threshold, self.bandwidth)
        terms["l0"] = self.penalty_coefficient * active.sum(dim=1).mean()
        return terms
