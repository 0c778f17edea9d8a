import numpy as np
import pytest

from vlmsae.errors import InputFileError
from vlmsae.stores.build import build_store
from vlmsae.stores.embedding_store import EmbeddingStore

SPEC_DEFAULTS = {"eval_fraction": 0.2, "split_seed": 0}


def _spec(**section):
    return {"source": "precomputed", "precomputed": {**SPEC_DEFAULTS, **section}}


@pytest.fixture
def pairs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((50, 8)).astype(np.float32), rng.standard_normal((50, 8)).astype(
        np.float32
    )


def _assert_store_matches(path, image, text):
    store = EmbeddingStore(path)
    np.testing.assert_allclose(
        store.rows("image"), image / np.linalg.norm(image, axis=1, keepdims=True), rtol=1e-5
    )
    np.testing.assert_allclose(
        store.rows("text"), text / np.linalg.norm(text, axis=1, keepdims=True), rtol=1e-5
    )
    assert len(store.split_pairs("eval")) == 10
    # The val split is carved from the 40 train pairs (val_fraction's default, 0.1).
    assert len(store.split_pairs("train")) == 36 and len(store.split_pairs("val")) == 4
    assert store.attrs["input_was_normalised"] is False


def test_stacked_npy(tmp_path, pairs):
    np.save(tmp_path / "f.npy", np.stack(pairs))
    build_store("d", "m", _spec(path=str(tmp_path / "f.npy")), tmp_path / "s.zarr")
    _assert_store_matches(tmp_path / "s.zarr", *pairs)


def test_npz_with_keys(tmp_path, pairs):
    np.savez(tmp_path / "f.npz", img=pairs[0], txt=pairs[1])
    build_store(
        "d",
        "m",
        _spec(path=str(tmp_path / "f.npz"), image_key="img", text_key="txt"),
        tmp_path / "s.zarr",
    )
    _assert_store_matches(tmp_path / "s.zarr", *pairs)


def test_two_npy_files(tmp_path, pairs):
    np.save(tmp_path / "i.npy", pairs[0])
    np.save(tmp_path / "t.npy", pairs[1])
    build_store(
        "d",
        "m",
        _spec(image_path=str(tmp_path / "i.npy"), text_path=str(tmp_path / "t.npy")),
        tmp_path / "s.zarr",
    )
    _assert_store_matches(tmp_path / "s.zarr", *pairs)


def test_unpaired_rows_are_refused(tmp_path, pairs):
    np.save(tmp_path / "i.npy", pairs[0])
    np.save(tmp_path / "t.npy", pairs[1][:40])
    with pytest.raises(InputFileError, match="paired one to one"):
        build_store(
            "d",
            "m",
            _spec(image_path=str(tmp_path / "i.npy"), text_path=str(tmp_path / "t.npy")),
            tmp_path / "s.zarr",
        )
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("array", ["image", "text", "class prompt"])
def test_integer_embeddings_are_refused(tmp_path, pairs, array):
    """Integer rows are no embeddings (a wrong file, or quantised codes): refused, not cast."""
    image, text = pairs
    files = {"image": image, "text": text, "class prompt": np.ones((3, 2, 8), np.float32)}
    files[array] = (files[array] * 100).astype(np.int64)
    for name, values in files.items():
        np.save(tmp_path / f"{name}.npy", values)
    np.save(tmp_path / "labels.npy", np.arange(50) % 3)
    spec = _spec(
        image_path=str(tmp_path / "image.npy"),
        text_path=str(tmp_path / "text.npy"),
        labels_path=str(tmp_path / "labels.npy"),
        class_prompts_path=str(tmp_path / "class prompt.npy"),
    )
    with pytest.raises(InputFileError, match=rf"{array} rows are int64") as error:
        build_store("d", "m", spec, tmp_path / "s.zarr")
    assert "fix: save them as float32" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "s.zarr").exists()


def test_missing_npz_key_names_the_fix(tmp_path, pairs):
    np.savez(tmp_path / "f.npz", a=pairs[0], b=pairs[1])
    with pytest.raises(InputFileError, match="image_key"):
        build_store("d", "m", _spec(path=str(tmp_path / "f.npz")), tmp_path / "s.zarr")


def test_real_coco_pairs(tmp_path, coco_features):
    """The 500 CLIP ViT-B/16 COCO pairs keep the statistics their README documents."""
    build_store("coco500", "clip-vit-b-16", _spec(path=str(coco_features)), tmp_path / "s.zarr")
    store = EmbeddingStore(tmp_path / "s.zarr")
    image, text = store.rows("image"), store.rows("text")
    assert image.shape == (500, 512) and store.attrs["input_was_normalised"] is True
    paired = np.sum(image * text, axis=1).mean()
    similarity = image @ text.T
    unpaired = (similarity.sum() - np.trace(similarity)) / (500 * 499)
    assert paired == pytest.approx(0.310, abs=0.005)
    assert unpaired == pytest.approx(0.162, abs=0.005)
    assert np.linalg.norm(image.mean(0) - text.mean(0)) == pytest.approx(0.85, abs=0.01)
