"""Matching-Pursuit SAE (Costa et al. 2025; Mallat & Zhang 1993): k greedy steps on the residual.

There is no encoder. With the unit-norm decoder rows D = W_dec [p, d] as dictionary,
r_0 = x − b_dec and, for t = 1..k,
    c_t = r_{t−1}·Dᵀ,  j_t = argmax c_t (argmax |c_t| when signed),
    a_t = c_t[j_t] (max(c_t[j_t], 0) when non-negative),  r_t = r_{t−1} − a_t·D[j_t];
z = Σ_t a_t·e_{j_t} (an atom picked twice adds its coefficients) and x̂ = z·D + b_dec = x − r_k.

The fast path never multiplies the residual by Dᵀ again after step 1: since r_t = r_{t−1} − a_t·d_j,
the correlations follow c_{t+1} = c_t − a_t·G[j_t] with the Gram matrix G = D·Dᵀ, a row gather
instead of a [B, d]×[d, p] product. The coefficients are then rebuilt from the residual recurrence
a_t = ⟨r_{t−1}, d_{j_t}⟩ in float32 (the correlations may be bf16 under autocast), and
`PursuitCoefficients` differentiates that recurrence in O(k·B·d) from the k gathered atoms.
"""

from __future__ import annotations

import torch

from vlmsae.sae.base import Modality, SparseAutoencoder
from vlmsae.sae.codes import Codes
from vlmsae.sae.registry import register


def _working_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or float64 when an input is float64: the recurrence never runs in half precision."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


class PursuitCoefficients(torch.autograd.Function):
    """(a [B, k], cols [B, k], live [B, k]) = k matching-pursuit steps on x_centred [B, d].

    Gradients reach x_centred and the dictionary [p, d] through the coefficients a_t only; the
    selections j_t (cols) are constants, as autograd treats an argmax. `live` is False where a step
    added nothing: no admissible atom (atom_mask [B, p] False everywhere) or, when non-negative,
    a best correlation ≤ 0.
    """

    @staticmethod
    def forward(
        ctx,
        x_centred: torch.Tensor,
        dictionary: torch.Tensor,
        atom_mask: torch.Tensor | None,
        k: int,
        nonnegative: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, n_atoms = len(x_centred), len(dictionary)
        dtype = _working_dtype(x_centred, dictionary)
        residual = x_centred.to(dtype, copy=True)
        atoms = dictionary.to(dtype)
        correlation = (x_centred @ dictionary.T).to(dtype)
        # The Gram matrix costs p²·d once; fetching G[j] as D[j]·Dᵀ costs B·p·d per step, cheaper
        # when the batch selects fewer than p atoms in all.
        gram = dictionary @ dictionary.T if k * batch >= n_atoms else None
        masked = None if atom_mask is None else ~atom_mask
        if masked is not None and nonnegative:
            # −inf survives every later update c ← c − a·G[j], so one fill masks all k steps.
            correlation.masked_fill_(masked, float("-inf"))
        values = torch.empty(batch, k, dtype=dtype, device=x_centred.device)
        cols = torch.empty(batch, k, dtype=torch.long, device=x_centred.device)
        live = torch.empty(batch, k, dtype=torch.bool, device=x_centred.device)
        for t in range(k):
            score = correlation if nonnegative else correlation.abs()
            if masked is not None and not nonnegative:
                score.masked_fill_(masked, float("-inf"))
            best, picked = score.max(dim=1)
            atom = atoms[picked]
            # Recomputed from the residual rather than read off the (possibly bf16) correlations.
            coefficient = (residual * atom).sum(dim=1)
            alive = best > float("-inf")
            if nonnegative:
                alive &= coefficient > 0
            coefficient = torch.where(alive, coefficient, 0)
            residual.addcmul_(coefficient.unsqueeze(1), atom, value=-1)
            gram_rows = gram[picked] if gram is not None else dictionary[picked] @ dictionary.T
            correlation.addcmul_(coefficient.unsqueeze(1), gram_rows, value=-1)
            values[:, t], cols[:, t], live[:, t] = coefficient, picked, alive
        ctx.save_for_backward(dictionary, cols, values, live, residual)
        ctx.input_dtype = x_centred.dtype
        ctx.mark_non_differentiable(cols, live)
        return values, cols, live

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor, *_constant_outputs):
        """Reverse-mode through s_t = ⟨r_{t−1}, d_j⟩, a_t = live_t·s_t, r_t = r_{t−1} − a_t·d_j.

        With ḡ_r = ∂L/∂r_t (zero at t = k: r_k is not an output), walking t = k..1:
            ∂L/∂s_t = live_t·(∂L/∂a_t − ⟨ḡ_r, d_j⟩),
            ∂L/∂d_j += ∂L/∂s_t·r_{t−1} − a_t·ḡ_r,
            ∂L/∂r_{t−1} = ḡ_r + ∂L/∂s_t·d_j,
        and ∂L/∂x_centred = ∂L/∂r_0. r_{t−1} = r_t + a_t·d_j is rebuilt on the way back.
        """
        dictionary, cols, values, live, residual = ctx.saved_tensors
        atoms = dictionary.to(values.dtype)
        grad_residual = torch.zeros_like(residual)
        steps = values.shape[1]
        # One scatter of all k·B row updates at the end: on CPU a per-step index_add_ into [p, d]
        # costs time in p, k times over.
        updates = residual.new_empty(steps, *residual.shape)
        for t in reversed(range(steps)):
            atom, coefficient = atoms[cols[:, t]], values[:, t].unsqueeze(1)
            residual = residual.addcmul(coefficient, atom)
            grad_step = (grad_values[:, t] - (grad_residual * atom).sum(dim=1)) * live[:, t]
            torch.mul(grad_step.unsqueeze(1), residual, out=updates[t])
            updates[t].addcmul_(coefficient, grad_residual, value=-1)
            grad_residual.addcmul_(grad_step.unsqueeze(1), atom)
        grad_dictionary = torch.zeros_like(dictionary).index_put_(
            (cols.T.flatten(),), updates.flatten(0, 1).to(dictionary.dtype), accumulate=True
        )
        return grad_residual.to(ctx.input_dtype), grad_dictionary, None, None, None


@register
class MatchingPursuit(SparseAutoencoder):
    variant = "mp"
    has_encoder = False

    def __init__(self, d: int, n_atoms: int, k: int, nonnegative: bool = True, **common):
        super().__init__(d, n_atoms, k=k, nonnegative=nonnegative, **common)
        self.k, self.nonnegative = k, nonnegative

    def encode(
        self, x: torch.Tensor, modality: Modality = None, atom_mask: torch.Tensor | None = None
    ) -> Codes:
        """[B, d] → sparse codes [B, p] holding the live steps (≤ k per row, rows may repeat)."""
        x_centred = x - self.bias(modality)
        values, cols, live = PursuitCoefficients.apply(
            x_centred, self.W_dec, atom_mask, self.k, self.nonnegative
        )
        rows = torch.arange(len(x), device=x.device).unsqueeze(1).expand_as(cols)
        return Codes((len(x), self.n_atoms), rows[live], cols[live], values[live])

    def reference_forward(
        self, x: torch.Tensor, modality: Modality = None, atom_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(dense codes [B, p], reconstruction [B, d]): the unrolled loop, c_t = r_{t−1}·Dᵀ."""
        bias = self.bias(modality)
        residual = x - bias
        codes = torch.zeros(len(x), self.n_atoms, dtype=residual.dtype, device=x.device)
        for _ in range(self.k):
            correlation = residual @ self.W_dec.T
            score = correlation if self.nonnegative else correlation.abs()
            if atom_mask is not None:
                score = score.masked_fill(~atom_mask, float("-inf"))
            best, picked = score.detach().max(dim=1)
            coefficient = correlation.gather(1, picked.unsqueeze(1)).squeeze(1)
            alive = best > float("-inf")
            if self.nonnegative:
                alive &= coefficient.detach() > 0
            coefficient = torch.where(alive, coefficient, 0)
            codes = codes.scatter_add(1, picked.unsqueeze(1), coefficient.unsqueeze(1))
            residual = residual - coefficient.unsqueeze(1) * self.W_dec[picked]
        return codes, codes @ self.W_dec + bias
