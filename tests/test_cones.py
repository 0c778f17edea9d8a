import numpy as np
import pytest
from metric_context import rows_context

from vlmsae.metrics import cones

ROOT_HALF = np.sqrt(0.5)
# Image rows e1, e2, (e1 + e2)/√2 (two scaled: cosines must not care); text rows e1, e1, e3.
IMAGE = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3 * ROOT_HALF, 3 * ROOT_HALF, 0.0]])
TEXT = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 1.0]])


def make_context(image, text, seed=0):
    return rows_context(image, text, seed=seed)


def random_pairs(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two cones: image rows around +e1, text rows around −e1 + e2, paired by a shared part."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, d))
    image = shared + 3 * np.eye(1, d)
    text = shared + 3 * (np.eye(1, d, 1) - np.eye(1, d))
    return image, text


def test_cone_statistics_by_hand():
    stats = cones.cone_statistics(IMAGE, TEXT)
    # Image cosines over the 3 distinct pairs: 0, 1/√2, 1/√2.
    assert stats["within_image"].mean == pytest.approx(np.sqrt(2) / 3)
    assert stats["within_image"].std == pytest.approx(np.sqrt(1 / 3 - 2 / 9))
    # Text: 1, 0, 0.
    assert stats["within_text"].mean == pytest.approx(1 / 3)
    assert stats["within_text"].std == pytest.approx(np.sqrt(1 / 3 - 1 / 9))
    # Pairs (e1, e1), (e2, e1), (v, e3): 1, 0, 0.
    assert stats["paired"].mean == pytest.approx(1 / 3)
    assert stats["paired"].std == pytest.approx(np.sqrt(2) / 3)
    # Non-pairs (i, j ≠ i): 1, 0 | 0, 0 | 1/√2, 1/√2.
    assert stats["unpaired"].mean == pytest.approx((1 + np.sqrt(2)) / 6)
    assert stats["unpaired"].std == pytest.approx(np.sqrt(1 / 3 - ((1 + np.sqrt(2)) / 6) ** 2))


def test_cosine_samples_by_hand():
    samples = cones.cosine_samples(IMAGE, TEXT)
    np.testing.assert_allclose(np.sort(samples["within_image"]), [0, ROOT_HALF, ROOT_HALF])
    np.testing.assert_allclose(np.sort(samples["within_text"]), [0, 0, 1])
    np.testing.assert_allclose(samples["paired"], [1, 0, 0])
    np.testing.assert_allclose(np.sort(samples["unpaired"]), [0, 0, 0, ROOT_HALF, ROOT_HALF, 1])


def test_exact_moments_match_every_pair(monkeypatch):
    # Small blocks so that the sums run over several of them.
    monkeypatch.setattr(cones, "BLOCK_ROWS", 7)
    image, text = random_pairs(40, 6, seed=1)
    stats = cones.cone_statistics(image, text)
    for name, values in cones.cosine_samples(image, text).items():
        assert stats[name].mean == pytest.approx(values.mean(), abs=1e-12)
        assert stats[name].std == pytest.approx(values.std(), abs=1e-12)


def test_two_cones_are_visible():
    stats = cones.cone_statistics(*random_pairs(200, 8, seed=2))
    assert stats["within_image"].mean > 0.5 and stats["within_text"].mean > 0.5
    assert stats["paired"].mean > stats["unpaired"].mean
    assert stats["unpaired"].mean < 0


def test_rotation_leaves_the_cones_unchanged():
    image, text = random_pairs(30, 5, seed=3)
    rotation, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((5, 5)))
    before = cones.cone_statistics(image, text)
    after = cones.cone_statistics(image @ rotation, text @ rotation)
    for name in cones.DISTRIBUTIONS:
        assert after[name].mean == pytest.approx(before[name].mean, abs=1e-12)
        assert after[name].std == pytest.approx(before[name].std, abs=1e-12)


def test_identical_rows_have_cosine_one_and_no_spread():
    rows = np.ones((4, 3))
    stats = cones.cone_statistics(rows, rows)
    for name in cones.DISTRIBUTIONS:
        assert stats[name].mean == pytest.approx(1.0)
        assert stats[name].std == pytest.approx(0.0, abs=1e-7)


def test_undefined_cosines_are_errors():
    with pytest.raises(ValueError, match="zero row"):
        cones.cone_statistics(np.array([[1.0, 0.0], [0.0, 0.0]]), np.eye(2))
    with pytest.raises(ValueError, match="N ≥ 2"):
        cones.cone_statistics(np.eye(1, 2), np.eye(1, 2))


def test_histograms_count_every_pair_of_the_sample():
    image, text = random_pairs(50, 6, seed=5)
    histograms = cones.cone_histograms(
        make_context(image, text), cones.ConeSettings(cone_sample=20), bins=10
    )
    np.testing.assert_allclose(histograms["edges"], np.linspace(-1, 1, 11))
    expected = {"within_image": 190, "within_text": 190, "paired": 20, "unpaired": 380}
    assert {name: int(histograms[name].sum()) for name in expected} == expected


def test_histograms_of_every_row_match_the_samples():
    histograms = cones.cone_histograms(
        make_context(IMAGE, TEXT), cones.ConeSettings(), bins=np.array([-1, 0.5, 1])
    )
    # Parallel rows have cosine 1, the closed right edge of the last bin.
    np.testing.assert_array_equal(histograms["within_text"], [2, 1])
    np.testing.assert_array_equal(histograms["unpaired"], [3, 3])


def test_histograms_are_seeded():
    image, text = random_pairs(100, 6, seed=6)

    def histograms(seed: int) -> dict[str, np.ndarray]:
        return cones.cone_histograms(
            make_context(image, text, seed=seed), cones.ConeSettings(cone_sample=10), bins=40
        )

    first, again, other = histograms(0), histograms(0), histograms(1)
    for name in cones.DISTRIBUTIONS:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(not np.array_equal(first[name], other[name]) for name in cones.DISTRIBUTIONS)


def test_summarise_reports_every_distribution():
    result = cones.summarise_store(make_context(IMAGE, TEXT), cones.ConeSettings())
    assert result.atom_columns == {}
    assert set(result.summary) == {"cone_zero_pairs"} | {
        f"cone_cos_{name}_{stat}" for name in cones.DISTRIBUTIONS for stat in ("mean", "std")
    }
    assert result.summary["cone_cos_paired_mean"] == pytest.approx(1 / 3)
    assert result.summary["cone_zero_pairs"] == 0


def test_pairs_with_a_zero_row_are_left_out_and_counted():
    image, text = IMAGE.copy(), TEXT.copy()
    image[0] = 0.0
    result = cones.summarise_store(make_context(image, text), cones.ConeSettings())
    kept = cones.cone_statistics(IMAGE[1:], TEXT[1:])
    assert result.summary["cone_zero_pairs"] == 1
    assert result.summary["cone_cos_paired_mean"] == pytest.approx(kept["paired"].mean)


def test_real_clip_pairs(coco_features):
    stats = cones.cone_statistics(*np.load(coco_features))
    # The README's measurements: true pairs 0.310, non-pairs 0.162; each modality its own cone.
    assert stats["paired"].mean == pytest.approx(0.310, abs=1e-3)
    assert stats["unpaired"].mean == pytest.approx(0.162, abs=1e-3)
    assert min(stats["within_image"].mean, stats["within_text"].mean) > 0.4


def test_a_store_of_zero_rows_has_no_cone_keys_and_empty_histograms():
    result = cones.summarise_store(make_context(np.zeros_like(IMAGE), TEXT), cones.ConeSettings())
    assert result.summary == {"cone_zero_pairs": len(IMAGE)}
    assert result.tables["cone_histograms"]["paired"].sum() == 0
