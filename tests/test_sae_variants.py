"""Each SAE variant's defining property, on examples small enough to check by hand."""

import math

import pytest
import torch
from safetensors.torch import load_file

from vlmsae import sae
from vlmsae.errors import ConfigError
from vlmsae.registry_base import parse_settings
from vlmsae.sae.archetypal import kmeans, project_rows_to_ball, project_rows_to_simplex
from vlmsae.sae.codes import Codes
from vlmsae.sae.penalty import STEERING_RATE


def _identity_encoder(model, threshold: float | None = None):
    """Make pre-activations equal x: W_enc = I, b_enc = b_dec = 0."""
    with torch.no_grad():
        model.W_enc.copy_(torch.eye(model.d))
        model.b_enc.zero_()
        model.b_dec.zero_()
        if threshold is not None:
            model.log_threshold.fill_(math.log(threshold))
    return model


def test_relu_l1_weights_codes_by_decoder_norm():
    model = _identity_encoder(sae.build("relu", d=2, n_atoms=2, l1_coefficient=0.1))
    with torch.no_grad():
        model.W_dec.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    codes, x_hat = model(x)
    torch.testing.assert_close(codes.dense(), torch.tensor([[1.0, 0.0], [3.0, 0.5]]))
    terms = model.losses(x, codes, x_hat)
    # Rows: 1·2 + 0·0.5 = 2 and 3·2 + 0.5·0.5 = 6.25; mean 4.125; times λ = 0.1.
    torch.testing.assert_close(terms["l1"], torch.tensor(0.4125))
    assert set(terms) == {"mse", "l1"}


def test_jumprelu_codes_are_zero_below_the_threshold_and_pre_above():
    model = _identity_encoder(sae.build("jumprelu", d=4, n_atoms=4), threshold=0.5)
    x = torch.tensor([[0.4, 0.6, -1.0, 2.0]])
    torch.testing.assert_close(model.encode(x).dense(), torch.tensor([[0.0, 0.6, 0.0, 2.0]]))


@pytest.mark.parametrize(
    ("x", "code", "grad_theta", "grad_pre"),
    [
        (0.55, 0.55, -2.5, 1.0),  # above θ, inside the kernel: −θ/ε
        (0.45, 0.0, -2.5, 0.0),  # below θ, inside the kernel: the jump still pulls θ down
        (0.70, 0.70, 0.0, 1.0),  # outside the kernel (|0.2/ε| > 1/2): no gradient to θ
    ],
)
def test_jumprelu_straight_through_gradient_by_hand(x, code, grad_theta, grad_pre):
    """One atom, θ = 0.5, ε = 0.2: ∂z/∂θ = −(θ/ε)·K((pre − θ)/ε), ∂H/∂θ = −(1/ε)·K(…)."""
    model = sae.build("jumprelu", d=1, n_atoms=1, bandwidth=0.2, l0_coefficient=0.1)
    _identity_encoder(model, threshold=0.5)
    codes = model.encode(torch.tensor([[x]]))
    torch.testing.assert_close(codes.dense(), torch.tensor([[code]]))
    codes.dense().sum().backward()
    # The parameter is log θ, so the chain rule multiplies by θ = 0.5.
    torch.testing.assert_close(model.log_threshold.grad, torch.tensor([0.5 * grad_theta]))
    torch.testing.assert_close(model.W_enc.grad, torch.tensor([[x * grad_pre]]))

    model.zero_grad()
    l0 = model.losses(torch.tensor([[x]]), codes, codes.dense().detach())["l0"]
    torch.testing.assert_close(l0, torch.tensor(0.1 * (x > 0.5)))
    l0.backward()
    # −λ/ε = −0.5 inside the kernel; no gradient reaches the encoder through the L0 penalty.
    expected = -0.5 * 0.5 if grad_theta else 0.0
    torch.testing.assert_close(model.log_threshold.grad, torch.tensor([expected]))
    assert model.W_enc.grad is None or not model.W_enc.grad.any()


def test_jumprelu_masked_atoms_stay_silent():
    model = _identity_encoder(sae.build("jumprelu", d=3, n_atoms=3), threshold=0.1)
    mask = torch.tensor([[True, False, True]])
    codes = model.encode(torch.tensor([[1.0, 1.0, 1.0]]), atom_mask=mask)
    torch.testing.assert_close(codes.dense(), torch.tensor([[1.0, 0.0, 1.0]]))
    l0 = model.losses(torch.ones(1, 3), codes, codes.dense())["l0"]
    l0.backward()
    assert torch.isfinite(model.log_threshold.grad).all()


@pytest.mark.parametrize("sparse", [True, False])
def test_matryoshka_prefix_losses_by_hand(sparse):
    """Atoms e1, e2, e1, e2; prefixes [1, 2, 4]; codes (0.5, 1, 0.25, 0.5) for x = (1, 2)."""
    model = sae.build("matryoshka", d=2, n_atoms=4, k=2, prefixes=[1, 2, 4])
    with torch.no_grad():
        model.W_dec.copy_(torch.eye(2).repeat(2, 1))
        model.b_dec.zero_()
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    dense = torch.tensor([[0.5, 1.0, 0.25, 0.5], [0.0, 0.0, 0.0, 0.0]])
    codes = Codes.from_dense(dense)
    if sparse:
        rows, cols = dense.nonzero(as_tuple=True)
        codes = Codes(codes.shape, rows, cols, dense[rows, cols])
    terms = model.losses(x, codes, model.decode(codes))
    # Row 1 errors: prefix 1 (0.5, 0) → 0.25 + 4; prefix 2 (0.5, 1) → 0.25 + 1;
    # full (0.75, 1.5) → 0.0625 + 0.25. Row 2 is exact; means over the 2 rows halve these.
    mse = {1: 4.25 / 2, 2: 1.25 / 2, 4: 0.3125 / 2}
    torch.testing.assert_close(terms["mse"], torch.tensor(mse[4]))
    torch.testing.assert_close(sum(terms.values()), torch.tensor(sum(mse.values()) / 3))


def test_matryoshka_training_loss_is_the_mean_prefix_error():
    torch.manual_seed(0)
    model = sae.build("matryoshka", d=6, n_atoms=16, k=3).train()
    assert model.prefixes == [2, 4, 8, 16]
    x = torch.randn(10, 6)
    codes, x_hat = model(x)
    z = codes.dense()
    errors = [
        (z[:, :m] @ model.W_dec[:m] + model.b_dec - x).pow(2).sum(dim=1).mean()
        for m in model.prefixes
    ]
    torch.testing.assert_close(sum(model.losses(x, codes, x_hat).values()), sum(errors) / 4)


def test_matryoshka_default_prefixes_for_a_tiny_dictionary():
    assert sae.build("matryoshka", d=2, n_atoms=4, k=1).prefixes == [1, 2, 4]


@pytest.mark.parametrize(
    "prefixes", [[8, 4, 16], [4, 4, 16], [4, 8], [0, 16], [4.0, 16], [], [True, 16]]
)
def test_matryoshka_rejects_bad_prefixes(prefixes):
    with pytest.raises(ValueError, match="strictly increasing positive integers ending at"):
        sae.build("matryoshka", d=4, n_atoms=16, k=1, prefixes=prefixes)


def _semi_nmf(n_iter=200, k=None):
    """A well-conditioned dictionary: 4 nearly orthogonal unit atoms in R⁸."""
    torch.manual_seed(0)
    model = sae.build("semi_nmf", d=8, n_atoms=4, n_iter=n_iter, k=k)
    atoms = torch.linalg.qr(torch.randn(8, 4))[0].T + 0.3 * torch.randn(4, 8)
    with torch.no_grad():
        model.W_dec.copy_(atoms / atoms.norm(dim=1, keepdim=True))
        model.b_dec.copy_(torch.randn(8))
    return model


@pytest.mark.parametrize("masked", [False, True])
def test_semi_nmf_codes_match_scipy_nnls(masked):
    model = _semi_nmf()
    x = torch.randn(12, 8)
    mask = torch.rand(12, 4) > 0.3 if masked else None
    codes, x_hat = model(x, atom_mask=mask)
    expected, expected_x_hat = model.reference_forward(x, atom_mask=mask)
    z = codes.dense()
    assert torch.all(z >= 0)
    assert (expected == 0).any(), "some constraint should be active for the test to mean much"
    torch.testing.assert_close(z, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x_hat, expected_x_hat, atol=1e-4, rtol=1e-4)
    if masked:
        assert not torch.any(z[~mask])


def test_semi_nmf_keeps_k_codes_and_learns_only_through_decoding():
    model = _semi_nmf(k=1)
    x = torch.randn(12, 8)
    codes, x_hat = model(x)
    assert torch.all((codes.dense() != 0).sum(dim=1) <= 1)
    assert not codes.dense().requires_grad
    (x_hat - x).pow(2).sum().backward()
    assert model.W_dec.grad is not None and model.b_dec.grad is not None


def test_batchtopk_threshold_keeps_k_per_row_on_the_calibration_rows():
    """Pre-activations = x: the k·N = 2 largest of the 8 values are 0.9 and 0.7, θ = 0.5."""
    model = _identity_encoder(sae.build("batchtopk", d=4, n_atoms=4, k=1))
    rows = torch.tensor([[0.9, 0.5, 0.1, -1.0], [0.7, 0.3, 0.2, 0.0]])
    # Two batches of one row: the pass keeps only the k·N + 1 largest values between them.
    record = model.calibrate_threshold([(rows[:1], None), (rows[1:], None)])
    assert record == {"threshold": pytest.approx(0.5), "threshold_rows": 2}
    codes = model.eval().encode(rows).dense()
    torch.testing.assert_close(codes, torch.tensor([[0.9, 0, 0, 0], [0.7, 0, 0, 0]]))


def test_batchtopk_threshold_is_zero_when_fewer_activations_are_positive():
    model = _identity_encoder(sae.build("batchtopk", d=3, n_atoms=3, k=2))
    record = model.calibrate_threshold([(torch.tensor([[0.4, -1.0, -2.0]]), None)])
    assert record["threshold"] == 0.0  # only one positive value for k·N = 2 slots: keep it


def test_batchtopk_threshold_matches_the_mean_l0_on_many_rows():
    torch.manual_seed(0)
    model = sae.build("batchtopk", d=16, n_atoms=64, k=5)
    x = torch.randn(1000, 16)
    model.calibrate_threshold([(batch, None) for batch in x.split(128)])
    assert (model.eval().encode(x).dense() != 0).sum().item() == 5 * 1000


@pytest.mark.parametrize("variant", ["relu", "jumprelu"])
def test_penalty_coefficient_is_saved_only_when_steered(variant):
    assert "penalty_coefficient" not in sae.build(variant, d=4, n_atoms=8).state_dict()
    steered = sae.build(variant, d=4, n_atoms=8, target_l0=2)
    assert steered.state_dict()["penalty_coefficient"].item() == pytest.approx(1e-3)


def test_steering_multiplies_the_coefficient_by_a_clipped_log_ratio():
    model = sae.build("relu", d=4, n_atoms=8, target_l0=3, l1_coefficient=0.1)
    model.steer_penalty(torch.tensor(7.0))  # log((7 + 1)/(3 + 1)) = log 2 < 1: λ·2^η
    assert model.penalty_coefficient.item() == pytest.approx(0.1 * 2**STEERING_RATE)
    model.steer_penalty(torch.tensor(0.0))  # log(1/4) < −1: clipped to −1
    expected = 0.1 * 2**STEERING_RATE * math.exp(-STEERING_RATE)
    assert model.penalty_coefficient.item() == pytest.approx(expected)
    x = torch.randn(5, 4)
    codes, x_hat = model(x)
    weighted = codes.dense().abs() * model.W_dec.norm(dim=1)
    l1 = model.losses(x, codes, x_hat)["l1"]
    torch.testing.assert_close(l1, expected * weighted.sum(dim=1).mean())


def test_jumprelu_starts_each_threshold_at_the_target_quantile():
    model = sae.build("jumprelu", d=2, n_atoms=2, target_l0=1, initial_threshold=0.05)
    # Atom 0 sees 0.1, 0.2, 0.3, 0.4: its 1 − 1/2 quantile (2nd of 4) is 0.2. Atom 1 sees only
    # negative values: θ stays at initial_threshold, so it starts silent.
    pre = torch.tensor([[0.4, -0.1], [0.1, -0.2], [0.3, -0.3], [0.2, -0.4]])
    model.initialise_for_target(pre)
    torch.testing.assert_close(model.threshold, torch.tensor([0.2, 0.05]))


@pytest.mark.parametrize(
    ("variant", "hyper"), [("relu", {"l1_coefficient": 0.0}), ("jumprelu", {"target_l0": 9})]
)
def test_target_l0_needs_a_positive_coefficient_and_enough_atoms(variant, hyper):
    settings = sae.VARIANTS.get(variant).settings
    with pytest.raises(ConfigError, match="target_l0"):
        parse_settings(settings, {"n_atoms": 8, "target_l0": 2, **hyper}, "v")


# ---- archetypal (RA-SAE) ---------------------------------------------------------------------


def test_simplex_projection_by_hand():
    rows = torch.tensor(
        [
            [0.5, 0.5, 1.0],  # sorted 1, .5, .5: every prefix kept, θ = (2 − 1)/3
            [2.0, 0.0, 0.0],  # ρ = 1, θ = 1
            [0.2, 0.3, 0.5],  # already on the simplex
            [-1.0, -1.0, -1.0],  # θ = −4/3: the centre
        ]
    )
    expected = torch.tensor(
        [[1 / 6, 1 / 6, 2 / 3], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]
    )
    torch.testing.assert_close(project_rows_to_simplex(rows), expected)


def test_simplex_projection_is_the_nearest_point_of_the_simplex():
    torch.manual_seed(0)
    rows = 2 * torch.randn(50, 7, dtype=torch.float64)
    projected = project_rows_to_simplex(rows)
    assert (projected >= 0).all()
    torch.testing.assert_close(projected.sum(dim=1), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(project_rows_to_simplex(projected), projected)
    # No other point of the simplex (200 random ones per row) is nearer.
    others = torch.distributions.Dirichlet(torch.ones(7, dtype=torch.float64)).sample((200,))
    nearest = (rows[:, None] - others[None]).norm(dim=2).min(dim=1).values
    assert ((rows - projected).norm(dim=1) <= nearest + 1e-12).all()


def test_ball_projection_by_hand():
    rows = torch.tensor([[3.0, 4.0], [0.03, 0.04], [0.0, 0.0]])
    expected = torch.tensor([[0.3, 0.4], [0.03, 0.04], [0.0, 0.0]])
    torch.testing.assert_close(project_rows_to_ball(rows, 0.5), expected)
    torch.testing.assert_close(project_rows_to_ball(rows, 0.0), torch.zeros(3, 2))


@pytest.mark.parametrize("seed", range(4))
def test_kmeans_by_hand(seed):
    """From any two distinct rows of 0, 1, 9, 10, Lloyd's k-means ends at 0.5 and 9.5."""
    rows = torch.tensor([[0.0], [1.0], [9.0], [10.0]])
    centroids = kmeans(rows, 2, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(centroids.flatten().sort().values, torch.tensor([0.5, 9.5]))


def _archetypal(**hyper):
    torch.manual_seed(0)
    settings = {"k": 2, "n_candidates": 10, "candidate_pool": 40, "delta": 0.05, **hyper}
    return sae.build("archetypal", d=8, n_atoms=6, **settings)


@pytest.mark.parametrize("candidates", ["kmeans", "sample"])
def test_archetypal_starts_each_atom_at_a_candidate_from_the_data(candidates):
    model = _archetypal(candidates=candidates)
    x = torch.randn(50, 8)
    model.initialise_from_data(x, torch.zeros(50, dtype=torch.long), torch.Generator())
    pool = x[:40]
    if candidates == "sample":
        # Every candidate is one of the pool's rows, each drawn once.
        matches = (model.candidates[:, None] == pool[None]).all(dim=2)
        assert (matches.sum(dim=1) == 1).all() and (matches.sum(dim=0) <= 1).all()
    else:
        # Every centroid is the mean of the pool rows nearest to it (Lloyd's fixed point).
        nearest = torch.cdist(pool, model.candidates).argmin(dim=1)
        for j in nearest.unique():
            torch.testing.assert_close(model.candidates[j], pool[nearest == j].mean(dim=0))
    unit = model.candidates[:6] / model.candidates[:6].norm(dim=1, keepdim=True)
    torch.testing.assert_close(model.W_dec, unit)
    torch.testing.assert_close(model.W_enc, unit)


def test_archetypal_atoms_stay_in_the_relaxed_hull_while_training():
    from vlmsae.training.regularisers import Regularisers
    from vlmsae.training.trainer import Trainer, TrainSettings

    model = _archetypal()
    x = torch.randn(64, 8)
    modality = torch.zeros(64, dtype=torch.long)
    model.initialise_from_data(x, modality, torch.Generator().manual_seed(0))
    start = model.mixing.detach().clone()
    # A large step size, so that the unprojected steps would leave the constraints far behind.
    settings = TrainSettings(steps=20, lr=0.05, warmup_steps=1, aux_coefficient=0.0)
    trainer = Trainer(model.train(), settings, Regularisers(), torch.device("cpu"), 0)
    for _ in range(20):
        trainer.step(x, modality)
    mixing, relaxation = model.mixing.detach(), model.relaxation.detach()
    assert (mixing >= 0).all()
    torch.testing.assert_close(mixing.sum(dim=1), torch.ones(6))
    norms = relaxation.norm(dim=1)
    assert (norms <= 0.05 + 1e-6).all()
    # The constraints bind: the atoms moved away from their candidates, and Λ is at its radius.
    assert (mixing - start).abs().max() > 0.1 and norms.max() == pytest.approx(0.05)
    atoms = mixing @ model.candidates + relaxation
    torch.testing.assert_close(model.W_dec, atoms / atoms.norm(dim=1, keepdim=True))


def test_archetypal_keeps_k_codes():
    model = _archetypal(k=3)
    with torch.no_grad():
        model.b_enc.fill_(10.0)  # every pre-activation positive: exactly k survive
    codes = model.encode(torch.randn(16, 8)).dense()
    assert ((codes != 0).sum(dim=1) == 3).all()


def test_archetypal_round_trip_keeps_the_candidates(tmp_path):
    model = _archetypal()
    model.initialise_from_data(torch.randn(40, 8), torch.zeros(40), torch.Generator())
    with torch.no_grad():
        model.mixing.copy_(project_rows_to_simplex(torch.rand(6, 10)))
        model.relaxation.copy_(project_rows_to_ball(torch.randn(6, 8), 0.05))
    sae.save(model, tmp_path)
    saved = load_file(tmp_path / sae.WEIGHTS_FILE)
    assert torch.equal(saved["W_dec"], model.W_dec.detach())  # materialised for every reader
    loaded = sae.load(tmp_path)
    for name in ("candidates", "mixing", "relaxation", "W_enc", "b_enc", "b_dec"):
        assert torch.equal(getattr(loaded, name), getattr(model, name)), name
    assert torch.equal(loaded.W_dec, model.W_dec)


@pytest.mark.parametrize(
    ("hyper", "key"),
    [({"n_candidates": 4}, "n_candidates"), ({"n_candidates": 64, "candidate_pool": 32}, "pool")],
)
def test_archetypal_needs_enough_candidates(hyper, key):
    settings = sae.VARIANTS.get("archetypal").settings
    with pytest.raises(ConfigError, match=key):
        parse_settings(settings, {"n_atoms": 8, "k": 2, **hyper}, "v")


def test_archetypal_run_resumes_to_the_same_weights(tmp_path, tiny_store, monkeypatch):
    """Stopped after its checkpoint, a run resumes with the saved C, W, Λ and optimiser state
    and ends bit-identical to a run never stopped; the candidates come from the store's rows."""
    from vlmsae.training import trainer
    from vlmsae.training.checkpoint import CHECKPOINT_FILE
    from vlmsae.training.variants import Variant

    entry = {"type": "archetypal", "n_atoms": 16, "k": 3, "n_candidates": 32, "candidate_pool": 96}
    variant = Variant.from_config("ra", entry)
    settings = trainer.TrainSettings(
        steps=12, batch_size=32, warmup_steps=2, log_every=4, checkpoint_every=6
    )
    reference = trainer.train(tiny_store, variant, settings, "1-1", 0, tmp_path / "a", False)

    class Stop(Exception):
        pass

    def stop_at_step_9(point: str) -> None:
        if point == "train:step-9":
            raise Stop

    monkeypatch.setattr(trainer, "fault", stop_at_step_9)
    with pytest.raises(Stop):
        trainer.train(tiny_store, variant, settings, "1-1", 0, tmp_path / "b", False)
    assert (tmp_path / "b" / CHECKPOINT_FILE).is_file()
    monkeypatch.undo()
    resumed = trainer.train(tiny_store, variant, settings, "1-1", 0, tmp_path / "b", False)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    # C holds k-means centroids of the store's unit rows (inside the unit ball, most of them
    # strictly), not the unit rows a model built without data starts with.
    norms = reference.candidates.norm(dim=1)
    assert (norms <= 1 + 1e-6).all() and (norms < 0.99).sum() > 16
