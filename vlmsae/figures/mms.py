"""Multimodal monosemanticity per neuron, sorted, beside the dense embeddings' (group-sparse
Fig. 4).

Reads each run's per-atom MMS (atoms.parquet `mms_<pair>`, vlmsae.metrics.mms) and the store's
per-coordinate MMS of the dense embeddings (mms_dense.parquet, the paper's "No SAE" curve). Both
exist only where the store has a second view: another model's store (`mms_reference`) or, on
synthetic data, the true codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import first_seed
from vlmsae.figures.style import LEGEND_SIZE, PANEL_TITLE_SIZE, TITLE_SIZE, grid
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DENSE_LABEL = "no SAE (dense coordinates)"


def _has_second_view(config: dict, runs: list[dict]) -> bool:
    """Whether the runs' store is measured against a second view (vlmsae.metrics.mms)."""
    datasets = config.get("datasets", {})
    for run in runs:
        spec = datasets.get(run["dataset"], {})
        reference = spec.get("mms_reference")
        if spec.get("source") == "synthetic" or reference not in (None, run["model"]):
            return True
    return False


def sorted_curve(scores: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): the scores in decreasing order against the normalised neuron index (i + 1) / n,
    so that dictionaries of different sizes share one axis (the paper's d against 16d). An
    undefined score (no co-activating pair) counts 0, as in the summary's `mms_<pair>`."""
    import numpy as np

    values = np.sort(scores.fillna(0.0).to_numpy())[::-1]
    return np.arange(1, len(values) + 1) / max(len(values), 1), values


@FIGURES.register(
    "mms_sorted",
    scope="store",
    tables=("atoms", "mms_dense"),
    paper="group-sparse",
    applies=_has_second_view,
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One panel per modality pair (image–image, text–text, image–text): each (variant,
    mixture)'s MMS per atom in decreasing order (lowest seed), one line each, and the dense
    embeddings' MMS per coordinate (black, dashed)."""
    from vlmsae.metrics.mms import PAIRS

    atoms, dense = first_seed(tables["atoms"]), tables["mms_dense"]
    runs = sorted(atoms.groupby(["variant", "mixture"]).groups)
    several = len({mixture for _, mixture in runs}) > 1
    figure, axes = grid(1, len(PAIRS), panel_width=3.6, panel_height=3.0)
    for axis, (m, n) in zip(axes[0], PAIRS, strict=True):
        column = f"mms_{m}_{n}"
        for index, (variant, mixture) in enumerate(runs):
            run = atoms[(atoms["variant"] == variant) & (atoms["mixture"] == mixture)]
            label = f"{variant} ({mixture.replace('-', ':')})" if several else variant
            axis.plot(*sorted_curve(run[column]), color=f"C{index}", label=label)
        if len(dense):
            axis.plot(*sorted_curve(dense[column]), "k--", label=DENSE_LABEL)
        axis.set_xlabel("neuron (normalised index)")
        axis.set_ylabel(column)
        axis.set_title(f"MMS({m}, {n})", fontsize=PANEL_TITLE_SIZE)
    axes[0][0].legend(fontsize=LEGEND_SIZE)
    figure.suptitle(f"Multimodal monosemanticity per neuron: {subject}", fontsize=TITLE_SIZE)
    return figure
