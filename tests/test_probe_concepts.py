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
from vlmsae.stores.embedding_store import EmbeddingStore, SparseCodes, TrueStructure, write_store


def _atoms(n_atoms: int, names: list[str] | None = None) -> pd.DataFrame:
    atoms = pd.DataFrame({"atom": np.arange(n_atoms), "atom_kind_sq": "bimodal"})
    if names is not None:
        atoms["name"] = names
    return atoms


def write_labelled(path, image, label, split, class_names) -> EmbeddingStore:
    """A store whose text rows are its image rows, with class labels and the split `split`."""
    write_store(
        path,
        image=image,
        text=image,
        pairs=np.stack([np.arange(len(image))] * 2, axis=1),
        image_split=split,
        text_split=split,
        label=label,
        attrs={"class_names": class_names},
        val=None,
    )
    return EmbeddingStore(path)


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
    return write_labelled(
        tmp_path_factory.mktemp("labelled") / "store.zarr", image, label, split, ["cat", "dog"]
    )


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
    # Balanced accuracy: the mean of the dogs' and the cats' recalls.
    predicted, is_dog = probe.predict(image[held_out]), label[held_out] == 1
    recalls = predicted[is_dog].mean(), 1 - predicted[~is_dog].mean()
    assert table["probe_balanced_accuracy"].iloc[0] == pytest.approx(np.mean(recalls))
    assert (table["probe_status"] == "ok").all()
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
    # A probe regularised into predicting "absent" everywhere matches no concept either.
    degenerate = probe_concepts(tiny_store, model, atoms, ProbeSettings(C=1e-6))
    assert degenerate["probe_status"].tolist() == ["degenerate: predicts only negative"]
    assert degenerate[["matched_concept", "matches_target"]].isna().all().all()
    pd.testing.assert_series_equal(degenerate.dtypes, table.dtypes)


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


def test_a_probe_that_predicts_one_class_only_is_degenerate_and_lists_no_atoms(
    tmp_path, labelled_store
):
    # 150 images in d = 3, the first 100 train: a rare class 1 on 2 of 100 train images and 1 of
    # 50 eval ones. C = 1e-4 all but zeroes θ, and the unpenalised intercept alone, log(2/98),
    # says "not class 1" for every image: accuracy 49/50 is the majority baseline, and balanced
    # accuracy (1 + 0)/2 is chance.
    rng = np.random.default_rng(0)
    image = np.abs(rng.normal(0.5, 0.1, (150, 3)))
    label = np.zeros(150, dtype=int)
    label[[0, 50, 120]] = 1
    split = (np.arange(150) >= 100).astype(np.int8)
    store = write_labelled(tmp_path / "rare.zarr", image, label, split, ["common", "rare"])
    model = oracle_topk(np.eye(3, dtype=np.float32), k=3)
    settings = ProbeSettings(target=1, C=1e-4, top_atoms=3)
    table = probe_concepts(store, model, _atoms(3, ["x", "y", "z"]), settings)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["target"] == "rare"
    assert row["probe_status"] == "degenerate: predicts only negative"
    assert row["probe_accuracy"] == pytest.approx(49 / 50)
    assert row["probe_baseline"] == pytest.approx(49 / 50)
    assert row["probe_balanced_accuracy"] == pytest.approx(0.5)
    # No atom is a "concept" of a probe that reads nothing: every atom column is missing.
    for column in ("rank", "atom", "alpha", "contribution", "name", "atom_kind_sq"):
        assert pd.isna(row[column]), column
    # One schema: the columns and types of a probe that works.
    ok = probe_concepts(labelled_store, model, _atoms(3, ["x", "y", "z"]), ProbeSettings(target=1))
    assert (ok["probe_status"] == "ok").all()
    pd.testing.assert_series_equal(table.dtypes, ok.dtypes)
