"""L2,1 group sparsity on paired codes (Kaushik et al. eq. 3): L_gs = mean over pairs of
Σ_k sqrt(z_I,k² + z_T,k²), which costs less when a pair's two codes share their atoms.

Its sweep (group-sparse App. A.2.1) trains λ ∈ values without masking and keeps the largest λ
whose mean L0 stays at least k·(1 − l0_tolerance), i.e. that does not push codes below K atoms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.registry_base import Settings, setting
from vlmsae.training.regularisers import Regulariser, register

if TYPE_CHECKING:
    import pandas as pd
    import torch


@dataclass(frozen=True, kw_only=True)
class GroupSparsitySweep(Settings):
    """group-sparse App. A.2.1: the largest λ whose mean L0 stays at least k·(1 − l0_tolerance)"""

    values: list[float] = setting(
        [0.01, 0.05, 0.1, 0.2], items={"type": "number", "exclusiveMinimum": 0}, minItems=1
    )
    l0_tolerance: float = setting(0.01, minimum=0, maximum=1)


@register
class GroupSparsity(Regulariser):
    """λ of the group-sparsity loss"""

    name = "group_sparsity"
    term = "group"
    Sweep = GroupSparsitySweep
    sweep_baseline = False

    def loss(self, codes_image: torch.Tensor, codes_text: torch.Tensor) -> torch.Tensor:
        # λ/2: the paper's loss sums both modalities' errors, our mse averages them.
        return self.weight / 2 * group_sparsity_loss(codes_image, codes_text)

    @classmethod
    def select(
        cls, table: pd.DataFrame, rule: GroupSparsitySweep, k: int | None
    ) -> tuple[float, str]:
        if k is None:
            raise ValueError("the group-sparsity rule needs the variant's k")
        floor = k * (1 - rule.l0_tolerance)
        ok = table[table["l0"] >= floor]
        chosen = float(ok["value"].max()) if len(ok) else 0.0
        return chosen, f"largest λ with mean L0 ≥ {floor:.2f} (k = {k})"


def group_sparsity_loss(codes_image: torch.Tensor, codes_text: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of the L2,1 norm Σ_k ‖(z_I,k, z_T,k)‖₂ for codes [b, p] each."""
    import torch

    return torch.linalg.vector_norm(torch.stack([codes_image, codes_text]), dim=0).sum(dim=1).mean()
