"""Codes of a batch, kept sparse where the variant allows it.

A TopK-style code has k non-zeros out of p atoms; holding it as coordinates (rows, cols, values)
lets decoding touch only k decoder rows per sample and lets the encoder's gradient stay as sparse
as the code. Variants whose codes are not sparse during training (ReLU early on, JumpReLU) hold a
dense matrix instead. Either way `values` / `dense` carry the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Codes:
    shape: tuple[int, int]  # (B, p)
    rows: torch.Tensor | None = None  # [nnz] long
    cols: torch.Tensor | None = None  # [nnz] long
    values: torch.Tensor | None = None  # [nnz]
    dense_codes: torch.Tensor | None = None  # [B, p], for dense-path variants
    pre: torch.Tensor | None = None  # [B, p] detached pre-activations (auxiliary loss)
    # No coordinate repeats (a selection's codes do not; a pursuit may pick an atom twice): which
    # codes are non-zero can then be read off the coordinates, without the dense matrix.
    unique: bool = False

    @classmethod
    def from_dense(cls, dense: torch.Tensor, pre: torch.Tensor | None = None) -> Codes:
        return cls(shape=tuple(dense.shape), dense_codes=dense, pre=pre)

    @property
    def is_sparse(self) -> bool:
        return self.dense_codes is None

    def dense(self) -> torch.Tensor:
        """[B, p] codes (differentiable); repeated coordinates are summed."""
        if self.dense_codes is not None:
            return self.dense_codes
        out = torch.zeros(self.shape, dtype=self.values.dtype, device=self.values.device)
        return out.index_put((self.rows, self.cols), self.values, accumulate=True)

    def restrict(self, keep_cols_below: int) -> Codes:
        """The codes of atoms [0, keep_cols_below) only (Matryoshka prefixes)."""
        if not self.is_sparse:
            dense = self.dense_codes.clone()
            dense[:, keep_cols_below:] = 0
            return Codes.from_dense(dense)
        keep = self.cols < keep_cols_below
        return Codes(
            self.shape, self.rows[keep], self.cols[keep], self.values[keep], unique=self.unique
        )

    def activity(self) -> tuple[torch.Tensor, torch.Tensor]:
        """([p] bool: atoms non-zero in some row, mean count of non-zero codes per row), without
        gradient; as from the dense codes, whose repeated coordinates are summed."""
        if self.is_sparse and self.unique:
            nonzero = self.values.detach() != 0
            fired = torch.zeros(self.shape[1], dtype=torch.bool, device=nonzero.device)
            fired[self.cols[nonzero]] = True
            # A float32 sum of whole numbers below 2^24 is exact: the same value as the mean
            # over rows of the per-row counts.
            return fired, nonzero.sum().float() / self.shape[0]
        active = self.dense().detach() != 0
        return active.any(dim=0), active.sum(dim=1).float().mean()
