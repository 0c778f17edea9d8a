import numpy as np
import pytest

from vlmsae.datasets.synthetic import SyntheticParams, generate


@pytest.fixture(scope="module", params=[1.0, 0.5], ids=["iso", "aniso"])
def generated(request):
    params = SyntheticParams(
        d=48,
        n_bimodal=40,
        n_unimodal=20,
        L=8,
        n_active_bimodal=4,
        tau1=request.param,
        tau2=0.3,
        n_pairs=3000,
        seed=3,
    )
    return params, generate(params)


def test_rows_are_unit_norm(generated):
    _, data = generated
    for modality in ("image", "text"):
        np.testing.assert_allclose(np.linalg.norm(data[modality], axis=1), 1.0, atol=1e-5)


def test_every_embedding_has_exactly_L_true_atoms(generated):
    params, data = generated
    truth = data["truth"]
    for modality in ("image", "text"):
        dense = truth.codes[modality].to_csr(len(truth.dictionary)).toarray()
        assert np.all(np.count_nonzero(dense, axis=1) == params.L)
        assert np.all(dense >= 0)


def test_true_codes_reproduce_the_embeddings(generated):
    _, data = generated
    truth = data["truth"]
    for modality in ("image", "text"):
        rebuilt = truth.codes[modality].to_csr(len(truth.dictionary)).toarray() @ truth.dictionary
        np.testing.assert_allclose(rebuilt, data[modality], atol=1e-5)


def test_bimodal_instantiations_have_cosine_tau1(generated):
    params, data = generated
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


def test_mean_paired_cosine_is_tau2(generated):
    params, data = generated
    cosines = np.sum(data["image"] * data["text"], axis=1)
    assert abs(cosines.mean() - params.tau2) < 1e-4
    # Pairs are more alike than non-pairs: the shared atoms carry the signal.
    assert cosines.mean() > np.mean(
        np.sum(data["image"] * np.roll(data["text"], 1, axis=0), axis=1)
    )


def test_unimodal_atoms_appear_only_in_their_modality(generated):
    _, data = generated
    truth = data["truth"]
    assert set(truth.atom_kind[np.unique(truth.codes["image"].indices)]) <= {"bimodal", "image"}
    assert set(truth.atom_kind[np.unique(truth.codes["text"].indices)]) <= {"bimodal", "text"}


def test_same_seed_same_data_other_seed_other_data():
    params = SyntheticParams(d=16, n_bimodal=8, n_unimodal=8, L=4, n_active_bimodal=2, n_pairs=200)
    first, again = generate(params), generate(params)
    other = generate(SyntheticParams(**{**params.__dict__, "seed": 1}))
    np.testing.assert_array_equal(first["image"], again["image"])
    assert not np.allclose(first["image"], other["image"])


def test_unreachable_tau2_is_refused():
    params = SyntheticParams(
        d=16, n_bimodal=8, n_unimodal=8, L=4, n_active_bimodal=2, tau1=0.2, tau2=0.9, n_pairs=200
    )
    with pytest.raises(ValueError, match="tau2=0.9 is out of reach"):
        generate(params)


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="exceed n_unimodal"):
        SyntheticParams(n_unimodal=2, L=20, n_active_bimodal=10).check()
