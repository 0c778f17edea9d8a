"""Cross-modal random masking (Kaushik et al. §4): one random keep-mask per pair, shared by both
modalities, applied to the pre-activations before TopK, each atom dropped with probability p.

Its sweep (group-sparse App. A.2.1) runs on top of the chosen λ: it trains p ∈ {0} ∪ values and
keeps the largest p whose R² is within `r2_tolerance` of the unmasked model's (the closest when
none is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.errors import ConfigError
from vlmsae.registry_base import Settings, setting
from vlmsae.training.regularisers import SWEEP, Regulariser, register

if TYPE_CHECKING:
    import pandas as pd
    import torch


@dataclass(frozen=True, kw_only=True)
class MaskProbabilitySweep(Settings):
    """group-sparse App. A.2.1: the largest p whose R² is within r2_tolerance of the unmasked
    GSAE's"""

    values: list[float] = setting(
        [0.1, 0.2, 0.3, 0.4],
        items={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        minItems=1,
    )
    r2_tolerance: float = setting(0.01, exclusiveMinimum=0)


@register
class MaskProbability(Regulariser):
    """p of cross-modal masking"""

    name = "mask_probability"
    weight_schema = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
    Sweep = MaskProbabilitySweep
    sweeps_after = ("group_sparsity",)

    def keep_mask(
        self, n_pairs: int, n_atoms: int, generator: torch.Generator, device: torch.device
    ) -> torch.Tensor:
        return shared_mask(n_pairs, n_atoms, self.weight, generator, device)

    @classmethod
    def check_sweeps(cls, key: str, weights: dict[str, float | str]) -> None:
        group_sparsity = weights.get("group_sparsity", 0.0)
        if weights.get(cls.name) == SWEEP and group_sparsity != SWEEP and not group_sparsity:
            raise ConfigError(
                f"{key}.{cls.name}",
                "its sweep compares against the GSAE, which needs group_sparsity",
                "set group_sparsity (a value or 'sweep')",
            )

    @classmethod
    def select(
        cls, table: pd.DataFrame, rule: MaskProbabilitySweep, k: int | None
    ) -> tuple[float, str]:
        baseline = float(table.loc[table["value"] == 0, "r2"].iloc[0])
        table["r2_difference"] = (table["r2"] - baseline).abs()
        masked = table[table["value"] > 0]
        ok = masked[masked["r2_difference"] <= rule.r2_tolerance]
        best = ok if len(ok) else masked[masked["r2_difference"] == masked["r2_difference"].min()]
        reason = f"largest p with |R² − R²(p = 0)| ≤ {rule.r2_tolerance} (R² {baseline:.4f})" + (
            "" if len(ok) else "; none qualified, closest taken"
        )
        return float(best["value"].max()), reason


def shared_mask(
    n_pairs: int,
    n_atoms: int,
    drop_probability: float,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """[2·n_pairs, p] bool keep-mask: row i and row n_pairs + i (a pair) share one draw."""
    import torch

    keep = torch.rand(n_pairs, n_atoms, generator=generator, device=device) >= drop_probability
    return torch.cat([keep, keep])
