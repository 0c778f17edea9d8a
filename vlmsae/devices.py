"""The torch device a config value names (below the trainer and the embedder, which use it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmsae.errors import ConfigError

# torch is imported inside the functions: the Snakefile imports this module at every start.
if TYPE_CHECKING:
    import torch


def resolve_device(device: str, key: str) -> torch.device:
    """The torch device of config value `device` ("auto", "cpu", "cuda", "cuda:N") at `key`."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(key, f"'{device}' but no CUDA device is visible", "set it to 'auto'")
    return torch.device(device)


def check_local_devices(
    config: dict, sections: set[str], cuda_available: bool | None = None
) -> None:
    """Raise a ConfigError when a job that will run on this machine asks for what it lacks: a
    CUDA `device` in config section `embed` or `train` (those in `sections`), or half
    `embed.precision` without CUDA. `cuda_available`: torch's answer unless given."""
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    for section in sorted(sections):
        device = str(config[section].get("device", "auto"))
        if device.startswith("cuda") and not cuda_available:
            raise ConfigError(
                f"{section}.device",
                f"'{device}' but no CUDA device is visible on this machine, which runs the "
                f"{section} jobs",
                "set it to 'auto', or submit the jobs to GPU nodes with a cluster profile",
            )
    precision = config["embed"].get("precision", "auto")
    if "embed" in sections and precision in ("bf16", "fp16") and not cuda_available:
        raise ConfigError(
            "embed.precision",
            f"'{precision}' needs CUDA, and no CUDA device is visible on this machine",
            "set it to 'auto' or 'fp32'",
        )
