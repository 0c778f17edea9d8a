"""laion-clap models (CLAP_Module, no fusion): audio towers HTSAT/PANN, RoBERTa text tower.

`spec.checkpoint` is a released checkpoint file, local or as "<org>/<repo>/<file>" on the hub
(e.g. lukewys/laion_clap/music_audioset_epoch_15_esc_90.14.pt), loaded with `load_ckpt`;
`spec.architecture` is the audio tower (the music checkpoints need HTSAT-base).

The text tower: laion-clap builds it with `RobertaModel.from_pretrained("roberta-base")` and its
tokenizer with `RobertaTokenizer.from_pretrained("roberta-base")`, names it hard-codes. Both are
redirected, while the module is built, to `spec.options["text_model"]` (a hub id, by default
roberta-base, or a local folder): the tokenizer loads from there, the tower is built from its
config alone with random weights, since every released checkpoint holds the tower's weights (the
strict `load_state_dict` of `load_ckpt` checks it). So roberta-base's config and tokenizer files
are needed, not its weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import torch

from vlmsae.errors import VlmsaeError
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

DEFAULT_TEXT_MODEL = "roberta-base"
TEXT_MODEL_FILES = ("config.json", "vocab.json", "merges.txt")


class ClapWaveform:
    """Mono float32 waveform at 48 kHz → laion-clap's audio input for one clip.

    As `get_audio_embedding_from_data` does for arrays: quantise to int16 and back (the training
    data was stored as int16), then `get_audio_features` repeat-pads to the 10 s window. It crops
    longer clips at a random offset: clips arrive cropped, and any excess is cut from the end.
    """

    def __init__(self, audio_cfg: dict[str, Any]):
        self.audio_cfg = audio_cfg

    def __call__(self, waveform: np.ndarray) -> dict[str, torch.Tensor]:
        from laion_clap.training.data import (
            float32_to_int16,
            get_audio_features,
            int16_to_float32,
        )

        window = self.audio_cfg["clip_samples"]
        waveform = np.asarray(waveform, dtype=np.float32)[:window]
        audio = torch.from_numpy(int16_to_float32(float32_to_int16(waveform))).float()
        return get_audio_features(
            {}, audio, window, "rand_trunc", "repeatpad", self.audio_cfg, require_grad=False
        )


class LaionClapEncoder(TorchEncoder):
    def __init__(self, spec: ModelSpec, module: torch.nn.Module):
        super().__init__(spec, module.model)
        self.module = module
        self.sample_rate = module.model_cfg["audio_cfg"]["sample_rate"]

    def media_transform(self) -> ClapWaveform:
        return ClapWaveform(dict(self.module.model_cfg["audio_cfg"]))

    def encode_media(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # CLAP.get_audio_embedding without its final normalisation.
        with torch.inference_mode():
            audio = self.model.encode_audio(batch, device=self.device)["embedding"]
            return self.model.audio_projection(audio).float()

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        # CLAP.get_text_embedding without its final normalisation.
        tokens = self.module.tokenizer(texts)
        with torch.inference_mode():
            return self.model.encode_text(tokens, device=self.device).float()


def load(spec: ModelSpec) -> LaionClapEncoder:
    """Build the CLAP module of `spec` and load its checkpoint (unless weights: random)."""
    text_model = text_model_source(spec, DEFAULT_TEXT_MODEL)
    check_checkpoint_and_text_model(spec, "laion-clap", ".pt", text_model, TEXT_MODEL_FILES)
    with seeded():
        module = build_module(spec.architecture, text_model)
    check_vocabulary(module.tokenize, spec, text_model)
    if spec.weights == "pretrained":
        module.load_ckpt(checkpoint_file(spec, "laion-clap .pt"), verbose=False)
    return LaionClapEncoder(spec, module)


def build_module(audio_model: str, text_model: str) -> torch.nn.Module:
    """laion-clap's CLAP_Module (no fusion) with its text tower and tokenizer from `text_model`,
    random weights."""
    try:
        import laion_clap
    except ImportError as error:
        raise VlmsaeError(
            "model family laion_clap needs the laion-clap package; fix: "
            "pip install --no-deps -c constraints.txt laion-clap==1.1.7 (`make run` does)"
        ) from error

    with _text_model_from(text_model):
        return laion_clap.CLAP_Module(enable_fusion=False, amodel=audio_model, device="cpu")


@contextmanager
def _text_model_from(text_model: str) -> Iterator[None]:
    """Point laion-clap's hard-coded "roberta-base" at `text_model` (see the module docstring)."""
    import clap_module.model
    import laion_clap.hook
    from transformers import RobertaTokenizer

    class Tokenizer:
        @staticmethod
        def from_pretrained(_name: str, *args: Any, **kwargs: Any) -> RobertaTokenizer:
            return RobertaTokenizer.from_pretrained(text_model)

    with (
        mock.patch.object(clap_module.model, "RobertaModel", tower_from_config(text_model)),
        mock.patch.object(laion_clap.hook, "RobertaTokenizer", Tokenizer),
    ):
        yield
