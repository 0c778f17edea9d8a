import math

import pytest
import torch

from vlmsae.training.regularisers import Regularisers
from vlmsae.training.regularisers.alignment import alignment_loss
from vlmsae.training.regularisers.group_sparsity import group_sparsity_loss
from vlmsae.training.regularisers.mask_probability import shared_mask


def test_alignment_by_hand():
    image = torch.tensor([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]])
    text = torch.tensor([[3.0, 4.0, 0.0], [0.0, 2.0, 0.0]])
    # cos = 1 for the first pair, 0 for the second: −(1 + 0)/2.
    assert alignment_loss(image, text).item() == pytest.approx(-0.5)
    # An all-zero code (nothing active) contributes 0, not NaN.
    assert alignment_loss(torch.zeros(1, 3), text[:1]).item() == 0.0


def test_alignment_is_scale_invariant():
    image, text = torch.rand(4, 6), torch.rand(4, 6)
    assert alignment_loss(3 * image, 0.5 * text).item() == pytest.approx(
        alignment_loss(image, text).item(), rel=1e-6
    )


def test_group_sparsity_by_hand():
    image = torch.tensor([[3.0, 0.0, 1.0]])
    text = torch.tensor([[4.0, 2.0, 0.0]])
    # sqrt(9 + 16) + sqrt(0 + 4) + sqrt(1 + 0) = 5 + 2 + 1.
    assert group_sparsity_loss(image, text).item() == pytest.approx(8.0)
    # Shared support costs less than split support with the same energy.
    shared = group_sparsity_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    split = group_sparsity_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    assert shared.item() == pytest.approx(math.sqrt(2)) and split.item() == pytest.approx(2.0)


def test_group_sparsity_gradient_at_zero_is_finite():
    image = torch.zeros(1, 2, requires_grad=True)
    text = torch.zeros(1, 2, requires_grad=True)
    group_sparsity_loss(image, text).backward()
    assert torch.all(image.grad == 0)


def test_shared_mask_is_the_same_for_both_halves_of_a_pair():
    generator = torch.Generator().manual_seed(0)
    mask = shared_mask(50, 200, 0.3, generator, torch.device("cpu"))
    assert mask.shape == (100, 200)
    assert torch.equal(mask[:50], mask[50:])
    assert abs((~mask).float().mean().item() - 0.3) < 0.02


def test_paired_means_any_regulariser():
    assert not Regularisers().paired
    assert Regularisers.from_variant({"alignment": 1e-4}).paired
    assert Regularisers.from_variant({"mask_probability": 0.2}).paired


def test_authors_alignment_by_hand():
    """Top atoms: image 0 (3), text 2 (4); both are zeroed in both codes before the cosine."""
    image = torch.tensor([[3.0, 1.0, 0.0, 2.0]], requires_grad=True)
    text = torch.tensor([[0.0, 1.0, 4.0, 2.0]], requires_grad=True)
    # Left (0, 1, 0, 2) and (0, 1, 0, 2): cosine 1. Eq. 1 on the full codes: 5 / √(14·21).
    assert alignment_loss(image, text, "authors").item() == pytest.approx(-1.0)
    assert alignment_loss(image, text, "paper").item() == pytest.approx(-5 / math.sqrt(294))
    alignment_loss(image, text, "authors").backward()
    # The zeroed atoms get no gradient; at cosine 1 the kept ones have none to get either.
    assert image.grad[0, 0] == 0 and text.grad[0, 2] == 0 and image.grad[0, 2] == 0


def test_authors_alignment_zeroes_per_pair_and_by_magnitude():
    image = torch.tensor([[0.0, -5.0, 1.0, 1.0], [2.0, 0.0, 1.0, 0.0]])
    text = torch.tensor([[0.0, 0.0, 1.0, 3.0], [2.0, 0.0, 1.0, 0.0]])
    # Pair 1 keeps atom 2 only (atoms 1 and 3 dropped): cosine 1. Pair 2 drops atom 0 on both
    # sides (the same top atom) and keeps atom 2: cosine 1.
    assert alignment_loss(image, text, "authors").item() == pytest.approx(-1.0)
    # A pair whose code is all zero still contributes 0, whatever its arbitrary "top" atom.
    zero = alignment_loss(torch.zeros(1, 4), text[:1], "authors")
    assert zero.item() == 0.0


def test_alignment_form_travels_with_the_variant_and_is_no_weight():
    regularisers = Regularisers.from_variant({"alignment": 1e-4, "alignment_form": "authors"})
    assert regularisers.alignment_form == "authors" and regularisers.paired
    assert Regularisers.from_variant({}).alignment_form == "paper"
    assert not Regularisers.from_variant({"alignment_form": "authors"}).paired
