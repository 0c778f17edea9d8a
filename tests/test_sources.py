"""The dataset-source registry: every source's settings, the schema generated from them, and the
checks a config section goes through."""

from dataclasses import dataclass

import jsonschema
import pytest

from vlmsae import datasets
from vlmsae.datasets import SOURCES, source_settings
from vlmsae.errors import ConfigError
from vlmsae.registry_base import Settings, setting, settings_schema

# What the hand-written sections of schemas/config.schema.yaml held before they were generated:
# (property names, defaults, required keys).
OLD_SECTIONS = {
    "coco": (
        {"root", "year", "splits", "max_items"},
        {"year": 2017, "splits": ["train", "val"]},
        ["root"],
    ),
    "cifar10": (
        {"root", "templates", "seed", "max_items"},
        {"templates": ["a photo of a {}."], "seed": 0},
        ["root"],
    ),
    "musicbench": (
        {"root", "audio_dir", "caption_key", "train_files", "eval_files", "max_items"},
        {
            "audio_dir": "datashare",
            "caption_key": "main_caption",
            "train_files": ["MusicBench_train.json"],
            "eval_files": ["MusicBench_test_A.json", "MusicBench_test_B.json"],
        },
        ["root"],
    ),
    "precomputed": (
        {
            "path",
            "image_path",
            "text_path",
            "image_key",
            "text_key",
            "labels_path",
            "class_prompts_path",
            "eval_fraction",
            "split_seed",
        },
        {"image_key": "image", "text_key": "text", "eval_fraction": 0.2, "split_seed": 0},
        [],
    ),
}
RAW_SOURCES = {
    "coco": "image",
    "cc3m": "image",
    "laion": "image",
    "cifar10": "image",
    "cifar100": "image",
    "imagenet": "image",
    "celeba": "image",
    "fashioniq": "image",
    "musicbench": "audio",
    "jamendomaxcaps": "audio",
    "gtzan": "audio",
    "nsynth": "audio",
    "fmacaps": "audio",
}
EMBEDDING_SOURCES = ("synthetic", "precomputed", "clip_retrieval")
ADDED_KEYS = {"precomputed": {"drop_bad_pairs": False, "groups_path": None}}


def _validator(source: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(settings_schema(SOURCES.get(source).settings))


@pytest.mark.parametrize("source", sorted(OLD_SECTIONS))
def test_generated_sections_keep_the_keys_defaults_and_required_keys_of_the_old_schema(source):
    names, defaults, required = OLD_SECTIONS[source]
    schema = settings_schema(SOURCES.get(source).settings)
    # Keys added since the schema was generated: each has a default, so old configs still hold.
    added = ADDED_KEYS.get(source, {})
    properties = {k: v for k, v in schema["properties"].items() if k not in added}
    assert set(properties) == names
    # A key without a default (None) has none in the schema either.
    assert {k: schema["properties"][k].get("default") for k in added} == added
    assert {name: p["default"] for name, p in properties.items() if "default" in p} == defaults
    assert schema.get("required", []) == required
    assert schema["additionalProperties"] is False


def test_every_source_is_registered_with_its_kind_and_settings():
    assert set(datasets.available()) >= {*RAW_SOURCES, *EMBEDDING_SOURCES}
    for entry in SOURCES:
        assert issubclass(entry.settings, Settings), entry.name
        assert entry.extra["kind"] in ("raw", "embedding"), entry.name
        jsonschema.Draft202012Validator.check_schema(settings_schema(entry.settings))
    for source, modality in RAW_SOURCES.items():
        assert datasets.needs_model(source) and datasets.media_modality(source) == modality
    for source in EMBEDDING_SOURCES:
        assert not datasets.needs_model(source) and datasets.media_modality(source) == "image"


def test_a_second_source_under_a_taken_name_is_refused():
    @dataclass(frozen=True, kw_only=True)
    class OtherSettings(Settings):
        root: str = setting(description="somewhere")

    def read(settings):
        """Another COCO reader."""

    first = SOURCES.get("coco").obj
    with pytest.raises(ValueError, match="dataset source 'coco' is already registered"):
        SOURCES.register("coco", OtherSettings, kind="raw", modality="image")(read)
    assert SOURCES.get("coco").obj is first


@pytest.mark.parametrize(
    "source, section",
    [
        ("coco", {"root": "/data", "year": 2015}),
        ("coco", {"root": "/data", "splits": []}),
        ("fashioniq", {"root": "/data", "categories": ["shoes"]}),
        ("cifar100", {"root": "/data", "label": "medium"}),
        ("cifar10", {"root": "/data", "templates": "a photo"}),
        ("cc3m", {"root": "/data", "format": "zip"}),
        ("jamendomaxcaps", {"root": "/data", "audio_layout": "zip"}),
        ("musicbench", {"root": "/data", "max_items": 0}),
        ("laion", {"root": "/data", "eval_fraction": 1.0}),
        ("celeba", {}),
    ],
)
def test_the_generated_schema_refuses_bad_values(source, section):
    assert not _validator(source).is_valid(section)


def test_source_settings_fill_defaults_and_name_the_key_of_a_bad_section():
    settings = source_settings("cc3m", {"root": "/data"}, "datasets.d.cc3m")
    assert (settings.train, settings.eval, settings.max_items) == ("train/*.tar", "val/*.tar", None)
    assert settings.layout() == "webdataset"
    assert source_settings("laion", {"root": "/data"}, "datasets.d.laion").eval is None
    with pytest.raises(ConfigError, match="'datasets.d.cc3m.year': unknown key"):
        source_settings("cc3m", {"root": "/data", "year": 2017}, "datasets.d.cc3m")
    with pytest.raises(ConfigError, match="'datasets.d.coco.root': is required"):
        source_settings("coco", {}, "datasets.d.coco")
    with pytest.raises(ConfigError, match="'datasets.d.cc3m.format': format=None and the suffix"):
        source_settings(
            "cc3m", {"root": "/data", "train": "a.txt", "eval": None}, "datasets.d.cc3m"
        )
    with pytest.raises(ConfigError, match="'datasets.d.cifar10.templates': templates="):
        source_settings("cifar10", {"root": "/d", "templates": ["{} and {}"]}, "datasets.d.cifar10")
    with pytest.raises(ConfigError, match="'datasets.d.precomputed.path': path=None and image"):
        source_settings("precomputed", {"image_path": "i.npy"}, "datasets.d.precomputed")
    with pytest.raises(ConfigError, match="unknown dataset source 'mnist'"):
        source_settings("mnist", {}, "datasets.d.source")


def test_shared_settings_are_declared_once():
    """Sources that take `max_items`, `seed` or `eval_fraction` take the same key, with the same
    default, bounds and description."""
    for name in ("max_items", "seed", "eval_fraction"):
        schemas = [
            settings_schema(entry.settings)["properties"][name]
            for entry in SOURCES
            if entry.name != "synthetic" and name in settings_schema(entry.settings)["properties"]
        ]
        assert len(schemas) >= 3 and all(schema == schemas[0] for schema in schemas), name
