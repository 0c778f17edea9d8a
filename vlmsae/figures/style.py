"""The one look of every figure: matplotlib on the Agg backend, shared sizes and colours."""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

# matplotlib is imported by `pyplot` and `modality_cmap`, not here: the Snakefile reads the figure
# registry, which imports this module, at every start.
if TYPE_CHECKING:
    from matplotlib.colors import Colormap

MARKERS = "osD^v<>Ph*X"
TITLE_SIZE = 10
PANEL_TITLE_SIZE = 9
LEGEND_SIZE = 7
# Atom kinds keep one colour in every figure; dead atoms are drawn only where they mean something.
KIND_COLOURS = {"bimodal": "C2", "image": "C3", "text": "C0", "dead": "0.6"}
NO_VALUE_COLOUR = "0.85"


@cache
def pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend, with the SVG settings of every figure."""
    import matplotlib

    matplotlib.use("Agg")
    # Fixed SVG element ids (and no date, vlmsae.figures.save): the same tables give the same file.
    matplotlib.rcParams["svg.hashsalt"] = "vlmsae"
    import matplotlib.pyplot as plt

    return plt


@cache
def modality_cmap() -> Colormap:
    """The colour map of modality scores, from 0 (text only) through 0.5 (bimodal) to 1 (image
    only) in the colours of those kinds, so a bimodal atom is green here as everywhere. (A
    diverging map's pale middle was the grey of dead atoms.)"""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "modality_score", [KIND_COLOURS["text"], KIND_COLOURS["bimodal"], KIND_COLOURS["image"]]
    )


def subplots(rows: int = 1, columns: int = 1, width: float = 6.0, height: float = 4.5, **kwargs):
    """(figure, axes) with constrained layout, so titles and labels are never clipped."""
    return pyplot().subplots(
        rows, columns, figsize=(width, height), layout="constrained", squeeze=False, **kwargs
    )


def grid(rows: int, columns: int, panel_width: float = 3.6, panel_height: float = 2.6, **kwargs):
    """(figure, axes [rows][columns]) sized per panel, for figures with one panel per group."""
    return subplots(
        rows,
        columns,
        width=max(4.0, panel_width * columns),
        height=0.7 + panel_height * rows,
        **kwargs,
    )


def mixture_label(mixture: str) -> str:
    """'5-1' as the ratio it names, 'image:text 5:1'."""
    return f"image:text {mixture.replace('-', ':')}"
