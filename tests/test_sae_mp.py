import pytest
import torch
import torch.nn.functional as F

from vlmsae import sae
from vlmsae.errors import ConfigError
from vlmsae.registry_base import parse_settings
from vlmsae.sae import mp
from vlmsae.sae.mp import PursuitCoefficients


def _model(d=10, n_atoms=30, k=4, dtype=torch.float64, **hyper):
    torch.manual_seed(0)
    model = sae.build("mp", d=d, n_atoms=n_atoms, k=k, **hyper).to(dtype)
    model.normalise_decoder()  # exactly unit-norm in the working precision
    return model


def test_orthonormal_dictionary_recovers_a_sparse_code_exactly():
    d, k = 8, 3
    model = _model(d=d, n_atoms=d, k=k)
    with torch.no_grad():
        model.W_dec.copy_(torch.eye(d))
    z = torch.zeros(2, d, dtype=torch.float64)
    z[0, [1, 4, 6]] = torch.tensor([3.0, 2.0, 0.5], dtype=torch.float64)
    z[1, [0, 2, 7]] = torch.tensor([1.0, 5.0, 4.0], dtype=torch.float64)
    codes, x_hat = model(z)
    torch.testing.assert_close(codes.dense(), z, rtol=0, atol=0)
    torch.testing.assert_close(x_hat, z, rtol=0, atol=0)


@pytest.mark.parametrize("nonnegative", [True, False])
def test_residual_norm_never_increases(nonnegative):
    x = torch.randn(32, 10, dtype=torch.float64)
    norms = [x.norm(dim=1)]
    for k in range(1, 8):
        model = _model(k=k, nonnegative=nonnegative)
        codes, x_hat = model(x)
        norms.append((x - x_hat).norm(dim=1))
        assert torch.all((codes.dense() != 0).sum(dim=1) <= k)
    assert torch.all(torch.stack(norms).diff(dim=0) <= 1e-12)


def test_energy_identity_holds_with_repeated_atoms():
    """Unit atoms and a_t = ⟨r_{t−1}, d⟩ give ‖r_k‖² = ‖x‖² − Σ a_t², even when atoms repeat."""
    model = _model(d=6, n_atoms=8, k=12, nonnegative=False)
    x = torch.randn(16, 6, dtype=torch.float64)
    codes, x_hat = model(x)
    assert len(codes.values) == 16 * 12
    assert codes.dense().ne(0).sum() < len(codes.values)  # some atom was picked twice
    energy = torch.zeros(16, dtype=torch.float64).index_add(0, codes.rows, codes.values**2)
    torch.testing.assert_close((x - x_hat).pow(2).sum(dim=1), x.pow(2).sum(dim=1) - energy)


def test_sign_of_the_codes():
    x = torch.randn(64, 10, dtype=torch.float64)
    assert torch.all(_model(nonnegative=True).encode(x).dense() >= 0)
    assert torch.any(_model(nonnegative=False).encode(x).dense() < 0)


def test_a_step_without_positive_correlation_adds_nothing():
    model = _model(d=3, n_atoms=3, k=2)
    with torch.no_grad():
        model.W_dec.copy_(torch.eye(3))
    codes = model.encode(torch.tensor([[2.0, -1.0, -3.0]], dtype=torch.float64))
    assert len(codes.values) == 1
    torch.testing.assert_close(codes.dense(), torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64))
    # The idle step's coefficient is a clipped max(c, 0): no gradient flows through it.
    x = torch.tensor([[2.0, -1.0, -3.0]], dtype=torch.float64, requires_grad=True)
    values, _, live = PursuitCoefficients.apply(x, model.W_dec, None, 2, True)
    assert live.tolist() == [[True, False]]
    values.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    expected = torch.zeros(3, 3, dtype=torch.float64)
    expected[0] = x.detach()[0]  # ∂a_1/∂d_0 = r_0
    torch.testing.assert_close(model.W_dec.grad, expected)


@pytest.mark.parametrize("nonnegative", [True, False])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("modality_biases", [False, True])
@pytest.mark.parametrize("batch", [16, 2])  # 16·k ≥ p uses the Gram matrix, 2·k < p does not
@pytest.mark.parametrize("route_limit", [0, 10**9])  # coefficients through the atoms / through G
def test_fast_path_equals_reference(
    nonnegative, masked, modality_biases, batch, route_limit, monkeypatch
):
    """Codes, reconstruction and gradients agree, for a loss on the reconstruction and codes."""
    monkeypatch.setattr(mp, "GRAM_ROUTE_LIMIT", route_limit)
    model = _model(nonnegative=nonnegative, modality_biases=modality_biases)
    with torch.no_grad():
        model.b_dec.normal_()
    torch.manual_seed(1)
    x = torch.randn(batch, 10, dtype=torch.float64, requires_grad=True)
    modality = torch.arange(batch) % 2 if modality_biases else None
    mask = torch.rand(batch, 30) > 0.3 if masked else None
    if masked:
        mask[0] = False  # a row with no admissible atom at all
    outputs = {}
    for path in ("fast", "reference"):
        model.zero_grad()
        x.grad = None
        if path == "fast":
            codes, x_hat = model(x, modality, mask)
            dense = codes.dense()
        else:
            dense, x_hat = model.reference_forward(x, modality, mask)
        # Reconstruction plus the iso-energy alignment penalty on row-normalised codes.
        normalised = F.normalize(dense, dim=1)
        alignment = -(normalised[0::2] * normalised[1::2]).sum() / (batch // 2)
        loss = (x_hat - x).pow(2).sum(dim=1).mean() + alignment + dense.pow(3).sum()
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        outputs[path] = (dense.detach(), x_hat.detach(), grads, x.grad.clone())
    fast, reference = outputs["fast"], outputs["reference"]
    assert fast[0].ne(0).any()
    torch.testing.assert_close(fast[0], reference[0])
    torch.testing.assert_close(fast[1], reference[1])
    assert fast[2].keys() == reference[2].keys() == {"W_dec", "b_dec"}
    for name in fast[2]:
        assert fast[2][name].ne(0).any()
        torch.testing.assert_close(fast[2][name], reference[2][name], msg=name)
    torch.testing.assert_close(fast[3], reference[3])
    if masked:
        assert not torch.any(fast[0][~mask])


def test_code_loss_alone_trains_the_dictionary():
    """A loss on the codes only still reaches W_dec, through the pursuit coefficients."""
    model = _model()
    model.encode(torch.randn(8, 10, dtype=torch.float64)).values.sum().backward()
    assert model.W_dec.grad.abs().sum() > 0


def test_recurrence_stays_float32_under_autocast():
    """bf16 correlations may pick other atoms, but the coefficients are exact projections."""
    model = _model(d=32, n_atoms=128, k=6, dtype=torch.float32, nonnegative=False)
    x = torch.randn(64, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes, x_hat = model(x)
    assert codes.values.dtype == torch.float32 and x_hat.dtype == torch.float32
    energy = torch.zeros(64).index_add(0, codes.rows, codes.values.detach() ** 2)
    residual = (x - x_hat.detach()).pow(2).sum(dim=1)
    torch.testing.assert_close(residual, x.pow(2).sum(dim=1) - energy, rtol=1e-4, atol=1e-4)


def test_without_decoder_bias_b_dec_is_a_fixed_zero_that_save_and_load_keep(tmp_path):
    model = _model(decoder_bias=False, nonnegative=False)
    assert "b_dec" not in dict(model.named_parameters())
    assert "b_dec" in model.state_dict() and not model.b_dec.any()
    x = torch.randn(8, 10, dtype=torch.float64)
    codes, x_hat = model(x)
    torch.testing.assert_close(x_hat, codes.dense() @ model.W_dec)  # x̂ = z·D, no bias
    sae.save(model, tmp_path)
    loaded = sae.load(tmp_path).to(torch.float64)
    assert loaded.config()["decoder_bias"] is False
    assert not loaded.b_dec.requires_grad and not loaded.b_dec.any()
    torch.testing.assert_close(loaded(x)[1], x_hat)


def test_without_decoder_bias_fast_path_equals_reference():
    model = _model(decoder_bias=False)
    x = torch.randn(16, 10, dtype=torch.float64)
    fast_codes, fast_x_hat = model(x)
    dense, x_hat = model.reference_forward(x)
    torch.testing.assert_close(fast_codes.dense(), dense)
    torch.testing.assert_close(fast_x_hat, x_hat)
    (fast_x_hat - x).pow(2).sum().backward()
    assert [name for name, p in model.named_parameters() if p.grad is not None] == ["W_dec"]


def test_modality_biases_need_the_decoder_bias():
    settings = sae.VARIANTS.get("mp").settings
    with pytest.raises(ConfigError, match="modality_biases needs decoder_bias"):
        parse_settings(settings, {"k": 2, "decoder_bias": False, "modality_biases": True}, "v")
