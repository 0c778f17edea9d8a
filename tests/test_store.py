import numpy as np
import pytest
import zarr

from vlmsae.errors import InputFileError
from vlmsae.store import SPLITS, EmbeddingStore, SparseCodes, TrueStructure, write_store


def _arrays(n=10, d=4, seed=0):
    rng = np.random.default_rng(seed)
    image, text = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    split = (np.arange(n) % 5 == 0).astype(np.int8)
    return {
        "image": image,
        "text": text,
        "pairs": np.stack([np.arange(n)] * 2, axis=1),
        "image_split": split,
        "text_split": split,
    }


def test_round_trip(tmp_path):
    arrays = _arrays()
    truth = TrueStructure(
        dictionary=np.eye(4, dtype=np.float32),
        atom_kind=np.array(["bimodal", "bimodal", "image", "text"]),
        atom_concept=np.arange(4),
        codes={
            "image": SparseCodes(np.zeros((10, 1), np.int32), np.ones((10, 1), np.float32)),
            "text": SparseCodes(np.ones((10, 1), np.int32), np.ones((10, 1), np.float32)),
        },
    )
    write_store(
        tmp_path / "s.zarr", **arrays, attrs={"dataset": "x"}, truth=truth, label=np.arange(10)
    )
    store = EmbeddingStore(tmp_path / "s.zarr")
    np.testing.assert_allclose(store.rows("image"), arrays["image"].astype(np.float32))
    np.testing.assert_allclose(
        store.rows("text", np.array([3, 1])), arrays["text"][[3, 1]], rtol=1e-6
    )
    assert store.dim == 4 and store.attrs["dataset"] == "x" and store.attrs["complete"] is True
    np.testing.assert_array_equal(store.split_rows("image", "eval"), [0, 5])
    np.testing.assert_array_equal(store.split_pairs("eval"), [[0, 0], [5, 5]])
    np.testing.assert_array_equal(store.root["label"][...], np.arange(10))
    loaded = store.truth()
    assert list(loaded.atom_kind) == ["bimodal", "bimodal", "image", "text"]
    np.testing.assert_array_equal(loaded.codes["text"].to_csr(4).toarray()[:, 1], 1.0)
    assert store.attrs["splits"] == list(SPLITS)
    assert "zarr" in store.attrs["package_versions"]


def test_incomplete_store_is_refused(tmp_path):
    write_store(tmp_path / "s.zarr", **_arrays(), attrs={})
    group = zarr.open_group(tmp_path / "s.zarr", mode="r+")
    group.attrs["complete"] = False
    with pytest.raises(InputFileError, match="incomplete"):
        EmbeddingStore(tmp_path / "s.zarr")


def test_missing_store_names_the_path(tmp_path):
    with pytest.raises(InputFileError, match="nope.zarr: embedding store not found"):
        EmbeddingStore(tmp_path / "nope.zarr")


def test_interrupted_write_leaves_no_store(tmp_path, monkeypatch):
    import vlmsae.store as store_module

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "package_versions", fail)
    with pytest.raises(KeyboardInterrupt):
        write_store(tmp_path / "s.zarr", **_arrays(), attrs={})
    assert not (tmp_path / "s.zarr").exists()
    # A later write replaces the partial folder and succeeds.
    monkeypatch.undo()
    write_store(tmp_path / "s.zarr", **_arrays(), attrs={})
    assert EmbeddingStore(tmp_path / "s.zarr").attrs["complete"]
    assert not (tmp_path / "s.zarr.partial").exists()
