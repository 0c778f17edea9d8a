"""Every registered figure, drawn from small tables and read back through its artists.

The tables have the columns of docs/results.md. Each test checks what the figure shows against
the table it came from: points and bars per row, bar heights and heat-map cells equal to the
table's values, axis labels naming the metric.
"""

import dataclasses
from itertools import product
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgb
from matplotlib.container import BarContainer
from matplotlib.image import AxesImage
from matplotlib.patches import StepPatch

from vlmsae.figures import FIGURES, draw_registered, figure_targets, input_paths
from vlmsae.figures.atom_map import ENERGY_AREA, energy_areas
from vlmsae.figures.bars import NEURON_COLOURS, NEURON_COUNTS
from vlmsae.figures.stability import energy_bin_medians, mixture_matrix
from vlmsae.figures.style import KIND_COLOURS, NO_VALUE_COLOUR
from vlmsae.tables.papers import seed_statistics

STORES = [("synthetic-iso", "generator"), ("coco", "clip")]
VARIANTS = {"topk-k8": "topk", "topk-k16": "topk", "batchtopk": "batchtopk"}
MIXTURES = ["1-1", "5-1"]
SEEDS = [0, 1]
N_ATOMS = 12
KINDS = np.array(["bimodal", "image", "text", "dead"])


def _runs() -> list[dict]:
    return [
        {"dataset": d, "model": m, "variant": v, "mixture": x, "seed": s, "family": VARIANTS[v]}
        for (d, m), v, x, s in product(STORES, VARIANTS, MIXTURES, SEEDS)
    ]


RUNS = _runs()
RUN_KEYS = ["dataset", "model", "variant", "mixture", "seed"]


def _keys(run: dict) -> dict:
    return {key: run[key] for key in RUN_KEYS}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = len(RUNS)
    summary = pd.DataFrame([_keys(run) for run in RUNS])
    summary["family"] = [run["family"] for run in RUNS]
    summary["l0"] = rng.uniform(5, 30, n)
    summary["r2"] = rng.uniform(0.5, 0.95, n)
    for metric in ("p_acc", "rho", "fda", "delta_r", "mms_image_text", "zero_shot_top1_codes"):
        summary[metric] = rng.uniform(0, 1, n)
    summary.loc[0, "rho"] = np.nan  # an undefined odds ratio: its group keeps the other seed
    summary["dead_atoms_image"] = rng.integers(0, 5, n)
    summary["dead_atoms_text"] = rng.integers(0, 5, n)
    summary["mms_baseline_image_text"] = 0.3
    for column in ("atoms_active_image_only", "atoms_active_text_only", "atoms_active_both"):
        summary[column] = rng.integers(0, N_ATOMS // 3, n)
    summary["dead_atoms"] = N_ATOMS - summary.filter(like="atoms_active_").sum(axis=1)
    stores = pd.DataFrame(
        [
            {
                "dataset": d,
                "model": m,
                "cone_cos_within_image_mean": 0.5,
                "cone_cos_within_text_mean": 0.6,
                "cone_cos_paired_mean": 0.3,
                "cone_cos_unpaired_mean": 0.1,
                "zero_shot_top1_dense": 0.7,
            }
            for d, m in STORES
        ]
    )
    atoms = []
    for index, run in enumerate(RUNS):
        kinds = KINDS[np.arange(N_ATOMS) % 4]
        dead = kinds == "dead"
        score = np.where(dead, np.nan, rng.uniform(0, 1, N_ATOMS))
        energy = np.where(dead, 0.0, rng.uniform(0.1, 1, N_ATOMS))
        atoms.append(
            pd.DataFrame(
                {
                    "atom": np.arange(N_ATOMS),
                    **_keys(run),
                    "modality_score": score,
                    "modality_score_sq": score,
                    "energy": energy,
                    "energy_sq": energy**2,
                    "atom_kind": kinds,
                    "atom_kind_sq": kinds,
                    "classifier_accuracy": rng.uniform(0.5, 1, N_ATOMS),
                    "gap_share": np.where(dead, 0.0, rng.normal(0, 0.1, N_ATOMS)) + index,
                    # MMS is undefined (NaN) for atoms without a co-activating pair: dead ones.
                    **{
                        f"mms_{pair}": np.where(dead, np.nan, rng.uniform(-0.2, 1, N_ATOMS))
                        for pair in ("image_image", "text_text", "image_text")
                    },
                }
            )
        )
    atoms = pd.concat(atoms, ignore_index=True)
    atom_map = atoms[[*RUN_KEYS, "atom"]].assign(
        x=rng.normal(size=len(atoms)), y=rng.normal(size=len(atoms)), method="umap"
    )
    bridge_top = pd.concat(
        [
            pd.DataFrame(
                {
                    **_keys(run),
                    "atom_image": np.arange(15),
                    "atom_text": np.arange(15)[::-1],
                    "bridge": rng.uniform(0, 1, 15),
                    "kind_image": KINDS[np.arange(15) % 3],
                    "kind_text": "text",
                    "cosine": rng.uniform(-1, 1, 15),
                    "coactivation": rng.uniform(0, 1, 15),
                    "form": np.where(np.arange(15) < 12, "coactivation", "transport"),
                }
            )
            for run in RUNS
        ],
        ignore_index=True,
    )
    edges = np.linspace(-1, 1, 11)
    cone_histograms = pd.DataFrame(
        {
            "bin_left": edges[:-1],
            "bin_right": edges[1:],
            **{
                name: rng.integers(0, 50, 10)
                for name in ("within_image", "within_text", "paired", "unpaired")
            },
        }
    )
    embedding_pca = pd.DataFrame(
        {
            "modality": np.repeat(["image", "text"], 7),
            "pair": np.tile(np.arange(7), 2),
            "pc1": rng.normal(size=14),
            "pc2": rng.normal(size=14),
            "variance_share_pc1": 0.4,
            "variance_share_pc2": 0.1,
        }
    )
    mms_dense = pd.DataFrame(
        {
            "dimension": np.arange(5),
            "mms_image_image": [0.1, 0.5, np.nan, 0.3, 0.2],
            "mms_text_text": rng.uniform(0, 1, 5),
            "mms_image_text": rng.uniform(0, 1, 5),
        }
    )
    return {
        "summary": summary,
        "stores": stores,
        "atoms": atoms,
        "atom_map": atom_map,
        "bridge_top": bridge_top,
        "cone_histograms": cone_histograms,
        "embedding_pca": embedding_pca,
        "mms_dense": mms_dense,
        "stability": _stability(rng),
        "atom_stability": _atom_stability(atoms, rng),
    }


def _atom_stability(atoms: pd.DataFrame, rng) -> pd.DataFrame:
    """Every atom of every run: each run here has another seed of its variant and mixture."""
    table = atoms[[*RUN_KEYS, "atom", "energy"]].copy()
    table["stability"] = rng.uniform(0, 1, len(table))
    table["partners"] = len(SEEDS) - 1
    return table


def _stability(rng) -> pd.DataFrame:
    rows = []
    for (d, m), variant in product(STORES, VARIANTS):
        for mixture in MIXTURES:
            rows.append(("seed", d, m, variant, mixture, mixture, 0, 1))
        for seed in SEEDS:
            rows.append(("mixture", d, m, variant, "1-1", "5-1", seed, seed))
    columns = ["kind", "dataset", "model", "variant", "mixture_a", "mixture_b", "seed_a", "seed_b"]
    table = pd.DataFrame(rows, columns=columns)
    table["stability"] = rng.uniform(0.3, 0.9, len(table))
    table["stability_top5"] = rng.uniform(0.5, 1.0, len(table))
    table["stability_top10"] = rng.uniform(0.4, 0.95, len(table))
    return table


def draw(name: str, tables: dict[str, pd.DataFrame], **settings):
    entry = FIGURES.get(name)
    figure = entry.obj(tables, entry.settings(**settings), "test")
    return figure


def store_tables(tables, dataset="synthetic-iso", model="generator") -> dict[str, pd.DataFrame]:
    """The tables cut to one store, as draw_registered hands them to a store-scope figure."""
    return {
        name: table[(table["dataset"] == dataset) & (table["model"] == model)]
        if "dataset" in table.columns
        else table
        for name, table in tables.items()
    }


def points(axis) -> int:
    return sum(len(c.get_offsets()) for c in axis.collections if isinstance(c, PathCollection))


def bars(axis) -> list:
    return [patch for c in axis.containers if isinstance(c, BarContainer) for patch in c]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_r2_vs_l0_has_a_point_per_run_and_a_line_per_multi_k_family(tables):
    figure = draw("r2_vs_l0", tables)
    axes = [axis for axis in figure.axes if axis.axison]
    assert len(axes) == len(STORES)
    assert sum(points(axis) for axis in axes) == len(tables["summary"])
    # topk (k8, k16) is a family of two variants: one frontier line per store and mixture.
    assert sum(len(axis.lines) for axis in axes) == len(STORES) * len(MIXTURES)
    line = axes[0].lines[0]
    coco = tables["summary"][(tables["summary"]["dataset"] == "coco")]
    frontier = coco[(coco["family"] == "topk") & (coco["mixture"] == "1-1")]
    means = frontier.groupby("variant")[["l0", "r2"]].mean().sort_values("l0")
    assert np.allclose(line.get_xdata(), means["l0"]) and np.allclose(line.get_ydata(), means["r2"])
    assert "L0" in axes[0].get_xlabel() and "R²" in axes[0].get_ylabel()


def test_stability_shows_every_pair_and_top_m_means(tables):
    figure = draw("stability", tables)
    stability = tables["stability"]
    lefts, rights = figure.axes[0::2][: len(STORES)], figure.axes[1::2][: len(STORES)]
    assert sum(points(axis) for axis in rights) == len(stability)
    columns = ["stability_top5", "stability_top10", "stability"]
    means = stability.groupby(["dataset", "model", "variant", "kind"])[columns].mean()
    assert sum(len(axis.lines) for axis in lefts) == len(means)
    coco = means.loc[("coco", "clip")]
    assert lefts[0].get_title().startswith("coco/clip")
    assert np.allclose(lefts[0].lines[0].get_ydata(), coco.iloc[0].to_numpy())
    assert [t.get_text() for t in lefts[0].get_xticklabels()] == ["top 5", "top 10", "all atoms"]
    assert "stability" in lefts[0].get_ylabel() and "stability" in rights[0].get_ylabel()


def test_energy_stability_plots_each_live_atom_and_the_binned_medians(tables):
    store = store_tables(tables)
    figure = draw("energy_stability", store, bins=3)
    axis = _panel(figure.axes, "topk-k16", "5-1")
    atoms = store["atom_stability"]
    run = atoms[(atoms["variant"] == "topk-k16") & (atoms["mixture"] == "5-1")]
    live = run[run["energy"] > 0]
    offsets = axis.collections[0].get_offsets()
    assert len(offsets) == len(live) == 2 * N_ATOMS * 3 // 4  # two seeds, a quarter dead
    assert sorted(offsets[:, 1]) == pytest.approx(sorted(live["stability"]))
    assert f"{len(run) - len(live)} dead atoms" in axis.get_xlabel()
    (line,) = axis.lines
    assert len(line.get_xdata()) == 3
    x, y = energy_bin_medians(live["energy"].to_numpy(), live["stability"].to_numpy(), 3)
    assert np.allclose(line.get_ydata(), y) and np.allclose(line.get_xdata(), x)
    assert axis.get_xscale() == "log" and "stability" in axis.get_ylabel()


def test_energy_bin_medians_by_hand():
    energy = np.array([4.0, 1.0, 3.0, 2.0, 5.0, 6.0])
    stability = np.array([0.4, 0.1, 0.3, 0.2, 0.5, 0.9])
    x, y = energy_bin_medians(energy, stability, 2)
    assert x.tolist() == [2.0, 5.0] and y.tolist() == pytest.approx([0.2, 0.5])


def test_mixture_heat_map_cells_equal_the_stability_table():
    stability = pd.DataFrame(
        {
            "variant": "topk",
            "kind": ["mixture", "mixture", "seed", "mixture"],
            "mixture_a": ["1-1", "1-1", "5-1", "5-1"],
            "mixture_b": ["5-1", "5-1", "5-1", "10-1"],
            "seed_a": [0, 1, 0, 0],
            "seed_b": [0, 1, 1, 0],
            "stability": [0.5, 0.7, 0.9, 0.4],
        }
    )
    figure = draw("stability_mixtures", {"stability": stability})
    image = next(child for child in figure.axes[0].get_children() if isinstance(child, AxesImage))
    cells = np.ma.filled(image.get_array(), np.nan)
    nan = np.nan
    # Rows and columns 1:1, 5:1, 10:1; the diagonal holds the seed pairs (only 5:1 has one).
    expected = [[nan, 0.6, nan], [0.6, 0.9, 0.4], [nan, 0.4, nan]]
    assert np.allclose(cells, expected, equal_nan=True)
    assert np.allclose(mixture_matrix(stability)[1], expected, equal_nan=True)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["1:1", "5:1", "10:1"]
    one_seed = stability[stability["kind"] == "mixture"]
    assert np.isnan(np.diagonal(mixture_matrix(one_seed)[1])).all()


def _panel(axes, variant, mixture):
    return next(
        axis
        for axis in axes
        if axis.get_title().startswith(f"{variant}, ")
        and axis.get_title().endswith(mixture.replace("-", ":"))
    )


@pytest.mark.parametrize(
    ("name", "column", "low"),
    [
        ("modality_scores", "modality_score", 0.0),
        ("classifier_accuracy", "classifier_accuracy", 0.5),
    ],
)
def test_histograms_show_atom_and_energy_shares(tables, name, column, low):
    store = store_tables(tables)
    figure = draw(name, store, bins=5)
    live = store["atoms"][store["atoms"]["atom_kind"] != "dead"]
    panels = [axis for axis in figure.axes if axis.axison]
    assert len(panels) == len(VARIANTS) * len(MIXTURES)
    axis = _panel(panels, "batchtopk", "5-1")
    rows = live[(live["variant"] == "batchtopk") & (live["mixture"] == "5-1")]
    edges = np.linspace(low, 1, 6)
    counts, _ = np.histogram(rows[column], edges)
    assert np.allclose([bar.get_height() for bar in bars(axis)], counts / counts.sum())
    steps = next(p for p in axis.patches if isinstance(p, StepPatch)).get_data()
    weighted, _ = np.histogram(rows[column], edges, weights=rows["energy"])
    assert np.allclose(steps.values, weighted / weighted.sum())
    assert column in axis.get_xlabel()


def test_cones_draw_each_distribution_and_its_mean(tables):
    store = store_tables(tables)
    figure = draw("cones", store)
    axis = figure.axes[0]
    steps = [p.get_data() for p in axis.patches if isinstance(p, StepPatch)]
    histograms = store["cone_histograms"]
    assert len(steps) == 4
    for data, column in zip(
        steps, ["within_image", "within_text", "paired", "unpaired"], strict=True
    ):
        assert np.allclose(data.values, histograms[column] / histograms[column].sum())
        assert np.allclose(data.edges, np.linspace(-1, 1, 11))
    means = [line.get_xdata()[0] for line in axis.lines]
    assert means == [0.5, 0.6, 0.3, 0.1]
    assert axis.get_xlabel() == "cosine similarity"


def test_bridge_lists_the_strongest_pairs_and_every_entry(tables):
    store = store_tables(tables)
    figure = draw("bridge", store, pairs=4)
    runs = len(VARIANTS) * len(MIXTURES)
    lefts, rights = figure.axes[0 : 2 * runs : 2], figure.axes[1 : 2 * runs : 2]
    top = store["bridge_top"]
    run = top[(top["variant"] == "batchtopk") & (top["mixture"] == "1-1") & (top["seed"] == 0)]
    run = run[run["form"] == "coactivation"]
    assert all(len(bars(axis)) == 4 for axis in lefts)
    assert all(points(axis) == len(run) for axis in rights)
    assert sorted(bar.get_width() for bar in bars(lefts[0])) == sorted(run["bridge"].nlargest(4))
    assert rights[0].get_ylabel() == "bridge" and "co-activation" in rights[0].get_xlabel()


def test_energy_by_kind_ranks_the_live_atoms_of_one_run(tables):
    store = store_tables(tables)
    figure = draw("energy_by_kind", store)
    axis = _panel(figure.axes, "topk-k8", "1-1")
    atoms = store["atoms"]
    run = atoms[
        (atoms["variant"] == "topk-k8") & (atoms["mixture"] == "1-1") & (atoms["seed"] == 0)
    ]
    live = run[run["atom_kind_sq"] != "dead"]
    assert points(axis) == len(live)
    energies = np.concatenate([c.get_offsets()[:, 1] for c in axis.collections])
    assert sorted(energies) == sorted(live["energy_sq"])
    assert "energy_sq" in axis.get_ylabel()


def test_gap_share_draws_the_embeddings_pca_beside_the_shares(tables):
    store = store_tables(tables)
    figure = draw("gap_share", store)
    pca_axis = next(axis for axis in figure.axes if axis.get_title() == "dense embeddings (PCA)")
    pca = store["embedding_pca"]
    drawn = {c.get_label(): c.get_offsets() for c in pca_axis.collections}
    assert list(drawn) == ["image", "text"]
    for modality, offsets in drawn.items():
        rows = pca[pca["modality"] == modality]
        assert np.allclose(offsets, rows[["pc1", "pc2"]])
    colours = [to_rgb(c.get_facecolor()[0][:3]) for c in pca_axis.collections]
    assert colours == [to_rgb(KIND_COLOURS["image"]), to_rgb(KIND_COLOURS["text"])]
    assert pca_axis.get_xlabel() == "PC 1 (40% of variance)"
    assert pca_axis.get_ylabel() == "PC 2 (10% of variance)"
    # One PCA panel for the store; the runs' panels follow in their own columns.
    runs = [axis for axis in figure.axes if axis.axison and axis is not pca_axis]
    assert len(runs) == len(VARIANTS) * len(MIXTURES)


def test_gap_share_plots_each_atom_against_its_score(tables):
    store = store_tables(tables)
    figure = draw("gap_share", store)
    axis = _panel(figure.axes, "topk-k16", "5-1")
    atoms = store["atoms"]
    run = atoms[
        (atoms["variant"] == "topk-k16") & (atoms["mixture"] == "5-1") & (atoms["seed"] == 0)
    ]
    live = run.dropna(subset=["modality_score_sq"])
    offsets = np.concatenate([c.get_offsets() for c in axis.collections])
    assert sorted(map(tuple, offsets)) == sorted(
        zip(live["modality_score_sq"], live["gap_share"], strict=True)
    )
    assert axis.get_ylabel() == "gap_share"


def test_atom_map_colours_every_atom_by_its_modality_score(tables):
    store = store_tables(tables)
    figure = draw("atom_map", store)
    axis = _panel(figure.axes, "batchtopk", "1-1")
    atoms = store["atom_map"].merge(store["atoms"], on=[*RUN_KEYS, "atom"])
    run = atoms[
        (atoms["variant"] == "batchtopk") & (atoms["mixture"] == "1-1") & (atoms["seed"] == 0)
    ]
    assert points(axis) == len(run)
    live = run.dropna(subset=["modality_score"])
    coloured = axis.collections[1]
    assert np.allclose(coloured.get_array(), live["modality_score"])
    assert np.allclose(coloured.get_offsets(), live[["x", "y"]])
    assert axis.get_xlabel() == "UMAP 1"
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == [f"dead ({len(run) - len(live)})"]
    # The middle of the scale (bimodal) is the bimodal kind's colour, not the dead atoms' grey.
    middle = coloured.get_cmap()(0.5)[:3]
    assert np.allclose(middle, to_rgb(KIND_COLOURS["bimodal"]), atol=0.02)
    assert not np.allclose(middle, to_rgb(NO_VALUE_COLOUR), atol=0.1)


def test_energy_areas_by_hand():
    placed = pd.DataFrame(
        {
            "variant": ["a", "a", "a", "b", "b"],
            "mixture": "1-1",
            "energy": [1.0, 3.0, 0.0, 2.0, 2.0],
        }
    )
    # Shares of each run's energy: a (0.25, 0.75, 0), b (0.5, 0.5); the largest, 0.75, is full.
    expected = ENERGY_AREA * np.array([1 / 3, 1.0, 0.0, 2 / 3, 2 / 3])
    assert np.allclose(energy_areas(placed), expected)
    # Shares, not energies: scaling one run's codes does not change its atoms' areas.
    scaled = placed.assign(energy=placed["energy"] * [10, 10, 10, 1, 1])
    assert np.allclose(energy_areas(scaled), expected)


def test_atom_map_energy_sizes_each_live_atom_by_its_energy_share(tables):
    store = store_tables(tables)
    figure = draw("atom_map_energy", store)
    atoms = store["atom_map"].merge(store["atoms"], on=[*RUN_KEYS, "atom"])
    lowest = atoms[atoms["seed"] == 0]
    share = lowest["energy"] / lowest.groupby(["variant", "mixture"])["energy"].transform("sum")
    lowest = lowest.assign(area=ENERGY_AREA * share / share.max())
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert len(panels) == len(VARIANTS) * len(MIXTURES)
    for axis in panels:
        variant, mixture = axis.get_title().split(", image:text ")
        run = lowest[
            (lowest["variant"] == variant) & (lowest["mixture"] == mixture.replace(":", "-"))
        ]
        live = run.dropna(subset=["modality_score"])
        (drawn,) = axis.collections  # live atoms only: a dead atom has no energy to draw
        assert np.allclose(drawn.get_offsets(), live[["x", "y"]])
        assert np.allclose(drawn.get_sizes(), live["area"])
        assert np.allclose(drawn.get_array(), live["modality_score"])
    largest = max(axis.collections[0].get_sizes().max() for axis in panels)
    assert largest == pytest.approx(ENERGY_AREA)
    assert "energy" in figure.get_suptitle()


def _neuron_panel(figure, dataset, model):
    return next(axis for axis in figure.axes if axis.get_title() == f"{dataset}/{model}")


def test_group_sparse_neurons_bars_equal_the_counts_per_variant(tables):
    figure = draw("group_sparse_neurons", tables)
    assert sum(1 for axis in figure.axes if axis.axison) == len(STORES)
    summary = tables["summary"]
    coco = summary[summary["dataset"] == "coco"]
    axis = _neuron_panel(figure, "coco", "clip")
    columns = list(NEURON_COUNTS.values())
    stats = seed_statistics(coco, columns)
    # One container per category, in the paper's order and the atom kinds' colours.
    containers = [c for c in axis.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in containers] == list(NEURON_COUNTS)
    for container, (category, column) in zip(containers, NEURON_COUNTS.items(), strict=True):
        heights = [bar.get_height() for bar in container]
        assert sorted(heights) == pytest.approx(sorted(stats[column]))
        colour = KIND_COLOURS[NEURON_COLOURS[category]]
        assert to_rgb(container[0].get_facecolor()[:3]) == to_rgb(colour)
    labels = [text.get_text() for text in axis.get_xticklabels()]
    assert len(labels) == len(VARIANTS) * len(MIXTURES) and "batchtopk (5:1)" in labels
    assert axis.get_ylabel() == "atoms (neurons)"
    # Each variant's four counts add up to its dictionary.
    per_run = np.sum([[bar.get_height() for bar in c] for c in containers], axis=0)
    assert np.allclose(per_run, N_ATOMS)


def test_group_sparse_neurons_names_variants_alone_with_one_mixture(tables):
    summary = tables["summary"][tables["summary"]["mixture"] == "1-1"]
    figure = draw("group_sparse_neurons", {"summary": summary})
    labels = [t.get_text() for t in _neuron_panel(figure, "coco", "clip").get_xticklabels()]
    assert labels == sorted(VARIANTS)


def test_mms_sorted_draws_a_curve_per_run_and_the_dense_coordinates(tables):
    store = store_tables(tables)
    figure = draw("mms_sorted", store)
    assert [axis.get_ylabel() for axis in figure.axes] == [
        "mms_image_image",
        "mms_text_text",
        "mms_image_text",
    ]
    atoms = store["atoms"]
    for axis in figure.axes:
        column = axis.get_ylabel()
        lines = {line.get_label(): line for line in axis.lines}
        assert len(lines) == len(VARIANTS) * len(MIXTURES) + 1
        line = lines["topk-k16 (5:1)"]
        run = atoms[
            (atoms["variant"] == "topk-k16") & (atoms["mixture"] == "5-1") & (atoms["seed"] == 0)
        ]
        # Undefined MMS (the dead atoms) counts 0; the index runs over (0, 1].
        expected = np.sort(run[column].fillna(0.0))[::-1]
        assert np.allclose(line.get_ydata(), expected)
        assert np.allclose(line.get_xdata(), np.arange(1, N_ATOMS + 1) / N_ATOMS)
        assert list(line.get_ydata()).count(0.0) == N_ATOMS // 4
    dense = {line.get_label(): line for line in figure.axes[0].lines}["no SAE (dense coordinates)"]
    assert dense.get_ydata().tolist() == [0.5, 0.3, 0.2, 0.1, 0.0]
    assert np.allclose(dense.get_xdata(), [0.2, 0.4, 0.6, 0.8, 1.0])


def test_mms_sorted_is_made_only_for_stores_with_a_second_view():
    applies = FIGURES.get("mms_sorted").extra["applies"]
    synthetic = {"datasets": {"s": {"source": "synthetic"}}}
    assert applies(synthetic, [{"dataset": "s", "model": "generator"}])
    coco = {"datasets": {"c": {"source": "coco", "mms_reference": "clip-rn50"}}}
    assert applies(coco, [{"dataset": "c", "model": "clip-vit-b-16"}])
    assert not applies(coco, [{"dataset": "c", "model": "clip-rn50"}])  # the reference itself
    plain = {"datasets": {"c": {"source": "coco"}}}
    assert not applies(plain, [{"dataset": "c", "model": "clip-vit-b-16"}])


@pytest.mark.parametrize(
    ("name", "metrics"),
    [
        ("iso_energy_metrics", ["p_acc", "rho", "fda", "delta_r"]),
        (
            "group_sparse_metrics",
            ["dead_atoms_image", "dead_atoms_text", "mms_image_text", "zero_shot_top1_codes"],
        ),
    ],
)
def test_metric_bars_equal_the_means_over_seeds(tables, name, metrics):
    figure = draw(name, tables)
    panels = [axis for axis in figure.axes if axis.axison]
    stats = seed_statistics(tables["summary"], metrics)
    assert [axis.get_ylabel() for axis in panels] == metrics
    for axis, metric in zip(panels, metrics, strict=True):
        heights = sorted(bar.get_height() for bar in bars(axis))
        assert np.allclose(heights, sorted(stats[metric].dropna()))
        assert len(heights) == len(stats)  # one bar per (dataset, model, variant, mixture)


def test_group_sparse_leaves_out_what_the_config_does_not_measure(tables):
    summary = tables["summary"].drop(columns=["zero_shot_top1_codes"])
    figure = draw("group_sparse_metrics", {"summary": summary, "stores": tables["stores"]})
    labels = [axis.get_ylabel() for axis in figure.axes if axis.axison]
    assert labels == ["dead_atoms_image", "dead_atoms_text", "mms_image_text"]
    mms = next(axis for axis in figure.axes if axis.get_ylabel() == "mms_image_text")
    baselines = [line.get_ydata()[0] for line in mms.lines if line.get_linestyle() == ":"]
    assert baselines == [0.3]  # the dense reference's own MMS


def test_draw_registered_reads_the_files_and_writes_png_and_svg(tables, tmp_path, monkeypatch):
    runs = [run for run in RUNS if run["dataset"] == "coco"]
    paths = input_paths("bridge", runs, {})
    for run, path in zip(runs, paths["bridge_top"], strict=True):
        assert path.endswith(
            f"{run['variant']}/{run['mixture']}/seed{run['seed']}/bridge_top.parquet"
        )
        file = tmp_path / path
        file.parent.mkdir(parents=True, exist_ok=True)
        top = tables["bridge_top"]
        rows = top[(top[RUN_KEYS] == pd.Series(_keys(run))).all(axis=1)]
        rows.drop(columns=RUN_KEYS).to_parquet(file)
    summary = tmp_path / "summary.csv"
    tables["summary"].drop(columns=["family"]).to_csv(summary, index=False)
    inputs = {"bridge_top": [str(tmp_path / p) for p in paths["bridge_top"]]}
    draw_registered("bridge", inputs, runs, {"pairs": 3}, tmp_path / "bridge.png")
    assert (tmp_path / "bridge.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "bridge.svg").read_bytes()[:400]
    captured = {}

    def spy(tables, settings, subject):
        captured.update(tables=tables, subject=subject)
        return plt.figure()

    monkeypatch.setitem(
        FIGURES._entries, "r2_vs_l0", dataclasses.replace(FIGURES.get("r2_vs_l0"), obj=spy)
    )
    draw_registered("r2_vs_l0", {"summary": [str(summary)]}, RUNS, None, tmp_path / "r2.png")
    drawn = captured["tables"]["summary"]
    assert list(drawn["family"]) == list(tables["summary"]["family"])  # from the runs' families
    assert captured["subject"] == "every run"


def test_only_fed_figures_are_targets():
    config: dict = {}
    one_mixture = [run for run in RUNS if run["mixture"] == "1-1"]
    targets = figure_targets(config, one_mixture)
    assert "results/figures/stability.png" in targets  # seed pairs remain
    assert not any("stability_mixtures" in target for target in targets)
    single = [run for run in one_mixture if run["seed"] == 0]
    assert "results/figures/stability.png" not in figure_targets(config, single)
    every = figure_targets(config, RUNS)
    for dataset, model in STORES:
        assert f"results/figures/stability_mixtures/{dataset}/{model}.png" in every


def test_every_figure_has_a_caption_and_a_paper():
    report = Path(__file__).resolve().parent.parent / "report" / "figures"
    for entry in FIGURES:
        if entry.obj.__module__.startswith("vlmsae.figures"):
            assert (report / f"{entry.name}.rst").is_file(), entry.name
            assert entry.extra["paper"] in ("linear-structure", "iso-energy", "group-sparse")


def _gap_histograms() -> pd.DataFrame:
    edges = np.linspace(0, 1, 6)
    rows = []
    for run in RUNS:
        for edit in ("dense", "bimodal", "mean-shift"):
            for measure, populations in (
                ("nn_distance", ("image", "text")),
                ("cosine", ("paired", "unpaired")),
            ):
                for index, population in enumerate(populations):
                    counts = np.arange(5) + index
                    rows += [
                        {
                            **_keys(run),
                            "edit": edit,
                            "measure": measure,
                            "population": population,
                            "bin_left": left,
                            "bin_right": right,
                            "count": count,
                        }
                        for left, right, count in zip(edges[:-1], edges[1:], counts, strict=True)
                    ]
    return pd.DataFrame(rows)


def test_gap_closing_draws_both_measures_per_edit_for_one_run_per_variant():
    table = _gap_histograms()
    store = store_tables({"gap_histograms": table})
    figure = draw("gap_closing", store)
    variants = store["gap_histograms"]["variant"].nunique()
    assert len(figure.axes) == variants * 2 * 3
    first = figure.axes[0]
    assert first.get_title().endswith(": dense")
    steps = [p.get_data() for p in first.patches if isinstance(p, StepPatch)]
    assert len(steps) == 2  # images and captions
    assert np.allclose(steps[0].values, np.arange(5) / np.arange(5).sum())


def test_vector_arithmetic_bars_equal_the_table():
    kinds = ["Q", "Q_SAE", "Q_src", "Q_delta"]
    runs = [run for run in RUNS if run["dataset"] == "synthetic-iso"]
    summary = pd.DataFrame(
        [
            {**_keys(run), "query": kind, "ood_auroc": 0.1 * (i + 1), "recall_at_1": 0.05 * (i + 1)}
            for run in runs
            for i, kind in enumerate(kinds)
        ]
    )
    edges = np.linspace(0, 1, 4)
    histograms = pd.DataFrame(
        [
            {
                **_keys(run),
                "population": population,
                "bin_left": left,
                "bin_right": right,
                "count": 1,
            }
            for run in runs
            for population in ["target", *kinds]
            for left, right in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    figure = draw(
        "vector_arithmetic", {"vector_arithmetic": summary, "arithmetic_histograms": histograms}
    )
    right = figure.axes[1]
    heights = [patch.get_height() for patch in bars(right)]
    assert np.allclose(heights, [0.1, 0.2, 0.3, 0.4, 0.05, 0.1, 0.15, 0.2])
    steps = [p for p in figure.axes[0].patches if isinstance(p, StepPatch)]
    assert len(steps) == 5
