"""Sparse autoencoder variants behind one registry, with safetensors checkpoints."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

# Importing a variant's module registers it.
from vlmsae.sae import batchtopk, jumprelu, matryoshka, mp, relu, semi_nmf, topk  # noqa: F401
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.registry import VARIANTS

WEIGHTS_FILE, CONFIG_FILE = "sae.safetensors", "config.json"


def available() -> list[str]:
    """Names of the registered variants."""
    return sorted(VARIANTS)


def hyper_parameters(variant: str) -> dict[str, bool]:
    """The keyword hyper-parameters a variant takes, each mapped to whether it is required."""
    taken = {}
    for cls in (VARIANTS[variant], SparseAutoencoder):
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name in ("self", "d", "n_atoms") or parameter.kind is parameter.VAR_KEYWORD:
                continue
            taken.setdefault(name, parameter.default is inspect.Parameter.empty)
    return taken


def build(variant: str, d: int, n_atoms: int, **hyper) -> SparseAutoencoder:
    """A freshly initialised SAE of the named variant."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown SAE variant '{variant}'; available: {', '.join(available())}")
    return VARIANTS[variant](d=d, n_atoms=n_atoms, **hyper)


def save(model: SparseAutoencoder, directory: str | Path, extra: dict | None = None) -> None:
    """Write sae.safetensors (weights and buffers) and config.json (how to rebuild it)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    save_file(state, directory / WEIGHTS_FILE)
    config = {"sae": model.config(), **(extra or {})}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))


def load(directory: str | Path, device: str = "cpu") -> SparseAutoencoder:
    """Rebuild an SAE saved by `save`, in eval mode."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())["sae"]
    model = build(**config)
    model.load_state_dict(load_file(directory / WEIGHTS_FILE, device=device))
    return model.to(device).eval()
