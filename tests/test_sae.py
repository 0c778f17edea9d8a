import pytest
import torch

from vlmsae import sae

ENCODER_VARIANTS = [name for name in sae.available() if sae.VARIANTS.get(name).obj.has_encoder]


# Variants whose sparsity comes from a penalty, not from a budget of k codes.
PENALISED = {"relu", "jumprelu"}


def _hyper(variant: str) -> dict:
    """Small but valid hyper-parameters for any registered variant."""
    return {} if variant in PENALISED else {"k": 3}


def _trained_like(variant: str, d=12, n_atoms=40, **extra):
    """A model of `variant` that has seen one training batch (BatchTopK needs its threshold)."""
    torch.manual_seed(0)
    model = sae.build(variant, d=d, n_atoms=n_atoms, **_hyper(variant), **extra)
    model.train()
    model(torch.randn(64, d), 0 if extra.get("modality_biases") else None)
    return model.eval()


def test_registry_lists_the_variants():
    assert {"topk", "batchtopk", "relu", "jumprelu", "matryoshka", "semi_nmf"} <= set(
        sae.available()
    )


def test_unknown_variant_is_named():
    with pytest.raises(KeyError, match="unknown SAE variant 'nope'"):
        sae.build("nope", d=4, n_atoms=8, k=1)


def test_topk_keeps_exactly_k_per_sample():
    model = sae.build("topk", d=16, n_atoms=64, k=5)
    # A positive bias makes every pre-activation positive, so exactly k survive the ReLU.
    with torch.no_grad():
        model.b_enc.fill_(10.0)
    codes = model.encode(torch.randn(32, 16)).dense()
    assert torch.all((codes != 0).sum(dim=1) == 5)
    assert torch.all(codes >= 0)


def test_topk_keeps_the_largest_preactivations():
    model = sae.build("topk", d=3, n_atoms=3, k=2)
    with torch.no_grad():
        model.W_enc.copy_(torch.eye(3))
        model.b_enc.zero_()
        model.b_dec.zero_()
    codes = model.encode(torch.tensor([[0.5, -1.0, 2.0]])).dense()
    torch.testing.assert_close(codes, torch.tensor([[0.5, 0.0, 2.0]]))


def test_batchtopk_keeps_k_times_batch_over_the_batch():
    model = sae.build("batchtopk", d=16, n_atoms=64, k=4).train()
    with torch.no_grad():
        model.b_enc.fill_(10.0)
    codes = model.encode(torch.randn(32, 16)).dense()
    assert (codes != 0).sum() == 4 * 32
    # Per-sample counts vary: the budget is shared over the batch.
    assert (codes != 0).sum(dim=1).float().std() > 0


def test_batchtopk_inference_uses_the_learned_threshold():
    model = _trained_like("batchtopk")
    threshold = model.threshold.item()
    x = torch.randn(20, 12)
    pre = model.pre_activation(x - model.b_dec, None)
    expected = pre.relu() * (pre > threshold)
    torch.testing.assert_close(model.encode(x).dense(), expected)


def test_batchtopk_refuses_inference_without_a_threshold():
    model = sae.build("batchtopk", d=4, n_atoms=8, k=1).eval()
    with pytest.raises(RuntimeError, match="threshold was never estimated"):
        model.encode(torch.randn(2, 4))


@pytest.mark.parametrize("variant", sae.available())
@pytest.mark.parametrize("modality_biases", [False, True])
def test_save_load_round_trip(tmp_path, variant, modality_biases):
    model = _trained_like(variant, modality_biases=modality_biases)
    sae.save(model, tmp_path, extra={"note": 1})
    loaded = sae.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config() == model.config()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    x = torch.randn(8, 12)
    torch.testing.assert_close(loaded(x, 1)[0].dense(), model(x, 1)[0].dense())


@pytest.mark.parametrize("variant", ENCODER_VARIANTS)
@pytest.mark.parametrize("masked", [False, True])
def test_fast_path_equals_reference(variant, masked):
    """Codes, reconstruction and every gradient agree between the two paths."""
    model = _trained_like(variant, d=10, n_atoms=30, modality_biases=True)
    x = torch.randn(16, 10)
    modality = torch.arange(16) % 2
    mask = torch.rand(16, 30) > 0.3 if masked else None
    outputs = {}
    for path in ("fast", "reference"):
        model.zero_grad()
        if path == "fast":
            codes, x_hat = model(x, modality, mask)
            dense = codes.dense()
        else:
            dense, x_hat = model.reference_forward(x, modality, mask)
        loss = (x_hat - x).pow(2).sum() + dense.pow(2).sum()
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        outputs[path] = (dense.detach(), x_hat.detach(), grads)
    fast, reference = outputs["fast"], outputs["reference"]
    torch.testing.assert_close(fast[0], reference[0])
    torch.testing.assert_close(fast[1], reference[1])
    assert fast[2].keys() == reference[2].keys()
    for name in fast[2]:
        torch.testing.assert_close(fast[2][name], reference[2][name], msg=name)
    if masked:
        assert not torch.any(fast[0][~mask])


def test_decoder_rows_are_renormalised():
    model = sae.build("topk", d=6, n_atoms=10, k=2)
    with torch.no_grad():
        model.W_dec.mul_(3.0)
    model.normalise_decoder()
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(10))


def test_modality_biases_need_a_modality():
    model = sae.build("topk", d=4, n_atoms=8, k=2, modality_biases=True)
    with pytest.raises(ValueError, match="pass modality"):
        model(torch.randn(2, 4))
