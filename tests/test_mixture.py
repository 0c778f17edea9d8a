import numpy as np
import pytest

from vlmsae.training.mixture import EpochSampler, batch_counts, mixture_batches, parse_mixture


def test_parse_mixture():
    assert parse_mixture("5-1") == (5, 1)
    for bad in ("5:1", "0-1", "a-b", "1-1-1"):
        with pytest.raises(ValueError, match="IMAGE-TEXT"):
            parse_mixture(bad)


@pytest.mark.parametrize(
    "mixture,expected", [("1-1", (256, 256)), ("5-1", (427, 85)), ("1-5", (85, 427))]
)
def test_batch_counts(mixture, expected):
    assert batch_counts(mixture, 512) == expected


def test_epoch_sampler_visits_every_row_once_per_epoch():
    sampler = EpochSampler(10, np.random.default_rng(0))
    first, second = sampler.take(7), sampler.take(3)
    assert sorted(np.concatenate([first, second])) == list(range(10))
    assert len(sampler.take(25)) == 25


def test_mixture_batches_are_seeded():
    a = next(mixture_batches(100, 50, "1-1", 10, seed=4))
    b = next(mixture_batches(100, 50, "1-1", 10, seed=4))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].max() < 50
