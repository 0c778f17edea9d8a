"""What every SAE variant shares: x̂ = z·W_dec + b_dec, z = activate((x − b_dec)·W_encᵀ + b_enc).

Shapes: x [B, d]; codes z [B, p]; W_enc [p, d] and W_dec [p, d] (row k is atom k's encoder and
decoder direction; decoder rows are kept unit-norm); b_enc [p]; b_dec [d], or [2, d] with one
pre-bias per modality (GSAE, group-sparse eq. 3: b_0 for images, b_1 for texts).

Two paths compute the same thing:
- the fast path (`encode`/`decode`): the variant's `select` picks the active coordinates from
  detached pre-activations, their values are recomputed differentiably as x_c · W_enc[k] + b_enc[k]
  (O(nnz·d)), and decoding gathers only the active decoder rows;
- the reference path (`reference_forward`): the textbook dense computation through the variant's
  `reference_activate`, kept for tests that check both agree, values and gradients.
Variants whose codes are not sparse during training set `sparse_path = False`: their fast path is
the dense one. Variants without an encoder (matching pursuit, semi-NMF) override `encode`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from vlmsae.sae.codes import Codes

Modality = int | torch.Tensor | None  # 0 image, 1 text; an int for the batch or a [B] tensor


class SparseAutoencoder(nn.Module):
    variant: ClassVar[str]
    has_encoder: ClassVar[bool] = True
    sparse_path: ClassVar[bool] = True

    def __init__(self, d: int, n_atoms: int, modality_biases: bool = False, **hyper):
        super().__init__()
        self.d, self.n_atoms = d, n_atoms
        self.hyper = {"modality_biases": modality_biases, **hyper}
        decoder = torch.randn(n_atoms, d)
        decoder /= decoder.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(decoder)
        if self.has_encoder:
            self.W_enc = nn.Parameter(decoder.clone())
            self.b_enc = nn.Parameter(torch.zeros(n_atoms))
        self.b_dec = nn.Parameter(torch.zeros(2, d) if modality_biases else torch.zeros(d))

    # ---- shared pieces -------------------------------------------------------------------
    def bias(self, modality: Modality) -> torch.Tensor:
        """b_dec for each row: [d] (broadcast) or [B, d] with per-modality pre-biases."""
        if self.b_dec.ndim == 1:
            return self.b_dec
        if modality is None:
            raise ValueError(
                "this SAE has per-modality pre-biases: pass modality (0 image, 1 text)"
            )
        return self.b_dec[modality]

    def pre_activation(
        self, x_centred: torch.Tensor, atom_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """[B, p] x_c·W_encᵀ + b_enc; masked atoms (atom_mask False) get −inf."""
        pre = x_centred @ self.W_enc.T + self.b_enc
        if atom_mask is not None:
            pre = pre.masked_fill(~atom_mask, float("-inf"))
        return pre

    # ---- fast path -----------------------------------------------------------------------
    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, cols) of the active codes, from detached pre-activations [B, p]."""
        raise NotImplementedError

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """Dense-path variants: [B, p] codes from differentiable pre-activations."""
        return self.reference_activate(pre)

    def encode(
        self, x: torch.Tensor, modality: Modality = None, atom_mask: torch.Tensor | None = None
    ) -> Codes:
        """[B, d] → codes of shape [B, p]; atom_mask [B, p] bool drops atoms before selection."""
        x_centred = x - self.bias(modality)
        if not self.sparse_path:
            pre = self.pre_activation(x_centred, atom_mask)
            return Codes.from_dense(self.activate(pre), pre=pre.detach())
        with torch.no_grad():
            pre = self.pre_activation(x_centred, atom_mask)
            rows, cols = self.select(pre)
        return self.codes_at(x_centred, rows, cols, pre)

    def codes_at(
        self,
        x_centred: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        pre: torch.Tensor | None = None,
    ) -> Codes:
        """Codes with the given active coordinates, values recomputed with their gradient."""
        values = (x_centred[rows] * self.W_enc[cols]).sum(dim=1) + self.b_enc[cols]
        return Codes((len(x_centred), self.n_atoms), rows, cols, values.relu(), pre=pre)

    def decode(self, codes: Codes, modality: Modality = None) -> torch.Tensor:
        """codes [B, p] → [B, d]; sparse codes gather only their active decoder rows."""
        batch = codes.shape[0]
        if codes.is_sparse:
            contributions = codes.values.unsqueeze(1) * self.W_dec[codes.cols]
            out = torch.zeros(batch, self.d, dtype=contributions.dtype, device=contributions.device)
            out = out.index_add(0, codes.rows, contributions)
        else:
            out = codes.dense_codes @ self.W_dec
        return out + self.bias(modality)

    def forward(
        self, x: torch.Tensor, modality: Modality = None, atom_mask: torch.Tensor | None = None
    ) -> tuple[Codes, torch.Tensor]:
        codes = self.encode(x, modality, atom_mask)
        return codes, self.decode(codes, modality)

    def losses(
        self, x: torch.Tensor, codes: Codes, reconstruction: torch.Tensor, modality: Modality = None
    ) -> dict[str, torch.Tensor]:
        """Loss terms; the trainer minimises their sum. `mse` = mean over rows of ‖x − x̂‖²."""
        return {"mse": (reconstruction.float() - x).pow(2).sum(dim=1).mean()}

    # ---- reference path ------------------------------------------------------------------
    def reference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        """The variant's textbook activation: [B, p] pre-activations → [B, p] codes."""
        raise NotImplementedError

    def reference_forward(
        self, x: torch.Tensor, modality: Modality = None, atom_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(dense codes [B, p], reconstruction [B, d]) by plain dense algebra."""
        bias = self.bias(modality)
        codes = self.reference_activate(self.pre_activation(x - bias, atom_mask))
        return codes, codes @ self.W_dec + bias

    # ---- training hooks ------------------------------------------------------------------
    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Project the decoder rows back onto the unit sphere (called after each step)."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def config(self) -> dict:
        """Everything `vlmsae.sae.build` needs to rebuild this module."""
        return {"variant": self.variant, "d": self.d, "n_atoms": self.n_atoms, **self.hyper}
