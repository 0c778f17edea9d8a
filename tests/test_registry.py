"""The one extension pattern: registries, typed settings and the schema generated from them."""

from dataclasses import dataclass
from typing import Literal

import jsonschema
import pytest

from vlmsae.errors import ConfigError
from vlmsae.registry_base import Registry, Settings, parse_settings, setting, settings_schema


@dataclass(frozen=True, kw_only=True)
class ToySettings(Settings):
    root: str = setting(description="where the data is")
    k: int = setting(3, "active atoms", minimum=1)
    mode: Literal["fast", "exact"] = setting("fast", "how to compute")
    sizes: list[int] = setting([1, 2], "nested sizes", minItems=1)
    cap: int | None = setting(None, "optional cap", minimum=1)

    def check(self) -> None:
        if self.cap is not None and self.cap < self.k:
            raise ValueError(f"cap={self.cap} is below k={self.k}")


def test_schema_has_types_defaults_bounds_and_required_keys():
    schema = settings_schema(ToySettings, "a toy")
    assert schema["required"] == ["root"]
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert properties["k"] == {
        "type": "integer",
        "minimum": 1,
        "description": "active atoms",
        "default": 3,
    }
    assert properties["mode"]["enum"] == ["fast", "exact"]
    assert properties["sizes"]["type"] == "array" and properties["sizes"]["default"] == [1, 2]
    assert properties["sizes"]["items"] == {"type": "integer"}
    assert properties["cap"]["type"] == ["integer", "null"] and "default" not in properties["cap"]
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"root": "/data", "k": 2})
    assert not validator.is_valid({"root": "/data", "k": 0})
    assert not validator.is_valid({"root": "/data", "mode": "slow"})
    assert not validator.is_valid({"k": 2})


def test_parse_settings_fills_defaults_and_names_the_key():
    settings = parse_settings(ToySettings, {"root": "/data", "k": 4}, "datasets.x.toy")
    assert settings == ToySettings(root="/data", k=4, mode="fast", sizes=[1, 2], cap=None)
    # mutable defaults are not shared between instances
    assert ToySettings(root="a").sizes is not ToySettings(root="b").sizes
    with pytest.raises(ConfigError, match=r"'datasets.x.toy.kk': unknown key"):
        parse_settings(ToySettings, {"root": "/data", "kk": 4}, "datasets.x.toy")
    with pytest.raises(ConfigError, match=r"'datasets.x.toy.root': is required"):
        parse_settings(ToySettings, {}, "datasets.x.toy")
    with pytest.raises(ConfigError, match=r"'datasets.x.toy.cap': cap=2 is below k=3"):
        parse_settings(ToySettings, {"root": "/data", "cap": 2}, "datasets.x.toy")


def test_registry_refuses_a_second_entry_under_a_taken_name():
    registry = Registry("toy")

    @registry.register("one", ToySettings)
    def first():
        """The first."""

    def second():
        pass

    with pytest.raises(ValueError, match="toy 'one' is already registered"):
        registry.register("one")(second)
    assert registry.names() == ["one"]
    assert registry.get("one").description == "The first."
    with pytest.raises(ConfigError, match="unknown toy 'two'.*use one of: one"):
        registry.get("two", "somewhere.type")


def test_every_builtin_registry_discovers_its_package():
    from vlmsae import datasets, sae
    from vlmsae.figures import FIGURES
    from vlmsae.metrics import RUN_METRICS, STORE_METRICS

    assert {"topk", "batchtopk", "relu", "jumprelu", "matryoshka", "mp", "semi_nmf"} <= set(
        sae.available()
    )
    assert {"synthetic", "precomputed", "coco", "musicbench"} <= set(datasets.available())
    assert {"cones", "gap", "zero_shot"} <= set(STORE_METRICS.names())
    assert {"atom_usage", "gap", "modality_classifier", "probing"} <= set(RUN_METRICS.names())
    assert {"r2_vs_l0", "modality_scores"} <= set(FIGURES.names())
    with pytest.raises(ValueError, match="already registered"):
        sae.register(type("Copy", (sae.VARIANTS.get("topk").obj,), {"variant": "topk"}))
