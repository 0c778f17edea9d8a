"""The Bridge Score: strongest bridge pairs, co-activation against bridge (linear-structure
Figs. 7–9), from each run's bridge_top.parquet (vlmsae.metrics.bridge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vlmsae.figures import FIGURES
from vlmsae.figures.panels import first_seed, mixture_order
from vlmsae.figures.style import (
    KIND_COLOURS,
    LEGEND_SIZE,
    PANEL_TITLE_SIZE,
    TITLE_SIZE,
    grid,
    mixture_label,
)
from vlmsae.registry_base import Settings, setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import pandas as pd

COUPLING_LABELS = {
    "coactivation": r"co-activation ($Z_I^\top Z_T / N$)",
    "transport": "transported energy (OT plan)",
}
UNIMODAL_COLOUR = "0.6"


@dataclass(frozen=True, kw_only=True)
class BridgeSettings(Settings):
    pairs: int = setting(10, "strongest pairs listed per run", minimum=1)
    form: Literal["coactivation", "transport"] = setting(
        "coactivation", "which bridge: co-activation (linear-structure) or optimal transport"
    )


def _pair_labels(pairs: pd.DataFrame) -> list[str]:
    return [
        f"I{a} ({ka}) · T{b} ({kb})"
        for a, ka, b, kb in zip(
            pairs["atom_image"],
            pairs["kind_image"],
            pairs["atom_text"],
            pairs["kind_text"],
            strict=True,
        )
    ]


@FIGURES.register(
    "bridge",
    BridgeSettings,
    scope="store",
    tables=("bridge_top",),
    paper="linear-structure",
)
def draw(tables: dict[str, pd.DataFrame], settings: BridgeSettings, subject: str):
    """One row per (variant, mixture), the lowest seed's run. Left: its strongest bridge
    entries (green where the pair touches a bimodal atom, the share ρ and FDA count). Right:
    every stored entry's coupling against its bridge value, coloured by the atoms' cosine."""
    import numpy as np

    top = first_seed(tables["bridge_top"])
    top = top[top["form"] == settings.form]
    runs = [
        (variant, mixture)
        for variant in sorted(top["variant"].unique())
        for mixture in mixture_order(top.loc[top["variant"] == variant, "mixture"])
    ]
    figure, axes = grid(len(runs), 2, panel_width=4.6, panel_height=0.6 + 0.22 * settings.pairs)
    for (left, right), (variant, mixture) in zip(axes, runs, strict=True):
        rows = top[(top["variant"] == variant) & (top["mixture"] == mixture)]
        strongest = rows.nlargest(settings.pairs, "bridge").iloc[::-1]
        bimodal = (strongest[["kind_image", "kind_text"]] == "bimodal").any(axis=1)
        left.barh(
            range(len(strongest)),
            strongest["bridge"],
            color=np.where(bimodal, KIND_COLOURS["bimodal"], UNIMODAL_COLOUR),
        )
        left.set_yticks(range(len(strongest)), _pair_labels(strongest), fontsize=LEGEND_SIZE)
        left.set_xlabel("bridge")
        left.set_title(f"{variant}, {mixture_label(mixture)}", fontsize=PANEL_TITLE_SIZE)
        points = right.scatter(
            rows["coactivation"],
            rows["bridge"],
            c=rows["cosine"],
            cmap="coolwarm",
            vmin=-1.0,
            vmax=1.0,
            s=12,
        )
        right.set_xlabel(COUPLING_LABELS[settings.form])
        right.set_ylabel("bridge")
    figure.colorbar(points, ax=axes[:, 1].tolist(), label="cosine of the two atoms")
    figure.suptitle(f"Bridge pairs ({settings.form}): {subject}", fontsize=TITLE_SIZE)
    return figure
