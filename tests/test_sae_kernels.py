"""The training step's shortcuts against the plain computations they replace."""

import pytest
import torch

from vlmsae import sae
from vlmsae.sae.base import _grouped
from vlmsae.sae.batchtopk import SAMPLE_STRIDE, largest
from vlmsae.sae.codes import Codes


def _top_set(flat: torch.Tensor, count: int) -> set[int]:
    return set(flat.topk(count).indices.tolist())


@pytest.mark.parametrize("count", [1, 7, 200, 999, 1000])
def test_largest_finds_the_same_entries_as_topk(count):
    flat = torch.randn(1000, generator=torch.Generator().manual_seed(count))
    values, indices = largest(flat, count)
    assert set(indices.tolist()) == _top_set(flat, count)
    assert torch.equal(values, flat[indices])


def test_largest_is_exact_when_the_sample_misses_the_largest_entries():
    # Every sampled entry (multiples of the stride) is the largest: the sample's threshold is
    # exceeded by fewer than `count` entries, and the fallback must still find them all.
    flat = torch.zeros(31 * 64)
    flat[::SAMPLE_STRIDE] = 10.0
    flat[5] = 20.0  # not sampled, and the largest of all
    values, indices = largest(flat, 10)
    assert 5 in indices.tolist()
    assert sorted(values.tolist()) == [10.0] * 9 + [20.0]


def test_largest_is_exact_when_every_entry_exceeds_the_sample_threshold():
    flat = torch.arange(31 * 100, dtype=torch.float32).flip(0)  # the sample spans the range
    values, indices = largest(flat, 500)
    assert set(indices.tolist()) == set(range(500))


def test_batchtopk_mask_is_that_of_topk_over_the_batch():
    torch.manual_seed(0)
    model = sae.build("batchtopk", d=16, n_atoms=256, k=4).train()
    pre = torch.randn(64, 256) - 0.5  # some rows with few positive entries
    flat = pre.flatten()
    values, indices = flat.topk(4 * 64)
    expected = torch.zeros_like(flat, dtype=torch.bool)
    expected[indices[values > 0]] = True
    assert torch.equal(model._batch_mask(pre), expected.view_as(pre))


@pytest.mark.parametrize("n_groups", [5, 512, 40_000])
def test_grouped_is_the_stable_sort_of_the_keys(n_groups):
    keys = torch.randint(0, n_groups, (3000,), generator=torch.Generator().manual_seed(n_groups))
    order, offsets = _grouped(keys, n_groups)
    assert torch.equal(order, torch.sort(keys, stable=True).indices)
    counts = torch.bincount(keys, minlength=n_groups)
    assert torch.equal(offsets, counts.cumsum(0) - counts)


def _dense_activity(codes: Codes) -> tuple[torch.Tensor, torch.Tensor]:
    active = codes.dense().detach() != 0
    return active.any(dim=0), active.sum(dim=1).float().mean()


def test_activity_read_off_unique_coordinates_equals_the_dense_one():
    rows = torch.tensor([0, 0, 1, 2, 2])
    cols = torch.tensor([1, 3, 3, 0, 2])
    values = torch.tensor([0.5, 0.0, 2.0, 1.0, 3.0])  # one selected code is exactly 0
    codes = Codes((4, 5), rows, cols, values, unique=True)
    fired, l0 = codes.activity()
    assert fired.tolist() == [True, True, True, True, False]
    assert float(l0) == 4 / 4  # rows hold 1, 1, 2 and 0 non-zero codes
    expected_fired, expected_l0 = _dense_activity(codes)
    assert torch.equal(fired, expected_fired) and torch.equal(l0, expected_l0)


def test_activity_of_repeated_coordinates_sums_them_first():
    # A pursuit that picks atom 2 twice with opposite coefficients leaves it at 0.
    codes = Codes(
        (1, 3), torch.tensor([0, 0, 0]), torch.tensor([2, 2, 1]), torch.tensor([1.0, -1.0, 0.5])
    )
    fired, l0 = codes.activity()
    assert fired.tolist() == [False, True, False] and float(l0) == 1.0


@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_encoded_codes_are_unique_and_their_activity_is_the_dense_one(variant):
    torch.manual_seed(1)
    model = sae.build(variant, d=8, n_atoms=64, k=3).train()
    codes = model.encode(torch.randn(32, 8))
    assert codes.unique
    keys = codes.rows * 64 + codes.cols
    assert len(keys.unique()) == len(keys)
    fired, l0 = codes.activity()
    expected_fired, expected_l0 = _dense_activity(codes)
    assert torch.equal(fired, expected_fired) and torch.equal(l0, expected_l0)
