import dataclasses
import functools

import jsonschema
import numpy as np
import pytest

from vlmsae.datasets import SOURCES
from vlmsae.datasets.synthetic import SyntheticParams, build
from vlmsae.errors import ConfigError
from vlmsae.registry_base import parse_settings, settings_schema
from vlmsae.stores.embedding_store import TrueStructure


def rebuilt(truth: TrueStructure, modality: str) -> np.ndarray:
    """Σ values · true_dictionary[indices] of every row, in float64."""
    codes = truth.codes[modality].to_csr(len(truth.dictionary)).astype(np.float64)
    return np.asarray(codes @ truth.dictionary.astype(np.float64))


def pair_cosines(data: dict) -> np.ndarray:
    image, text = data["image"].astype(np.float64), data["text"].astype(np.float64)
    return np.sum(image * text, axis=1)


CASES = {
    "isotropic-iso": SyntheticParams(
        d=48, n_bimodal=40, n_unimodal=20, L=8, n_active_bimodal=4, tau1=1.0, n_pairs=3000, seed=3
    ),
    "isotropic-aniso": SyntheticParams(
        d=48, n_bimodal=40, n_unimodal=20, L=8, n_active_bimodal=4, tau1=0.5, n_pairs=3000, seed=3
    ),
    "clip-like-iso": SyntheticParams(
        geometry="clip-like", d=60, n_bimodal=20, n_unimodal=6, L=6, tau1=1.0, n_pairs=2000, seed=5
    ),
    "clip-like-aniso": SyntheticParams(
        geometry="clip-like", d=60, n_bimodal=20, n_unimodal=6, L=6, tau1=0.6, n_pairs=2000, seed=5
    ),
}


@functools.cache
def generated(name: str) -> dict:
    return build(CASES[name])


@pytest.fixture(params=list(CASES))
def either(request):
    return CASES[request.param], generated(request.param)


@pytest.fixture(params=["clip-like-iso", "clip-like-aniso"])
def clip_like(request):
    return CASES[request.param], generated(request.param)


# ---- both geometries -----------------------------------------------------------------------------
def test_rows_are_unit_norm(either):
    _, data = either
    for modality in ("image", "text"):
        np.testing.assert_allclose(np.linalg.norm(data[modality], axis=1), 1.0, atol=1e-5)


def test_every_embedding_has_exactly_L_true_atoms(either):
    params, data = either
    truth = data["truth"]
    for modality in ("image", "text"):
        dense = truth.codes[modality].to_csr(len(truth.dictionary)).toarray()
        assert np.all(np.count_nonzero(dense, axis=1) == params.L)
        assert np.all(dense >= 0)


def test_true_codes_reproduce_the_embeddings(either):
    _, data = either
    truth = data["truth"]
    for modality in ("image", "text"):
        np.testing.assert_allclose(rebuilt(truth, modality), data[modality], atol=1e-5)


def test_bimodal_instantiations_have_cosine_tau1(either):
    params, data = either
    truth = data["truth"]
    bimodal = np.flatnonzero(truth.atom_kind == "bimodal")
    rows = truth.dictionary[bimodal]
    if params.tau1 == 1.0:
        # Iso-energy: one shared direction per bimodal concept.
        assert len(bimodal) == params.n_bimodal
        shared = np.intersect1d(truth.codes["image"].indices, truth.codes["text"].indices)
        assert np.all(truth.atom_kind[shared] == "bimodal")
    else:
        assert len(bimodal) == 2 * params.n_bimodal
        image_rows, text_rows = rows[: params.n_bimodal], rows[params.n_bimodal :]
        np.testing.assert_array_equal(
            truth.atom_concept[bimodal][: params.n_bimodal],
            truth.atom_concept[bimodal][params.n_bimodal :],
        )
        np.testing.assert_allclose(np.sum(image_rows * text_rows, axis=1), params.tau1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(truth.dictionary, axis=1), 1.0, atol=1e-5)


def test_a_pair_uses_the_same_bimodal_concepts_in_both_modalities(either):
    params, data = either
    truth = data["truth"]

    def concepts(modality: str) -> np.ndarray:
        indices = truth.codes[modality].indices
        concept = np.where(truth.atom_kind[indices] == "bimodal", truth.atom_concept[indices], -1)
        return np.sort(concept, axis=1)

    np.testing.assert_array_equal(concepts("image"), concepts("text"))
    # Concept ids: 0 … n_bimodal − 1 for the bimodal concepts, then one per unimodal atom.
    bimodal = truth.atom_kind == "bimodal"
    assert set(truth.atom_concept[bimodal]) == set(range(params.n_bimodal))
    unimodal = truth.atom_concept[~bimodal]
    assert len(set(unimodal)) == len(unimodal) and unimodal.min() >= params.n_bimodal


def test_mean_paired_cosine_is_tau2(either):
    params, data = either
    cosines = pair_cosines(data)
    assert abs(cosines.mean() - params.tau2) < 1e-4
    # Pairs are more alike than non-pairs: the shared atoms carry the signal.
    assert cosines.mean() > np.mean(
        np.sum(data["image"] * np.roll(data["text"], 1, axis=0), axis=1)
    )


def test_unimodal_atoms_appear_only_in_their_modality(either):
    _, data = either
    truth = data["truth"]
    assert set(truth.atom_kind[np.unique(truth.codes["image"].indices)]) <= {"bimodal", "image"}
    assert set(truth.atom_kind[np.unique(truth.codes["text"].indices)]) <= {"bimodal", "text"}


@pytest.mark.parametrize("geometry", ["isotropic", "clip-like"])
def test_same_seed_same_data_other_seed_other_data(geometry):
    params = SyntheticParams(
        geometry=geometry, d=16, n_bimodal=8, n_unimodal=8, L=4, n_active_bimodal=2, n_pairs=200
    )
    first, again = build(params), build(params)
    other = build(dataclasses.replace(params, seed=1))
    np.testing.assert_array_equal(first["image"], again["image"])
    assert not np.allclose(first["image"], other["image"])


# ---- isotropic -----------------------------------------------------------------------------------
def test_unreachable_tau2_is_refused():
    params = SyntheticParams(
        d=16, n_bimodal=8, n_unimodal=8, L=4, n_active_bimodal=2, tau1=0.2, tau2=0.9, n_pairs=200
    )
    with pytest.raises(ValueError, match="tau2=0.9 is out of reach"):
        build(params)


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="exceed n_unimodal"):
        SyntheticParams(n_unimodal=2, L=20, n_active_bimodal=10).check()


# ---- clip-like -----------------------------------------------------------------------------------
def test_clip_like_every_pair_has_cosine_tau2(clip_like):
    params, data = clip_like
    np.testing.assert_allclose(pair_cosines(data), params.tau2, atol=1e-6)
    # Exact before the float32 rounding of the stored rows: from the codes, in float64.
    truth = data["truth"]
    image, text = rebuilt(truth, "image"), rebuilt(truth, "text")
    cosines = np.sum(image * text, axis=1) / np.linalg.norm(image, axis=1)
    cosines /= np.linalg.norm(text, axis=1)
    np.testing.assert_allclose(cosines, params.tau2, atol=1e-6)


def test_clip_like_embedding_is_one_bias_atom_and_L_minus_1_bimodal_atoms(clip_like):
    params, data = clip_like
    truth = data["truth"]
    for modality in ("image", "text"):
        codes = truth.codes[modality]
        kinds = truth.atom_kind[codes.indices]
        assert np.all(np.sum(kinds == modality, axis=1) == 1)
        assert np.all(np.sum(kinds == "bimodal", axis=1) == params.L - 1)
        # One weight β for the bimodal atoms of a pair, 1 for the bias atom (before the
        # normalisation, which scales them alike).
        bimodal_values = np.where(kinds == "bimodal", codes.values, np.nan)
        bias_value = codes.values[kinds == modality]
        np.testing.assert_allclose(
            np.nanstd(bimodal_values / bias_value[:, None], axis=1), 0.0, atol=1e-5
        )


def test_clip_like_slices_are_respected(clip_like):
    params, data = clip_like
    truth = data["truth"]
    image_dims, text_dims, shared_dims = params.slices()
    assert (image_dims.stop, text_dims.stop) == (6, 12)  # 10 % and 10 % of d = 60
    outside = {
        "image": np.r_[text_dims.start : params.d],
        "text": np.r_[: image_dims.stop, shared_dims.start : params.d],
    }
    for kind in ("image", "text"):
        bias = truth.dictionary[truth.atom_kind == kind]
        assert np.all(bias[:, outside[kind]] == 0)
    bimodal = truth.dictionary[truth.atom_kind == "bimodal"]
    n_b = params.n_bimodal
    if params.tau1 == 1.0:
        # Iso-energy: the concept itself, in the shared slice only.
        assert np.all(bimodal[:, : shared_dims.start] == 0)
    else:
        image_rows, text_rows = bimodal[:n_b], bimodal[n_b:]
        assert np.all(image_rows[:, text_dims] == 0) and np.all(text_rows[:, image_dims] == 0)
        # The same concept in the shared slice, √τ1 of each instantiation; its own noise beside.
        np.testing.assert_allclose(image_rows[:, shared_dims], text_rows[:, shared_dims])
        shared_norm = np.linalg.norm(image_rows[:, shared_dims], axis=1)
        np.testing.assert_allclose(shared_norm, np.sqrt(params.tau1), atol=1e-6)
    # The pair's embeddings differ only by their modality's slice and weights: the text slice of an
    # image is empty.
    assert np.all(data["image"][:, text_dims] == 0) and np.all(data["text"][:, image_dims] == 0)


def test_clip_like_bias_atoms_form_a_cone(clip_like):
    _, data = clip_like
    truth = data["truth"]
    for kind in ("image", "text"):
        bias = truth.dictionary[truth.atom_kind == kind].astype(np.float64)
        cosine = bias @ bias.T
        off_diagonal = cosine[~np.eye(len(bias), dtype=bool)]
        # A standard normal vector in 6 dimensions beside an offset of length 10: cos ≈ 100/106.
        assert off_diagonal.min() > 0.6 and off_diagonal.mean() > 0.85
    image_bias = truth.dictionary[truth.atom_kind == "image"]
    text_bias = truth.dictionary[truth.atom_kind == "text"]
    assert np.all(image_bias @ text_bias.T == 0)


def test_clip_like_draws_do_not_depend_on_tau1_or_the_shares():
    base = SyntheticParams(
        geometry="clip-like", d=64, n_bimodal=12, n_unimodal=4, L=5, tau1=0.9, n_pairs=300
    )
    indices = build(base)["truth"].codes["image"].indices
    for change in ({"tau1": 0.7}, {"image_share": 0.2}, {"bias_offset": 3.0}):
        other = build(dataclasses.replace(base, **change))
        np.testing.assert_array_equal(other["truth"].codes["image"].indices, indices)


def test_clip_like_on_the_authors_settings_has_their_statistics():
    # Issue 12: d 512, 100 atoms (10 bias atoms per modality, 40 bimodal concepts with two
    # instantiations each), L 10, τ1 0.99, τ2 0.4 gives within-modality cosine 0.52, non-pair
    # 0.10, gap 0.91. One seed's dictionary moves them by about ±0.015.
    params = SyntheticParams(
        geometry="clip-like",
        d=512,
        n_bimodal=40,
        n_unimodal=10,
        L=10,
        tau1=0.99,
        tau2=0.4,
        n_pairs=4000,
    )
    data = build(params)
    image, text = data["image"].astype(np.float64), data["text"].astype(np.float64)
    n = len(image)

    def mean_off_diagonal(a: np.ndarray, b: np.ndarray) -> float:
        product = a @ b.T
        return float((product.sum() - np.trace(product)) / (n * (n - 1)))

    assert mean_off_diagonal(image, image) == pytest.approx(0.52, abs=0.04)
    assert mean_off_diagonal(text, text) == pytest.approx(0.52, abs=0.04)
    assert mean_off_diagonal(image, text) == pytest.approx(0.10, abs=0.03)
    assert np.linalg.norm(image.mean(0) - text.mean(0)) == pytest.approx(0.91, abs=0.03)


def test_clip_like_unreachable_tau2_is_refused():
    # A pair's cosine tends to about τ1 as the bimodal weight grows.
    params = SyntheticParams(
        geometry="clip-like",
        d=40,
        n_bimodal=10,
        n_unimodal=4,
        L=4,
        tau1=0.3,
        tau2=0.6,
        n_pairs=100,
    )
    with pytest.raises(ValueError, match="tau2=0.6 is out of reach"):
        build(params)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tau2": 0.0}, "tau2=0.0 must lie in"),
        ({"tau1": -0.5}, "tau1=-0.5 must lie in"),
        ({"L": 1}, "L=1 must lie in"),
        ({"L": 30}, "L=30 must lie in"),
        ({"n_unimodal": 0}, "n_unimodal=0 must be at least 1"),
        ({"image_share": 0.01}, "image_share=0.01 of d=40 is no dimension"),
        ({"image_share": 0.5, "text_share": 0.5}, "leaves no dimension"),
        ({"bimodal_frequency_min": 0.9}, "bimodal_frequency_min=0.9 exceeds"),
    ],
)
def test_clip_like_impossible_settings_name_the_parameter(change, message):
    params = SyntheticParams(geometry="clip-like", d=40, n_bimodal=10, n_unimodal=4, L=4)
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(params, **change).check()


def test_clip_like_ignores_the_isotropic_counts():
    # n_active_bimodal > L would be refused by the isotropic geometry; clip-like does not use it.
    SyntheticParams(geometry="clip-like", L=5, n_active_bimodal=10).check()


# ---- registration and schema ---------------------------------------------------------------------
def test_registered_as_an_embedding_source():
    entry = SOURCES.get("synthetic")
    assert entry.obj is build and entry.settings is SyntheticParams
    assert entry.extra["kind"] == "embedding"


def test_schema_keeps_the_defaults_and_bounds_of_the_config_section():
    properties = settings_schema(SyntheticParams)["properties"]
    expected = {
        "d": ("integer", 128, {"minimum": 2}),
        "n_bimodal": ("integer", 128, {"minimum": 0}),
        "n_unimodal": ("integer", 64, {"minimum": 0}),
        "L": ("integer", 20, {"minimum": 1}),
        "n_active_bimodal": ("integer", 10, {"minimum": 0}),
        "tau1": ("number", 1.0, {"minimum": -1, "maximum": 1}),
        "tau2": ("number", 0.3, {"minimum": -1, "maximum": 1}),
        "n_pairs": ("integer", 40000, {"minimum": 10}),
        "frequency_exponent": ("number", 0.0, {"minimum": 0}),
        "eval_fraction": ("number", 0.2, {"exclusiveMinimum": 0, "exclusiveMaximum": 1}),
        "seed": ("integer", 0, {"minimum": 0}),
    }
    for name, (kind, default, bounds) in expected.items():
        assert properties[name]["type"] == kind and properties[name]["default"] == default
        assert {key: properties[name][key] for key in bounds} == bounds, name
    assert (
        properties["tau1"]["description"]
        == "cosine between the two instantiations of a bimodal atom"
    )
    assert properties["geometry"]["enum"] == ["isotropic", "clip-like"]
    assert properties["geometry"]["default"] == "isotropic"
    validator = jsonschema.Draft202012Validator(settings_schema(SyntheticParams))
    assert validator.is_valid({"geometry": "clip-like", "tau1": 0.99})
    assert not validator.is_valid({"geometry": "cliplike"})
    assert not validator.is_valid({"image_share": 0})


def test_config_section_with_an_impossible_combination_names_the_key():
    with pytest.raises(ConfigError, match=r"'datasets.toy.synthetic.L': L=1 must lie in"):
        parse_settings(SyntheticParams, {"geometry": "clip-like", "L": 1}, "datasets.toy.synthetic")


def test_clip_like_pairs_out_of_reach_are_redrawn_and_counted():
    # τ2 just below τ1: a few pairs' bimodal instantiations agree too little to reach it.
    params = SyntheticParams(
        geometry="clip-like",
        d=512,
        n_bimodal=40,
        n_unimodal=10,
        L=10,
        tau1=0.5,
        tau2=0.4,
        n_pairs=10000,
    )
    store = build(params)
    assert 0 < store["attrs"]["redrawn_pairs"] <= 0.01 * params.n_pairs
    cosine = np.sum(store["image"] * store["text"], axis=1)
    np.testing.assert_allclose(cosine, 0.4, atol=1e-5)
