"""The config checks' results kept on disk, so that a start skips the imports they need.

`vlmsae.config.check_config` and `full_schema` read every registry's Settings classes, and the
modules that declare them import torch (the SAE variants) and more: seconds per call, paid by
every Snakemake start (two per job through the cluster profile) and every `vlmsae runs`. Their
results depend only on what `key` hashes: the config as given, the working directory, the
package's source and schema files (path, size, modification time), the Python version and the
plugins (the variable VLMSAE_PLUGINS and the config's `plugins`, files by their stat). A hit
returns the stored JSON; a miss computes it through `vlmsae.config` and stores it, written
atomically. A checked config is also bound to the paths its dataset sections name: if one that
existed at check time is gone, the check runs again and reports it.

The cache lives in `.snakemake/vlmsae-cache/` under the working directory, or in the folder named
by VLMSAE_CACHE; VLMSAE_CACHE=off turns it off. Nothing here imports more than the standard
library, so a hit costs milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
SCHEMAS = PACKAGE.parent / "schemas"
CACHE_VARIABLE = "VLMSAE_CACHE"
# Entries kept per kind; older ones are removed when a new one is written.
KEEP = 16


def cache_dir(base_dir: str | Path = ".") -> Path | None:
    """Where entries are kept, or None when VLMSAE_CACHE=off."""
    setting = os.environ.get(CACHE_VARIABLE, "")
    if setting == "off":
        return None
    return Path(setting) if setting else Path(base_dir) / ".snakemake" / "vlmsae-cache"


def source_fingerprint() -> list[Any]:
    """(path, size, mtime) of every source and schema file the checks read, and the Python."""
    files = sorted(
        path
        for folder, pattern in ((PACKAGE, "*.py"), (SCHEMAS, "*.yaml"))
        for path in folder.rglob(pattern)
    )
    return [sys.version, *(_stat(path) for path in files)]


def key(kind: str, *parts: Any) -> str:
    """The cache key of one result: its kind, the sources, the plugins and `parts`."""
    plugins = [name for name in os.environ.get("VLMSAE_PLUGINS", "").split(os.pathsep) if name]
    described = [kind, source_fingerprint(), [_plugin(name) for name in plugins], *parts]
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    return f"{kind}-{digest.hexdigest()[:32]}"


def cached(
    kind: str,
    parts: list[Any],
    compute: Callable[[], Any],
    base_dir: str | Path = ".",
    still_valid: Callable[[Any], bool] = lambda value: True,
) -> Any:
    """compute() once per key; later the stored JSON value (when `still_valid` accepts it)."""
    folder = cache_dir(base_dir)
    if folder is None:
        return compute()
    path = folder / f"{key(kind, *parts)}.json"
    try:
        value = json.loads(path.read_text())
        if still_valid(value):
            return value
    except (OSError, ValueError):
        pass  # absent, half-written by a killed writer of another name, or unreadable: compute
    value = compute()
    encoded = json.dumps(value)
    # A value JSON cannot hold exactly (tuples, Paths) is not cached: a hit must equal a miss.
    if json.loads(encoded) == value:
        _write(folder, path, encoded, kind)
    return value


def checked_config(config: dict, base_dir: str | Path = ".") -> dict:
    """`vlmsae.config.check_config(config, base_dir)`, cached: `config` is updated in place to
    the checked config (defaults filled in) and returned. A bad config is never cached: its
    ConfigError is raised by the check each time."""
    given = json.loads(json.dumps(config, default=str))

    def check() -> dict:
        from vlmsae.config import check_config

        checked = check_config(config, base_dir)
        return {"config": checked, "paths": sorted(set(_dataset_paths(checked)))}

    plugin_files = [
        _plugin(str(Path(base_dir) / name) if name.endswith(".py") else name)
        for name in given.get("plugins") or []
        if isinstance(name, str)
    ]
    entry = cached(
        "config",
        [given, str(Path(base_dir).resolve()), plugin_files],
        check,
        base_dir,
        still_valid=lambda entry: all(os.path.exists(path) for path in entry["paths"]),
    )
    plugins = entry["config"].get("plugins", [])
    if plugins:
        # The jobs' registries must hold the plugins' entries; importing them is their own cost.
        from vlmsae.registry_base import load_plugins

        load_plugins(plugins, base_dir)
    checked = dict(entry["config"])  # on a miss, `config` itself, checked in place
    config.clear()
    config.update(checked)
    return config


def schema(base_dir: str | Path = ".") -> dict:
    """`vlmsae.config.full_schema()`, cached."""

    def compute() -> dict:
        from vlmsae.config import full_schema

        return full_schema()

    return cached("schema", [], compute, base_dir)


def _dataset_paths(checked: dict) -> Iterator[str]:
    """Absolute paths named in the dataset sections that exist now (the inputs a check read)."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)
        elif isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
            yield value

    yield from walk(checked.get("datasets", {}))


def _stat(path: Path) -> list[Any]:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _plugin(name: str) -> list[Any]:
    """A plugin file by its stat; a module by name (its source is not found without importing
    its parents, so an edit to a plugin module is seen when VLMSAE_CACHE=off)."""
    return _stat(Path(name)) if name.endswith(".py") else [name]


def _write(folder: Path, path: Path, encoded: str, kind: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(encoded)
        partial.replace(path)  # readers see the whole entry or none
        entries = sorted(folder.glob(f"{kind}-*.json"), key=lambda p: p.stat().st_mtime_ns)
        for old in entries[:-KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only working directory: every start computes, as without the cache
