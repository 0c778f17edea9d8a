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

import warnings
from contextlib import nullcontext
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlmsae.sae.codes import Codes
from vlmsae.sae.variant_registry import SAESettings

Modality = int | torch.Tensor | None  # 0 image, 1 text; an int for the batch or a [B] tensor


# ---- sparse kernels ----------------------------------------------------------------------------
# A sparse matrix S [n_out, n_in] is held as coordinates (out_index, in_index, values), nnz each.
# Its products with dense matrices run through `embedding_bag`, a fused gather-scale-sum with no
# [nnz, d] temporary, once the coordinates are grouped (stably sorted) by the output index.


def _no_autocast(tensor: torch.Tensor):
    """The sparse kernels run in their inputs' dtype (they are not matmuls)."""
    if torch.is_autocast_enabled(tensor.device.type):
        return torch.autocast(tensor.device.type, enabled=False)
    return nullcontext()


def _grouped(keys: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(order, offsets): a stable sort of keys [nnz] in [0, n_groups), where each group starts."""
    if keys.device.type == "cpu" and n_groups <= np.iinfo(np.int16).max + 1:
        # numpy sorts 16-bit integers stably by a one-thread radix sort: about 10x faster than
        # torch's sort of a training step's keys. A stable order is unique: the same permutation.
        order = torch.from_numpy(np.argsort(keys.numpy().astype(np.int16), kind="stable"))
    else:
        # Sorted as one row of a 2-D tensor: the 1-D integer sort of the CPU backend is a parallel
        # radix sort whose many thread barriers stall for whole scheduler slices on a busy machine.
        order = torch.sort(keys.reshape(1, -1), dim=1, stable=True).indices.reshape(-1)
    counts = torch.bincount(keys, minlength=n_groups)
    return order, counts.cumsum(0) - counts


def _spmm(
    out_index: torch.Tensor,
    in_index: torch.Tensor,
    values: torch.Tensor,
    dense: torch.Tensor,
    n_out: int,
) -> torch.Tensor:
    """[n_out, d] = S·dense; row r = Σ values[i]·dense[in_index[i]] over out_index[i] = r."""
    # Detached operands let embedding_bag skip the bookkeeping its own backward would need.
    values = values.detach()
    if bool((out_index[1:] < out_index[:-1]).any()):
        order, offsets = _grouped(out_index, n_out)
        # index_select, not `tensor[order]`: advanced indexing splits even [nnz] gathers over
        # threads.
        in_index, values = in_index.index_select(0, order), values.index_select(0, order)
    else:
        # Already grouped (codes grouped by their row, as selected): the stable sort would be
        # the identity, and each group starts at its first index.
        offsets = torch.searchsorted(out_index, torch.arange(n_out, device=out_index.device))
    return F.embedding_bag(in_index, dense.detach(), offsets, mode="sum", per_sample_weights=values)


def _sddmm(
    left: torch.Tensor, right: torch.Tensor, left_index: torch.Tensor, right_index: torch.Tensor
) -> torch.Tensor:
    """[nnz]: left[left_index[i]] · right[right_index[i]], one dot product per coordinate.

    On CPU in float32/float64 it runs through `torch.sparse.sampled_addmm` (SDDMM), one dot product
    per stored coordinate with no [nnz, d] temporary; elsewhere (GPU, half precision, which that
    CPU kernel lacks) the operands are gathered a block at a time.
    """
    if left_index.numel() == 0:
        return left.new_zeros(0)
    if left.device.type == "cpu" and left.dtype in (torch.float32, torch.float64):
        return _sampled_dots(left.contiguous(), right.contiguous(), left_index, right_index)
    return _gathered_dots(left, right, left_index, right_index)


def _sampled_dots(
    left: torch.Tensor, right: torch.Tensor, left_index: torch.Tensor, right_index: torch.Tensor
) -> torch.Tensor:
    """`_sddmm` by sampled_addmm, whose CSR pattern needs the coordinates grouped by left_index.

    Callers almost always pass them so (codes are selected row by row): only otherwise are they
    sorted, and the products put back in the callers' order.
    """
    order = None
    if bool((left_index[1:] < left_index[:-1]).any()):
        order, _ = _grouped(left_index, len(left))
        left_index = left_index.index_select(0, order)
        right_index = right_index.index_select(0, order)
    # Row r starts at the first coordinate whose row is >= r: one binary search per row is
    # cheaper than bincount + cumsum, which first scan every index for its range.
    row_starts = torch.searchsorted(left_index, torch.arange(len(left) + 1))
    with warnings.catch_warnings():
        # CSR tensors warn once that their support is in beta; sampled_addmm is a public op.
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        pattern = torch.sparse_csr_tensor(
            row_starts,
            right_index,
            left.new_zeros(len(right_index)),
            (len(left), len(right)),
            check_invariants=False,  # the kernel reads each coordinate on its own: repeats are fine
        )
        dots = torch.sparse.sampled_addmm(pattern, left, right.T, beta=0.0).values()
    return dots if order is None else torch.empty_like(dots).index_copy_(0, order, dots)


# Elements of one gathered block per operand (64 MiB in float32).
_GATHER_ELEMENTS = 1 << 24


def _gathered_dots(
    left: torch.Tensor, right: torch.Tensor, left_index: torch.Tensor, right_index: torch.Tensor
) -> torch.Tensor:
    """`_sddmm` by gathering both operands, in blocks of coordinates that bound the temporaries."""
    block = max(1, _GATHER_ELEMENTS // left.shape[1])
    return torch.cat(
        [
            (left.index_select(0, rows) * right.index_select(0, cols)).sum(dim=1)
            for rows, cols in zip(left_index.split(block), right_index.split(block), strict=True)
        ]
    )


class _SparseTimesDense(torch.autograd.Function):
    """out [n_out, d] = S·weight, S given by (out_index, in_index, values); decoding."""

    @staticmethod
    def forward(ctx, values, weight, out_index, in_index, n_out):
        with _no_autocast(weight):
            out = _spmm(out_index, in_index, values, weight, n_out)
        ctx.save_for_backward(values, weight, out_index, in_index)
        return out

    @staticmethod
    def backward(ctx, grad):
        values, weight, out_index, in_index = ctx.saved_tensors
        grad_values = grad_weight = None
        with _no_autocast(weight):
            if ctx.needs_input_grad[0]:
                grad_values = _sddmm(grad, weight, out_index, in_index)
            if ctx.needs_input_grad[1]:
                grad_weight = _spmm(in_index, out_index, values, grad.contiguous(), len(weight))
        return grad_values, grad_weight, None, None, None


class _SampledPreActivation(torch.autograd.Function):
    """values [nnz] = x[rows]·W[cols] + b[cols]: the selected pre-activations, with their gradient.

    With `pre`, the same [B, p] pre-activations already computed (detached), the values are read
    from it; without, they are computed in O(nnz·d).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, rows, cols, pre):
        with _no_autocast(weight):
            if pre is not None:
                values = pre.reshape(-1).index_select(0, rows * pre.shape[1] + cols)
            else:
                values = _sddmm(x, weight, rows, cols) + bias.index_select(0, cols)
        ctx.save_for_backward(x, weight, rows, cols)
        ctx.n_bias = len(bias)
        return values

    @staticmethod
    def backward(ctx, grad):
        x, weight, rows, cols = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        with _no_autocast(weight):
            if ctx.needs_input_grad[0]:
                grad_x = _spmm(rows, cols, grad, weight, len(x))
            if ctx.needs_input_grad[1]:
                grad_weight = _spmm(cols, rows, grad, x.contiguous(), len(weight))
            if ctx.needs_input_grad[2]:
                grad_bias = grad.new_zeros(ctx.n_bias).index_add_(0, cols, grad)
        return grad_x, grad_weight, grad_bias, None, None, None


class SparseAutoencoder(nn.Module):
    variant: ClassVar[str]
    has_encoder: ClassVar[bool] = True
    sparse_path: ClassVar[bool] = True

    Settings: ClassVar[type[SAESettings]] = SAESettings

    def __init__(self, d: int, settings: SAESettings):
        super().__init__()
        n_atoms = settings.n_atoms
        self.d, self.n_atoms, self.settings = d, n_atoms, settings
        decoder = torch.randn(n_atoms, d)
        decoder /= decoder.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(decoder)
        if self.has_encoder:
            self.W_enc = nn.Parameter(decoder.clone())
            self.b_enc = nn.Parameter(torch.zeros(n_atoms))
        self.b_dec = nn.Parameter(torch.zeros(2, d) if settings.modality_biases else torch.zeros(d))

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
        """(rows, cols) of the active codes, each coordinate once, from detached pre-activations
        [B, p]."""
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
        """Codes with the given active coordinates, each given once (as `select` gives them: the
        codes are marked `unique`), values recomputed with their gradient.

        The values are x_c[row]·W_enc[col] + b_enc[col]; when `pre` (the detached pre-activations
        the coordinates were selected from) is given in the working dtype, outside autocast (whose
        matmul rounds to low precision), they are read from it.
        """
        dtype = torch.promote_types(
            torch.promote_types(x_centred.dtype, self.W_enc.dtype), self.b_enc.dtype
        )
        batch = len(x_centred)
        known = (
            pre.detach()
            if pre is not None
            and pre.dtype == dtype
            and pre.shape == (batch, self.n_atoms)
            and not torch.is_autocast_enabled(x_centred.device.type)
            else None
        )
        values = _SampledPreActivation.apply(
            x_centred.to(dtype), self.W_enc.to(dtype), self.b_enc.to(dtype), rows, cols, known
        )
        return Codes((batch, self.n_atoms), rows, cols, values.relu(), pre=pre, unique=True)

    def decode(self, codes: Codes, modality: Modality = None) -> torch.Tensor:
        """codes [B, p] → [B, d]; sparse codes gather only their active decoder rows."""
        batch = codes.shape[0]
        if codes.is_sparse:
            dtype = torch.promote_types(codes.values.dtype, self.W_dec.dtype)
            out = _SparseTimesDense.apply(
                codes.values.to(dtype), self.W_dec.to(dtype), codes.rows, codes.cols, batch
            )
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
    @property
    def initialisation_rows(self) -> int:
        """Training rows `initialise_from_data` needs at least (the trainer draws 8 batches, or
        more when this asks for more)."""
        return 0

    def initialise_from_data(
        self, x: torch.Tensor, modality: torch.Tensor, generator: torch.Generator
    ) -> None:
        """Called by the trainer once before the first step (not when a run resumes), after b_dec
        is set at the data mean, with training rows x [N, d] (N ≥ `initialisation_rows`), their
        modality [N] and a generator seeded by the run's seed: a variant that starts from the
        data sets itself here. Nothing by default."""

    def project_parameters(self) -> None:
        """Restore the constraints an optimiser step may break (the trainer calls it after each
        step): by default, unit-norm decoder rows."""
        self.normalise_decoder()

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Project the decoder rows back onto the unit sphere."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def config(self) -> dict:
        """Everything `vlmsae.sae.build` needs to rebuild this module."""
        return {"variant": self.variant, "d": self.d, **self.settings.as_dict()}
