"""What figures read that the metric groups add for them: per-atom gap shares and the PCA of
the embeddings (iso-energy Fig. 3), the cone histograms table (linear-structure Fig. 5), the
dense coordinates' MMS (group-sparse Fig. 4); and that each figure's inputs are declared."""

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from vlmsae.figures import RUN_FILES, STORE_FILES, input_paths
from vlmsae.metrics import mms
from vlmsae.metrics.cones import DISTRIBUTIONS, ConeSettings, summarise_store
from vlmsae.metrics.context import StoreContext
from vlmsae.metrics.gap import GapSettings, gap_shares, pca_table, principal_components
from vlmsae.metrics.gap import summarise_store as gap_store

RULES = Path(__file__).resolve().parent.parent / "rules"


def test_gap_shares_by_hand():
    image = np.array([[1.0, 0.0], [1.0, 0.0]])  # mean (1, 0)
    text = np.array([[0.0, 1.0], [0.0, 1.0]])  # mean (0, 1): Δ = (1, −1), ‖Δ‖² = 2
    dictionary = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # D·Δ = (1, −1, −0.2)
    codes_image = sparse.csr_matrix([[1.0, 0.0, 0.0], [1.0, 0.0, 0.5]])  # mean (1, 0, 0.25)
    codes_text = sparse.csr_matrix([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # mean (0, 1, 0)
    shares = gap_shares(codes_image, codes_text, dictionary, image, text)
    # (mean_I z − mean_T z) · (D·Δ) / ‖Δ‖² = (1·1, −1·−1, 0.25·−0.2) / 2
    assert np.allclose(shares, [0.5, 0.5, -0.025])


def test_gap_shares_without_a_gap_are_undefined():
    rows = np.array([[1.0, 0.0], [0.0, 1.0]])
    codes = sparse.csr_matrix(np.eye(2))
    assert np.isnan(gap_shares(codes, codes, np.eye(2), rows, rows)).all()


def test_cone_histograms_table_counts_every_pair_of_the_sample():
    rng = np.random.default_rng(0)
    n = 5
    context = StoreContext(image=rng.normal(size=(n, 4)), text=rng.normal(size=(n, 4)), seed=0)
    table = summarise_store(context, ConeSettings()).tables["cone_histograms"]
    assert list(table.columns) == ["bin_left", "bin_right", *DISTRIBUTIONS]
    assert len(table) == 100
    assert np.allclose(table["bin_left"].iloc[0], -1.0) and np.allclose(
        table["bin_right"].iloc[-1], 1.0
    )
    assert np.allclose(
        table["bin_left"].iloc[1:].to_numpy(), table["bin_right"].iloc[:-1].to_numpy()
    )
    # within a modality: the n(n−1)/2 distinct pairs; across: n true pairs, n(n−1) non-pairs.
    assert table[["within_image", "within_text", "paired", "unpaired"]].sum().tolist() == [
        10,
        10,
        5,
        20,
    ]


def test_principal_components_by_hand():
    image = np.array([[2.0, 1.0], [2.0, -1.0]])
    text = np.array([[-2.0, 1.0], [-2.0, -1.0]])
    coordinates, shares = principal_components(image, text)
    # Joint mean 0; variance 16 along x (the gap), 4 along y: PC 1 is x, images on its right.
    assert np.allclose(shares, [0.8, 0.2])
    assert np.allclose(coordinates[:, 0], [2, 2, -2, -2])
    assert np.allclose(np.abs(coordinates[:, 1]), 1)


def test_principal_components_ignore_a_shift_and_a_rotation():
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(20, 6)) + 1.0, rng.normal(size=(20, 6))
    coordinates, shares = principal_components(image, text)
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    shift = rng.normal(size=6)
    moved, moved_shares = principal_components(image @ rotation + shift, text @ rotation + shift)
    assert np.allclose(shares, moved_shares)
    assert np.allclose(np.abs(coordinates), np.abs(moved))
    assert np.mean(moved[:20, 0]) >= 0  # images on the right whatever the SVD's signs


def test_pca_table_draws_the_same_pairs_of_both_modalities():
    rng = np.random.default_rng(1)
    image, text = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    table = pca_table(image, text, seed=3, pairs=10)
    assert list(table.columns) == [
        "modality",
        "pair",
        "pc1",
        "pc2",
        "variance_share_pc1",
        "variance_share_pc2",
    ]
    assert table["modality"].tolist() == ["image"] * 10 + ["text"] * 10
    pairs = table["pair"].to_numpy()
    assert np.array_equal(pairs[:10], pairs[10:]) and len(set(pairs[:10])) == 10
    assert table.equals(pca_table(image, text, seed=3, pairs=10))  # seeded
    chosen = pairs[:10]
    coordinates, _ = principal_components(image[chosen], text[chosen])
    assert np.allclose(table[["pc1", "pc2"]], coordinates)
    # Every pair when there are fewer than asked for.
    assert len(pca_table(image[:4], text[:4], seed=0, pairs=1000)) == 8


def test_gap_store_metric_writes_the_pca_table():
    rng = np.random.default_rng(2)
    context = StoreContext(image=rng.normal(size=(40, 4)), text=rng.normal(size=(40, 4)), seed=0)
    tables = gap_store(context, GapSettings(knn_k=2, pca_pairs=25)).tables
    assert len(tables["embedding_pca"]) == 50


def test_dense_coordinate_mms_by_hand():
    image = np.array([[1.0, 0.5], [0.0, 1.0]])
    text = np.array([[1.0, 0.0], [1.0, 1.0]])
    # Reference cosines: image rows (1, 0), (0, 1); both text rows (1, 0).
    reference = {"image": np.eye(2), "text": np.array([[1.0, 0.0], [3.0, 0.0]])}
    scores = mms.dense_dimensions(image, text, reference)
    # Coordinate 0: image weights (1, 0), text (1, 1); image 0 meets both texts at cosine 1.
    # Coordinate 1: image (0.5, 1), text (0, 1): (0.5·1·1 + 1·1·0) / (1.5 · 1) = 1/3.
    assert np.allclose(scores["mms_image_text"], [1.0, 1 / 3])
    # Within images: coordinate 0 fires on one row (no pair: undefined); coordinate 1 pairs
    # the two images, whose reference cosine is 0.
    assert np.allclose(scores["mms_image_image"], [np.nan, 0.0], equal_nan=True)
    assert np.allclose(scores["mms_text_text"], [1.0, np.nan], equal_nan=True)


def test_mms_dense_table_with_and_without_a_second_view():
    rng = np.random.default_rng(4)
    image, text = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    context = StoreContext(
        image=image, text=text, seed=0, reference_image=image**2, reference_text=text**2
    )
    table = mms.summarise_store(context, None).tables["mms_dense"]
    assert list(table.columns) == ["dimension", *(f"mms_{m}_{n}" for m, n in mms.PAIRS)]
    assert table["dimension"].tolist() == [0, 1, 2]
    expected = mms.dense_dimensions(image, text, {"image": image**2, "text": text**2})
    assert np.allclose(table["mms_image_text"], expected["mms_image_text"])
    empty = mms.summarise_store(StoreContext(image=image, text=text, seed=0), None)
    assert empty.summary == {} and list(empty.tables["mms_dense"].columns) == list(table.columns)
    assert empty.tables["mms_dense"].empty


RUNS = [
    {"dataset": "s", "model": "g", "variant": v, "mixture": "1-1", "seed": 0} for v in ("a", "b")
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("atom_map_energy", {"atoms", "atom_map"}),
        ("group_sparse_neurons", {"summary"}),
        ("mms_sorted", {"atoms", "mms_dense"}),
        ("gap_share", {"atoms", "embedding_pca"}),
    ],
)
def test_new_figures_declare_the_files_they_read(name, expected):
    tables = {"summary": "results/tables/summary.csv"}
    inputs = input_paths(name, RUNS, tables)
    assert set(inputs) == expected
    for table, paths in inputs.items():
        if table in RUN_FILES:
            assert paths == [f"results/metrics/s/g/{v}/1-1/seed0/{RUN_FILES[table]}" for v in "ab"]
        elif table in STORE_FILES:
            assert paths == [f"results/metrics/s/g/{STORE_FILES[table]}"]


def test_every_store_file_a_figure_reads_is_a_rule_output():
    outputs = "\n".join(path.read_text() for path in RULES.glob("*.smk"))
    for name, file in STORE_FILES.items():
        pattern = rf'"results/metrics/{{dataset}}/{{model}}/{re.escape(file)}"'
        assert re.search(pattern, outputs), name
