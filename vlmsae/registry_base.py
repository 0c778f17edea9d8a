"""The one extension pattern: a registry of named things, each with a typed settings dataclass.

SAE variants, dataset sources, metric groups and figures are all added the same way: a module
declares a frozen dataclass of its settings (every default in one place, each field made with
`setting`, which also carries the field's JSON-schema description and bounds) and registers
itself with its registry. The config schema's per-entry sections are generated from those
dataclasses (`settings_schema`), and a config section is turned into the dataclass by
`parse_settings`, so adding an entry is one new module plus its tests.

Registries discover the modules of their own package on first use; modules outside the package
(a user's plugin) are imported through the config key `plugins` (`load_plugins`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pkgutil
import sys
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from vlmsae.errors import ConfigError

T = TypeVar("T")


def setting(default: Any = MISSING, description: str = "", **schema: Any) -> Any:
    """A dataclass field with its default, description and JSON-schema keywords (bounds, enum).

    Mutable defaults (lists, dicts) are copied for every instance.
    """
    metadata = {"description": description, "schema": schema}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of every settings dataclass (kw-only, so required fields may follow defaults)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered thing: its name, the object itself, its settings class and what it is."""

    name: str
    obj: T
    settings: type[Settings]
    description: str
    extra: dict[str, Any]


class Registry(Generic[T]):
    """Named entries of one kind; refuses a second entry under a name already taken."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = package is None

    def register(
        self,
        name: str,
        settings: type[Settings] = Settings,
        description: str = "",
        **extra: Any,
    ) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name` with its settings class."""

        def add(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                previous = self._entries[name].obj
                raise ValueError(
                    f"{self.kind} '{name}' is already registered by "
                    f"{getattr(previous, '__module__', previous)}; choose another name"
                )
            if not (isinstance(settings, type) and issubclass(settings, Settings)):
                raise TypeError(f"{self.kind} '{name}': settings must subclass vlmsae Settings")
            doc = description or (obj.__doc__ or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, obj, settings, doc, extra)
            return obj

        return add

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
        load_plugins(plugins_from_environment())

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._discover()
        return iter(sorted(self._entries.values(), key=lambda entry: entry.name))

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def get(self, name: str, key: str | None = None) -> Entry[T]:
        """The entry called `name`; ConfigError at config `key` (or KeyError) when unknown."""
        self._discover()
        if name not in self._entries:
            problem = f"unknown {self.kind} '{name}'"
            if key is not None:
                raise ConfigError(key, problem, f"use one of: {', '.join(self.names())}")
            raise KeyError(f"{problem}; available: {', '.join(self.names())}")
        return self._entries[name]


# ---- settings <-> config sections ----------------------------------------------------------------
_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _type_schema(annotation: Any) -> dict[str, Any]:
    """JSON schema of a type annotation: int, float, bool, str, list[X], Literal, X | None."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple) and args:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(arg) for arg in args if arg is not type(None)]
        nullable = type(None) in args
        if len(options) == 1 and "type" in options[0] and len(options[0]) == 1:
            kind = options[0]["type"]
            return {"type": [kind, "null"] if nullable else kind}
        return {"anyOf": options + ([{"type": "null"}] if nullable else [])}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if annotation is Any:
        return {}
    raise TypeError(f"no JSON schema for the settings type {annotation!r}")


def _hints(cls: type[Settings]) -> dict[str, Any]:
    # Each class in the MRO resolves its annotations in its own module's namespace.
    return typing.get_type_hints(cls)


def settings_schema(cls: type[Settings], description: str = "") -> dict[str, Any]:
    """The JSON schema of a config section holding `cls`'s fields (defaults filled in)."""
    hints = _hints(cls)
    properties, required = {}, []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        schema = _type_schema(hints[field.name])
        schema.update(field.metadata.get("schema", {}))
        if field.metadata.get("description"):
            schema["description"] = field.metadata["description"]
        if field.default is not MISSING:
            if field.default is not None:
                schema["default"] = field.default
        elif field.default_factory is not MISSING:
            schema["default"] = field.default_factory()
        else:
            required.append(field.name)
        properties[field.name] = schema
    section: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        section["required"] = required
    if description:
        section["description"] = description
    return section


def parse_settings(cls: type[T], section: dict | None, key: str) -> T:
    """`cls` built from a config section: unknown or missing keys are a ConfigError at `key`."""
    section = dict(section or {})
    names = {field.name for field in dataclasses.fields(cls) if field.init}
    for name in section:
        if name not in names:
            raise ConfigError(
                f"{key}.{name}",
                "unknown key",
                f"remove it or use one of: {', '.join(sorted(names))}",
            )
    try:
        settings = cls(**section)
    except TypeError as error:  # a required field without a value
        missing = next(
            (
                field.name
                for field in dataclasses.fields(cls)
                if field.init
                and field.name not in section
                and field.default is MISSING
                and field.default_factory is MISSING
            ),
            None,
        )
        raise ConfigError(
            f"{key}.{missing}" if missing else key, "is required", "set it"
        ) from error
    check = getattr(settings, "check", None)
    if check is not None:
        try:
            check()
        except ValueError as error:
            # A message that starts with "field=" is about that field: name its key.
            field_name = str(error).split("=", 1)[0]
            where = f"{key}.{field_name}" if field_name in names else key
            message, _, fix = str(error).partition("; ")
            raise ConfigError(where, message, fix or "change these settings") from error
    return settings


PLUGINS_VARIABLE = "VLMSAE_PLUGINS"


def plugins_from_environment() -> list[str]:
    """The plugins `load_plugins` last loaded, as it left them for the jobs it starts."""
    value = os.environ.get(PLUGINS_VARIABLE, "")
    return [name for name in value.split(os.pathsep) if name]


def load_plugins(modules: list[str], base_dir: str | Path = ".") -> None:
    """Import extension modules named in config `plugins` (a dotted name or a .py file).

    They are also recorded, .py files as absolute paths, in the environment variable
    VLMSAE_PLUGINS, which Snakemake's jobs (local, or submitted with the environment) inherit, so
    every job's registries hold the same entries as the workflow's.
    """
    loaded = []
    for index, name in enumerate(modules):
        key = f"plugins[{index}]"
        if not name.endswith(".py"):
            loaded.append(name)
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as error:
                fix = "put the module on PYTHONPATH or name a .py file"
                raise ConfigError(key, f"cannot import '{name}'", fix) from error
            continue
        path = Path(name) if Path(name).is_absolute() else Path(base_dir) / name
        if not path.exists():
            raise ConfigError(key, f"file not found: {path}", "correct the path")
        loaded.append(str(path.resolve()))
        module_name = f"vlmsae_plugin_{path.stem}"
        if module_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    if loaded:
        os.environ[PLUGINS_VARIABLE] = os.pathsep.join(loaded)
