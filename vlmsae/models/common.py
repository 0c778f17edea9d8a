"""What the model families share: locating weights, the missing-weights error, the
linear-structure crop, and the torch bookkeeping of an `Encoder`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vlmsae.errors import ConfigError, InputFileError, VlmsaeError
from vlmsae.models.base import Encoder, ModelSpec
from vlmsae.models.compat import ensure_torchvision

# Before any torchvision import, here or in a worker that unpickles a transform (see
# ImageTransform).
ensure_torchvision()

LINEAR_STRUCTURE_RESIZE = 256
LINEAR_STRUCTURE_CROP = 224
RANDOM_INIT_SEED = 0
_TRUE = ("1", "on", "yes", "true")


@dataclass(frozen=True)
class HubFiles:
    """Files a model needs from one hub repo: what they are, which, and the config key that can
    point at a local copy instead. No files: the whole repo."""

    what: str
    repo: str
    files: tuple[str, ...]
    local: str

    @property
    def download(self) -> str:
        return " ".join([self.repo, *self.files])


class MissingWeightsError(VlmsaeError):
    """A checkpoint is neither a local path nor in the Hugging Face cache, and the hub is
    offline. The message names the model, the hub files and the commands that fetch them."""

    def __init__(self, spec: ModelSpec, missing: Sequence[HubFiles]):
        from huggingface_hub import constants

        what = " and ".join(need.what for need in missing)
        hf = " and ".join(f"`hf download {need.download}`" for need in missing)
        cli = " and ".join(f"`huggingface-cli download {need.download}`" for need in missing)
        local = " and ".join(f"models.{spec.name}.{need.local}" for need in missing)
        super().__init__(
            f"model '{spec.name}': {what} are not in the Hugging Face cache "
            f"(HF_HOME={constants.HF_HOME}) and the hub is offline; fix: on a machine with "
            f"internet run {hf} into the same HF_HOME (or {cli}), or set {local}"
        )


def hub_offline() -> bool:
    """Whether hub downloads are switched off (read now: the variables may be set after import)."""
    from huggingface_hub import constants

    flags = (
        os.environ.get(name, "").lower() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return constants.HF_HUB_OFFLINE or any(flag in _TRUE for flag in flags)


def is_cached(repo: str, filename: str) -> bool:
    """Whether the Hugging Face cache holds `filename` of model repo `repo` (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename), str)


def local_checkpoint(spec: ModelSpec) -> Path | None:
    """The checkpoint as a local file or folder, or None when it names a hub id or tag."""
    return local_path(spec, spec.checkpoint, "checkpoint")


def local_path(spec: ModelSpec, value: str, key: str) -> Path | None:
    """`value` (the entry's `key`) as an existing local path, or None when it is a hub id.

    A value written as a path ("/...", "./...", "~/...") that does not exist is a user error,
    not a hub id: say so instead of looking it up on the hub.
    """
    path = Path(value).expanduser()
    if path.exists():
        return path
    if value.startswith(("/", ".", "~")):
        raise missing_path(spec, value, key)
    return None


def missing_path(spec: ModelSpec, value: str, key: str) -> InputFileError:
    """The error for the entry's `key` naming a local file or folder `value` that is not there
    (relative paths resolved, so the message says where it was looked for)."""
    return InputFileError(
        value,
        f"models.{spec.name}.{key} does not exist "
        f"(no such file: {Path(value).expanduser().absolute()})",
        f"set models.{spec.name}.{key} to an existing file or folder",
    )


# laion-clap and msclap: a checkpoint file (local, or "<org>/<repo>/<file>" on the hub) that holds
# every weight, the text tower's included, and a hub text model of which the library only needs
# the config (the tower is built from it with random weights) and the tokenizer.


def text_model_source(spec: ModelSpec, default: str) -> str:
    """Where the text model's config and tokenizer come from: `options.text_model` (default
    `default`) as an existing local folder, or a hub id."""
    text_model = str(spec.options.get("text_model", default))
    path = local_path(spec, text_model, "options.text_model")
    return text_model if path is None else str(path)


def tower_from_config(text_model: str) -> type:
    """A stand-in for the transformers model class a library builds its text tower with:
    `from_pretrained(<whatever name>)` builds the model of `text_model`'s config, random
    weights (the library's checkpoint holds the tower's)."""
    from transformers import AutoConfig, AutoModel

    class Tower:
        @staticmethod
        def from_pretrained(_name: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
            return AutoModel.from_config(AutoConfig.from_pretrained(text_model))

    return Tower


def check_checkpoint_and_text_model(
    spec: ModelSpec, library: str, suffix: str, text_model: str, text_files: tuple[str, ...]
) -> None:
    """With the hub offline, name in one error every hub file that is neither local nor cached:
    the `library` checkpoint (a `suffix` file) and the text model's config and tokenizer
    (`text_files`)."""
    if not hub_offline():
        return
    missing = []
    if spec.weights == "pretrained" and local_checkpoint(spec) is None:
        repo, filename = hub_checkpoint(spec, f"{library} {suffix}")
        if not is_cached(repo, filename):
            what = f"weights for {library} {filename} of {repo}"
            local = f"checkpoint to the local {suffix} file"
            missing.append(HubFiles(what, repo, (filename,), local))
    if not Path(text_model).is_dir() and not all(is_cached(text_model, f) for f in text_files):
        what = (
            f"the config and tokenizer of its text model {text_model} ({library} builds its "
            "text tower from them)"
        )
        folder = "options.text_model to a local folder with these files"
        missing.append(HubFiles(what, text_model, text_files, folder))
    if missing:
        raise MissingWeightsError(spec, missing)


def checkpoint_file(spec: ModelSpec, kind: str) -> str:
    """A local path to the checkpoint file (a `kind`): as given, or from the hub cache or the
    hub."""
    path = local_checkpoint(spec)
    if path is not None:
        return str(path)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(*hub_checkpoint(spec, kind))


def hub_checkpoint(spec: ModelSpec, kind: str) -> tuple[str, str]:
    """The hub repo and file of a checkpoint (a `kind`) written "<org>/<repo>/<file>"."""
    parts = spec.checkpoint.split("/", 2)
    if len(parts) < 3:
        raise ConfigError(
            f"models.{spec.name}.checkpoint",
            f"'{spec.checkpoint}' is neither a local file nor <org>/<repo>/<file> on the hub",
            f"give the path of a {kind} checkpoint, or its hub repo and file name",
        )
    return f"{parts[0]}/{parts[1]}", parts[2]


@contextmanager
def seeded(seed: int = RANDOM_INIT_SEED) -> Iterator[None]:
    """Seed the initialisation of a model (random weights are then the same on every run)
    without moving the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class ImageTransform:
    """Decoded PIL image → model input: the model's own transform, preceded by the
    linear-structure crop (short side resized to 256, bicubic; centre crop 224) when asked.

    Every image transform is wrapped in this class so that a DataLoader worker that unpickles
    one imports this module, and so applies the torchvision fix, before torchvision itself.
    """

    def __init__(self, model_transform: Callable[[Image.Image], Any], linear_structure: bool):
        self.model_transform = model_transform
        self.linear_structure = linear_structure

    def __call__(self, image: Image.Image) -> Any:
        if self.linear_structure:
            image = linear_structure_crop(image)
        return self.model_transform(image)


def linear_structure_crop(image: Image.Image) -> Image.Image:
    """The crop of the linear-structure papers, with torchvision's transforms as they used."""
    from torchvision import transforms

    resize = transforms.Resize(
        LINEAR_STRUCTURE_RESIZE, interpolation=transforms.InterpolationMode.BICUBIC
    )
    return transforms.CenterCrop(LINEAR_STRUCTURE_CROP)(resize(image))


def image_transform(
    spec: ModelSpec, model_transform: Callable[[Image.Image], Any]
) -> ImageTransform:
    """The picklable media transform of an image model under `spec.preprocessing`."""
    return ImageTransform(model_transform, spec.preprocessing == "linear-structure")


def check_vocabulary(tokenizer: Any, spec: ModelSpec, source: str) -> None:
    """transformers 5 may load a tokenizer with only its special tokens instead of failing when
    its vocabulary files are missing; every caption would then encode to the same tokens."""
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise VlmsaeError(
            f"model '{spec.name}': the tokenizer loaded from {source} has only its "
            f"{len(tokenizer)} special tokens; fix: make sure {source} holds the tokenizer files "
            "(tokenizer.json, or vocab.json and merges.txt)"
        )


class TorchEncoder(Encoder):
    """An `Encoder` around one torch module: device moves and eval mode."""

    def __init__(self, spec: ModelSpec, model: torch.nn.Module):
        self.spec = spec
        self.model = model.eval()
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> TorchEncoder:
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        return self
