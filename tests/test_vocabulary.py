"""The naming vocabulary: its four sources, the zarr round trip and the errors on bad input."""

import numpy as np
import pytest

from vlmsae.errors import ConfigError, InputFileError
from vlmsae.fixtures.models import write_open_clip
from vlmsae.interventions import INTERVENTIONS, settings_of
from vlmsae.interventions import vocabulary as vocabulary_module
from vlmsae.interventions.vocabulary import (
    NamingSettings,
    build_vocabulary,
    caption_bigrams,
    embed_words,
    make_vocabulary,
    read_word_list,
    synthetic_vocabulary,
    vocabulary_kind,
    wordfreq_words,
)
from vlmsae.models.common import seeded
from vlmsae.registry_base import parse_settings
from vlmsae.stores.embedding_store import EmbeddingStore, SparseCodes, TrueStructure, write_store
from vlmsae.stores.vocabulary import read_vocabulary, write_vocabulary


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> dict:
    """The config entry of a tiny random open_clip model (32-dimensional)."""
    folder = tmp_path_factory.mktemp("models") / "tiny-openclip"
    folder.mkdir()
    with seeded(1):
        return write_open_clip(folder)


def _raw_store(path, dim: int = 32) -> EmbeddingStore:
    """A store as `embed` writes one for COCO with the tiny model: captions included."""
    rng = np.random.default_rng(0)
    n = 6
    captions = np.array(
        [
            "a red dress on a chair",
            "the red dress again",
            "an electric guitar",
            "red dress",
            "electric guitar solo",
            "a cat",
        ]
    )
    write_store(
        path,
        image=rng.standard_normal((n, dim)),
        text=rng.standard_normal((n, dim)),
        pairs=np.stack([np.arange(n)] * 2, axis=1),
        image_split=np.array([0, 0, 0, 0, 1, 1]),
        text_split=np.array([0, 0, 0, 0, 1, 1]),
        attrs={"dataset": "coco", "model": "tiny-openclip", "source": "coco"},
        extra={"text_caption": captions},
        val=None,
    )
    return EmbeddingStore(path)


def _truth(merged: bool) -> TrueStructure:
    """2 bimodal concepts (one row each when merged, else image rows then text rows), 1 image-only
    and 2 text-only atoms, in d = 8."""
    n_rows = (2 if merged else 4) + 3
    kind = ["bimodal"] * (2 if merged else 4) + ["image", "text", "text"]
    concept = [0, 1] + ([] if merged else [0, 1]) + [2, 3, 4]
    codes = SparseCodes(np.zeros((1, 1), np.int32), np.ones((1, 1), np.float32))
    return TrueStructure(
        np.eye(n_rows, 8, dtype=np.float32),
        np.array(kind),
        np.array(concept),
        {"image": codes, "text": codes},
    )


@pytest.mark.parametrize("merged", [True, False])
def test_synthetic_vocabulary_holds_the_text_side_rows(merged):
    truth = _truth(merged)
    vocabulary = synthetic_vocabulary(truth, n_distractors=4, seed=0)
    text_rows = [0, 1, 3, 4] if merged else [2, 3, 5, 6]
    words = ["concept-0", "concept-1", "text-0", "text-1"]
    assert vocabulary.words[:4].tolist() == words
    assert vocabulary.true_row[:4].tolist() == text_rows
    np.testing.assert_allclose(vocabulary.vectors[:4], truth.dictionary[text_rows])
    assert vocabulary.words[4:].tolist() == [f"distractor-{i}" for i in range(4)]
    assert (vocabulary.true_row[4:] == -1).all()
    np.testing.assert_allclose(np.linalg.norm(vocabulary.vectors, axis=1), 1.0, rtol=1e-6)
    # Distractors mix text-side rows only: nothing of the image-side rows.
    image_side = [2] if merged else [0, 1, 4]
    assert np.allclose(vocabulary.vectors[4:][:, image_side], 0.0)
    assert not np.allclose(vocabulary.vectors[4:][:, text_rows], 0.0)


def test_distractors_are_seeded():
    first = synthetic_vocabulary(_truth(False), 5, seed=3)
    np.testing.assert_array_equal(first.vectors, synthetic_vocabulary(_truth(False), 5, 3).vectors)
    assert not np.allclose(first.vectors, synthetic_vocabulary(_truth(False), 5, 4).vectors)


def test_round_trip_and_incomplete_vocabulary(tmp_path):
    vocabulary = make_vocabulary(["a", "b"], np.array([[3.0, 4.0], [0.0, 2.0]]), "file")
    np.testing.assert_allclose(vocabulary.vectors, [[0.6, 0.8], [0.0, 1.0]])
    path = write_vocabulary(vocabulary, tmp_path / "vocabulary.zarr")
    back = read_vocabulary(path)
    assert back.words.tolist() == ["a", "b"] and back.source == "file"
    np.testing.assert_array_equal(back.vectors, vocabulary.vectors)
    np.testing.assert_array_equal(back.true_row, [-1, -1])
    with pytest.raises(InputFileError, match="not found"):
        read_vocabulary(tmp_path / "missing.zarr")
    (tmp_path / "broken.zarr").mkdir()
    (tmp_path / "broken.zarr" / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group", "attributes": {}}'
    )
    with pytest.raises(InputFileError, match="incomplete"):
        read_vocabulary(tmp_path / "broken.zarr")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "holds 0 word"),
        ("\n  \n", "holds 0 word"),
        ("cat\ndog\ncat\n", "repeated words: 'cat'"),
    ],
)
def test_bad_word_files_name_the_file(tmp_path, text, problem):
    path = tmp_path / "words.txt"
    path.write_text(text)
    with pytest.raises(InputFileError, match=problem) as error:
        read_word_list(path)
    assert str(path) in str(error.value)


def test_word_file_lines_are_stripped(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text(" violin \n\nelectric guitar\n")
    assert read_word_list(path) == ["violin", "electric guitar"]


def test_caption_bigrams_count_adjacent_content_words():
    captions = np.array(["a red dress", "red dress", "electric guitar", "the red dress"])
    # The first BIGRAM_STOP (200) words are function words: "a" and "the" sit there.
    words = [f"stop{i}" for i in range(198)] + ["a", "the", "red", "dress", "electric", "guitar"]
    assert caption_bigrams(captions, words, 5) == ["red dress", "electric guitar"]
    assert caption_bigrams(captions, words, 1) == ["red dress"]
    assert caption_bigrams(np.array([], dtype=str), words, 3) == []


def test_auto_kind_follows_the_source():
    auto = NamingSettings()
    assert vocabulary_kind("synthetic", auto) == "synthetic"
    assert vocabulary_kind("coco", auto) == "wordfreq"
    assert vocabulary_kind("precomputed", auto) is None
    with_vectors = NamingSettings(vectors_path="v.npy", words_path="w.txt")
    assert vocabulary_kind("precomputed", with_vectors) == "precomputed"
    assert vocabulary_kind("synthetic", NamingSettings(vocabulary="file")) == "file"


def test_naming_is_a_registered_intervention():
    config = {"datasets": {"s": {"source": "synthetic"}, "p": {"source": "precomputed"}}}
    assert "naming" in INTERVENTIONS.names()
    assert settings_of(config, "naming") == NamingSettings()
    entry = INTERVENTIONS.get("naming")
    assert entry.obj(config["datasets"]["s"], NamingSettings())
    assert not entry.obj(config["datasets"]["p"], NamingSettings())


def test_embedded_words_are_the_models_unit_text_embeddings(tiny_clip):
    from vlmsae import models

    vectors = embed_words(
        ["cat", "dog", "a red dress"], "tiny-openclip", tiny_clip, {"text_batch_size": 2}
    )
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    encoder = models.load(models.resolve("tiny-openclip", tiny_clip))
    direct = encoder.encode_text(["dog"]).detach().numpy()[0]
    np.testing.assert_allclose(vectors[1], direct / np.linalg.norm(direct), atol=1e-5)


def test_wordfreq_gives_the_most_frequent_english_words():
    assert wordfreq_words(5) == ["the", "to", "and", "of", "a"]


def test_file_and_wordfreq_vocabularies_of_a_raw_store(tmp_path, tiny_clip, monkeypatch):
    store = _raw_store(tmp_path / "coco.zarr")
    words = tmp_path / "words.txt"
    words.write_text("violin\nguitar\n")
    from_file = build_vocabulary(
        store, "coco", NamingSettings(vocabulary="file", word_file=str(words)), tiny_clip
    )
    assert from_file.words.tolist() == ["violin", "guitar"] and from_file.source == "file"
    assert from_file.vectors.shape == (2, 32)
    # A short word list stands for wordfreq's: 200 function words, then the content words.
    listed = [f"stop{i}" for i in range(198)] + ["a", "the", "red", "dress", "guitar", "solo"]
    monkeypatch.setattr(vocabulary_module, "wordfreq_words", lambda n: listed[:n])
    settings = NamingSettings(n_words=len(listed), bigrams=True, n_bigrams=5)
    frequent = build_vocabulary(store, "coco", settings, tiny_clip)
    assert frequent.source == "wordfreq" and frequent.vectors.shape == (len(listed) + 1, 32)
    # Bigrams come from the train captions only: "guitar solo" is in an eval caption.
    assert frequent.words[len(listed) :].tolist() == ["red dress"]


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"vocabulary": "file"}, "word_file"),
        ({"vocabulary": "precomputed"}, "vectors_path"),
        ({"vectors_path": "v.npy"}, "words_path"),
    ],
)
def test_a_source_without_its_path_is_a_config_error(section, key):
    with pytest.raises(ConfigError, match=f"'interventions.naming.{key}': .*; fix: set it"):
        parse_settings(NamingSettings, section, "interventions.naming")
    with pytest.raises(ValueError, match=key):
        build_vocabulary(None, "synthetic", NamingSettings(**section))


def test_a_synthetic_vocabulary_needs_a_truth(tmp_path):
    store = _raw_store(tmp_path / "coco.zarr")
    with pytest.raises(ConfigError, match="interventions.naming.vocabulary.*no ground truth"):
        build_vocabulary(store, "coco", NamingSettings(vocabulary="synthetic"))


def test_precomputed_vectors_must_match_their_words(tmp_path, tiny_store):
    (tmp_path / "w.txt").write_text("up\ndown\nleft\n")
    np.save(tmp_path / "v.npy", np.ones((3, tiny_store.dim), np.float32))
    settings = NamingSettings(
        vectors_path=str(tmp_path / "v.npy"), words_path=str(tmp_path / "w.txt")
    )
    vocabulary = build_vocabulary(tiny_store, "precomputed", settings)
    assert vocabulary.words.tolist() == ["up", "down", "left"]
    np.save(tmp_path / "v.npy", np.ones((2, tiny_store.dim), np.float32))
    with pytest.raises(InputFileError, match=r"v.npy: expected shape \[3, 32\]"):
        build_vocabulary(tiny_store, "precomputed", settings)


def test_synthetic_store_vocabulary(tiny_store):
    vocabulary = build_vocabulary(tiny_store, "synthetic", NamingSettings(n_distractors=7))
    # 24 bimodal concepts (τ1 = 1: one row each), 12 text-only atoms, 7 distractors.
    assert len(vocabulary) == 24 + 12 + 7
    truth = tiny_store.truth()
    np.testing.assert_allclose(
        vocabulary.vectors[:36], truth.dictionary[vocabulary.true_row[:36]], atol=1e-6
    )
