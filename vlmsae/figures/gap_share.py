"""The modality gap in the embeddings and each atom's share of it (iso-energy Fig. 3).

Left: the store's dense image and text embeddings on their first two principal components
(embedding_pca.parquet, vlmsae.metrics.gap.pca_table), where the two modalities lie apart.
Right: each atom's share of that gap against its modality score (atoms.parquet `gap_share`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.figures import FIGURES
from vlmsae.figures.energy import KINDS
from vlmsae.figures.panels import first_seed, with_store_panel
from vlmsae.figures.style import KIND_COLOURS, LEGEND_SIZE, PANEL_TITLE_SIZE, TITLE_SIZE
from vlmsae.registry_base import Settings

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

MODALITIES = ("image", "text")


def draw_pca(axis, pca: pd.DataFrame) -> None:
    """The embeddings of `pca` (embedding_pca) at their two principal coordinates, one colour
    per modality (those of the image and text atoms); axis labels give each component's share
    of the variance."""
    for modality in MODALITIES:
        rows = pca[pca["modality"] == modality]
        axis.scatter(
            rows["pc1"], rows["pc2"], color=KIND_COLOURS[modality], s=4, alpha=0.5, label=modality
        )
    first, second = (pca[f"variance_share_pc{n}"].iloc[0] if len(pca) else None for n in (1, 2))
    axis.set_xlabel(f"PC 1 ({first:.0%} of variance)" if first is not None else "PC 1")
    axis.set_ylabel(f"PC 2 ({second:.0%} of variance)" if second is not None else "PC 2")
    axis.set_title("dense embeddings (PCA)", fontsize=PANEL_TITLE_SIZE)
    axis.legend(fontsize=LEGEND_SIZE, markerscale=3)


@FIGURES.register(
    "gap_share",
    scope="store",
    tables=("atoms", "embedding_pca"),
    paper="iso-energy",
)
def draw(tables: dict[str, pd.DataFrame], settings: Settings, subject: str):
    """The store's embeddings on their first two principal components (`draw_pca`), beside one
    panel per (variant, mixture), the lowest seed's run: every live atom's `gap_share` (its part
    of the difference of the modality means, vlmsae.metrics.gap.gap_shares) against its
    second-moment modality score, coloured by kind. Iso-energy's finding: the unimodal atoms
    (scores near 0 and 1) carry the gap, the bimodal ones almost none."""
    atoms = first_seed(tables["atoms"]).dropna(subset=["gap_share", "modality_score_sq"])
    figure, store_axis, panels = with_store_panel(atoms)
    draw_pca(store_axis, tables["embedding_pca"])
    for axis, _, _, run in panels:
        for kind in KINDS:
            chosen = run[run["atom_kind_sq"] == kind]
            if len(chosen):
                axis.scatter(
                    chosen["modality_score_sq"],
                    chosen["gap_share"],
                    color=KIND_COLOURS[kind],
                    s=8,
                    label=kind,
                )
        axis.axhline(0.0, color="black", linewidth=0.5)
        axis.set_xlabel("modality_score_sq (0 text, 1 image)")
        axis.set_ylabel("gap_share")
    panels[0][0].legend(fontsize=LEGEND_SIZE, markerscale=2)
    figure.suptitle(f"The modality gap and each atom's share: {subject}", fontsize=TITLE_SIZE)
    return figure
