"""Config checking and the list of runs the config asks for.

`check_config` validates against schemas/config.schema.yaml with snakemake.utils.validate (which
fills in defaults), then checks what a JSON schema cannot: registered names, files on disk,
cross-key constraints. Every failure is one `ConfigError` line naming the key and the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import itertools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from vlmsae import datasets, sae
from vlmsae.errors import ConfigError
from vlmsae.health import HealthSettings
from vlmsae.registry_base import load_plugins, parse_settings, settings_schema
from vlmsae.runs import PAIRED_MIXTURE
from vlmsae.training import regularisers
from vlmsae.training.mixture import parse_mixture
from vlmsae.training.variants import Variant, expand_preset

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
# Hyper-parameters a variant may list several values of, one run family per variant: the runs
# are the product of its lists, named in this order (gsae-natoms1024-k32).
FRONTIER_KEYS = ("n_atoms", "k", "target_l0")


def _schema_error(error: jsonschema.ValidationError, schema: dict[str, Any]) -> ConfigError:
    """One line naming the key of a schema violation; an unknown key also gets the nearest
    existing key path of `schema` (the whole config schema), where one is near."""
    key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [name for name in error.instance if name not in allowed]
        section = tuple(str(part) for part in error.absolute_path)
        hints = {name: _nearest_path(name, section, allowed, schema) for name in unknown}
        # A path for each unknown key, else the section's own keys (one list for them all).
        if all(hints.values()):
            fix = "did you mean " + ", ".join(
                f"`{path}`" + (f" for '{name}'" if len(hints) > 1 else "")
                for name, path in hints.items()
            )
            fix += "?"
        else:
            fix = f"remove it or use one of: {', '.join(allowed)}"
        return ConfigError(
            key,
            error.message.replace("Additional properties are not allowed ", "unknown key "),
            fix,
        )
    fix = "see `vlmsae schema` for what this key takes"
    return ConfigError(key, error.message, fix)


# Stands for any name in a key path under a section of user-named entries (datasets.<name>).
_ANY_NAME = None


def _key_paths(
    schema: dict[str, Any], root: dict[str, Any], prefix: tuple = ()
) -> list[tuple[str | None, ...]]:
    """Every key path the config schema `root` defines below `schema`, local $refs followed;
    _ANY_NAME marks a user-chosen name (a dataset's, a variant's)."""
    if "$ref" in schema:
        # Only local references ("#/$defs/train") occur in the schema.
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    paths = []
    for name, child in schema.get("properties", {}).items():
        paths.append((*prefix, name))
        paths.extend(_key_paths(child, root, (*prefix, name)))
    if isinstance(schema.get("additionalProperties"), dict):
        paths.extend(_key_paths(schema["additionalProperties"], root, (*prefix, _ANY_NAME)))
    for keyword in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(keyword, []):
            paths.extend(_key_paths(branch, root, prefix))
    return paths


def _nearest_path(
    name: str, section: tuple[str, ...], allowed: list[str], schema: dict[str, Any]
) -> str | None:
    """The existing key path an unknown key `name` under `section` most likely means: one
    ending in `name` anywhere (a key moved to another section), the nearest to `section`
    first; else the closest spelling among the section's own keys (`allowed`); else None."""

    def shared(path: tuple) -> int:
        """Leading components in common with `section` (any name matches a user's name)."""
        return next(
            (
                i
                for i, (a, b) in enumerate(zip(path, section, strict=False))
                if a is not _ANY_NAME and a != b
            ),
            min(len(path), len(section)),
        )

    def spelt(path: tuple) -> str:
        """The path with each user-chosen name filled in from `section` where it lies on it."""
        common = shared(path)
        return ".".join(
            part if part is not _ANY_NAME else section[i] if i < common else "<name>"
            for i, part in enumerate(path)
        )

    moved = [path for path in _key_paths(schema, schema) if path[-1] == name]
    if moved:
        return spelt(min(moved, key=lambda path: (-shared(path), len(path))))
    close = difflib.get_close_matches(name, allowed, n=1)
    return ".".join((*section, close[0])) if close else None


def _variant_properties() -> dict[str, Any]:
    """Every registered variant's hyper-parameters, one property each (the union over variants).

    A key's default depends on the variant, so none is set here: `_check_variant` fills them in
    from the variant's Settings (`Variant.from_config`).
    """
    properties: dict[str, Any] = {}
    for entry in sae.VARIANTS:
        for name, schema in settings_schema(entry.settings)["properties"].items():
            schema = {key: value for key, value in schema.items() if key != "default"}
            if name in properties:
                properties[name]["description"] += f"; {entry.name}"
                continue
            schema["description"] = f"{schema.get('description', '')}; taken by: {entry.name}"
            properties[name] = schema
    for name in FRONTIER_KEYS:
        if name in properties:
            single = properties[name]
            several = {"type": "array", "items": single, "minItems": 1, "uniqueItems": True}
            properties[name] = {
                "description": single.pop("description"),
                "anyOf": [single, several],
            }
    return properties


def full_schema() -> dict[str, Any]:
    """The config schema: schemas/config.schema.yaml plus the sections the registries generate.

    Every registered dataset source's section, every variant's hyper-parameters and every metric
    group's options come from their Settings dataclasses, so a new module needs no schema edit.
    """
    from vlmsae.figures import FIGURES
    from vlmsae.interventions import INTERVENTIONS
    from vlmsae.metrics import group_settings

    schema = copy.deepcopy(_base_schema())
    dataset = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    for entry in datasets.SOURCES:
        dataset[entry.name] = settings_schema(entry.settings, entry.description)
    variant = schema["properties"]["variants"]["additionalProperties"]["properties"]
    variant.update(_variant_properties())
    variant.update(regularisers.variant_properties())
    schema["properties"]["sweeps"]["properties"].update(regularisers.sweep_properties())
    metrics = schema["properties"]["evaluation"]["properties"]["metrics"]
    for name, settings, description in group_settings():
        metrics["properties"][name] = {**settings_schema(settings, description), "default": {}}
    health = schema["properties"]["evaluation"]["properties"]["health"]
    health["properties"] = settings_schema(HealthSettings)["properties"]
    for section, registry in (("figures", FIGURES), ("interventions", INTERVENTIONS)):
        properties = schema["properties"][section]["properties"]
        for entry in registry:
            properties[entry.name] = {
                **settings_schema(entry.settings, entry.description),
                "default": {},
            }
    return schema


@functools.cache
def _base_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator that also fills in every default it passes (as Snakemake's)."""
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    extended = jsonschema.validators.extend(base, {"properties": properties_with_defaults})
    return extended(schema)


def check_config(config: dict, base_dir: str | Path = ".") -> dict:
    """Validate `config` in place (defaults filled in) and return it; raise ConfigError if bad.

    Relative paths in dataset sections are taken from `base_dir` (the working directory).
    """
    plugins = config.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError("plugins", "must be a list of module names or .py files", "fix it")
    load_plugins(plugins, base_dir)
    # Set by the user, not the default [10, 100], which small dictionaries cannot hold.
    usage = ((config.get("evaluation") or {}).get("metrics") or {}).get("atom_usage") or {}
    explicit_top_m = usage.get("energy_top_m") if isinstance(usage, dict) else None
    schema = full_schema()
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(config))
    if error is not None:
        raise _schema_error(error, schema)

    for name, spec in config["datasets"].items():
        _check_dataset(name, spec, Path(base_dir))
        if datasets.needs_model(spec["source"]):
            _check_models(name, spec, config["models"])
    for name in config["datasets"]:
        _check_sae_source(name, config)
    config["variants"] = {
        name: _check_variant(name, variant)
        for name, variant in _expand_frontiers(config["variants"]).items()
    }
    for mixture in config["mixtures"]:
        try:
            parse_mixture(mixture)
        except ValueError as error:
            raise ConfigError("mixtures", str(error), "write ratios like '1-1' or '5-1'") from error
    _check_across_sections(config, explicit_top_m)
    return config


def _check_across_sections(config: dict, explicit_top_m: list[int] | None) -> None:
    """What one section asks of another, checked before any job runs: a paired variant needs
    mixture 1-1, top-m atoms fit in every dictionary, an MP SAE's k fits in the data's d, and
    the devices and precisions do not contradict the resources."""
    for name, variant in variants(config).items():
        if variant.regularisers.paired and PAIRED_MIXTURE not in config["mixtures"]:
            raise ConfigError(
                f"variants.{name}",
                f"has a regulariser, so it trains on aligned pairs (mixture {PAIRED_MIXTURE} "
                f"only), but 'mixtures' is {config['mixtures']}",
                f"add '{PAIRED_MIXTURE}' to mixtures, or remove the variant's regulariser",
            )
        top_m = max(explicit_top_m or [0])
        if top_m > variant.settings.n_atoms:
            raise ConfigError(
                "evaluation.metrics.atom_usage.energy_top_m",
                f"{top_m} exceeds variant '{name}''s n_atoms={variant.settings.n_atoms}",
                "list top-m values no larger than the smallest n_atoms",
            )
        if variant.type == "mp":
            for dataset, spec in config["datasets"].items():
                for model, dim in _known_dims(spec, config["models"]).items():
                    if variant.k > dim:
                        raise ConfigError(
                            f"variants.{name}.k",
                            f"{variant.k} exceeds the dimension d={dim} of dataset "
                            f"'{dataset}' ({model}); matching pursuit picks at most d atoms",
                            f"set k ≤ {dim}",
                        )
    _check_devices(config)


def _known_dims(spec: dict, model_entries: dict) -> dict[str, int]:
    """{model: d} of a dataset's stores, where d is known before embedding (synthetic d, a
    precomputed .npy header, a registered model's dimension)."""
    import numpy as np

    source, section = spec["source"], spec[spec["source"]]
    if source == "synthetic":
        return dict.fromkeys(spec["models"], int(section["d"]))
    if source == "precomputed":
        path = section.get("path") or section.get("image_path")
        if not str(path).endswith(".npy"):
            return {}
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (OSError, ValueError):
            return {}  # the embed job reports an unreadable file, naming it
        return dict.fromkeys(spec["models"], int(shape[-1])) if len(shape) >= 2 else {}
    if datasets.needs_model(source):
        from vlmsae import models

        return {m: models.resolve(m, model_entries.get(m)).dim for m in spec["models"]}
    return {}


def _check_devices(config: dict) -> None:
    """A CUDA device or half precision asked for where the rule asks no GPU, or on the CPU.

    Whether CUDA is visible is not checked here: on a cluster the jobs run on other machines
    than the one that reads the config (vlmsae.devices checks it in the job, first thing)."""
    for rule in ("embed", "train"):
        device = str(config[rule].get("device", "auto"))
        if device.startswith("cuda") and config["resources"][rule].get("gpu", 0) == 0:
            raise ConfigError(
                f"{rule}.device",
                f"'{device}' but resources.{rule}.gpu is 0, so no job of rule {rule} gets a GPU",
                f"set resources.{rule}.gpu: 1, or {rule}.device: auto",
            )
    precision = config["embed"].get("precision", "auto")
    if precision in ("bf16", "fp16") and config["embed"].get("device") == "cpu":
        raise ConfigError(
            "embed.precision", f"'{precision}' needs CUDA but embed.device is 'cpu'", "use fp32"
        )


def _expand_frontiers(variants: dict[str, dict]) -> dict[str, dict]:
    """Variants whose FRONTIER_KEYS list several values, as one variant per combination.

    `topk: {k: [8, 16]}` becomes `topk-k8` and `topk-k16`, both of family `topk`, so one entry
    gives an R²–L0 frontier (linear-structure Fig. 1); `gsae: {n_atoms: [1024, 2048], k: [16,
    32]}` becomes the four `gsae-natoms{p}-k{k}`, the expansion × K grid of group-sparse Table 3.
    A combination that breaks a variant's own checks (k > n_atoms) is named with its entry, and
    so is an expanded name that another entry already has.
    """
    expanded = {}
    for name, variant in variants.items():
        listed = [key for key in FRONTIER_KEYS if isinstance(variant.get(key), list)]
        if not listed:
            expanded[name] = variant
            continue
        if {"k", "target_l0"} <= set(listed):
            raise ConfigError(
                f"variants.{name}",
                "lists both k and target_l0, two ways of setting one sparsity",
                "list the values of one of them",
            )
        for values in itertools.product(*(variant[key] for key in listed)):
            chosen = dict(zip(listed, values, strict=True))
            suffix = "-".join(f"{key.replace('_', '')}{value}" for key, value in chosen.items())
            expanded_name = f"{name}-{suffix}"
            if expanded_name in variants or expanded_name in expanded:
                raise ConfigError(
                    f"variants.{name}",
                    f"its lists expand to '{expanded_name}', which is also a variant's name",
                    f"rename variant '{expanded_name}' or '{name}'",
                )
            entry = {**variant, **chosen, "family": variant.get("family", name)}
            try:
                Variant.from_config(expanded_name, expand_preset(entry))
            except ConfigError as error:
                raise ConfigError(
                    error.key.replace(f"variants.{expanded_name}", f"variants.{name}", 1),
                    f"{error.problem} (in the combination {expanded_name})",
                    error.fix,
                ) from error
            expanded[expanded_name] = entry
    return expanded


def variants(config: dict) -> dict[str, Variant]:
    """{name: Variant} of a checked config's variants (each rebuilt from its entry, as a job
    does)."""
    return {name: Variant.from_config(name, entry) for name, entry in config["variants"].items()}


def _check_variant(name: str, entry: dict) -> dict:
    """The entry with its preset expanded and every default its `Variant` fills in (added after
    the entry's own keys, which keep their order and values: a rule's params change only when
    the entry does); ConfigError for an unknown type or hyper-parameter (`Variant.from_config`)."""
    entry = expand_preset(entry)
    defaults = Variant.from_config(name, entry).as_config()
    return {**entry, **{key: value for key, value in defaults.items() if key not in entry}}


def _check_dataset(name: str, spec: dict, base_dir: Path) -> None:
    key = f"datasets.{name}"
    datasets.SOURCES.get(spec["source"], f"{key}.source")
    if spec["source"] not in spec:
        raise ConfigError(
            key,
            f"source '{spec['source']}' needs a '{spec['source']}' section",
            f"add {key}.{spec['source']} (see config.yaml for an example)",
        )
    if spec.get("mms_reference", spec["models"][0]) not in spec["models"]:
        raise ConfigError(
            f"{key}.mms_reference",
            f"'{spec['mms_reference']}' is not one of its models",
            f"use one of: {', '.join(spec['models'])}",
        )
    source_key = f"{key}.{spec['source']}"
    settings = parse_settings(
        datasets.SOURCES.get(spec["source"]).settings, spec[spec["source"]], source_key
    )
    _resolve_input_files(settings, spec[spec["source"]], source_key, base_dir)


def _resolve_input_files(settings: Any, section: dict, key: str, base_dir: Path) -> None:
    """Input files (settings fields marked `format: file`) must exist; made absolute in place.

    Relative paths start at the working directory, which a job's may not be.
    """
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.metadata.get("schema", {}).get("format") != "file" or value is None:
            continue
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        if not path.exists():
            raise ConfigError(
                f"{key}.{field.name}",
                f"file not found: {path}",
                "correct the path (relative paths start at the working directory)",
            )
        section[field.name] = str(path)


def _check_sae_source(name: str, config: dict) -> None:
    """`datasets.<name>.sae_from` names another dataset that trains its own SAEs of every model
    listed here, on stores of the same dimension."""
    key, source = f"datasets.{name}.sae_from", config["datasets"][name].get("sae_from")
    if source is None:
        return
    specs = config["datasets"]
    if source == name:
        raise ConfigError(
            key, "names the dataset itself", "remove it: a dataset trains its own SAEs"
        )
    if source not in specs:
        others = ", ".join(other for other in specs if other != name)
        raise ConfigError(
            key, f"'{source}' is not a dataset of this config", f"name one of: {others}"
        )
    if "sae_from" in specs[source]:
        raise ConfigError(
            key,
            f"'{source}' trains no SAEs: it scores those of '{specs[source]['sae_from']}' (its "
            "own sae_from)",
            f"name the dataset that trains them, or remove datasets.{source}.sae_from",
        )
    missing = [model for model in specs[name]["models"] if model not in specs[source]["models"]]
    if missing:
        raise ConfigError(
            f"datasets.{name}.models",
            f"'{missing[0]}' is not a model of '{source}' (its sae_from), so no SAE of it is "
            "trained there",
            f"add it to datasets.{source}.models, or list only models of "
            f"'{source}': {', '.join(specs[source]['models'])}",
        )
    dims = _known_dims(specs[source], config["models"])
    for model, dim in _known_dims(specs[name], config["models"]).items():
        if dims.get(model, dim) != dim:
            raise ConfigError(
                key,
                f"the '{model}' stores differ in dimension: d={dim} here, d={dims[model]} in "
                f"'{source}', so its SAEs cannot encode these rows",
                "score SAEs of a dataset embedded by the same model",
            )


def _check_models(name: str, spec: dict, model_entries: dict) -> None:
    """Every model of a raw dataset resolves (registry or `models.<name>`) to its modality."""
    from vlmsae import models

    modality = datasets.media_modality(spec["source"])
    for model in spec["models"]:
        model_spec = models.resolve(model, model_entries.get(model))
        if model_spec.modality != modality:
            fitting = [m for m in models.available() if models.resolve(m).modality == modality]
            raise ConfigError(
                f"datasets.{name}.models",
                f"'{model}' embeds {model_spec.modality} but source {spec['source']} holds "
                f"{modality}",
                f"use {modality}–text models: {', '.join(fitting)}",
            )
