"""R² against L0 for every run (the sparsity–fidelity frontier, linear-structure Fig. 1)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

MARKERS = "osD^v<>Ph*X"


def plot_r2_vs_l0(summary: pd.DataFrame, path: str | Path) -> None:
    """Scatter of `r2` against `l0`, one colour per variant and one marker per dataset/model."""
    figure, axis = plt.subplots(figsize=(6, 4.5), layout="constrained")
    stores = sorted(set(zip(summary["dataset"], summary["model"], strict=True)))
    colours = {v: f"C{i}" for i, v in enumerate(sorted(summary["variant"].unique()))}
    for store_index, (dataset, model) in enumerate(stores):
        rows = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        for variant, group in rows.groupby("variant"):
            axis.scatter(
                group["l0"],
                group["r2"],
                color=colours[variant],
                marker=MARKERS[store_index % len(MARKERS)],
                alpha=0.8,
                label=f"{variant} · {dataset}/{model}",
            )
    axis.set_xlabel("L0 (mean active atoms per embedding)")
    axis.set_ylabel("R² (pooled image + text)")
    axis.set_title("Reconstruction against sparsity, every run")
    axis.legend(fontsize=7, loc="lower right")
    figure.savefig(path, dpi=150)
    plt.close(figure)
