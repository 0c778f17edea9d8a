"""open_clip models: CLIP (OpenAI weights) and OpenCLIP (LAION-2B) through
`open_clip.create_model_and_transforms`.

`spec.checkpoint` is one of
- a pretrained tag of `spec.architecture` ("openai", "laion2b_s34b_b79k"): open_clip fetches
  the weights from the hub repo its pretrained registry names for that tag;
- a folder in open_clip's hub format (open_clip_config.json + open_clip_model.safetensors), as
  `hf download` of an open_clip repo leaves it: loaded as `local-dir:<folder>`;
- a weights file of the built-in architecture `spec.architecture`; a file does not say whether
  it was trained with QuickGELU (all OpenAI weights were), `spec.options["quick_gelu"]` does;
- "hf-hub:<org/repo>", as open_clip takes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vlmsae.errors import ConfigError, InputFileError
from vlmsae.models.base import ModelSpec
from vlmsae.models.common import (
    HubFiles,
    MissingWeightsError,
    TorchEncoder,
    hub_offline,
    image_transform,
    is_cached,
    local_checkpoint,
    missing_path,
    seeded,
)

CONFIG_FILE = "open_clip_config.json"
# What open_clip's hub download looks for when a tag names a repo but no file: safetensors first.
HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")  # what open_clip looks for in a local-dir
FILE_SUFFIXES = (*WEIGHT_SUFFIXES, ".pt", ".ckpt")  # what open_clip's `pretrained` file may be


class OpenClipEncoder(TorchEncoder):
    def __init__(self, spec: ModelSpec, model: torch.nn.Module, preprocess: Any, tokenizer: Any):
        super().__init__(spec, model)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        size = getattr(model.visual, "image_size", None)
        self.image_size = min(size) if isinstance(size, tuple | list) else size

    def media_transform(self) -> Any:
        return image_transform(self.spec, self.preprocess)

    def encode_media(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.encode_image(batch).float()

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            return self.model.encode_text(tokens).float()


def load(spec: ModelSpec) -> OpenClipEncoder:
    """Build `spec`'s model, its inference transform and its tokenizer."""
    import open_clip

    model_name, kwargs = _source(spec)
    with seeded():
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, load_weights=spec.weights == "pretrained", **kwargs
        )
    return OpenClipEncoder(spec, model, preprocess, open_clip.get_tokenizer(model_name))


def _source(spec: ModelSpec) -> tuple[str, dict[str, Any]]:
    """open_clip's model name and the keyword arguments that select the weights."""
    if spec.checkpoint.startswith("hf-hub:"):
        return spec.checkpoint, {}
    path = local_checkpoint(spec)
    if path is None and ("/" in spec.checkpoint or Path(spec.checkpoint).suffix in FILE_SUFFIXES):
        # Not hf-hub:, and no pretrained tag holds a "/" or ends like a file: a path, written
        # without "./", that is not there.
        raise missing_path(spec, spec.checkpoint, "checkpoint")
    if path is not None and path.is_dir():
        _check_folder(spec, path)
        return f"local-dir:{path}", {}
    _check_architecture(spec)
    if path is not None:
        quick_gelu = bool(spec.options.get("quick_gelu", False))
        return spec.architecture, {"pretrained": str(path), "force_quick_gelu": quick_gelu}
    return spec.architecture, _tag_kwargs(spec)


def _check_folder(spec: ModelSpec, path: Path) -> None:
    if not (path / CONFIG_FILE).is_file():
        raise ConfigError(
            f"models.{spec.name}.checkpoint",
            f"folder {path} has no {CONFIG_FILE}",
            "point it at an open_clip hub-format folder, or at a weights file together with "
            "a built-in architecture",
        )
    weights = (name for suffix in WEIGHT_SUFFIXES for name in path.glob(f"*{suffix}"))
    if spec.weights == "pretrained" and next(weights, None) is None:
        # open_clip would only warn, and go on with random weights.
        raise InputFileError(
            str(path),
            "holds an open_clip config but no weights file",
            f"add {HUB_WEIGHT_FILES[0]}, or set models.{spec.name}.weights: random",
        )


def _check_architecture(spec: ModelSpec) -> None:
    import open_clip

    if spec.architecture not in open_clip.list_models():
        raise ConfigError(
            f"models.{spec.name}.architecture",
            f"'{spec.architecture}' is not a built-in open_clip architecture",
            "use a name from open_clip.list_models(), e.g. ViT-B-32",
        )


def _tag_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """Keyword arguments for a pretrained tag, checking the weights can be had first."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.architecture, spec.checkpoint)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.architecture)
        raise ConfigError(
            f"models.{spec.name}.checkpoint",
            f"'{spec.checkpoint}' is not a pretrained tag of {spec.architecture} nor a local path",
            f"use one of {', '.join(tags)}, or an existing file or folder",
        )
    # The tag's preprocessing and activation: open_clip's built-in configs use nn.GELU, and it
    # only warns when a tag (all OpenAI ones) was trained with QuickGELU. The tag knows best,
    # whatever options.quick_gelu an entry inherited. Given here, they also hold for random
    # weights, which load no tag.
    kwargs: dict[str, Any] = {
        "force_quick_gelu": cfg.get("quick_gelu", False),
        "image_mean": cfg["mean"],
        "image_std": cfg["std"],
        "image_interpolation": cfg["interpolation"],
        "image_resize_mode": cfg["resize_mode"],
    }
    if spec.weights == "pretrained":
        _check_tag_weights(spec, cfg)
        kwargs["pretrained"] = spec.checkpoint
    return kwargs


def _check_tag_weights(spec: ModelSpec, cfg: dict[str, Any]) -> None:
    """Raise MissingWeightsError when the hub is offline and the tag's file is not cached."""
    repo, filename = os.path.split(cfg.get("hf_hub", ""))
    if not repo or not hub_offline():
        return  # open_clip downloads it (or, for the rare URL-only tags, fetches the URL)
    candidates = (filename,) if filename else HUB_WEIGHT_FILES
    if not any(is_cached(repo, name) for name in candidates):
        what = f"weights for open_clip {spec.architecture} '{spec.checkpoint}'"
        local = f"checkpoint to a local weights file ({candidates[0]}) or open_clip folder"
        raise MissingWeightsError(spec, [HubFiles(what, repo, candidates[:1], local)])
