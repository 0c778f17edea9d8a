"""Probe decomposition: α and contributions by hand on an identity dictionary, the target
concept found on synthetic data, and the errors on targets that cannot be probed."""

import numpy as np
import pandas as pd
import pytest
from oracles import oracle_topk
from sklearn.linear_model import LogisticRegression

from vlmsae.errors import ConfigError
from vlmsae.interventions import INTERVENTIONS
from vlmsae.interventions.concepts import images_with_concept, most_frequent_bimodal_concept
from vlmsae.interventions.probe import ProbeSettings, probe_concepts
from vlmsae.metrics.evaluate import EvalSettings, evaluate_run
from vlmsae.store import EmbeddingStore, SparseCodes, TrueStructure, write_store


def _atoms(n_atoms: int, names: list[str] | None = None) -> pd.DataFrame:
    atoms = pd.DataFrame({"atom": np.arange(n_atoms), "atom_kind_sq": "bimodal"})
    if names is not None:
        atoms["name"] = names
    return atoms


@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory) -> EmbeddingStore:
    """60 images in d = 3 with non-negative coordinates: class 1 ("dog") leans on axis 0, class 0
    ("cat") on axis 1; a third of each class in eval; CelebA-like attributes beside."""
    rng = np.random.default_rng(0)
    label = np.repeat([0, 1], 30)
    image = np.abs(rng.normal(0.3, 0.1, (60, 3)))
    image[label == 1, 0] += 1.0
    image[label == 0, 1] += 1.0
    split = np.tile([0, 0, 1], 20).astype(np.int8)
    path = tmp_path_factory.mktemp("labelled") / "store.zarr"
    write_store(
        path,
        image=image,
        text=image,
        pairs=np.stack([np.arange(60)] * 2, axis=1),
        image_split=split,
        text_split=split,
        label=label,
        attrs={"class_names": ["cat", "dog"]},
        val=None,
    )
    return EmbeddingStore(path)


def test_true_concepts_of_images_by_hand():
    # Rows: bimodal concepts 0 and 1 (τ1 < 1: image rows 0, 1, text rows 2, 3), image-only 4.
    indices = np.array([[0, 4], [1, 4], [1, 0], [4, 4]], dtype=np.int32)
    codes = SparseCodes(indices, np.ones((4, 2), np.float32))
    truth = TrueStructure(
        np.eye(5, dtype=np.float32),
        np.array(["bimodal"] * 4 + ["image"]),
        np.array([0, 1, 0, 1, 2]),
        {"image": codes, "text": codes},
    )
    assert images_with_concept(truth, 0).tolist() == [True, False, True, False]
    assert images_with_concept(truth, 2).tolist() == [True, True, False, True]
    # Concept 1 is in images 1 and 2, concept 0 in images 0 and 2: a tie goes to 0.
    assert most_frequent_bimodal_concept(truth, np.arange(4)) == 0
    assert most_frequent_bimodal_concept(truth, np.array([1, 2, 3])) == 1


def test_alpha_and_contribution_by_hand(labelled_store):
    model = oracle_topk(np.eye(3, dtype=np.float32), k=3)
    settings = ProbeSettings(target=1, top_atoms=3)
    table = probe_concepts(labelled_store, model, _atoms(3, ["x", "y", "z"]), settings)
    train, held_out = np.flatnonzero(np.tile([1, 1, 0], 20)), np.arange(2, 60, 3)
    image, label = labelled_store.rows("image"), labelled_store.optional("label")
    probe = LogisticRegression(max_iter=1000).fit(image[train], label[train] == 1)
    theta = probe.coef_[0]
    # Identity dictionary: α = θ, and the codes are the eval images' own coordinates.
    order = np.argsort(-np.abs(theta))
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["atom"].tolist() == order.tolist()
    np.testing.assert_allclose(table["alpha"], theta[order], rtol=1e-5)
    expected = theta[order] * image[held_out].mean(axis=0)[order]
    np.testing.assert_allclose(table["contribution"], expected, rtol=1e-5)
    assert table["name"].tolist() == np.array(["x", "y", "z"])[order].tolist()
    assert (table["target"] == "dog").all()
    assert table["probe_accuracy"].iloc[0] == pytest.approx(
        probe.score(image[held_out], label[held_out] == 1)
    )
    assert table["probe_baseline"].iloc[0] == pytest.approx(0.5)
    # The dog axis pushes towards dog, the cat axis away; the shared third axis matters least.
    assert theta[0] > 0 > theta[1] and order[2] == 2
    assert "matched_concept" not in table.columns


def test_attributes_are_probed_by_name(tmp_path, labelled_store):
    path = tmp_path / "celeba.zarr"
    arrays = {name: labelled_store.root[name][...] for name in ("image", "text", "pairs")}
    split = labelled_store.root["image_split"][...]
    attributes = np.stack([labelled_store.optional("label"), np.zeros(60)], axis=1).astype(np.int8)
    write_store(
        path,
        **arrays,
        image_split=split,
        text_split=split,
        extra={"attributes": attributes},
        attrs={"attribute_names": ["Blond_Hair", "Bald"]},
        val=None,
    )
    store = EmbeddingStore(path)
    model = oracle_topk(np.eye(3, dtype=np.float32), k=3)
    table = probe_concepts(store, model, _atoms(3), ProbeSettings(top_atoms=2))
    # Blond_Hair is the dog label here: the probe rests on the two class axes.
    assert (table["target"] == "Blond_Hair").all() and set(table["atom"]) == {0, 1}
    assert "name" not in table.columns
    with pytest.raises(ConfigError, match="interventions.probe.attribute.*Blond_Hair, Bald"):
        probe_concepts(store, model, _atoms(3), ProbeSettings(attribute="Smiling"))
    with pytest.raises(ConfigError, match="interventions.probe.target.*off in every train"):
        probe_concepts(store, model, _atoms(3), ProbeSettings(attribute="Bald"))


def test_the_probe_of_a_true_concept_finds_its_atom(tiny_store):
    truth = tiny_store.truth()
    model = oracle_topk(truth.dictionary, k=6)
    settings = EvalSettings(max_pairs=100, train_pairs=50)
    atoms, _, _ = evaluate_run(model, tiny_store, settings)
    table = probe_concepts(tiny_store, model, atoms, ProbeSettings(top_atoms=5))
    target = int(table["target"].iloc[0].removeprefix("concept-"))
    assert table["matched_concept"].iloc[0] == target and table["matches_target"].iloc[0]
    assert table["probe_accuracy"].iloc[0] > table["probe_baseline"].iloc[0]
    assert set(table["atom_kind_sq"]) <= {"bimodal", "image", "text", "dead"}
    chosen = probe_concepts(tiny_store, model, atoms, ProbeSettings(target=5, top_atoms=1))
    assert chosen["target"].tolist() == ["concept-5"] and chosen["matched_concept"].tolist() == [5]


def test_a_target_that_is_no_bimodal_concept_is_refused(tiny_store):
    model = oracle_topk(tiny_store.truth().dictionary, k=6)
    atoms = _atoms(len(tiny_store.truth().dictionary))
    with pytest.raises(ConfigError, match="interventions.probe.target': 30 is no bimodal"):
        probe_concepts(tiny_store, model, atoms, ProbeSettings(target=30))


def test_probe_applies_to_labelled_sources():
    applies = INTERVENTIONS.get("probe").obj
    settings = ProbeSettings()
    assert applies({"source": "synthetic"}, settings)
    assert applies({"source": "celeba"}, settings)
    assert not applies({"source": "coco"}, settings)
    assert not applies({"source": "precomputed", "precomputed": {"path": "f.npy"}}, settings)
    labelled = {"source": "precomputed", "precomputed": {"path": "f.npy", "labels_path": "l.npy"}}
    assert applies(labelled, settings)


def test_the_default_class_is_the_most_frequent_one_both_splits_can_probe():
    from vlmsae.interventions.probe import default_class

    # Class 0 is the most frequent in train but on no eval row; classes 1 and 2 are on some eval
    # rows and not all: the more frequent in train, 1, is chosen.
    label = np.array([0, 0, 0, 1, 1, 2, 1, 2, 1])
    train, held_out = np.arange(6), np.arange(6, 9)
    assert default_class(label, train, held_out) == 1
    # Every eval row carries class 1 and no other class is on any: nothing qualifies.
    assert default_class(np.array([0, 0, 1, 1, 1]), np.arange(3), np.arange(3, 5)) is None
