"""Dataset sources, one module each, behind one registry (`SOURCES`).

Each source module declares a frozen settings dataclass (its config section
`datasets.<name>.<source>`) and registers one function with it. Two kinds of source:
- embedding sources (`synthetic`, `precomputed`, `clip_retrieval`; `kind="embedding"`) already
  hold embeddings: `build(settings)` returns the arrays of a store
  (`vlmsae.stores.embedding_store.write_store`), and the store's model name only labels it;
- raw sources (`coco`, `cc3m`, ... `jamendomaxcaps`; `kind="raw"`, `modality="image"` or
  `"audio"`) read a dataset's own on-disk layout: `read(settings)` returns a `RawDataset`, and
  `vlmsae.stores.build.build_store` runs the named model over it.

The registry imports the source modules on first use, so this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vlmsae.registry_base import Registry, Settings, parse_settings

if TYPE_CHECKING:
    from vlmsae.datasets.raw import RawDataset

SOURCES: Registry[Callable[[Any], Any]] = Registry("dataset source", "vlmsae.datasets")


def available() -> list[str]:
    """Names of the registered dataset sources."""
    return SOURCES.names()


def needs_model(source: str) -> bool:
    """Whether stores of `source` are made by running a model (rather than read from files)."""
    return SOURCES.get(source).extra["kind"] == "raw"


def media_modality(source: str) -> str:
    """The non-text modality a source holds: "image" or "audio"."""
    # Embedding sources (synthetic, precomputed, ...) pair image rows with text rows.
    return SOURCES.get(source).extra.get("modality", "image")


def source_settings(source: str, section: dict | None, key: str) -> Settings:
    """The settings of `source` from its config section (ConfigError at `key` when bad)."""
    return parse_settings(SOURCES.get(source, key).settings, section, key)


def read_raw(source: str, settings: Settings) -> RawDataset:
    """Read a raw dataset's layout (no decoding) as its settings describe it."""
    entry = SOURCES.get(source)
    if entry.extra["kind"] != "raw":
        raise ValueError(f"dataset source '{source}' is not a raw source: it has no reader")
    return entry.obj(settings)
