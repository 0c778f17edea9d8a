"""Matching-Pursuit SAE (Costa et al. 2025; Mallat & Zhang 1993): k greedy steps on the residual.

There is no encoder. With the unit-norm decoder rows D = W_dec [p, d] as dictionary,
r_0 = x − b_dec (b_dec = 0 with `decoder_bias: false`) and, for t = 1..k,
    c_t = r_{t−1}·Dᵀ,  j_t = argmax c_t (argmax |c_t| when signed),
    a_t = c_t[j_t] (max(c_t[j_t], 0) when non-negative),  r_t = r_{t−1} − a_t·D[j_t];
z = Σ_t a_t·e_{j_t} (an atom picked twice adds its coefficients) and x̂ = z·D + b_dec = x − r_k.

The fast path never multiplies the residual by Dᵀ again after step 1: since r_t = r_{t−1} − a_t·d_j,
the correlations follow c_{t+1} = c_t − a_t·G[j_t] with the Gram matrix G = D·Dᵀ, a row gather
instead of a [B, d]×[d, p] product (`select_atoms`). `PursuitCoefficients` then recomputes the
coefficients exactly along those selections, in float32 even when the correlations ran in bf16
under autocast, and differentiates them from the k gathered atoms alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmsae.registry_base import setting
from vlmsae.sae.base import Modality, SparseAutoencoder
from vlmsae.sae.codes import Codes
from vlmsae.sae.variant_registry import KWithinAtoms, SAESettings, register


def _working_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or float64 when an input is float64: coefficients never run in half precision."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def select_atoms(
    x_centred: torch.Tensor,
    dictionary: torch.Tensor,
    atom_mask: torch.Tensor | None,
    k: int,
    nonnegative: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cols [B, k] = j_t, admissible [B, k]) of the greedy pursuit of x_centred [B, d].

    Correlations follow c_{t+1} = c_t − a_t·G[j_t] with G = D·Dᵀ and a_t read off c_t[j_t]; the
    products may run in bf16 under autocast, the running correlations stay in float32.
    `admissible` is False where atom_mask [B, p] left no atom to choose.
    """
    batch, n_atoms = len(x_centred), len(dictionary)
    dtype = _working_dtype(x_centred, dictionary)
    correlation = (x_centred @ dictionary.T).to(dtype)
    # G costs p²·d once; the rows G[j] = D[j]·Dᵀ cost B·p·d a step, cheaper when k·B < p.
    gram = dictionary @ dictionary.T if k * batch >= n_atoms else None
    masked = None if atom_mask is None else ~atom_mask
    if masked is not None and nonnegative:
        # −inf survives every later update c ← c − a·G[j], so one fill masks all k steps.
        correlation.masked_fill_(masked, float("-inf"))
    cols = torch.empty(batch, k, dtype=torch.long, device=x_centred.device)
    admissible = torch.empty(batch, k, dtype=torch.bool, device=x_centred.device)
    for t in range(k):
        score = correlation if nonnegative else correlation.abs()
        if masked is not None and not nonnegative:
            score.masked_fill_(masked, float("-inf"))
        best, picked = score.max(dim=1)
        step = correlation.gather(1, picked.unsqueeze(1))
        allowed = best > float("-inf")
        moves = allowed & (step.squeeze(1) > 0) if nonnegative else allowed
        gram_rows = gram[picked] if gram is not None else dictionary[picked] @ dictionary.T
        correlation.addcmul_(torch.where(moves.unsqueeze(1), step, 0), gram_rows, value=-1)
        cols[:, t], admissible[:, t] = picked, allowed
    return cols, admissible


# The coefficient passes move about B·k·d elements through the gathered atoms (memory-bound), or
# do about (B + p)·p·d multiply-adds in dense products through x_c·Dᵀ and G. On one CPU thread
# the dense route wins up to (B + p)·p ≈ 300·B·k (3.5× faster at B 1024, p 128, k 10, d 512;
# even at 320; 2× slower at 600 and beyond): `tests/test_sae_mp.py` checks both routes.
GRAM_ROUTE_LIMIT = 256


def coefficients_through_gram(batch: int, n_atoms: int, k: int) -> bool:
    """Whether `PursuitCoefficients` reads b_t and M_ts off x_c·Dᵀ and G rather than the atoms."""
    return (batch + n_atoms) * n_atoms <= GRAM_ROUTE_LIMIT * batch * k


class PursuitCoefficients(torch.autograd.Function):
    """(a [B, k], cols [B, k], live [B, k]): matching pursuit of x_centred [B, d] over D [p, d].

    After the selection, the coefficients are recomputed exactly (float32 at least, autocast off)
    in the coordinates of the chosen atoms A_t = d_{j_t}: with b_t = ⟨x_c, A_t⟩ and the overlaps
    M_ts = ⟨A_t, A_s⟩, the residual recurrence a_t = ⟨r_{t−1}, A_t⟩, r_t = r_{t−1} − a_t·A_t reads
        a_t = live_t·(b_t − Σ_{s<t} M_ts·a_s),
    with live_t False where no atom was admissible or, when non-negative, where b_t − Σ ≤ 0.
    Gradients reach x_centred and D through the a_t only: the selections are constants, as
    autograd treats an argmax. Both passes take a few products instead of k rounds of [B, d]
    operations: through the gathered atoms A [B, k, d] (nothing of size p, for large
    dictionaries), or through x_c·Dᵀ and G = D·Dᵀ (small ones; `coefficients_through_gram`).
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
        cols, live = select_atoms(x_centred, dictionary, atom_mask, k, nonnegative)
        dtype = _working_dtype(x_centred, dictionary)
        through_gram = coefficients_through_gram(len(x_centred), len(dictionary), k)
        with torch.autocast(x_centred.device.type, enabled=False):
            x_working, dictionary_working = x_centred.to(dtype), dictionary.to(dtype)
            if through_gram:
                # b_t and M_ts read off x_c·Dᵀ [B, p] and G = D·Dᵀ [p, p]: two dense products
                # instead of gathering the k atoms of every row ([B, k, d], memory-bound).
                projections = (x_working @ dictionary_working.T).gather(1, cols)
                gram = dictionary_working @ dictionary_working.T
                overlaps = gram[cols.unsqueeze(2), cols.unsqueeze(1)]
            else:
                atoms = dictionary_working[cols]
                projections = torch.bmm(atoms, x_working.unsqueeze(2)).squeeze(2)
                overlaps = torch.bmm(atoms, atoms.mT)
        values = torch.zeros_like(projections)
        for t in range(k):
            coefficient = projections[:, t] - (overlaps[:, t, :t] * values[:, :t]).sum(dim=1)
            if nonnegative:
                live[:, t] &= coefficient > 0
            values[:, t] = torch.where(live[:, t], coefficient, 0)
        ctx.save_for_backward(x_centred, dictionary, cols, values, live, overlaps)
        ctx.mark_non_differentiable(cols, live)
        return values, cols, live

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor, *_constant_outputs):
        """Reverse mode of a_t = live_t·(b_t − Σ_{s<t} M_ts·a_s), walking t = k..1:

            g_t = ∂L/∂b_t = live_t·(∂L/∂a_t − Σ_{u>t} M_ut·g_u),
            ∂L/∂x_c = Σ_t g_t·A_t,
            ∂L/∂A_t = g_t·x_c − Σ_s W_ts·A_s,  W = N + Nᵀ with N_ts = g_t·a_s for s < t, else 0,
        and ∂L/∂D[j] sums ∂L/∂A_t over the steps that chose atom j.
        """
        x_centred, dictionary, cols, values, live, overlaps = ctx.saved_tensors
        grad_steps = torch.zeros_like(values)
        for t in reversed(range(values.shape[1])):
            later = (overlaps[:, t, t + 1 :] * grad_steps[:, t + 1 :]).sum(dim=1)
            grad_steps[:, t] = torch.where(live[:, t], grad_values[:, t] - later, 0)
        lower = (grad_steps.unsqueeze(2) * values.unsqueeze(1)).tril(-1)
        weights = lower + lower.mT
        with torch.autocast(x_centred.device.type, enabled=False):
            x_working = x_centred.to(values.dtype)
            dictionary_working = dictionary.to(values.dtype)
            if coefficients_through_gram(len(x_centred), len(dictionary), values.shape[1]):
                # With S [B, p] the g_t scattered to their atoms and Q [p, p] the W_ts summed
                # at (j_t, j_s): ∂L/∂x_c = S·D and ∂L/∂D = Sᵀ·x_c − Q·D.
                n_atoms = len(dictionary)
                scattered = torch.zeros(
                    len(values), n_atoms, dtype=values.dtype, device=values.device
                ).scatter_add_(1, cols, grad_steps)
                pairs = (cols.unsqueeze(2) * n_atoms + cols.unsqueeze(1)).flatten()
                pair_weights = torch.zeros(
                    n_atoms * n_atoms, dtype=values.dtype, device=values.device
                ).index_put_((pairs,), weights.flatten(), accumulate=True)
                grad_x = scattered @ dictionary_working
                grad_dictionary = scattered.T @ x_working - pair_weights.view(
                    n_atoms, n_atoms
                ) @ dictionary_working
            else:
                atoms = dictionary_working[cols]
                grad_x = torch.bmm(grad_steps.unsqueeze(1), atoms).squeeze(1)
                grad_atoms = grad_steps.unsqueeze(2) * x_working.unsqueeze(1)
                grad_atoms -= torch.bmm(weights, atoms)
                grad_dictionary = torch.zeros_like(dictionary_working).index_put_(
                    (cols.flatten(),), grad_atoms.flatten(0, 1), accumulate=True
                )
        return grad_x.to(x_centred.dtype), grad_dictionary.to(dictionary.dtype), None, None, None


@dataclass(frozen=True, kw_only=True)
class MatchingPursuitSettings(KWithinAtoms, SAESettings):
    k: int = setting(description="pursuit steps per sample (at most k active atoms)", minimum=1)
    nonnegative: bool = setting(True, "non-negative coefficients (else signed)")
    decoder_bias: bool = setting(
        True,
        "learn b_dec (x̂ = z·D + b_dec); false: no decoder bias, as the iso-energy authors' MP-SAE",
    )

    def check(self) -> None:
        super().check()
        if self.modality_biases and not self.decoder_bias:
            raise ValueError("modality_biases needs decoder_bias: true (they are decoder biases)")


@register
class MatchingPursuit(SparseAutoencoder):
    variant = "mp"
    Settings = MatchingPursuitSettings
    has_encoder = False

    def __init__(self, d: int, settings: MatchingPursuitSettings):
        super().__init__(d, settings)
        self.k, self.nonnegative = settings.k, settings.nonnegative
        if not settings.decoder_bias:
            # A zero buffer, not a parameter: nothing trains it, and every reader of b_dec
            # (save/load, the trainer, metrics, exports) keeps working unchanged.
            shape = self.b_dec.shape
            del self.b_dec
            self.register_buffer("b_dec", torch.zeros(shape))

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
