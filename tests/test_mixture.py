import pytest

from vlmsae.training.mixture import batch_counts, parse_mixture


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
