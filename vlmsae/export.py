"""Export a trained SAE in the on-disk layout of SAELens or EleutherAI's sparsify.

`export(run_dir, fmt, out_dir)` reads a run folder written by `vlmsae.sae.save` (sae.safetensors
and config.json) and writes `out_dir` so that the other library loads it as it is:
`sae_lens.SAE.load_from_disk(out_dir)` or `sparsify.SparseCoder.load_from_disk(out_dir)`.
Each exported SAE computes the same codes and reconstructions as ours in eval mode.

Which variants map to what (anything else raises VlmsaeError):

    vlmsae variant          saelens architecture                          sparsify
    topk                    topk (k)                                      activation topk (k)
    archetypal              topk (k), W_dec the materialised unit atoms   activation topk (k)
    relu                    standard                                      -
    jumprelu                jumprelu, threshold = exp(log_threshold)      -
    batchtopk, matryoshka   jumprelu, threshold = θ for every atom        -
    mp, non-negative        matching_pursuit, k iterations, no early stop -
    mp signed, semi_nmf     -                                             -

BatchTopK and Matryoshka export their inference rule, ReLU(pre)·[pre > θ] (SAELens saves its own
BatchTopK SAEs the same way). The archetypal SAE exports its TopK encoder and its decoder
materialised, W_dec = rows of W·C + Λ scaled to unit norm: the same codes and reconstructions, but
W, C and Λ stay behind (neither library has them), so training it further there would not keep
the atoms near the data's hull. SAELens and sparsify apply the ReLU before or after the top-k where
ours keeps the k largest positive pre-activations: the codes are the same. Neither library has
per-modality pre-biases: runs with `modality_biases` (b_dec [2, d]) are refused.

Layouts, as read by sae-lens 6.54.12 and eai-sparsify 1.3.3 (the `export` extra). Ours are
W_enc [p, d], W_dec [p, d], b_enc [p], b_dec [d] (p atoms, d input dimensions).
- saelens: cfg.json (architecture, d_in, d_sae, dtype, device, apply_b_dec_to_input,
  normalize_activations, reshape_activations, metadata, and the architecture's own fields) and
  sae_weights.safetensors with W_enc [d, p] (ours transposed), W_dec [p, d], b_enc [p],
  b_dec [d], and threshold [p] for jumprelu; matching_pursuit holds W_dec and b_dec only.
- sparsify: cfg.json (the SparseCoderConfig fields and d_in) and sae.safetensors with
  encoder.weight [p, d], encoder.bias [p], W_dec [p, d], b_dec [d].
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from vlmsae import sae
from vlmsae.errors import InputFileError, VlmsaeError
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.mp import MatchingPursuitSettings

FORMATS = ("saelens", "sparsify")
CONFIG_FILE = "cfg.json"  # both libraries' name
SAELENS_WEIGHTS, SPARSIFY_WEIGHTS = "sae_weights.safetensors", "sae.safetensors"
# The SAELens version whose layout is written: configs from before 6.0 are read differently.
SAELENS_VERSION = "6.54.12"

SAELENS_ARCHITECTURES = {
    "topk": "topk",
    "archetypal": "topk",
    "relu": "standard",
    "jumprelu": "jumprelu",
    "batchtopk": "jumprelu",
    "matryoshka": "jumprelu",
    "mp": "matching_pursuit",
}
SUPPORTED = {
    "saelens": "topk, archetypal, relu, jumprelu, batchtopk, matryoshka and non-negative mp",
    "sparsify": "topk and archetypal",
}
# Variants sparsify holds: a TopK encoder and unit-norm decoder rows.
SPARSIFY_VARIANTS = ("topk", "archetypal")

Exported = tuple[dict, str, dict[str, torch.Tensor]]  # (cfg.json, weights file name, tensors)


def export(run_dir: str | Path, fmt: str, out_dir: str | Path) -> Path:
    """Write the SAE trained in `run_dir` to `out_dir` in `fmt` ("saelens" or "sparsify").

    Returns `out_dir`. Raises VlmsaeError for an unknown format, a folder without a trained SAE,
    or an SAE that the format cannot represent.
    """
    if fmt not in FORMATS:
        raise VlmsaeError(f"unknown export format '{fmt}'; supported: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    model = sae.load(run_dir)
    problem = _unrepresentable(model, fmt)
    if problem is not None:
        raise VlmsaeError(
            f"cannot export the {model.variant} SAE of {run_dir} to {fmt}: {problem}; "
            f"supported: {SUPPORTED[fmt]}, with one b_dec [d]"
        )
    cfg, weights_file, tensors = _saelens(model, config) if fmt == "saelens" else _sparsify(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().contiguous() for name, tensor in tensors.items()}
    save_file(weights, out_dir / weights_file)
    (out_dir / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return out_dir


def _run_config(run_dir: Path) -> dict:
    """The run's config.json, once both files of a finished training are there."""
    for name in (sae.WEIGHTS_FILE, sae.CONFIG_FILE):
        if not (run_dir / name).is_file():
            raise InputFileError(
                str(run_dir / name),
                "missing: this is not the folder of a finished training run",
                "pass results/sae/<dataset>/<model>/<variant>/<mixture>/seed<n> once trained",
            )
    return json.loads((run_dir / sae.CONFIG_FILE).read_text())


def _unrepresentable(model: SparseAutoencoder, fmt: str) -> str | None:
    """Why `fmt` cannot hold this SAE, or None when it can."""
    variant, settings = model.variant, model.settings
    if settings.modality_biases:
        return "it has per-modality pre-biases b_dec [2, d] (modality_biases)"
    if variant not in (SAELENS_ARCHITECTURES if fmt == "saelens" else SPARSIFY_VARIANTS):
        return f"{fmt} has no {variant} architecture"
    if isinstance(settings, MatchingPursuitSettings) and not settings.nonnegative:
        return "its matching pursuit is signed"
    if variant in ("batchtopk", "matryoshka") and bool(torch.isnan(model.threshold)):
        return "its inference threshold θ was never estimated (train it first)"
    return None


def _saelens(model: SparseAutoencoder, config: dict) -> Exported:
    architecture = SAELENS_ARCHITECTURES[model.variant]
    cfg = {
        "architecture": architecture,
        "d_in": model.d,
        "d_sae": model.n_atoms,
        "dtype": str(model.W_dec.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": _saelens_metadata(model, config),
    }
    tensors = {"W_dec": model.W_dec, "b_dec": model.b_dec}
    if architecture == "matching_pursuit":
        # No early stop: exactly k greedy steps, as ours.
        cfg.update(residual_threshold=0.0, max_iterations=model.k, stop_on_duplicate_support=False)
        return cfg, SAELENS_WEIGHTS, tensors
    tensors.update(W_enc=model.W_enc.T, b_enc=model.b_enc)
    if architecture == "topk":
        cfg.update(k=model.k, rescale_acts_by_decoder_norm=False)
    elif architecture == "jumprelu":
        tensors["threshold"] = _jumprelu_threshold(model)
    return cfg, SAELENS_WEIGHTS, tensors


def _saelens_metadata(model: SparseAutoencoder, config: dict) -> dict:
    store = config.get("store", {})
    return {
        "sae_lens_version": SAELENS_VERSION,
        "sae_lens_training_version": SAELENS_VERSION,
        "model_name": store.get("model"),
        "dataset_path": store.get("dataset"),
        "vlmsae_variant": model.variant,
    }


def _jumprelu_threshold(model: SparseAutoencoder) -> torch.Tensor:
    """[p] θ of SAELens' JumpReLU: ours (jumprelu) or BatchTopK's inference threshold."""
    return model.threshold if model.variant == "jumprelu" else model.threshold.expand(model.n_atoms)


def _sparsify(model: SparseAutoencoder) -> Exported:
    cfg = {
        "activation": "topk",
        "k": model.k,
        "num_latents": model.n_atoms,
        # Read only when num_latents is 0; written as sparsify writes every field.
        "expansion_factor": max(1, model.n_atoms // model.d),
        "normalize_decoder": True,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": model.d,
    }
    tensors = {
        "encoder.weight": model.W_enc,
        "encoder.bias": model.b_enc,
        "W_dec": model.W_dec,
        "b_dec": model.b_dec,
    }
    return cfg, SPARSIFY_WEIGHTS, tensors
