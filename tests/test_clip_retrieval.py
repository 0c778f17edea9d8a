"""The clip-retrieval layout (how LAION's embeddings ship) into a store."""

from __future__ import annotations

import numpy as np
import pytest

from vlmsae.datasets.clip_retrieval import ClipRetrievalSettings, build
from vlmsae.errors import InputFileError
from vlmsae.fixtures.clip_retrieval import write_clip_retrieval
from vlmsae.stores.build import build_store
from vlmsae.stores.embedding_store import EmbeddingStore


def test_shards_are_read_in_order_paired_and_renormalised(tmp_path):
    options = write_clip_retrieval(tmp_path / "laion", shard_rows=(24, 16), dim=32)
    path = build_store(
        "laion",
        "clip-vit-b-32",
        {"source": "clip_retrieval", "clip_retrieval": options},
        tmp_path / "store.zarr",
    )
    store = EmbeddingStore(path)
    image, text = store.rows("image"), store.rows("text")
    assert image.shape == text.shape == (40, 32)
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, atol=1e-6)
    second = np.load(tmp_path / "laion" / "img_emb" / "img_emb_0001.npy").astype(np.float32)
    second /= np.linalg.norm(second, axis=1, keepdims=True)
    np.testing.assert_allclose(image[24:], second, atol=1e-6)
    np.testing.assert_array_equal(store.pairs, np.stack([np.arange(40)] * 2, axis=1))
    captions = store.optional("text_caption")
    assert captions[0] == "caption of pair 0" and captions[39] == "caption of pair 39"
    assert store.optional("image_source")[30] == "https://example.org/30.jpg"
    assert len(store.split_rows("image", "eval")) == 8  # eval_fraction 0.2 of 40
    # Paired rows were drawn around a shared vector: pairs are closer than random rows.
    paired = np.sum(image * text, axis=1).mean()
    assert paired > np.mean(image @ text.T) + 0.3


def test_max_items_stops_inside_a_shard(tmp_path):
    options = write_clip_retrieval(tmp_path / "laion", shard_rows=(24, 16))
    arrays = build(ClipRetrievalSettings(**options, max_items=30))
    assert arrays["image"].shape[0] == 30 and arrays["attrs"]["shards"] == 2
    assert arrays["extra"]["text_caption"][-1] == "caption of pair 29"


def test_missing_caption_shard_names_the_file(tmp_path):
    options = write_clip_retrieval(tmp_path / "laion", shard_rows=(8, 8))
    (tmp_path / "laion" / "text_emb" / "text_emb_0001.npy").unlink()
    with pytest.raises(InputFileError, match="text_emb_0001.npy.*caption embeddings"):
        build(ClipRetrievalSettings(**options))


def test_mismatched_shards_and_metadata_are_errors(tmp_path):
    options = write_clip_retrieval(tmp_path / "laion", shard_rows=(8, 8))
    np.save(tmp_path / "laion" / "text_emb" / "text_emb_0001.npy", np.ones((5, 32), np.float16))
    with pytest.raises(InputFileError, match="does not match the image shard"):
        build(ClipRetrievalSettings(**options))
    options = write_clip_retrieval(tmp_path / "other", shard_rows=(8,))
    write_clip_retrieval(tmp_path / "short", shard_rows=(6,))
    (tmp_path / "short" / "metadata" / "metadata_0000.parquet").rename(
        tmp_path / "other" / "metadata" / "metadata_0000.parquet"
    )
    with pytest.raises(InputFileError, match="6 metadata rows for 8 embeddings"):
        build(ClipRetrievalSettings(**options))


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(InputFileError, match="img_emb.*not found"):
        build(ClipRetrievalSettings(root=str(tmp_path)))
