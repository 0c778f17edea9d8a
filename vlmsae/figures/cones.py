"""Modality cones: the cosine distributions of a store's embeddings (linear-structure Fig. 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.style import LEGEND_SIZE, TITLE_SIZE, subplots
from vlmsae.registry_base import Settings

# heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

# Column of cone_histograms.parquet (vlmsae.metrics.cones) -> what the curve shows.
DISTRIBUTIONS = {
    "within_image": "image–image",
    "within_text": "text–text",
    "paired": "image–text, pairs",
    "unpaired": "image–text, non-pairs",
}


@FIGURES.register(
    "cones",
    scope="store",
    tables=("cone_histograms", "stores"),
    paper="linear-structure",
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """One step curve per distribution (share of the sampled pairs per cosine bin) and a dotted
    line at its exact mean over every pair (`cone_cos_<distribution>_mean` of stores.csv).

    Two cones: image–image and text–text cosines sit far above the image–text ones.
    """
    import numpy as np

    histograms, stores = tables["cone_histograms"], tables["stores"]
    edges = np.append(histograms["bin_left"].to_numpy(), histograms["bin_right"].iloc[-1])
    figure, axes = subplots()
    axis = axes[0][0]
    for index, (column, label) in enumerate(DISTRIBUTIONS.items()):
        counts = histograms[column].to_numpy()
        axis.stairs(counts / counts.sum(), edges, color=f"C{index}", linewidth=1.5, label=label)
        mean = f"cone_cos_{column}_mean"
        if mean in stores.columns:
            axis.axvline(stores[mean].iloc[0], color=f"C{index}", linestyle=":", linewidth=1)
    axis.set_xlabel("cosine similarity")
    axis.set_ylabel("share of pairs")
    axis.legend(fontsize=LEGEND_SIZE)
    axis.set_title(f"Modality cones: {subject}", fontsize=TITLE_SIZE)
    return figure
