"""The model registry and the three loaders, on tiny random models in the real on-disk formats.

Every tiny model goes through the loading calls a real checkpoint takes; the registry's own
entries are checked offline against an empty Hugging Face cache (missing-weights messages), and
two of them against a cache that holds tiny files under their real hub ids.
"""

import importlib
import pickle
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch.utils.data import default_collate

from vlmsae.errors import ConfigError, InputFileError, VlmsaeError
from vlmsae.fixtures.models import write_tiny_models
from vlmsae.models import REGISTRY, MissingWeightsError, available, load, msclap_family, resolve
from vlmsae.models.base import ModelSpec
from vlmsae.models.common import ImageTransform, check_vocabulary, linear_structure_crop

CAPTIONS = ["a photo of a cat", "A dog running on the grass!", "a church tower at night"]
TINY = [
    "tiny-openclip", "tiny-siglip", "tiny-siglip2", "tiny-aimv2", "tiny-clap-hf", "tiny-clap",
    "tiny-clap-ms",
]  # fmt: skip
EXPECTED = {  # name: (family, checkpoint, dim)
    "clip-vit-b-32": ("open_clip", "openai", 512),
    "clip-vit-b-16": ("open_clip", "openai", 512),
    "clip-vit-l-14": ("open_clip", "openai", 768),
    "clip-rn50": ("open_clip", "openai", 1024),
    "openclip-vit-b-32": ("open_clip", "laion2b_s34b_b79k", 512),
    "openclip-vit-l-14": ("open_clip", "laion2b_s32b_b82k", 768),
    "siglip": ("transformers", "google/siglip-base-patch16-224", 768),
    "siglip2": ("transformers", "google/siglip2-base-patch16-224", 768),
    "aimv2": ("transformers", "apple/aimv2-large-patch14-224-lit", 768),
    "clap": ("laion_clap", "lukewys/laion_clap/music_audioset_epoch_15_esc_90.14.pt", 512),
    "clap-hf": ("transformers", "laion/larger_clap_music", 512),
    "clap-ms": ("msclap", "microsoft/msclap/CLAP_weights_2023.pth", 1024),
}
HUB_REPOS = {  # name: what `hf download` must be told
    "clip-vit-b-32": "timm/vit_base_patch32_clip_224.openai open_clip_model.safetensors",
    "clip-vit-b-16": "timm/vit_base_patch16_clip_224.openai open_clip_model.safetensors",
    "clip-vit-l-14": "timm/vit_large_patch14_clip_224.openai open_clip_model.safetensors",
    "clip-rn50": "timm/resnet50_clip.openai open_clip_model.safetensors",
    "openclip-vit-b-32": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K open_clip_model.safetensors",
    "openclip-vit-l-14": "laion/CLIP-ViT-L-14-laion2B-s32B-b82K open_clip_model.safetensors",
    "siglip": "google/siglip-base-patch16-224",
    "siglip2": "google/siglip2-base-patch16-224",
    "aimv2": "apple/aimv2-large-patch14-224-lit",
    "clap": "lukewys/laion_clap music_audioset_epoch_15_esc_90.14.pt",
    "clap-hf": "laion/larger_clap_music",
    "clap-ms": "microsoft/msclap CLAP_weights_2023.pth",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, dict]:
    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def encoders(tiny) -> dict:
    return {name: load(resolve(name, entry)) for name, entry in tiny.items()}


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, whatever this machine has cached."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HOME", str(cache.parent))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def photos() -> list[Image.Image]:
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(array) for array in load_sample_images().images]


def tones(seconds: float = 2.0, rate: int = 48_000) -> list[np.ndarray]:
    t = np.arange(int(seconds * rate)) / rate
    return [(0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32) for hz in (440.0, 1500.0)]


def media(encoder) -> list:
    return photos() if encoder.spec.modality == "image" else tones(rate=encoder.sample_rate)


def embed(encoder, items: list) -> torch.Tensor:
    transform = encoder.media_transform()
    return encoder.encode_media(default_collate([transform(item) for item in items]))


def cache_repo(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """Lay `files` out in the hub cache as `hf download repo` would."""
    commit = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).symlink_to(source)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_torchvision_imports_after_the_fix():
    from vlmsae.models import compat

    compat.ensure_torchvision()  # idempotent: importing vlmsae.models already applied it
    from torchvision import transforms

    assert transforms.CenterCrop(2)(Image.new("RGB", (4, 4))).size == (2, 2)


# Registry


def test_registry_lists_the_twelve_models():
    assert available() == sorted(EXPECTED)
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert (spec.family, spec.checkpoint, spec.dim) == EXPECTED[name]
        assert (spec.preprocessing, spec.weights) == ("model", "pretrained")
        assert spec.modality == ("audio" if name.startswith("clap") else "image")
        assert spec.options.get("quick_gelu", False) == (spec.checkpoint == "openai")
    assert REGISTRY["clap"].architecture == "HTSAT-base"
    assert REGISTRY["clap-ms"].architecture == "2023"  # msclap's default version


def test_open_clip_dims_and_tags_match_open_clip():
    import open_clip

    for name, spec in REGISTRY.items():
        if spec.family == "open_clip":
            assert open_clip.get_model_config(spec.architecture)["embed_dim"] == spec.dim, name
            assert spec.checkpoint in open_clip.list_pretrained_tags_by_model(spec.architecture)


def test_resolve_overrides_a_registry_entry():
    entry = {"checkpoint": "/data/clap.pt", "preprocessing": "model", "weights": "random"}
    expected = replace(REGISTRY["clap"], checkpoint="/data/clap.pt", weights="random")
    assert resolve("clap", entry) == expected
    options = resolve("clap", {"options": {"extra": 1}}).options
    assert options == {"text_model": "roberta-base", "extra": 1}
    assert resolve("siglip", None) == REGISTRY["siglip"]
    linear = resolve("siglip", {"preprocessing": "linear-structure"})
    assert linear == replace(REGISTRY["siglip"], preprocessing="linear-structure")


def test_resolve_builds_on_a_base_and_takes_full_entries():
    spec = resolve("my-clip", {"base": "clip-vit-b-32", "weights": "random"})
    assert spec == replace(REGISTRY["clip-vit-b-32"], name="my-clip", weights="random")
    full = resolve("mine", {"family": "transformers", "checkpoint": Path("/m"), "dim": 8})
    assert full == ModelSpec("mine", "transformers", "/m", 8)


@pytest.mark.parametrize(
    ("name", "entry", "key"),
    [
        ("nope", None, "models.nope"),
        ("mine", {"base": "clip-vit-b-99"}, "models.mine.base"),
        ("siglip", {"preprocessing": "crop"}, "models.siglip.preprocessing"),
        ("siglip", {"weights": "some"}, "models.siglip.weights"),
        ("siglip", {"dim": 0}, "models.siglip.dim"),
        ("siglip", {"checkpont": "x"}, "models.siglip.checkpont"),
        ("clap", {"preprocessing": "linear-structure"}, "models.clap.preprocessing"),
        ("mine", {"family": "keras", "checkpoint": "x", "dim": 3}, "models.mine.family"),
    ],
)
def test_resolve_rejects_bad_entries(name, entry, key):
    with pytest.raises(ConfigError) as error:
        resolve(name, entry)
    assert error.value.key == key
    assert "\n" not in str(error.value)


def test_unknown_model_lists_the_available_names():
    with pytest.raises(ConfigError, match="unknown model 'nope'") as error:
        resolve("nope")
    assert all(name in str(error.value) for name in EXPECTED)


# Missing weights: the cache is empty and the hub offline


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_missing_weights_say_how_to_get_them(name, empty_hub_cache):
    start = time.monotonic()
    with pytest.raises(MissingWeightsError) as error:
        load(resolve(name))
    message = str(error.value)
    assert time.monotonic() - start < 10  # no network wait
    assert message.startswith(f"model '{name}': ") and "\n" not in message
    assert f"`hf download {HUB_REPOS[name]}`" in message
    assert f"HF_HOME={empty_hub_cache.parent}" in message
    assert f"models.{name}.checkpoint" in message


def test_missing_weights_messages_in_full(empty_hub_cache):
    home = empty_hub_cache.parent
    messages = {}
    cases = [("siglip", ""), ("clip-vit-b-32", ""), ("clap", ""), ("clap", "random")]
    for name, weights in [*cases, ("clap-ms", "")]:
        with pytest.raises(MissingWeightsError) as error:
            load(resolve(name, {"weights": weights or "pretrained"}))
        messages[name + weights] = str(error.value)
    assert messages["siglip"] == (
        "model 'siglip': weights for google/siglip-base-patch16-224 are not in the Hugging Face "
        f"cache (HF_HOME={home}) and the hub is offline; fix: on a machine with internet run "
        "`hf download google/siglip-base-patch16-224` into the same HF_HOME (or "
        "`huggingface-cli download google/siglip-base-patch16-224`), or set "
        "models.siglip.checkpoint to a local folder"
    )
    assert messages["clip-vit-b-32"] == (
        "model 'clip-vit-b-32': weights for open_clip ViT-B-32 'openai' are not in the Hugging "
        f"Face cache (HF_HOME={home}) and the hub is offline; fix: on a machine with internet run "
        "`hf download timm/vit_base_patch32_clip_224.openai open_clip_model.safetensors` into the "
        "same HF_HOME (or `huggingface-cli download timm/vit_base_patch32_clip_224.openai "
        "open_clip_model.safetensors`), or set models.clip-vit-b-32.checkpoint to a local "
        "weights file (open_clip_model.safetensors) or open_clip folder"
    )
    assert messages["clap"] == (
        "model 'clap': weights for laion-clap music_audioset_epoch_15_esc_90.14.pt of "
        "lukewys/laion_clap and the config and tokenizer of its text model roberta-base "
        "(laion-clap builds its text tower from them) are not in the Hugging Face cache "
        f"(HF_HOME={home}) and the hub is offline; fix: on a machine with internet run "
        "`hf download lukewys/laion_clap music_audioset_epoch_15_esc_90.14.pt` and "
        "`hf download roberta-base config.json vocab.json merges.txt` into the same HF_HOME (or "
        "`huggingface-cli download lukewys/laion_clap music_audioset_epoch_15_esc_90.14.pt` and "
        "`huggingface-cli download roberta-base config.json vocab.json merges.txt`), or set "
        "models.clap.checkpoint to the local .pt file and models.clap.options.text_model to a "
        "local folder with these files"
    )
    assert messages["claprandom"] == (
        "model 'clap': the config and tokenizer of its text model roberta-base (laion-clap builds "
        "its text tower from them) are not in the Hugging Face cache "
        f"(HF_HOME={home}) and the hub is offline; fix: on a machine with internet run "
        "`hf download roberta-base config.json vocab.json merges.txt` into the same HF_HOME (or "
        "`huggingface-cli download roberta-base config.json vocab.json merges.txt`), or set "
        "models.clap.options.text_model to a local folder with these files"
    )
    assert messages["clap-ms"] == (
        "model 'clap-ms': weights for msclap CLAP_weights_2023.pth of microsoft/msclap and the "
        "config and tokenizer of its text model gpt2 (msclap builds its text tower from them) are "
        f"not in the Hugging Face cache (HF_HOME={home}) and the hub is offline; fix: on a "
        "machine with internet run `hf download microsoft/msclap CLAP_weights_2023.pth` and "
        "`hf download gpt2 config.json vocab.json merges.txt` into the same HF_HOME (or "
        "`huggingface-cli download microsoft/msclap CLAP_weights_2023.pth` and "
        "`huggingface-cli download gpt2 config.json vocab.json merges.txt`), or set "
        "models.clap-ms.checkpoint to the local .pth file and models.clap-ms.options.text_model "
        "to a local folder with these files"
    )


def test_a_checkpoint_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(InputFileError, match="models.siglip.checkpoint does not exist") as error:
        load(resolve("siglip", {"checkpoint": str(missing)}))
    assert error.value.path == str(missing)
    with pytest.raises(InputFileError, match="models.clap.options.text_model does not exist"):
        load(resolve("clap", {"weights": "random", "options": {"text_model": str(missing)}}))


@pytest.mark.parametrize("entry", [{"family": "open_clip", "dim": 512}, {"base": "clip-vit-b-32"}])
@pytest.mark.parametrize("given", ["weights/model.safetensors", "model.pt", "weights/model"])
def test_a_relative_checkpoint_path_that_does_not_exist_is_named(
    tmp_path, monkeypatch, entry, given
):
    """Written without "./", a missing file is still a path, not an architecture or tag."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputFileError, match="models.mine.checkpoint does not exist") as error:
        load(resolve("mine", {**entry, "checkpoint": given}))
    assert error.value.path == given and str(tmp_path) in str(error.value)
    assert "architecture" not in str(error.value) and "\n" not in str(error.value)


def test_an_open_clip_folder_without_weights_is_refused(tiny, tmp_path):
    folder = Path(tiny["tiny-openclip"]["checkpoint"])
    (tmp_path / "open_clip_config.json").write_bytes(
        (folder / "open_clip_config.json").read_bytes()
    )
    entry = {**tiny["tiny-openclip"], "checkpoint": str(tmp_path)}
    with pytest.raises(InputFileError, match="no weights file"):
        load(resolve("tiny-openclip", entry))
    assert load(resolve("tiny-openclip", {**entry, "weights": "random"})).spec.dim == 32


# Tiny models through the real loading paths


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_embed_media_and_text(encoders, name):
    encoder = encoders[name]
    dim = encoder.spec.dim
    items = media(encoder)
    first, again = embed(encoder, items), embed(encoder, items)
    assert first.shape == (len(items), dim) and first.dtype == torch.float32
    assert torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert not torch.allclose(first[0], first[1])
    text = encoder.encode_text(CAPTIONS)
    assert text.shape == (3, dim) and torch.isfinite(text).all()
    assert torch.equal(text, encoder.encode_text(CAPTIONS))
    assert not torch.allclose(text[0], text[1])


@pytest.mark.parametrize("name", TINY)
def test_random_weights_differ_from_the_checkpoint(tiny, encoders, name):
    random = load(resolve(name, {**tiny[name], "weights": "random"}))
    assert random.encode_text(CAPTIONS).shape == (3, tiny[name]["dim"])
    assert not torch.allclose(random.encode_text(CAPTIONS), encoders[name].encode_text(CAPTIONS))
    # Seeded: a second random model is the same model.
    again = load(resolve(name, {**tiny[name], "weights": "random"}))
    assert torch.equal(again.encode_text(CAPTIONS), random.encode_text(CAPTIONS))


@pytest.mark.parametrize("name", TINY)
def test_media_transforms_pickle(encoders, name):
    encoder = encoders[name]
    transform = encoder.media_transform()
    item = media(encoder)[0]
    restored = pickle.loads(pickle.dumps(transform))
    expected, got = transform(item), restored(item)
    if isinstance(expected, dict):
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[key], got[key]) for key in expected)
    else:
        assert torch.equal(expected, got)


@pytest.mark.parametrize("name", ["tiny-openclip", "tiny-siglip", "tiny-siglip2", "tiny-aimv2"])
def test_linear_structure_crops_224_then_applies_the_model_transform(tiny, encoders, name):
    photo = photos()[0]
    assert ImageTransform(lambda image: image.size, linear_structure=True)(photo) == (224, 224)
    linear = load(resolve(name, {**tiny[name], "preprocessing": "linear-structure"}))
    own, cropped = encoders[name].media_transform()(photo), linear.media_transform()(photo)
    own, cropped = (x["pixel_values"] if isinstance(x, dict) else x for x in (own, cropped))
    assert cropped.shape == own.shape  # the model's input size (32×32, or 16 SigLIP2 patches)
    assert not torch.allclose(cropped, own)
    assert linear.encode_media(default_collate([linear.media_transform()(photo)])).shape == (1, 32)


def test_linear_structure_crop_is_resize_256_then_centre_224():
    wide = Image.fromarray(np.arange(300 * 600 * 3, dtype=np.uint8).reshape(300, 600, 3))
    crop = linear_structure_crop(wide)
    assert crop.size == (224, 224)
    resized = wide.resize((512, 256), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(crop), np.asarray(resized.crop((144, 16, 368, 240))))


@pytest.mark.parametrize("name", ["tiny-siglip", "tiny-siglip2"])
def test_siglip_captions_are_padded_on_the_right_to_64_tokens(encoders, name):
    encoder = encoders[name]
    assert encoder.tokenizer.padding_side == ("left" if name == "tiny-siglip2" else "right")
    ids = encoder.tokenize(CAPTIONS)["input_ids"]
    assert ids.shape == (3, 64)
    assert (ids[:, -1] == encoder.tokenizer.pad_token_id).all()
    assert (ids[:, 0] != encoder.tokenizer.pad_token_id).all()
    if name == "tiny-siglip":  # as SiglipTokenizer: no attention mask
        assert list(encoder.tokenize(CAPTIONS)) == ["input_ids"]


def test_lowercase_text_option(tiny, encoders):
    cased = encoders["tiny-clap-hf"]  # RoBERTa's tokenizer keeps case
    lower = load(
        resolve("tiny-clap-hf", {**tiny["tiny-clap-hf"], "options": {"lowercase_text": True}})
    )
    assert not torch.allclose(cased.encode_text(["A Dog"]), cased.encode_text(["a dog"]))
    assert torch.equal(lower.encode_text(["A Dog"]), lower.encode_text(["a dog"]))


@pytest.mark.parametrize("name", ["tiny-clap-hf", "tiny-clap"])
def test_audio_longer_than_the_window_is_cut_deterministically(encoders, name):
    encoder = encoders[name]
    long_clip = tones(seconds=12.0, rate=encoder.sample_rate)[0]
    transform = encoder.media_transform()
    first, second = transform(long_clip), transform(long_clip)
    assert all(torch.equal(first[key], second[key]) for key in first)
    window = transform(long_clip[: 10 * encoder.sample_rate])
    assert all(torch.equal(first[key], window[key]) for key in first)


def test_audio_encoders_report_48khz(encoders):
    assert encoders["tiny-clap"].sample_rate == encoders["tiny-clap-hf"].sample_rate == 48_000
    assert encoders["tiny-siglip"].sample_rate is None


def test_wrong_dim_in_an_entry_is_named(tiny):
    with pytest.raises(ConfigError, match="gives 32-dimensional embeddings") as error:
        load(resolve("tiny-aimv2", {**tiny["tiny-aimv2"], "dim": 64}))
    assert error.value.key == "models.tiny-aimv2.dim"


def test_a_tokenizer_with_only_special_tokens_is_refused():
    class SpecialsOnly:
        all_special_tokens = ["<s>", "</s>", "<pad>"]

        def __len__(self) -> int:
            return 3

    with pytest.raises(VlmsaeError, match="only its 3 special tokens"):
        check_vocabulary(SpecialsOnly(), REGISTRY["siglip"], "/models/siglip")


# Real hub ids, served from a cache that holds tiny files


def test_a_cached_hub_id_loads_offline(tiny, empty_hub_cache):
    folder = Path(tiny["tiny-siglip"]["checkpoint"])
    cache_repo(
        empty_hub_cache, "google/siglip-base-patch16-224", {f.name: f for f in folder.iterdir()}
    )
    encoder = load(resolve("siglip", {"dim": 32}))
    assert embed(encoder, photos()).shape == (2, 32)


def test_the_clap_entry_loads_its_checkpoint_and_roberta_from_the_cache(
    tiny, encoders, empty_hub_cache
):
    entry = tiny["tiny-clap"]
    cache_repo(
        empty_hub_cache,
        "lukewys/laion_clap",
        {"music_audioset_epoch_15_esc_90.14.pt": Path(entry["checkpoint"])},
    )
    text_model = Path(entry["options"]["text_model"])
    files = ("config.json", "vocab.json", "merges.txt")
    cache_repo(empty_hub_cache, "roberta-base", {name: text_model / name for name in files})
    encoder = load(resolve("clap", {"architecture": "HTSAT-tiny"}))
    assert torch.equal(encoder.encode_text(CAPTIONS), encoders["tiny-clap"].encode_text(CAPTIONS))


# Real architectures, random weights: nothing to download


def test_openai_clip_with_random_weights_runs_offline_with_quickgelu(tmp_path):
    def activation(encoder) -> str:
        return type(encoder.model.visual.transformer.resblocks[0].mlp.gelu).__name__

    encoder = load(resolve("clip-vit-b-32", {"weights": "random"}))  # the "openai" tag says
    assert activation(encoder) == "QuickGELU"
    assert embed(encoder, photos()).shape == (2, 512)
    weights = tmp_path / "ViT-B-32.pt"  # a file does not say: the inherited option does
    weights.touch()
    from_file = load(resolve("clip-vit-b-32", {"checkpoint": str(weights), "weights": "random"}))
    assert activation(from_file) == "QuickGELU"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-openclip", "tiny-siglip2", "tiny-clap"])
def test_transforms_unpickle_in_a_fresh_interpreter(encoders, name):
    """As in a spawned DataLoader worker: nothing imported yet, torchvision's ops missing."""
    encoder = encoders[name]
    payload = pickle.dumps((encoder.media_transform(), media(encoder)[0]))
    script = (
        "import pickle, sys; transform, item = pickle.load(sys.stdin.buffer); "
        "out = transform(item); print(sorted(out) if isinstance(out, dict) else tuple(out.shape))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=payload, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


# msclap: its own CLAPWrapper as the reference


def msclap_wrapper(tiny: dict, clips: list[np.ndarray], rate: int, tmp_path: Path, monkeypatch):
    """msclap's CLAPWrapper around the tiny checkpoint, built by its own load_clap.

    CLAPWrapper imports torchaudio (not installed, see vlmsae.models.msclap_family) to read
    files: a stub serves `clips` by index. Its __init__ would read the packaged config: the tiny
    one is given instead, naming the text model by a path that says "gpt2", as msclap's code
    branches on the name. transformers 5 dropped `encode_plus`, which for one text was
    `__call__`.
    """
    entry = tiny["tiny-clap-ms"]
    spec = resolve("tiny-clap-ms", entry)
    torchaudio, transforms = ModuleType("torchaudio"), ModuleType("torchaudio.transforms")
    torchaudio.transforms = transforms
    torchaudio.load = lambda index: (torch.from_numpy(clips[index])[None], rate)
    monkeypatch.setitem(sys.modules, "torchaudio", torchaudio)
    monkeypatch.setitem(sys.modules, "torchaudio.transforms", transforms)
    import transformers

    # Its import would set transformers' logging to errors only, for the whole session.
    monkeypatch.setattr(transformers.logging, "set_verbosity_error", lambda: None)
    wrapper_class = importlib.import_module("msclap.CLAPWrapper").CLAPWrapper
    gpt2 = tmp_path / "gpt2"
    gpt2.symlink_to(entry["options"]["text_model"])
    wrapper = object.__new__(wrapper_class)
    config = {**msclap_family.model_config(spec), "text_model": str(gpt2)}
    wrapper.config_as_str = yaml.safe_dump(config)
    wrapper.model_fp, wrapper.use_cuda = entry["checkpoint"], False
    with msclap_family.building(spec):
        wrapper.clap, wrapper.tokenizer, wrapper.args = wrapper.load_clap()
    monkeypatch.setattr(wrapper.tokenizer, "encode_plus", wrapper.tokenizer.__call__, raising=False)
    return wrapper


def test_clap_ms_embeds_as_msclaps_own_wrapper(tiny, encoders, tmp_path, monkeypatch):
    encoder = encoders["tiny-clap-ms"]
    # 2 s: shorter than msclap's 7 s window, which it fills by repeating (no random crop).
    clips = tones(rate=encoder.sample_rate)
    wrapper = msclap_wrapper(tiny, clips, encoder.sample_rate, tmp_path, monkeypatch)
    expected = wrapper.get_text_embeddings(CAPTIONS)
    assert torch.allclose(encoder.encode_text(CAPTIONS), expected, atol=1e-6)
    expected = wrapper.get_audio_embeddings([0, 1], resample=True)
    assert torch.allclose(embed(encoder, clips), expected, atol=1e-5)
    # msclap fails on a caption over 77 tokens (its batch cannot be stacked): cut to 77 ("x" is
    # one token of the tiny vocabulary, the end-of-text token is cut too).
    assert torch.equal(encoder.encode_text(["x" * 100]), encoder.encode_text(["x" * 77]))


def test_clap_ms_window_repeats_short_clips_and_cuts_long_ones(encoders):
    window = msclap_family.MsclapWaveform(5)
    short = np.array([1.0, 2.0], dtype=np.float32)
    assert window(short).tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
    assert window(np.arange(7, dtype=np.float32)).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    encoder = encoders["tiny-clap-ms"]
    assert encoder.sample_rate == 44_100  # config_2023.yml: 7 s at 44.1 kHz
    assert encoder.media_transform()(tones(seconds=9.0, rate=44_100)[0]).shape == (7 * 44_100,)


def test_the_clap_ms_entry_loads_its_checkpoint_and_gpt2_from_the_cache(
    tiny, encoders, empty_hub_cache
):
    entry = tiny["tiny-clap-ms"]
    checkpoint = {"CLAP_weights_2023.pth": Path(entry["checkpoint"])}
    cache_repo(empty_hub_cache, "microsoft/msclap", checkpoint)
    text_model = Path(entry["options"]["text_model"])
    files = ("config.json", "vocab.json", "merges.txt")
    cache_repo(empty_hub_cache, "gpt2", {name: text_model / name for name in files})
    options = {key: entry["options"][key] for key in ("config", "htsat")}
    encoder = load(resolve("clap-ms", {"dim": 32, "options": options}))
    expected = encoders["tiny-clap-ms"].encode_text(CAPTIONS)
    assert torch.equal(encoder.encode_text(CAPTIONS), expected)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"architecture": "2024"}, "architecture"),
        ({"options": {"config": {"d_prj": 8}}}, "options.config.d_prj"),
        ({"options": {"htsat": {"embed": 8}}}, "options.htsat.embed"),
    ],
)
def test_clap_ms_bad_entries_name_their_key(tiny, change, key):
    entry = tiny["tiny-clap-ms"]
    options = {**entry["options"], **change.get("options", {})}
    with pytest.raises(ConfigError) as error:
        load(resolve("tiny-clap-ms", {**entry, **change, "options": options}))
    assert error.value.key == f"models.tiny-clap-ms.{key}" and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda state: b"<!DOCTYPE html>", "does not load as a torch checkpoint"),
        (lambda state: {"state_dict": state["model"]}, "not an msclap checkpoint"),
        (lambda state: {"model": dict(list(state["model"].items())[1:])}, "lacks 1 weights"),
        (lambda state: {"model": {**state["model"], "logit_scale": torch.ones(2)}}, "differ"),
    ],
    ids=["not torch", "no model", "missing weight", "wrong shape"],
)
def test_a_clap_ms_checkpoint_that_does_not_fit_is_named(tiny, tmp_path, edit, problem):
    entry = tiny["tiny-clap-ms"]
    content = edit(torch.load(entry["checkpoint"], weights_only=True))
    path = tmp_path / "broken.pth"
    if isinstance(content, bytes):  # e.g. an error page saved under the file's name
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputFileError, match=problem) as error:
        load(resolve("tiny-clap-ms", {**entry, "checkpoint": str(path)}))
    assert error.value.path == str(path) and "\n" not in str(error.value)
