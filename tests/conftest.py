import os
from pathlib import Path

# No test needs a network; without these, any hub lookup waits on a time-out.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from vlmsae.store import EmbeddingStore  # noqa: E402
from vlmsae.stores import build_store  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# 500 real COCO pairs embedded with CLIP ViT-B/16, shipped in the repository (data/README.md).
COCO_FEATURES = REPO / "data" / "coco500_clip_vit_b16" / "features_clip.npy"

TINY_SYNTHETIC = {
    "d": 32,
    "n_bimodal": 24,
    "n_unimodal": 12,
    "L": 6,
    "n_active_bimodal": 3,
    "tau1": 1.0,
    "tau2": 0.3,
    "n_pairs": 2000,
    "seed": 0,
}


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> EmbeddingStore:
    """A small synthetic store (τ1 = 1) shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("stores") / "tiny.zarr"
    build_store(
        "tiny", "generator", {"source": "synthetic", "synthetic": dict(TINY_SYNTHETIC)}, path
    )
    return EmbeddingStore(path)


@pytest.fixture
def coco_features() -> Path:
    """The repository's copy of the real COCO pairs: a clone has it, so its absence fails."""
    assert COCO_FEATURES.is_file(), f"{COCO_FEATURES} is missing: it ships in the repository"
    return COCO_FEATURES
