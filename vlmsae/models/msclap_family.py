"""Microsoft CLAP (msclap 1.3.4): msclap's CLAP class, audio tower HTSAT (version 2023) or CNN14
(2022), text tower GPT-2 (2023) or BERT (2022), each with its projection into the joint space.

`spec.architecture` is the msclap version whose packaged config
(msclap/configs/config_<version>.yml) builds the model; `spec.checkpoint` a released weights file,
local or "<org>/<repo>/<file>" on the hub (microsoft/msclap/CLAP_weights_2023.pth). `clap-ms` is
msclap's default version, 2023. The group-sparse paper's audio MMS reference (§3.2) cites
Elizalde et al. (ICASSP 2023), whose weights are the 2022 ones: `architecture: "2022"` with
`checkpoint: microsoft/msclap/CLAP_weights_2022.pth`.

Options:
- text_model: where the text model's config and tokenizer come from, a hub id or a local folder
  (by default the config's `text_model`, gpt2). As for laion-clap, the tower is built from the
  config with random weights: the checkpoint holds its weights.
- config: values replacing those of the packaged config (d_proj, transformer_embed_dim,
  out_emb...): smaller test models.
- htsat: keyword arguments of msclap's HTSAT_Swin_Transformer (embed_dim, depths, num_heads...):
  smaller test models. msclap builds HTSAT with that class's defaults whatever its config says,
  and the released weights are of those defaults.

Only msclap's model classes are used, never its CLAPWrapper (see `_msclap_models`). What the
wrapper does around them is redone here: the tokenisation (`encode_text`) and the audio window
(`MsclapWaveform`); decoding and resampling are vlmsae's (vlmsae.decode).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import numpy as np
import torch
import yaml

from vlmsae.errors import ConfigError, InputFileError, VlmsaeError
from vlmsae.models.base import ModelSpec
from vlmsae.models.common import (
    TorchEncoder,
    check_checkpoint_and_text_model,
    check_vocabulary,
    checkpoint_file,
    seeded,
    text_model_source,
    tower_from_config,
)

VERSIONS = ("2022", "2023")  # msclap's CLAP configs (config_clapcap.yml is its captioner)
# The hub files of the text models of msclap's configs that their tokenizers and configs need.
TEXT_MODEL_FILES = {
    "gpt2": ("config.json", "vocab.json", "merges.txt"),
    "bert-base-uncased": ("config.json", "vocab.txt"),
}
INSTALL = "pip install --no-deps -c constraints.txt msclap==1.3.4 (`make run` does)"


class MsclapWaveform:
    """Mono float32 waveform at the model's rate → the [samples] window msclap's audio tower
    takes (`duration` seconds).

    As CLAPWrapper.load_audio_into_tensor: a shorter clip is repeated until the window is full
    (np.resize repeats it the same way). msclap crops a longer clip at a random offset; clips
    arrive centre-cropped (vlmsae.decode) and the excess is cut from the end, the same on every
    run.
    """

    def __init__(self, samples: int):
        self.samples = samples

    def __call__(self, waveform: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.resize(np.asarray(waveform, dtype=np.float32), self.samples))


class MsclapEncoder(TorchEncoder):
    def __init__(self, spec: ModelSpec, model: torch.nn.Module, tokenizer: Any, config: dict):
        super().__init__(spec, model)
        self.tokenizer = tokenizer
        # The 2023 HTSAT computes its mel filterbank for 32 kHz (msclap.models.config) while
        # CLAPWrapper feeds it audio resampled to the config's 44.1 kHz: as in training, the
        # waveform is given at the config's rate.
        self.sample_rate = int(config["sampling_rate"])
        self.samples = int(config["duration"]) * self.sample_rate
        self.text_len = int(config["text_len"])
        # CLAPWrapper.preprocess_text: GPT-2 captions end with its end-of-text token, the one
        # the text encoder pools (the last token that is not padding).
        self.caption_end = " <|endoftext|>" if _is_gpt(config) else ""

    def media_transform(self) -> MsclapWaveform:
        return MsclapWaveform(self.samples)

    def encode_media(self, batch: torch.Tensor) -> torch.Tensor:
        # CLAPWrapper._get_audio_embeddings: the projected embedding, not normalised.
        with torch.inference_mode():
            return self.model.audio_encoder(batch)[0].float()

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        # CLAPWrapper.preprocess_text tokenises each caption padded to text_len; so does one
        # batched call. It does not truncate (a longer caption fails its batch): here a caption
        # is cut to text_len tokens.
        tokens = self.tokenizer(
            [text + self.caption_end for text in texts],
            padding="max_length",
            max_length=self.text_len,
            truncation=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            inputs = {key: value.to(self.device) for key, value in tokens.items()}
            return self.model.caption_encoder(inputs).float()


def load(spec: ModelSpec) -> MsclapEncoder:
    """Build msclap's CLAP for `spec` and load its checkpoint (unless weights: random)."""
    config = model_config(spec)
    text_model = text_model_source(spec, config["text_model"])
    # Another text model: its config at least; its tokenizer files are its own business.
    files = TEXT_MODEL_FILES.get(config["text_model"], ("config.json",))
    check_checkpoint_and_text_model(spec, "msclap", ".pth", text_model, files)
    with seeded():
        model = build_model(spec)
    tokenizer = _tokenizer(config, text_model)
    check_vocabulary(tokenizer, spec, text_model)
    if spec.weights == "pretrained":
        _load_weights(spec, model)
    return MsclapEncoder(spec, model, tokenizer, config)


def model_config(spec: ModelSpec) -> dict[str, Any]:
    """msclap's packaged config of version `spec.architecture`, with `options.config` applied."""
    if spec.architecture not in VERSIONS:
        raise ConfigError(
            f"models.{spec.name}.architecture",
            f"'{spec.architecture}' is not an msclap version",
            f"set it to one of {', '.join(VERSIONS)}",
        )
    folder = Path(_msclap_models("clap").__file__).parents[1] / "configs"
    config = yaml.safe_load((folder / f"config_{spec.architecture}.yml").read_text())
    overrides = dict(spec.options.get("config") or {})
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ConfigError(
            f"models.{spec.name}.options.config.{unknown[0]}",
            f"not a key of msclap's config_{spec.architecture}.yml",
            f"use only {', '.join(sorted(config))}",
        )
    return {**config, **overrides}


def build_model(spec: ModelSpec) -> torch.nn.Module:
    """msclap's CLAP of `spec` as CLAPWrapper.load_clap builds it from its config, in eval mode,
    random weights (see `building`)."""
    config = model_config(spec)
    with building(spec):
        model = _msclap_models("clap").CLAP(
            audioenc_name=config["audioenc_name"],
            sample_rate=config["sampling_rate"],
            window_size=config["window_size"],
            hop_size=config["hop_size"],
            mel_bins=config["mel_bins"],
            fmin=config["fmin"],
            fmax=config["fmax"],
            classes_num=config["num_classes"],
            out_emb=config["out_emb"],
            text_model=config["text_model"],
            transformer_embed_dim=config["transformer_embed_dim"],
            d_proj=config["d_proj"],
        )
    return model.eval()


@contextmanager
def building(spec: ModelSpec) -> Iterator[None]:
    """While msclap builds a CLAP: its text tower comes from the config in options.text_model
    (whatever name msclap passes: the config's `text_model` still names the architecture its
    code branches on), and HTSAT takes options.htsat."""
    text_model = text_model_source(spec, model_config(spec)["text_model"])
    swin_init = _msclap_models("htsat").HTSAT_Swin_Transformer.__init__
    with (
        mock.patch.object(_msclap_models("clap"), "AutoModel", tower_from_config(text_model)),
        mock.patch.object(swin_init, "__defaults__", _htsat_defaults(spec)),
    ):
        yield


def _msclap_models(name: str) -> ModuleType:
    """msclap.models.<name>, imported without running msclap/__init__.py.

    The package's __init__ imports CLAPWrapper, which imports torchaudio at module level (to
    read and resample files: vlmsae decodes audio itself) and switches every warning of the
    process off. torchaudio has no build for the CPU torch pinned here (installing one pulls
    another torch), so msclap is registered as a bare package, its folder only, and just its
    model modules are imported. Where msclap was imported whole already, that one is used.
    """
    if "msclap" not in sys.modules:
        spec = importlib.util.find_spec("msclap")
        if spec is None:
            raise VlmsaeError(f"model family msclap needs the msclap package; fix: {INSTALL}")
        sys.modules["msclap"] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"msclap.models.{name}")


def _htsat_defaults(spec: ModelSpec) -> tuple:
    """HTSAT_Swin_Transformer.__init__'s defaults with `options.htsat` in place.

    HTSATWrapper calls HTSAT_Swin_Transformer(config=config): the defaults are the architecture.
    They are replaced rather than the class wrapped, since the class names itself in its
    `super()` call. Unknown keys are refused: the class would swallow them (**kwargs).
    """
    options = dict(spec.options.get("htsat") or {})
    swin_init = _msclap_models("htsat").HTSAT_Swin_Transformer.__init__
    defaulted = [
        parameter
        for parameter in inspect.signature(swin_init).parameters.values()
        if parameter.default is not inspect.Parameter.empty
    ]
    allowed = {parameter.name for parameter in defaulted} - {"config"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"models.{spec.name}.options.htsat.{unknown[0]}",
            "not an argument of msclap's HTSAT_Swin_Transformer",
            f"use only {', '.join(sorted(allowed))}",
        )
    return tuple(options.get(parameter.name, parameter.default) for parameter in defaulted)


def _is_gpt(config: dict[str, Any]) -> bool:
    """msclap's own test of a GPT text model (CLAPWrapper, TextEncoder): the name."""
    return "gpt" in config["text_model"]


def _tokenizer(config: dict[str, Any], text_model: str) -> Any:
    """The tokenizer as CLAPWrapper.load_clap sets it up: GPT-2's pads with "!", id 0, which
    the text encoder counts on to find each caption's last token (so a "!" in a caption moves
    the pooled token one back, in msclap as here)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(text_model)
    if _is_gpt(config):
        tokenizer.add_special_tokens({"pad_token": "!"})
    return tokenizer


def _load_weights(spec: ModelSpec, model: torch.nn.Module) -> None:
    """The checkpoint's state dict, as CLAPWrapper.load_clap reads it: {"model": state dict}."""
    path = checkpoint_file(spec, "msclap .pth")
    fix = (
        f"set models.{spec.name}.checkpoint to an msclap CLAP_weights_<version>.pth file of "
        f"version {spec.architecture} (models.{spec.name}.architecture)"
    )
    # msclap calls torch.load with its default, weights only (torch >= 2.6).
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:  # damaged, or not torch's
        problem = f"does not load as a torch checkpoint of weights ({type(error).__name__})"
        raise InputFileError(path, problem, fix) from error
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise InputFileError(path, "not an msclap checkpoint (no 'model' state dict)", fix)
    # msclap loads without `strict`: released files hold buffers that newer transformers no
    # longer keep (GPT-2's attn.bias and attn.masked_bias). A missing weight, though, would be
    # left random without a word.
    try:
        missing = model.load_state_dict(state["model"], strict=False).missing_keys
    except RuntimeError as error:  # shapes that differ (torch raises even when not strict)
        problem = f"its weights do not fit the msclap {spec.architecture} model (shapes differ)"
        raise InputFileError(path, problem, fix) from error
    if missing:
        raise InputFileError(
            path,
            f"lacks {len(missing)} weights of the msclap {spec.architecture} model "
            f"({missing[0]}, ...)",
            fix,
        )
