"""The torch device a config value names (below the trainer and the embedder, which use it)."""

from __future__ import annotations

import torch

from vlmsae.errors import ConfigError


def resolve_device(device: str, key: str) -> torch.device:
    """The torch device of config value `device` ("auto", "cpu", "cuda", "cuda:N") at `key`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(key, f"'{device}' but no CUDA device is visible", "set it to 'auto'")
    return torch.device(device)
