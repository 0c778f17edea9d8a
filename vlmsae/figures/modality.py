"""Histograms of the modality score, raw and energy-weighted (linear-structure Fig. 4)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BINS = np.linspace(0.0, 1.0, 26)


def plot_modality_histograms(atoms: pd.DataFrame, path: str | Path, title: str) -> None:
    """Grid: one row per variant, one column per mixture; seeds pooled.

    `atoms` holds per-atom rows with columns variant, mixture, modality_score and energy. Each
    panel shows the share of live atoms per score bin and the share of energy per bin.
    """
    live = atoms.dropna(subset=["modality_score"])
    variants, mixtures = sorted(live["variant"].unique()), sorted(live["mixture"].unique())
    figure, axes = plt.subplots(
        len(variants),
        len(mixtures),
        squeeze=False,
        sharex=True,
        figsize=(3.2 * len(mixtures), 2.4 * len(variants)),
        layout="constrained",
    )
    for row, variant in enumerate(variants):
        for column, mixture in enumerate(mixtures):
            axis = axes[row][column]
            panel = live[(live["variant"] == variant) & (live["mixture"] == mixture)]
            if len(panel):
                score, weight = panel["modality_score"], panel["energy"]
                axis.hist(
                    score,
                    bins=BINS,
                    weights=np.full(len(score), 1 / len(score)),
                    alpha=0.5,
                    label="atoms",
                )
                axis.hist(
                    score,
                    bins=BINS,
                    weights=weight / weight.sum(),
                    histtype="step",
                    linewidth=1.5,
                    color="black",
                    label="energy-weighted",
                )
            axis.set_title(f"{variant}, image:text {mixture.replace('-', ':')}", fontsize=9)
            if column == 0:
                axis.set_ylabel("share")
            if row == len(variants) - 1:
                axis.set_xlabel("modality score (0 text, 1 image)")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(title)
    figure.savefig(path, dpi=150)
    plt.close(figure)
