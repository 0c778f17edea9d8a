"""How a run's dictionary is used: live and dead atoms per modality, kinds and energy shares.

Dead per modality: never active on that modality's eval rows; `dead_atoms`: active on neither.
Atom kinds and energy shares come in both moments (suffix `_sq`: second moment, iso-energy), each
kind's share of the energy being of the moment its score was computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.metrics.energy import top_share
from vlmsae.metrics.modality import DEAD
from vlmsae.registry_base import Settings, setting

KINDS = ("image", "text", "bimodal", DEAD)
ACTIVITIES = ("both", "image_only", "text_only", DEAD)


@dataclass(frozen=True, kw_only=True)
class AtomUsageSettings(Settings):
    energy_top_m: list[int] = setting(
        [10, 100],
        "report the energy share of the m most energetic atoms",
        minItems=1,
        items={"type": "integer", "minimum": 1},
    )


def activity_summary(atoms: pd.DataFrame) -> dict[str, int]:
    """`atoms_active_{both,image_only,text_only}`, `dead_atoms`, `dead_atoms_{image,text}`."""
    counts = atoms["active_on"].value_counts()
    summary = {f"atoms_active_{label}": int(counts.get(label, 0)) for label in ACTIVITIES[:3]}
    summary["dead_atoms"] = int(counts.get(DEAD, 0))
    for modality in ("image", "text"):
        summary[f"dead_atoms_{modality}"] = int((atoms[f"frequency_{modality}"] == 0).sum())
    return summary


def kind_summary(atoms: pd.DataFrame, suffix: str) -> dict[str, float | int]:
    """Counts and energy shares of each atom kind; mean and energy-weighted mean modality score."""
    kinds = atoms[f"atom_kind{suffix}"]
    atom_energy = atoms[f"energy{suffix}"]
    total = atom_energy.sum()
    if total == 0:
        raise ValueError("atom kinds are undefined: every atom is dead")
    live = kinds != DEAD
    summary: dict[str, float | int] = {
        f"modality_atoms_{kind}{suffix}": int((kinds == kind).sum()) for kind in KINDS
    }
    for kind in KINDS[:3]:
        summary[f"modality_energy_share_{kind}{suffix}"] = float(
            atom_energy[kinds == kind].sum() / total
        )
    score = atoms[f"modality_score{suffix}"][live]
    summary[f"modality_score_mean{suffix}"] = float(score.mean())
    summary[f"modality_score_energy_weighted_mean{suffix}"] = float(
        np.average(score, weights=atom_energy[live])
    )
    return summary


@RUN_METRICS.register("atom_usage", AtomUsageSettings, order=5)
def summarise(context: EvalContext, settings: AtomUsageSettings) -> MetricResult:
    """Activity counts, energy concentration (`energy[_sq]_top{m}_share`) and kind summaries."""
    atoms = context.atoms
    summary: dict[str, float | int] = dict(activity_summary(atoms))
    for suffix in ("", "_sq"):
        for m in settings.energy_top_m:
            summary[f"energy{suffix}_top{m}_share"] = top_share(
                atoms[f"energy{suffix}"].to_numpy(), m
            )
        summary.update(kind_summary(atoms, suffix))
    return MetricResult(summary=summary)
