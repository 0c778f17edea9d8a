from pathlib import Path

import numpy as np
import pytest
import yaml

from vlmsae.calibration import STATISTICS, calibrate, store_statistics, synthetic_block
from vlmsae.datasets.synthetic import SyntheticParams
from vlmsae.registry_base import parse_settings

REPO = Path(__file__).resolve().parent.parent
COCO_PATHS = [
    REPO / "data" / "coco500_clip_vit_b16" / "features_clip.npy",
    REPO.parent / "shared" / "data" / "coco500_clip_vit_b16" / "features_clip.npy",
]


def brute_force(image: np.ndarray, text: np.ndarray) -> dict[str, float]:
    """The five statistics from every cosine, pair by pair."""
    unit = {
        name: rows / np.linalg.norm(rows, axis=1, keepdims=True)
        for name, rows in (("image", image), ("text", text))
    }
    n = len(image)
    off = ~np.eye(n, dtype=bool)
    cross = unit["image"] @ unit["text"].T
    return {
        "within_image_cosine": float((unit["image"] @ unit["image"].T)[off].mean()),
        "within_text_cosine": float((unit["text"] @ unit["text"].T)[off].mean()),
        "non_pair_cosine": float(cross[off].mean()),
        "pair_cosine": float(np.diag(cross).mean()),
        "gap": float(np.linalg.norm(unit["image"].mean(0) - unit["text"].mean(0))),
    }


def test_statistics_by_hand():
    # Images e1, e2; texts e1, e3 (rows of any length: they are normalised first).
    image = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    text = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    statistics = store_statistics(image, text)
    assert statistics == pytest.approx(
        {
            "within_image_cosine": 0.0,
            "within_text_cosine": 0.0,
            "non_pair_cosine": 0.0,  # ⟨e1, e3⟩ and ⟨e2, e1⟩
            "pair_cosine": 0.5,  # 1 and 0
            "gap": np.linalg.norm([0.0, 0.5, -0.5]),
        }
    )
    assert tuple(statistics) == STATISTICS


def test_statistics_match_the_brute_force_means():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((50, 8)) + 1.0
    text = image + rng.standard_normal((50, 8))
    assert store_statistics(image, text) == pytest.approx(brute_force(image, text))


def test_large_stores_are_measured_on_a_seeded_subsample():
    rng = np.random.default_rng(1)
    image = rng.standard_normal((3000, 8)) + 0.5
    text = image + rng.standard_normal((3000, 8))
    sample = store_statistics(image, text, seed=4, max_pairs=500)
    assert sample == store_statistics(image, text, seed=4, max_pairs=500)
    assert sample != store_statistics(image, text, seed=5, max_pairs=500)
    assert sample == pytest.approx(store_statistics(image, text), abs=0.05)


def test_unpaired_rows_are_refused():
    with pytest.raises(ValueError, match="paired row by row: 3 vs 2"):
        store_statistics(np.ones((3, 4)), np.ones((2, 4)))


def test_block_is_the_config_section_of_the_params():
    params = SyntheticParams(geometry="clip-like", d=512, L=13, tau1=0.884, bias_offset=8.27)
    section = yaml.safe_load(synthetic_block(params))
    assert parse_settings(SyntheticParams, section, "datasets.x.synthetic") == params


def test_calibrated_generator_matches_real_clip_coco():
    path = next((path for path in COCO_PATHS if path.exists()), None)
    if path is None:
        pytest.skip(f"the real COCO pairs are absent: looked for {', '.join(map(str, COCO_PATHS))}")
    features = np.load(path)
    image, text = features[0], features[1]
    target = store_statistics(image, text)
    params, achieved = calibrate(image, text, seed=0)
    assert params.geometry == "clip-like" and params.d == image.shape[1]
    for name in STATISTICS:
        assert achieved[name] == pytest.approx(target[name], abs=0.05), name
