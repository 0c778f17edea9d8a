"""Iso-energy alignment (Dhimoïla et al. eq. 1), in one of two forms (option `form`):

- "paper": L_align = −(1/b)·Tr(Ẑ_I Ẑ_Tᵀ), codes row-normalised, as eq. 1 writes it;
- "authors": the same mean negative cosine after zeroing, in both codes of a pair, the top-1 atom
  of each side, as the authors' code trains SAE-A.
Its sweep (iso-energy §4.1) trains β ∈ {0} ∪ values and keeps the largest β whose R² drop against
β = 0 is below `max_r2_drop`, extending the grid while that is its top (vlmsae.sweeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vlmsae.errors import ConfigError
from vlmsae.registry_base import Settings, setting
from vlmsae.training.regularisers import SWEEP, Regulariser, register

if TYPE_CHECKING:
    import pandas as pd
    import torch

AlignmentForm = Literal["authors", "paper"]


@dataclass(frozen=True, kw_only=True)
class AlignmentOptions(Settings):
    form: AlignmentForm = setting(
        "paper",
        "paper (the default): eq. 1, −Tr(Ẑ_I Ẑ_Tᵀ)/b on row-normalised codes; authors: the same "
        "after zeroing each pair's top-1 atom of each side in both codes "
        "(vlmsae.training.regularisers.alignment)",
    )


@dataclass(frozen=True, kw_only=True)
class AlignmentSweep(Settings):
    """iso-energy §4.1: the largest β whose R² drop against β = 0 is below max_r2_drop. When it
    is the largest β tried, the grid grows by ×extension_factor, one value (one round of jobs) at a
    time, until the chosen β is interior or the next value would exceed extension_cap; the table's
    at_grid_edge column says when the choice is still the top of the grid."""

    values: list[float] = setting(
        [1.0e-6, 1.0e-5, 1.0e-4, 1.0e-3, 1.0e-2, 1.0e-1],
        items={"type": "number", "exclusiveMinimum": 0},
        minItems=1,
    )
    max_r2_drop: float = setting(0.05, exclusiveMinimum=0)
    extension_factor: float = setting(
        10, "ratio of each value added above the grid to the chosen one", exclusiveMinimum=1
    )
    extension_cap: float = setting(
        10.0,
        "largest β the extension may train (the loss is at most β in size, the MSE of unit-norm "
        "rows below 1)",
        exclusiveMinimum=0,
    )


@register
class Alignment(Regulariser):
    """β of the iso-energy alignment loss"""

    name = "alignment"
    term = "align"
    Options = AlignmentOptions
    Sweep = AlignmentSweep

    def loss(self, codes_image: torch.Tensor, codes_text: torch.Tensor) -> torch.Tensor:
        return self.weight * alignment_loss(codes_image, codes_text, self.options.form)

    @classmethod
    def check_sweeps(cls, key: str, weights: dict[str, float | str]) -> None:
        swept = [name for name, weight in weights.items() if weight == SWEEP]
        if weights.get(cls.name) == SWEEP and len(swept) > 1:
            raise ConfigError(
                f"{key}.{cls.name}",
                "the alignment sweep cannot be combined with other sweeps",
                "sweep β on its own, or fix the other regularisers",
            )

    @classmethod
    def select(cls, table: pd.DataFrame, rule: AlignmentSweep, k: int | None) -> tuple[float, str]:
        # The authors' R² (one overall mean, issue 12 item 7) is the one their rule was set on.
        baseline = float(table.loc[table["value"] == 0, "r2_overall"].iloc[0])
        table["r2_drop"] = baseline - table["r2_overall"]
        ok = table[(table["value"] > 0) & (table["r2_drop"] < rule.max_r2_drop)]
        chosen = float(ok["value"].max()) if len(ok) else 0.0
        reason = (
            f"largest β with overall-R² drop < {rule.max_r2_drop} against β = 0 (R² {baseline:.4f})"
        )
        return chosen, reason


def alignment_loss(
    codes_image: torch.Tensor, codes_text: torch.Tensor, form: AlignmentForm = "paper"
) -> torch.Tensor:
    """−(1/b) Σ_i ⟨ẑ_I,i, ẑ_T,i⟩ for codes [b, p] each; an all-zero code contributes 0.

    form "authors" first zeroes, in both codes of pair i, the atom with the largest |code| of
    the image code and the one of the text code (for non-negative codes, the largest code): the
    dominant atom of each side, typically a modality's own bias atom, then neither rewards nor
    costs alignment. Which atoms are zeroed carries no gradient.
    """
    import torch
    import torch.nn.functional as F

    if form == "authors":
        drop = torch.zeros_like(codes_image, dtype=torch.bool)
        for codes in (codes_image, codes_text):
            # An all-zero code's "top" atom is arbitrary, but its pair's cosine is 0 either way.
            drop.scatter_(1, codes.detach().abs().argmax(dim=1, keepdim=True), True)
        codes_image = codes_image.masked_fill(drop, 0)
        codes_text = codes_text.masked_fill(drop, 0)
    return -(F.normalize(codes_image, dim=1) * F.normalize(codes_text, dim=1)).sum(dim=1).mean()
