import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from vlmsae.metrics.context import EvalContext
from vlmsae.metrics.mms import PAIRS, baseline, concept_reference, mms, summarise
from vlmsae.registry_base import Settings
from vlmsae.stores.embedding_store import TrueStructure


def context(
    image: np.ndarray, text: np.ndarray, reference: dict | None = None, **truth
) -> EvalContext:
    """An EvalContext around codes [N, p] of each modality; MMS reads only codes and reference
    (and, for synthetic data, `truth` and the true codes)."""
    n, p = image.shape
    reference = reference or {}
    return EvalContext(
        image=np.zeros((n, 2)),
        text=np.zeros((n, 2)),
        codes_image=sparse.csr_matrix(image),
        codes_text=sparse.csr_matrix(text),
        recon_image=np.zeros((n, 2)),
        recon_text=np.zeros((n, 2)),
        dictionary=np.eye(p, 2),
        energy=np.ones(p),
        energy_sq=np.ones(p),
        atom_kind=np.full(p, "bimodal"),
        atom_kind_sq=np.full(p, "bimodal"),
        atoms=pd.DataFrame({"atom": np.arange(p)}),
        seed=0,
        reference_image=reference.get("image"),
        reference_text=reference.get("text"),
        **truth,
    )


def brute_force(codes: dict, reference: dict, m: str, n: str) -> np.ndarray:
    """[p] MMS from the N×N similarity matrix, as group-sparse §3.2 writes it."""
    unit = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in reference.items()}
    similarity = unit[m] @ unit[n].T
    scores = []
    for k in range(codes[m].shape[1]):
        weights = np.abs(np.outer(codes[m][:, k], codes[n][:, k]))
        if m == n:
            np.fill_diagonal(weights, 0.0)
        total = weights.sum()
        scores.append((weights * similarity).sum() / total if total > 0 else np.nan)
    return np.array(scores)


@pytest.fixture
def small() -> tuple[dict, dict]:
    """9 pairs, 5 atoms: signed codes (matching pursuit), one atom on a single image row only."""
    rng = np.random.default_rng(0)
    codes = {m: rng.standard_normal((9, 5)) * (rng.random((9, 5)) < 0.5) for m in ("image", "text")}
    codes["image"][:, 4] = 0.0
    codes["image"][2, 4] = 1.5
    codes["text"][:, 4] = 0.0
    reference = {m: rng.standard_normal((9, 4)) * 3 for m in ("image", "text")}
    return codes, reference


def test_matches_brute_force(small):
    codes, reference = small
    scores = mms({m: sparse.csr_matrix(c) for m, c in codes.items()}, reference)
    for m, n in PAIRS:
        np.testing.assert_allclose(scores[f"mms_{m}_{n}"], brute_force(codes, reference, m, n))
        defined = scores[f"mms_{m}_{n}"][~np.isnan(scores[f"mms_{m}_{n}"])]
        assert np.all((defined >= -1) & (defined <= 1))
    # Atom 4 fires on one image row only: no pair for any modality pair.
    assert all(np.isnan(scores[f"mms_{m}_{n}"][4]) for m, n in PAIRS)


def test_by_hand():
    # Two image rows at 60° under the reference (cos 1/2), one text row equal to the first image.
    reference = {
        "image": np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]]),
        "text": np.array([[2.0, 0.0], [0.0, 1.0]]),
    }
    codes = {
        "image": sparse.csr_matrix([[2.0], [1.0]]),
        "text": sparse.csr_matrix([[3.0], [0.0]]),
    }
    scores = mms(codes, reference)
    assert scores["mms_image_image"][0] == pytest.approx(0.5)  # the one pair (0, 1), either way
    assert np.isnan(scores["mms_text_text"][0])  # active on one text row
    # Weights 2·3 on cos 1 and 1·3 on cos 1/2: (6 + 1.5) / 9.
    assert scores["mms_image_text"][0] == pytest.approx(7.5 / 9)


def test_modality_split_dictionary_has_no_image_text_score():
    rng = np.random.default_rng(1)
    image = rng.random((20, 6)) * (np.arange(6) < 3)  # atoms 0-2 fire on images only
    text = rng.random((20, 6)) * (np.arange(6) >= 3)  # atoms 3-5 on texts only
    reference = {m: rng.standard_normal((20, 8)) for m in ("image", "text")}
    result = summarise(context(image, text, reference), Settings())
    assert np.all(np.isnan(result.atom_columns["mms_image_text"]))
    assert result.summary["mms_image_text_atoms"] == 0
    assert result.summary["mms_image_text"] == 0.0  # group-sparse §3.2: trivially 0, never NaN
    assert result.summary["mms_image_image_atoms"] == 3
    assert result.summary["mms_text_text_atoms"] == 3
    image_image = result.atom_columns["mms_image_image"]
    assert np.isnan(image_image[3:]).all() and not np.isnan(image_image[:3]).any()
    # Atoms 3-5 never co-activate on images: they count 0 in the mean over all six atoms.
    assert result.summary["mms_image_image"] == pytest.approx(np.sum(image_image[:3]) / 6)
    assert result.summary["mms_image_image_defined"] == pytest.approx(np.mean(image_image[:3]))
    assert result.summary["mms_image_text_defined"] == 0.0
    assert not any(np.isnan(v) for v in result.summary.values())


def test_concept_reference_merges_the_instantiations_of_a_concept():
    # Atoms 0 and 2 are the image and text instantiation of concept 7; atom 1 is concept 3.
    codes = sparse.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 4.0]]))
    merged = concept_reference(codes, np.array([7, 3, 7]))
    np.testing.assert_array_equal(merged.toarray(), [[2.0, 1.0], [0.0, 4.0]])


def test_synthetic_reference_columns_are_true_concepts():
    # True atoms: 0 and 1 the image and text instantiation of bimodal concept 0 (τ1 < 1), 2 an
    # image atom. Pair 0 shows concept 0 in both modalities, pair 1 the image atom and concept 0.
    true_image = sparse.csr_matrix(np.array([[1.0, 0, 0], [0, 0, 1.0]], dtype=np.float32))
    true_text = sparse.csr_matrix(np.array([[0, 1.0, 0], [0, 1.0, 0]], dtype=np.float32))
    truth = TrueStructure(
        np.eye(3, 4), np.array(["bimodal", "bimodal", "image"]), np.array([0, 0, 1]), {}
    )
    # SAE atom 0 fires on image 0 and text 0 (concept 0 both times); atom 1 on image 1 only.
    image = np.array([[1.0, 0.0], [0.0, 1.0]])
    text = np.array([[1.0, 0.0], [0.0, 0.0]])
    reference = {"image": true_image, "text": true_text}
    run = context(
        image, text, reference, truth=truth, true_codes_image=true_image, true_codes_text=true_text
    )
    result = summarise(run, Settings())
    # Concept columns: image 0 and text 0 both read (1, 0): cosine 1.
    assert result.atom_columns["mms_image_text"][0] == pytest.approx(1.0)
    assert np.isnan(result.atom_columns["mms_image_text"][1])
    assert result.summary["mms_image_text"] == pytest.approx(0.5)  # (1 + 0) / 2 atoms
    assert result.summary["mms_image_text_defined"] == pytest.approx(1.0)
    assert result.summary["mms_image_text_atoms"] == 1
    # Against the true atoms as columns the two instantiations are orthogonal: MMS 0.
    other_encoder = summarise(context(image, text, reference), Settings())
    assert other_encoder.atom_columns["mms_image_text"][0] == 0.0


def test_baseline_is_the_mms_of_an_atom_firing_everywhere(small):
    _, reference = small
    everywhere = {m: np.ones((9, 1)) for m in reference}
    expected = {
        f"mms_baseline_{m}_{n}": brute_force(everywhere, reference, m, n)[0] for m, n in PAIRS
    }
    assert baseline(reference) == pytest.approx(expected)


def test_scale_of_codes_and_reference_rows_does_not_matter(small):
    codes, reference = small
    scores = mms({m: sparse.csr_matrix(c) for m, c in codes.items()}, reference)
    scaled = mms(
        {m: sparse.csr_matrix(-4.0 * c) for m, c in codes.items()},
        {m: r * np.arange(1, 10)[:, None] for m, r in reference.items()},
    )
    for name in scores:
        np.testing.assert_allclose(scores[name], scaled[name])


def test_summarise_without_reference_is_empty():
    result = summarise(context(np.ones((2, 3)), np.ones((2, 3))), Settings())
    assert result.atom_columns == {} and result.summary == {}


def test_rejects_codes_and_reference_of_different_lengths():
    with pytest.raises(ValueError, match="rows"):
        mms(
            {"image": sparse.csr_matrix((3, 2)), "text": sparse.csr_matrix((3, 2))},
            {"image": np.ones((4, 2)), "text": np.ones((3, 2))},
        )


def test_sparse_reference_gives_the_dense_result():
    from scipy import sparse as sp

    from vlmsae.metrics.mms import mms

    rng = np.random.default_rng(3)
    codes = {
        m: sp.csr_matrix(rng.random((30, 5)) * (rng.random((30, 5)) < 0.4))
        for m in ("image", "text")
    }
    reference = {m: rng.random((30, 7)) * (rng.random((30, 7)) < 0.5) for m in ("image", "text")}
    dense = mms(codes, reference)
    sparse_result = mms(codes, {m: sp.csr_matrix(r) for m, r in reference.items()})
    for name in dense:
        np.testing.assert_allclose(sparse_result[name], dense[name], equal_nan=True)


@pytest.mark.parametrize("dense_reference", [False, True])
def test_blocks_of_atoms_give_the_whole_product(monkeypatch, dense_reference):
    rng = np.random.default_rng(3)
    codes = {m: rng.standard_normal((30, 7)) * (rng.random((30, 7)) < 0.3) for m in PAIRS[2]}
    codes["image"][:, 2] = 0.0  # a dead atom
    reference = {m: rng.random((30, 5)) * (rng.random((30, 5)) < 0.6) + 0.01 for m in codes}
    as_given = {m: r if dense_reference else sparse.csr_array(r) for m, r in reference.items()}
    sparse_codes = {m: sparse.csr_array(c) for m, c in codes.items()}
    whole = mms(sparse_codes, as_given)
    monkeypatch.setattr("vlmsae.metrics.mms.BLOCK_ATOMS", 3)
    for name, scores in mms(sparse_codes, as_given).items():
        np.testing.assert_array_equal(scores, whole[name])
        m, n = name.split("_")[1:]
        np.testing.assert_allclose(scores, brute_force(codes, reference, m, n), rtol=1e-9)
