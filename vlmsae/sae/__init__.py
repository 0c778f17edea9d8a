"""Sparse autoencoder variants behind one registry, with safetensors checkpoints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vlmsae.errors import DamagedOutputError
from vlmsae.faults import fault
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.variant_registry import VARIANTS, SAESettings, register
from vlmsae.stores.manifest import MANIFEST_FILE, verify_folder, write_folder_manifest

__all__ = [
    "VARIANTS",
    "SAESettings",
    "SparseAutoencoder",
    "available",
    "build",
    "build_from_settings",
    "load",
    "register",
    "save",
]

WEIGHTS_FILE, CONFIG_FILE = "sae.safetensors", "config.json"


def available() -> list[str]:
    """Names of the registered variants."""
    return VARIANTS.names()


def build_from_settings(variant: str, d: int, settings: SAESettings) -> SparseAutoencoder:
    """A freshly initialised SAE of the named variant from its own Settings instance (a
    `vlmsae.training.variants.Variant`'s `settings`)."""
    cls = VARIANTS.get(variant).obj
    if not isinstance(settings, cls.Settings):
        raise TypeError(
            f"a {variant} SAE takes {cls.Settings.__name__}, not {type(settings).__name__}"
        )
    return cls(d, settings)


def build(variant: str, d: int, n_atoms: int, **hyper) -> SparseAutoencoder:
    """A freshly initialised SAE of the named variant; `hyper` are its Settings fields (the
    keyword form of `build_from_settings`, as config.json's `sae` section stores them)."""
    return build_from_settings(variant, d, VARIANTS.get(variant).settings(n_atoms=n_atoms, **hyper))


def save(
    model: SparseAutoencoder,
    directory: str | Path,
    extra: dict | None = None,
    with_files: Sequence[str] = (),
) -> None:
    """Write sae.safetensors (weights and buffers), config.json (how to rebuild it) and last the
    folder's manifest.json (vlmsae.stores.manifest), which also covers the folder's files
    `with_files` (the trainer's train_log.csv)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    save_file(state, directory / WEIGHTS_FILE)
    fault("sae:weights-written")
    config = {"sae": model.config(), **(extra or {})}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    fault("sae:config-written")
    write_folder_manifest(directory, [WEIGHTS_FILE, CONFIG_FILE, *with_files])


def load(
    directory: str | Path, device: str = "cpu", require_manifest: bool = False
) -> SparseAutoencoder:
    """Rebuild an SAE saved by `save`, in eval mode, after checking the folder against its
    manifest (required with `require_manifest`, as the workflow's rules ask). Raises
    DamagedOutputError, naming the file and the rule `train`, for a damaged folder."""
    directory = Path(directory)
    if require_manifest or (directory / MANIFEST_FILE).is_file():
        verify_folder(directory, "train")
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())["sae"]
        model = build(**config)
        model.load_state_dict(load_file(directory / WEIGHTS_FILE, device=device))
    except FileNotFoundError as error:
        raise DamagedOutputError(str(error.filename), "not found", "train") from error
    except (OSError, ValueError, KeyError, TypeError, SafetensorError, RuntimeError) as error:
        raise DamagedOutputError(
            str(directory), f"unreadable SAE folder ({type(error).__name__})", "train"
        ) from error
    return model.to(device).eval()
