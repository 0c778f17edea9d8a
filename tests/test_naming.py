"""Concept naming: names by hand, the blocked search against a brute-force one, naming accuracy
against a known truth, and the metric group that writes names into atoms.parquet."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from oracles import oracle_topk
from scipy import sparse

from vlmsae.config import check_config
from vlmsae.interventions.vocabulary import make_vocabulary, synthetic_vocabulary
from vlmsae.metrics import naming
from vlmsae.metrics.evaluate import EvalSettings, evaluate_run
from vlmsae.metrics.naming import (
    name_atoms,
    naming_accuracy,
    naming_accuracy_by_usage,
    naming_accuracy_random_dictionary,
    random_dictionary,
    true_row_words,
)
from vlmsae.metrics.rows import unit_rows
from vlmsae.stores.build import build_store
from vlmsae.stores.embedding_store import EmbeddingStore, SparseCodes, TrueStructure
from vlmsae.training.trainer import TrainSettings, train
from vlmsae.training.variants import Variant

SQRT_HALF = np.sqrt(0.5)
PRESET = Path(__file__).resolve().parent.parent / "presets" / "iso-energy-synthetic.yaml"


def _truth(merged: bool) -> TrueStructure:
    """Rows: 2 bimodal concepts (one row each when merged, else image rows then text rows),
    1 image-only atom, 2 text-only atoms; the unit vectors of d = 8."""
    kind = ["bimodal"] * (2 if merged else 4) + ["image", "text", "text"]
    concept = [0, 1] + ([] if merged else [0, 1]) + [2, 3, 4]
    codes = SparseCodes(np.zeros((1, 1), np.int32), np.ones((1, 1), np.float32))
    return TrueStructure(
        np.eye(len(kind), 8, dtype=np.float32),
        np.array(kind),
        np.array(concept),
        {"image": codes, "text": codes},
    )


def test_names_by_hand():
    # Words e0, e1, (e0 + e1)/√2, e2; atoms e0, 2·e1 (not unit), (e0 + e2)/√2.
    words = np.array([[1, 0, 0], [0, 1, 0], [SQRT_HALF, SQRT_HALF, 0], [0, 0, 1]])
    vocabulary = make_vocabulary(["red", "blue", "purple", "loud"], words, "file")
    atoms = np.array([[1.0, 0, 0], [0, 2.0, 0], [1.0, 0, 1.0]])
    named = name_atoms(atoms, vocabulary)
    assert named.columns.tolist() == ["atom", "name", "name_score", "runner_up", "runner_up_score"]
    assert named["name"].tolist() == ["red", "blue", "red"]
    # Atom 2 has cosine 1/√2 with both red and loud: the tie goes to the earlier word.
    assert named["runner_up"].tolist() == ["purple", "purple", "loud"]
    np.testing.assert_allclose(named["name_score"], [1.0, 1.0, SQRT_HALF], rtol=1e-6)
    np.testing.assert_allclose(
        named["runner_up_score"], [SQRT_HALF, SQRT_HALF, SQRT_HALF], rtol=1e-6
    )


def test_blocked_search_equals_brute_force(monkeypatch):
    rng = np.random.default_rng(0)
    words = rng.standard_normal((50, 6))
    vocabulary = make_vocabulary([f"w{i}" for i in range(50)], words, "file")
    atoms = rng.standard_normal((37, 6))
    cosine = (atoms / np.linalg.norm(atoms, axis=1, keepdims=True)) @ vocabulary.vectors.T
    order = np.argsort(-cosine, axis=1)
    monkeypatch.setattr(naming, "NAMING_BLOCK_ELEMENTS", 50 * 4)  # blocks of 4 atoms
    named = name_atoms(atoms, vocabulary)
    assert named["name"].tolist() == vocabulary.words[order[:, 0]].tolist()
    assert named["runner_up"].tolist() == vocabulary.words[order[:, 1]].tolist()
    np.testing.assert_allclose(named["name_score"], cosine.max(axis=1), rtol=1e-5)


def test_names_of_a_large_dictionary_match_a_brute_force_sample():
    # A speed sanity, not timed: 4096 atoms × 5000 words go through several blocks.
    rng = np.random.default_rng(1)
    vocabulary = make_vocabulary(
        [f"w{i}" for i in range(5000)], rng.standard_normal((5000, 64)), "file"
    )
    atoms = rng.standard_normal((4096, 64)).astype(np.float32)
    named = name_atoms(atoms, vocabulary)
    sample = rng.choice(4096, 20, replace=False)
    cosine = (atoms[sample] / np.linalg.norm(atoms[sample], axis=1, keepdims=True)) @ (
        vocabulary.vectors.T
    )
    assert named["name"].to_numpy()[sample].tolist() == vocabulary.words[cosine.argmax(1)].tolist()


def test_naming_rotation_invariance():
    # Rotating atoms and words together changes no cosine, so no name.
    rng = np.random.default_rng(2)
    words, atoms = rng.standard_normal((30, 5)), rng.standard_normal((12, 5))
    rotation, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    names = [f"w{i}" for i in range(30)]
    plain = name_atoms(atoms, make_vocabulary(names, words, "file"))
    turned = name_atoms(atoms @ rotation, make_vocabulary(names, words @ rotation, "file"))
    assert plain["name"].tolist() == turned["name"].tolist()


def test_dimension_mismatch_is_refused():
    vocabulary = make_vocabulary(["a", "b"], np.eye(2, 3), "file")
    with pytest.raises(ValueError, match="another store"):
        name_atoms(np.eye(2), vocabulary)


def test_words_of_true_rows():
    vocabulary = synthetic_vocabulary(_truth(merged=False), n_distractors=2, seed=0)
    expected = ["concept-0", "concept-1", "concept-0", "concept-1", "", "text-0", "text-1"]
    assert true_row_words(_truth(merged=False), vocabulary).tolist() == expected


def test_naming_accuracy_by_hand():
    truth = _truth(merged=True)  # rows: concept-0, concept-1, image-only, text-0, text-1
    vocabulary = synthetic_vocabulary(truth, n_distractors=0, seed=0)
    learned = truth.dictionary[[4, 2, 0, 1, 3]]
    # Right: text-1, concept-0, text-0; wrong: concept-1 named text-0; atom 1 is image-only.
    names = np.array(["text-1", "concept-0", "concept-0", "text-0", "text-0"])
    accuracy = naming_accuracy(names, learned, truth, vocabulary)
    assert accuracy == {
        "naming_accuracy": 0.75,
        "naming_accuracy_bimodal": 0.5,
        "naming_scored_atoms": 4,
        "naming_unnamable_atoms": 1,
    }


def test_naming_accuracy_by_usage_by_hand():
    truth = _truth(merged=True)  # rows: concept-0, concept-1, image-only, text-0, text-1
    vocabulary = synthetic_vocabulary(truth, n_distractors=0, seed=0)
    # 5 rows, true row r fires on row r. Learned atom 0 fires with concept-1, atom 1 with text-0,
    # atom 2 with text-1, whatever their decoder directions.
    true_codes = sparse.identity(5, format="csr")
    codes = sparse.csr_matrix(np.array([[0, 0, 0], [2, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 3]]))
    # Atoms 0 and 2 are named right, atom 1 (text-0) wrong.
    names = np.array(["concept-1", "concept-0", "text-1"])
    assert naming_accuracy_by_usage(names, codes, true_codes, truth, vocabulary) == {
        "naming_accuracy_usage": pytest.approx(2 / 3),
        "naming_accuracy_bimodal_usage": 1.0,
        "naming_scored_atoms_usage": 3,
        "naming_unnamable_atoms_usage": 0,
    }


def test_both_instantiations_of_a_bimodal_concept_take_its_word():
    truth = _truth(merged=False)
    vocabulary = synthetic_vocabulary(truth, n_distractors=0, seed=0)
    names = np.array(["concept-0", "concept-1", "concept-0", "concept-1", "x", "text-0", "text-1"])
    accuracy = naming_accuracy(names, truth.dictionary, truth, vocabulary)
    assert accuracy["naming_accuracy"] == 1.0 and accuracy["naming_scored_atoms"] == 6


def test_undefined_shares_are_left_out():
    truth = _truth(merged=True)
    vocabulary = synthetic_vocabulary(truth, n_distractors=0, seed=0)
    # One learned atom, matched to the image-only row: nothing to score.
    accuracy = naming_accuracy(np.array(["x"]), truth.dictionary[[2]], truth, vocabulary)
    assert accuracy == {"naming_scored_atoms": 0, "naming_unnamable_atoms": 1}


def test_the_true_dictionary_is_named_perfectly(tiny_store):
    truth = tiny_store.truth()
    vocabulary = synthetic_vocabulary(truth, n_distractors=200, seed=0)
    rng = np.random.default_rng(0)
    # The true rows in another order, plus 5 spare atoms the matching leaves out.
    learned = np.concatenate(
        [truth.dictionary[rng.permutation(len(truth.dictionary))], rng.standard_normal((5, 32))]
    )
    names = name_atoms(learned, vocabulary)["name"].to_numpy()
    accuracy = naming_accuracy(names, learned, truth, vocabulary)
    n_image_only = int(np.sum(truth.atom_kind == "image"))
    assert accuracy["naming_accuracy"] == 1.0 and accuracy["naming_accuracy_bimodal"] == 1.0
    assert accuracy["naming_scored_atoms"] == len(truth.dictionary) - n_image_only
    assert accuracy["naming_unnamable_atoms"] == n_image_only


def test_the_random_dictionary_level_is_naming_accuracy_of_seeded_gaussian_rows(tiny_store):
    truth = tiny_store.truth()
    vocabulary = synthetic_vocabulary(truth, n_distractors=50, seed=0)
    level = naming_accuracy_random_dictionary((40, tiny_store.dim), truth, vocabulary, seed=0)
    dictionary = random_dictionary((40, tiny_store.dim), seed=0)
    # Not the generator's own draw: with the store's seed that would be the true dictionary.
    assert np.abs(unit_rows(dictionary[:3]) @ truth.dictionary[:3].T).max() < 0.9
    names = name_atoms(dictionary, vocabulary)["name"].to_numpy()
    expected = naming_accuracy(names, dictionary, truth, vocabulary)
    assert level == {f"{key}_random_dictionary": value for key, value in expected.items()}


def test_evaluate_run_writes_names_and_accuracy(tiny_store):
    truth = tiny_store.truth()
    model = oracle_topk(truth.dictionary, k=6)
    settings = EvalSettings(max_pairs=100, train_pairs=50)
    vocabulary = synthetic_vocabulary(truth, n_distractors=20, seed=0)
    atoms, summary, _ = evaluate_run(model, tiny_store, settings, vocabulary=vocabulary)
    columns = ["name", "name_score", "runner_up", "runner_up_score"]
    assert set(columns) <= set(atoms.columns)
    assert summary["naming_accuracy"] == 1.0 and summary["naming_accuracy_usage"] == 1.0
    # The chance level: a Gaussian dictionary of the run's shape, seeded by the run's seed.
    random_level = naming_accuracy_random_dictionary(
        (len(truth.dictionary), tiny_store.dim), truth, vocabulary, settings.seed
    )
    assert (
        summary["naming_accuracy_random_dictionary"]
        == random_level["naming_accuracy_random_dictionary"]
        < 1.0
    )
    plain_atoms, plain_summary, _ = evaluate_run(model, tiny_store, settings)
    assert not set(columns) & set(plain_atoms.columns)
    assert not any(key.startswith("naming") for key in plain_summary)


@pytest.mark.slow
def test_sae_a_names_at_least_as_well_as_sae_where_iso_energy_holds(tmp_path):
    """The issue's expected effect on trained SAEs, at the iso-energy-synthetic preset's scale
    (clip-like data with τ1 = 1, p 128, k 10, 1000 steps of 512 pairs), averaged over 3 seeds; β
    is 0.1, the value the preset's β rule chooses on these data.

    Per seed it is not a law: measured over seeds 0–4, SAE-A named 1.00 / 1.00 / 1.00 / 0.94 /
    1.00 and the plain SAE 0.96 / 0.98 / 0.98 / 0.96 / 0.96 (seed 3 reverses); at 400 steps SAE-A
    names worse in 4 of 5 (README). So the mean over seeds is what is checked.
    """
    preset = check_config(yaml.safe_load(PRESET.read_text()))  # variants as the DAG trains them
    spec = preset["datasets"]["clip-like-tau1-1.00"]
    store = EmbeddingStore(build_store("naming", "generator", spec, tmp_path / "store.zarr"))
    truth = store.truth()
    vocabulary = synthetic_vocabulary(truth, n_distractors=200, seed=0)
    settings = TrainSettings(**preset["train"])
    variants = {
        "sae": preset["variants"]["sae"],
        "sae-a": {**preset["variants"]["sae-a"], "alignment": 0.1},
    }
    accuracy = {name: [] for name in variants}
    for seed in range(3):
        for name, variant in variants.items():
            model = train(
                store,
                Variant.from_config("v", variant),
                settings,
                "1-1",
                seed,
                tmp_path / f"{name}-{seed}",
                progress=False,
            )
            dictionary = model.W_dec.detach().numpy()
            names = name_atoms(dictionary, vocabulary)["name"].to_numpy()
            accuracy[name].append(
                naming_accuracy(names, dictionary, truth, vocabulary)["naming_accuracy"]
            )
    chance = naming_accuracy_random_dictionary(dictionary.shape, truth, vocabulary, seed=0)
    assert (
        np.mean(accuracy["sae-a"])
        >= np.mean(accuracy["sae"])
        > chance["naming_accuracy_random_dictionary"]
    )
