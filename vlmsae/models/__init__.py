"""The model registry: config names → how to load the model, and `load` itself.

Each family (the library that loads the model) has one module with a `load(spec) -> Encoder`:
open_clip_family, transformers_family, laion_clap_family, msclap_family. Loading any entry whose
weights are neither a local path nor in the Hugging Face cache while the hub is offline raises
`MissingWeightsError`, one line naming the hub files and the command that fetches them.

Dimensions: open_clip's `embed_dim` in the model configs its wheel ships (ViT-B-32, ViT-B-16:
512; ViT-L-14: 768; RN50: 1024). SigLIP/SigLIP2 base: no projection, the pooled width 768 of
their hub config.json (SiglipVisionConfig's default hidden size, text hidden_size 768). AIMv2
LiT: projection_dim 768 in apple/aimv2-large-patch14-224-lit's config.json. laion-clap: the
joint_embed_shape 512 of its CLAP class. laion/larger_clap_music: projection_dim 512 (same
config as laion/larger_clap_general). msclap (clap-ms): d_proj 1024 in the config_2023.yml its
wheel ships.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch

from vlmsae.errors import ConfigError
from vlmsae.models.base import PREPROCESSING, WEIGHTS, Encoder, ModelSpec
from vlmsae.models.common import MissingWeightsError

__all__ = ["REGISTRY", "MissingWeightsError", "available", "load", "resolve"]

FAMILIES = {
    "open_clip": "vlmsae.models.open_clip_family",
    "transformers": "vlmsae.models.transformers_family",
    "laion_clap": "vlmsae.models.laion_clap_family",
    "msclap": "vlmsae.models.msclap_family",
}
MODALITIES = ("image", "audio")
LAION_CLAP_MUSIC = "lukewys/laion_clap/music_audioset_epoch_15_esc_90.14.pt"


def _openai_clip(name: str, architecture: str, dim: int) -> ModelSpec:
    # Trained with QuickGELU: the "openai" tag says so, and options.quick_gelu keeps saying it
    # when an entry replaces the tag by a local weights file.
    options = {"quick_gelu": True}
    return ModelSpec(name, "open_clip", "openai", dim, architecture=architecture, options=options)


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _openai_clip("clip-vit-b-32", "ViT-B-32", 512),
        _openai_clip("clip-vit-b-16", "ViT-B-16", 512),
        _openai_clip("clip-vit-l-14", "ViT-L-14", 768),
        _openai_clip("clip-rn50", "RN50", 1024),
        ModelSpec(
            "openclip-vit-b-32", "open_clip", "laion2b_s34b_b79k", 512, architecture="ViT-B-32"
        ),
        ModelSpec(
            "openclip-vit-l-14", "open_clip", "laion2b_s32b_b82k", 768, architecture="ViT-L-14"
        ),
        ModelSpec("siglip", "transformers", "google/siglip-base-patch16-224", 768),
        # SigLIP2 was trained on lowercased captions; the fixed-resolution checkpoint loads as a
        # SiglipModel with a Gemma tokenizer, which does not lowercase by itself.
        ModelSpec(
            "siglip2",
            "transformers",
            "google/siglip2-base-patch16-224",
            768,
            options={"lowercase_text": True},
        ),
        ModelSpec("aimv2", "transformers", "apple/aimv2-large-patch14-224-lit", 768),
        ModelSpec(
            "clap",
            "laion_clap",
            LAION_CLAP_MUSIC,
            512,
            modality="audio",
            architecture="HTSAT-base",
            options={"text_model": "roberta-base"},
        ),
        ModelSpec("clap-hf", "transformers", "laion/larger_clap_music", 512, modality="audio"),
        # Microsoft CLAP, msclap's default version (the group-sparse paper's audio MMS reference).
        ModelSpec(
            "clap-ms",
            "msclap",
            "microsoft/msclap/CLAP_weights_2023.pth",
            1024,
            modality="audio",
            architecture="2023",
        ),
    )
}

_OVERRIDABLE = {field.name for field in dataclasses.fields(ModelSpec)} - {"name"}
_REQUIRED = ("family", "checkpoint", "dim")


def available() -> list[str]:
    """The registry's model names."""
    return sorted(REGISTRY)


def resolve(name: str, overrides: dict[str, Any] | None = None) -> ModelSpec:
    """The spec of model `name`, given its config entry `models.<name>` (None when absent).

    The entry either overrides fields of the registry entry `name` (checkpoint, preprocessing,
    weights...), or builds on another one with `base: <registry name>`, or is a whole entry with
    family, checkpoint, dim (and modality, architecture, options). `options` are merged into the
    base entry's options.
    """
    entry = dict(overrides or {})
    if "checkpoint" in entry:
        entry["checkpoint"] = str(entry["checkpoint"])  # YAML or callers may give a Path
    base_name = entry.pop("base", name if name in REGISTRY else None)
    _check_keys(name, entry)
    if base_name is None:
        missing = [key for key in _REQUIRED if key not in entry]
        if missing:
            raise ConfigError(
                f"models.{name}",
                f"unknown model '{name}' (available: {', '.join(available())})",
                f"use one of these names, or give models.{name} a 'base: <name>' or the keys "
                f"{', '.join(missing)}",
            )
        spec = ModelSpec(name=name, **entry)
    elif base_name not in REGISTRY:
        raise ConfigError(
            f"models.{name}.base",
            f"unknown model '{base_name}'",
            f"use one of: {', '.join(available())}",
        )
    else:
        base = REGISTRY[base_name]
        entry["options"] = {**base.options, **(entry.get("options") or {})}
        spec = dataclasses.replace(base, name=name, **entry)
    _check_values(spec)
    return spec


def load(spec: ModelSpec, device: torch.device | str = "cpu") -> Encoder:
    """Load `spec` with its family's library, on `device`, in eval mode, fp32 weights."""
    module = importlib.import_module(FAMILIES[spec.family])
    encoder = module.load(spec).to(device)
    _check_dim(encoder)
    return encoder


def _check_dim(encoder: Encoder) -> None:
    """A wrong `dim` in a config entry would otherwise surface as a shape error in the store."""
    spec = encoder.spec
    dim = encoder.encode_text(["a"]).shape[-1]
    if dim != spec.dim:
        raise ConfigError(
            f"models.{spec.name}.dim",
            f"the model gives {dim}-dimensional embeddings, the entry says {spec.dim}",
            f"set it to {dim}",
        )


def _check_keys(name: str, entry: dict[str, Any]) -> None:
    unknown = sorted(set(entry) - _OVERRIDABLE)
    if unknown:
        raise ConfigError(
            f"models.{name}.{unknown[0]}",
            "not a model setting",
            f"use only base and {', '.join(sorted(_OVERRIDABLE))}",
        )


def _check_values(spec: ModelSpec) -> None:
    choices = {
        "family": tuple(FAMILIES),
        "modality": MODALITIES,
        "preprocessing": PREPROCESSING,
        "weights": WEIGHTS,
    }
    for key, allowed in choices.items():
        value = getattr(spec, key)
        if value not in allowed:
            raise ConfigError(
                f"models.{spec.name}.{key}",
                f"'{value}' is not one of {', '.join(allowed)}",
                f"set it to one of {', '.join(allowed)}",
            )
    if not isinstance(spec.dim, int) or spec.dim <= 0:
        raise ConfigError(
            f"models.{spec.name}.dim", f"'{spec.dim}' is not a positive integer", "fix the value"
        )
    if spec.modality == "audio" and spec.preprocessing == "linear-structure":
        raise ConfigError(
            f"models.{spec.name}.preprocessing",
            "'linear-structure' is an image crop and this is an audio model",
            "use preprocessing: model",
        )
