"""Steering retrieval: the steered atom and its unit, the concept judge on labels and captions,
and the effect on synthetic data where the concept of every image is known."""

import numpy as np
import pandas as pd
import pytest
from oracles import oracle_topk

from vlmsae.errors import ConfigError, InputFileError
from vlmsae.interventions import INTERVENTIONS
from vlmsae.interventions.concepts import captions_with_word
from vlmsae.interventions.steering import (
    SteeringSettings,
    concept_judge,
    mean_active_code,
    steer_retrieval,
    steering_atom,
)
from vlmsae.interventions.vocabulary import make_vocabulary, synthetic_vocabulary
from vlmsae.metrics.evaluate import EvalSettings, encode, evaluate_run
from vlmsae.metrics.naming import name_atoms
from vlmsae.metrics.rows import unit_rows
from vlmsae.stores.embedding_store import EmbeddingStore, write_store


def _atoms_by_hand() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "atom": [0, 1, 2, 3],
            "name": ["violin", "violin", "drums", "violin"],
            "name_score": [0.5, 0.7, 0.9, 0.95],
            "energy_image": [0.2, 0.1, 0.3, 0.0],
            "energy_text": [0.4, 0.1, 0.0, 0.0],
            "frequency_image": [0.1, 0.05, 0.1, 0.0],
            "frequency_text": [0.2, 0.05, 0.0, 0.0],
        }
    )


def test_the_steered_atom_is_the_best_named_live_one():
    atoms = _atoms_by_hand()
    # Atom 3 scores highest but never fires.
    assert steering_atom(atoms, "violin") == 1
    assert steering_atom(atoms, "drums") == 2
    with pytest.raises(ConfigError, match="interventions.steering.atom.*drums, violin"):
        steering_atom(atoms, "piano")


def test_strength_unit_is_the_mean_nonzero_activation():
    # (0.2 + 0.4) / (0.1 + 0.2): mean |z| over the 2N rows over the share of rows it fires on.
    assert mean_active_code(_atoms_by_hand(), 0) == pytest.approx(2.0)
    assert mean_active_code(_atoms_by_hand(), 2) == pytest.approx(3.0)


def test_captions_match_whole_words_only():
    captions = np.array(["A Violin solo", "violins", "the violin.", "cello", "electric guitar"])
    assert captions_with_word(captions, "violin").tolist() == [True, False, True, False, False]
    assert captions_with_word(captions, "electric guitar").tolist() == [0, 0, 0, 0, 1]


def _real_store(path, label: bool) -> EmbeddingStore:
    """4 images with 2 captions each (pairs (i, 2i), (i, 2i + 1)); classes cat, dog, cat, dog."""
    captions = np.array(["a cat", "cat", "a dog", "hound", "kitten", "x", "dog", "a dogma"])
    write_store(
        path,
        image=np.eye(4, 3),
        text=np.eye(8, 3),
        pairs=np.stack([np.repeat(np.arange(4), 2), np.arange(8)], axis=1),
        image_split=np.ones(4, np.int8),
        text_split=np.ones(8, np.int8),
        label=np.array([0, 1, 0, 1]) if label else None,
        attrs={"class_names": ["Cat", "dog"]},
        extra={"text_caption": captions},
        val=None,
    )
    return EmbeddingStore(path)


def test_concepts_of_real_images_by_label_then_caption(tmp_path):
    vocabulary = make_vocabulary(["cat", "dog"], np.eye(2, 3), "file")
    labelled = _real_store(tmp_path / "labelled.zarr", label=True)
    pairs = labelled.split_pairs("eval")
    assert concept_judge(labelled, vocabulary, "cat", pairs).tolist() == [1, 0, 1, 0]
    captioned = _real_store(tmp_path / "captioned.zarr", label=False)
    # Image 1's caption "a dog" and image 3's "dog" name it; "a dogma" does not.
    assert concept_judge(captioned, vocabulary, "dog", pairs).tolist() == [0, 1, 0, 1]
    assert concept_judge(captioned, vocabulary, "cat", pairs).tolist() == [1, 0, 0, 0]
    # Judged by the given pairs' captions only.
    assert concept_judge(captioned, vocabulary, "dog", pairs[:4]).tolist() == [0, 1, 0, 0]


@pytest.fixture(scope="module")
def named_run(tiny_store):
    """An SAE equal to the truth (the oracle) with its atoms named by the synthetic vocabulary."""
    truth = tiny_store.truth()
    model = oracle_topk(truth.dictionary, k=6)
    vocabulary = synthetic_vocabulary(truth, n_distractors=20, seed=0)
    atoms, _, _ = evaluate_run(model, tiny_store, EvalSettings(max_pairs=400, train_pairs=50))
    names = name_atoms(truth.dictionary, vocabulary)
    return model, atoms.merge(names, on="atom"), vocabulary


def test_steering_along_the_true_concept_raises_its_share(tiny_store, named_run):
    model, atoms, vocabulary = named_run
    settings = SteeringSettings(n_queries=60, top_k=10)
    summary, items = steer_retrieval(tiny_store, model, atoms, vocabulary, settings)
    assert summary["strength"].tolist() == [0.0, 0.5, 1.5]
    word = summary["word"].iloc[0]
    assert word.startswith("concept-") and (summary["n_queries"] == 60).all()
    share = summary["share_with_concept"].to_numpy()
    base_rate = summary["concept_base_rate"].iloc[0]
    # Steering makes the concept more common among the retrieved images than among all images.
    assert share[0] < share[1] < share[2] and share[2] > base_rate
    np.testing.assert_allclose(
        summary["added_code"], summary["strength"] * mean_active_code(atoms, summary["atom"][0])
    )
    # Queries are drawn among images without the concept, so their own image never carries it.
    assert len(items) == 3 * 60 * 10
    assert (
        items.groupby(["strength", "query"])["rank"]
        .apply(list)
        .map(lambda ranks: ranks == list(range(1, 11)))
        .all()
    )
    first = items[items["strength"] == 0.0]
    assert (first.groupby("query")["cosine"].diff().dropna() <= 1e-7).all()
    share_from_items = items.groupby("strength")["has_concept"].mean().to_numpy()
    np.testing.assert_allclose(share_from_items, share)


def test_steering_is_seeded_and_strength_zero_is_plain_retrieval(tiny_store, named_run):
    model, atoms, vocabulary = named_run
    settings = SteeringSettings(strengths=[0.0], n_queries=20, top_k=5, seed=3)
    items = steer_retrieval(tiny_store, model, atoms, vocabulary, settings)[1]
    pd.testing.assert_frame_equal(
        items, steer_retrieval(tiny_store, model, atoms, vocabulary, settings)[1]
    )
    # Strength 0: the eval images nearest to each query's reconstruction x̂.
    queries = items["query"].to_numpy()[::5]
    images = np.unique(tiny_store.split_pairs("eval")[:, 0])
    _, reconstruction = encode(model, tiny_store.rows("text", queries), 64, 1)
    cosine = unit_rows(reconstruction) @ tiny_store.rows("image", images).T
    nearest = images[np.argsort(-cosine, axis=1, kind="stable")[:, :5]]
    np.testing.assert_array_equal(items["image"].to_numpy().reshape(-1, 5), nearest)


def test_unknown_or_unnamed_words_are_refused(tiny_store, named_run):
    model, atoms, vocabulary = named_run
    with pytest.raises(ConfigError, match="interventions.steering.atom.*not in the vocabulary"):
        steer_retrieval(tiny_store, model, atoms, vocabulary, SteeringSettings(atom="violin"))
    # A vocabulary word that names no atom of the oracle (a distractor).
    unused = sorted(set(vocabulary.words) - set(atoms["name"]))[0]
    with pytest.raises(ConfigError, match=f"'{unused}' names no live atom; fix: use a name"):
        steer_retrieval(tiny_store, model, atoms, vocabulary, SteeringSettings(atom=unused))
    with pytest.raises(InputFileError, match="enable interventions.naming"):
        steer_retrieval(
            tiny_store, model, atoms.drop(columns="name"), vocabulary, SteeringSettings()
        )


def test_steering_applies_to_synthetic_stores_and_to_named_words():
    applies = INTERVENTIONS.get("steering").obj
    assert applies({"source": "synthetic"}, SteeringSettings())
    assert not applies({"source": "musicbench"}, SteeringSettings())
    assert applies({"source": "musicbench"}, SteeringSettings(atom="violin"))
