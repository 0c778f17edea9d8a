"""Matryoshka BatchTopK SAE (Bussmann et al. 2025; Zaigrajew et al. 2025).

Codes are selected as in BatchTopK over the whole dictionary; the loss also asks every nested
prefix of the dictionary, atoms [0, m) for m in `prefixes`, to reconstruct x on its own, so early
atoms learn general concepts and later ones refine them. With uniform weights the loss is
    L = (1/M) · Σ_m mean‖x − x̂_m‖²,   x̂_m = z[:, :m]·W_dec[:m] + b_dec,   m_M = p.
The full dictionary (the last prefix) is counted once: `mse` is its term, which the trainer logs
as the reconstruction error, and `matryoshka` = (1/M) · Σ_m (mse_m − mse) holds the rest, so the
returned terms sum to L exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vlmsae.registry_base import setting
from vlmsae.sae.base import Modality
from vlmsae.sae.batchtopk import BatchTopK, BatchTopKSettings
from vlmsae.sae.codes import Codes
from vlmsae.sae.variant_registry import register


def nested_sizes(prefixes: Sequence[int] | None, n_atoms: int) -> list[int]:
    """Validated prefix sizes; None → [p/8, p/4, p/2, p] (floored, deduplicated for tiny p)."""
    if prefixes is None:
        return sorted({max(1, n_atoms // 2**i) for i in (3, 2, 1, 0)})
    sizes = list(prefixes)
    valid = (
        len(sizes) > 0
        and all(isinstance(m, int) and not isinstance(m, bool) for m in sizes)
        and sizes[0] >= 1
        and all(a < b for a, b in zip(sizes, sizes[1:], strict=False))
        and sizes[-1] == n_atoms
    )
    if not valid:
        raise ValueError(
            "Matryoshka prefixes must be strictly increasing positive integers ending at "
            f"n_atoms={n_atoms}; got {prefixes!r}"
        )
    return sizes


def _mse(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    return (reconstruction.float() - x).pow(2).sum(dim=1).mean()


@dataclass(frozen=True, kw_only=True)
class MatryoshkaSettings(BatchTopKSettings):
    prefixes: list[int] | None = setting(
        None,
        "nested dictionary sizes, strictly increasing, the last = n_atoms "
        "(default: p/8, p/4, p/2, p)",
        minItems=1,
    )

    def check(self) -> None:
        super().check()
        nested_sizes(self.prefixes, self.n_atoms)


@register
class Matryoshka(BatchTopK):
    variant = "matryoshka"
    Settings = MatryoshkaSettings

    def __init__(self, d: int, settings: MatryoshkaSettings):
        super().__init__(d, settings)
        self.prefixes = nested_sizes(settings.prefixes, settings.n_atoms)

    def losses(
        self, x: torch.Tensor, codes: Codes, reconstruction: torch.Tensor, modality: Modality = None
    ) -> dict[str, torch.Tensor]:
        """`mse` of the full dictionary plus `matryoshka`, the prefixes' share of L (module doc)."""
        terms = super().losses(x, codes, reconstruction, modality)
        full = terms["mse"]
        excess = [
            _mse(x, self.decode(codes.restrict(m), modality)) - full for m in self.prefixes[:-1]
        ]
        terms["matryoshka"] = sum(excess, torch.zeros_like(full)) / len(self.prefixes)
        return terms
