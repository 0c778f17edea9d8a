"""What the embedding stage needs from a model, whatever library it comes from.

An `Encoder` maps decoded media (PIL images, or mono float32 waveforms at `sample_rate`) and
caption strings to un-normalised embeddings in one joint space. Preprocessing is split off into
`media_transform`, a small picklable callable that DataLoader workers run, so the model itself is
never copied into the workers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

PREPROCESSING = ("model", "linear-structure")
WEIGHTS = ("pretrained", "random")


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry (or a config `models.<name>` entry built on one).

    family: the loading library: "open_clip", "transformers", "laion_clap" or "msclap"
    checkpoint: what the library loads: an open_clip pretrained tag or file, a Hugging Face model
        id or a local folder, a laion-clap or msclap checkpoint file or id
    architecture: open_clip model name (ViT-B-32...), laion-clap audio model (HTSAT-base) or
        msclap version (2023); empty for transformers (the checkpoint's config says)
    dim: joint embedding dimension
    modality: "image" or "audio" (the non-text modality)
    preprocessing: "model" (the checkpoint's own) or "linear-structure" (resize the short side to
        256, centre-crop 224, then the model's normalisation)
    weights: "pretrained" (load the checkpoint) or "random" (same architecture, random init: for
        tests and throughput benchmarks)
    options: family-specific extras (e.g. the laion-clap text model folder)
    """

    name: str
    family: str
    checkpoint: str
    dim: int
    modality: str = "image"
    architecture: str = ""
    preprocessing: str = "model"
    weights: str = "pretrained"
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict:
        """What the store's attrs record about the model."""
        return {
            "model_family": self.family,
            "checkpoint": self.checkpoint,
            "architecture": self.architecture,
            "preprocessing": self.preprocessing,
            "weights": self.weights,
        }


MediaTransform = Callable[[Image.Image | np.ndarray], torch.Tensor | dict[str, torch.Tensor]]


class Encoder(ABC):
    """A loaded model. `encode_*` return [b, dim] float tensors, not normalised."""

    spec: ModelSpec
    device: torch.device = torch.device("cpu")
    sample_rate: int | None = None  # audio models: the rate waveforms must have
    # Image models: the short side their preprocessing resizes to (JPEG draft decoding keeps at
    # least this many pixels); None when unknown.
    image_size: int | None = None

    @abstractmethod
    def media_transform(self) -> MediaTransform:
        """Decoded item → model input (a tensor, or a dict of tensors); picklable, runs in
        DataLoader workers. Batches are collated with torch's default_collate."""

    @abstractmethod
    def encode_media(self, batch: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Collated model inputs (already on `self.device`) → [b, dim] embeddings."""

    @abstractmethod
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Caption strings → [b, dim] embeddings (tokenisation included)."""

    @abstractmethod
    def to(self, device: torch.device | str) -> Encoder:
        """Move the model to `device` (in eval mode) and return self."""
