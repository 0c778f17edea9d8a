"""Sparse autoencoder variants behind one registry, with safetensors checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.registry import VARIANTS, SAESettings, register

__all__ = [
    "VARIANTS",
    "SAESettings",
    "SparseAutoencoder",
    "available",
    "build",
    "load",
    "register",
    "save",
]

WEIGHTS_FILE, CONFIG_FILE = "sae.safetensors", "config.json"


def available() -> list[str]:
    """Names of the registered variants."""
    return VARIANTS.names()


def build(variant: str, d: int, n_atoms: int, **hyper) -> SparseAutoencoder:
    """A freshly initialised SAE of the named variant; `hyper` are its Settings fields."""
    cls = VARIANTS.get(variant).obj
    return cls(d, cls.Settings(n_atoms=n_atoms, **hyper))


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
