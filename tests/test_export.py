"""vlmsae.export: the SAELens and sparsify layouts, read back by the libraries where installed."""

import json

import pytest
import torch
from safetensors.torch import load_file

from vlmsae import sae
from vlmsae.errors import InputFileError, VlmsaeError
from vlmsae.export import SAELENS_WEIGHTS, SPARSIFY_WEIGHTS, export
from vlmsae.models.compat import ensure_torchvision
from vlmsae.sae.archetypal import project_rows_to_simplex

D, P, K = 16, 64, 4
STORE = {"path": "results/stores/synthetic/tiny-clip.zarr", "dataset": "synthetic", "model": "tiny"}
NOT_INSTALLED = "not installed (pip install -c constraints.txt -e '.[export]'): layout only checked"

# variant, hyper-parameters, SAELens architecture
SAELENS_CASES = [
    ("topk", {"k": K}, "topk"),
    ("archetypal", {"k": K, "n_candidates": 2 * P, "candidate_pool": 2 * P}, "topk"),
    ("relu", {}, "standard"),
    ("jumprelu", {}, "jumprelu"),
    ("batchtopk", {"k": K}, "jumprelu"),
    ("matryoshka", {"k": K}, "jumprelu"),
    ("mp", {"k": K}, "matching_pursuit"),
]
SAELENS_IDS = [case[0] for case in SAELENS_CASES]
SPARSIFY_CASES = [case[:2] for case in SAELENS_CASES if case[0] in ("topk", "archetypal")]


def _run(tmp_path, variant: str, trained: bool = True, **hyper):
    """A run folder as training leaves it; `trained`: parameters away from their initial values."""
    torch.manual_seed(0)
    model = sae.build(variant, d=D, n_atoms=P, **hyper)
    if trained:
        with torch.no_grad():
            if model.has_encoder:
                # Untied from the decoder, with biases and thresholds that decide some codes.
                model.W_enc.copy_(torch.randn(P, D) / D**0.5)
                model.b_enc.copy_(0.3 * torch.randn(P))
            model.b_dec.copy_(0.5 * torch.randn_like(model.b_dec))
            if variant == "jumprelu":
                model.log_threshold.copy_((0.05 + 0.5 * torch.rand(P)).log())
            if variant in ("batchtopk", "matryoshka"):
                model.threshold.fill_(0.3)
            if variant == "archetypal":
                # Atoms that mix candidates and leave their hull.
                model.mixing.copy_(project_rows_to_simplex(torch.randn(P, 2 * P)))
                model.relaxation.copy_(0.1 * torch.randn(P, D))
    run = tmp_path / "run"
    sae.save(model, run, extra={"store": STORE})
    return run, model.eval()


def _inputs(model) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(8, D) + model.b_dec.detach()


def _ours(model, x) -> tuple[torch.Tensor, torch.Tensor]:
    """(dense codes, reconstruction) of vlmsae's model in eval mode."""
    with torch.no_grad():
        codes, reconstruction = model(x)
    return codes.dense(), reconstruction


# ---- layouts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("variant", "hyper", "architecture"), SAELENS_CASES, ids=SAELENS_IDS)
def test_saelens_layout(tmp_path, variant, hyper, architecture):
    run, model = _run(tmp_path, variant, **hyper)
    out = export(run, "saelens", tmp_path / "out")
    assert sorted(path.name for path in out.iterdir()) == ["cfg.json", SAELENS_WEIGHTS]
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == architecture
    assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"]) == (D, P, "float32")
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6
    assert cfg["metadata"]["model_name"] == STORE["model"]
    tensors = load_file(out / SAELENS_WEIGHTS)
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if architecture == "matching_pursuit":
        assert shapes == {"W_dec": (P, D), "b_dec": (D,)}
        assert (cfg["max_iterations"], cfg["residual_threshold"]) == (K, 0.0)
        assert cfg["stop_on_duplicate_support"] is False
        return
    expected = {"W_enc": (D, P), "W_dec": (P, D), "b_enc": (P,), "b_dec": (D,)}
    if architecture == "jumprelu":
        expected["threshold"] = (P,)
        torch.testing.assert_close(tensors["threshold"], model.threshold.detach().expand(P))
    assert shapes == expected
    torch.testing.assert_close(tensors["W_enc"], model.W_enc.detach().T)
    # The decoder as the model uses it (archetypal: materialised from W, C and Λ), unit rows.
    torch.testing.assert_close(tensors["W_dec"], model.W_dec.detach())
    if architecture == "topk":
        assert cfg["k"] == K and cfg["rescale_acts_by_decoder_norm"] is False
        torch.testing.assert_close(tensors["W_dec"].norm(dim=1), torch.ones(P))


@pytest.mark.parametrize(("variant", "hyper"), SPARSIFY_CASES, ids=[c[0] for c in SPARSIFY_CASES])
def test_sparsify_layout(tmp_path, variant, hyper):
    run, model = _run(tmp_path, variant, **hyper)
    out = export(run, "sparsify", tmp_path / "out")
    assert sorted(path.name for path in out.iterdir()) == ["cfg.json", SPARSIFY_WEIGHTS]
    cfg = json.loads((out / "cfg.json").read_text())
    assert {key: cfg[key] for key in ("activation", "k", "num_latents", "d_in")} == {
        "activation": "topk",
        "k": K,
        "num_latents": P,
        "d_in": D,
    }
    assert cfg["transcode"] is False and cfg["skip_connection"] is False
    tensors = load_file(out / SPARSIFY_WEIGHTS)
    assert {name: tuple(tensor.shape) for name, tensor in tensors.items()} == {
        "encoder.weight": (P, D),
        "encoder.bias": (P,),
        "W_dec": (P, D),
        "b_dec": (D,),
    }
    torch.testing.assert_close(tensors["encoder.weight"], model.W_enc.detach())
    torch.testing.assert_close(tensors["W_dec"], model.W_dec.detach())


# ---- the libraries load the export and compute what vlmsae computes ----------------------------
@pytest.fixture(scope="module")
def sae_lens():
    ensure_torchvision()  # sae_lens imports transformers, which imports torchvision
    return pytest.importorskip("sae_lens", reason=f"sae-lens {NOT_INSTALLED}")


@pytest.fixture(scope="module")
def sparsify():
    ensure_torchvision()
    return pytest.importorskip("sparsify", reason=f"eai-sparsify {NOT_INSTALLED}")


@pytest.mark.parametrize(("variant", "hyper", "architecture"), SAELENS_CASES, ids=SAELENS_IDS)
def test_saelens_loads_the_same_sae(tmp_path, sae_lens, variant, hyper, architecture):
    run, model = _run(tmp_path, variant, **hyper)
    loaded = sae_lens.SAE.load_from_disk(export(run, "saelens", tmp_path / "out"))
    assert loaded.cfg.architecture() == architecture
    x = _inputs(model)
    codes, reconstruction = _ours(model, x)
    with torch.no_grad():
        their_codes = loaded.encode(x)
        theirs = loaded.decode(their_codes)
    assert int((codes != 0).sum()) > 0
    torch.testing.assert_close(their_codes, codes)
    torch.testing.assert_close(theirs, reconstruction)


@pytest.mark.parametrize(("variant", "hyper"), SPARSIFY_CASES, ids=[c[0] for c in SPARSIFY_CASES])
def test_sparsify_loads_the_same_sae(tmp_path, sparsify, variant, hyper):
    run, model = _run(tmp_path, variant, **hyper)
    loaded = sparsify.SparseCoder.load_from_disk(export(run, "sparsify", tmp_path / "out"))
    x = _inputs(model)
    codes, reconstruction = _ours(model, x)
    with torch.no_grad():
        values, indices, _ = loaded.encode(x)
        theirs = loaded.decode(values, indices)
    torch.testing.assert_close(torch.zeros_like(codes).scatter(1, indices, values), codes)
    torch.testing.assert_close(theirs, reconstruction)


# ---- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "variant", "hyper", "trained", "reason"),
    [
        ("saelens", "semi_nmf", {}, True, "no semi_nmf architecture"),
        ("saelens", "mp", {"k": K, "nonnegative": False}, True, "signed"),
        ("saelens", "topk", {"k": K, "modality_biases": True}, True, "modality_biases"),
        ("saelens", "batchtopk", {"k": K}, False, "never estimated"),
        ("sparsify", "relu", {}, True, "no relu architecture"),
        ("sparsify", "mp", {"k": K}, True, "no mp architecture"),
        ("sparsify", "topk", {"k": K, "modality_biases": True}, True, "modality_biases"),
    ],
    ids=[
        "saelens-semi_nmf",
        "saelens-signed-mp",
        "saelens-modality-biases",
        "saelens-untrained-batchtopk",
        "sparsify-relu",
        "sparsify-mp",
        "sparsify-modality-biases",
    ],
)
def test_unrepresentable_sae_is_refused(tmp_path, fmt, variant, hyper, trained, reason):
    run, _ = _run(tmp_path, variant, trained, **hyper)
    with pytest.raises(VlmsaeError) as raised:
        export(run, fmt, tmp_path / "out")
    message = str(raised.value)
    assert "\n" not in message
    assert f"the {variant} SAE" in message and reason in message and "supported: " in message
    assert not (tmp_path / "out").exists()


def test_unknown_format_and_missing_run_are_one_line_errors(tmp_path):
    run, _ = _run(tmp_path, "topk", k=K)
    with pytest.raises(VlmsaeError, match="unknown export format 'onnx'; supported: saelens"):
        export(run, "onnx", tmp_path / "out")
    with pytest.raises(InputFileError, match="sae.safetensors: missing"):
        export(tmp_path / "nowhere", "saelens", tmp_path / "out")
