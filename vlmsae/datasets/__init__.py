"""Dataset sources, one module each, behind one registry.

A source turns its config section into the arrays of an embedding store (see `vlmsae.store`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vlmsae.datasets import precomputed, synthetic
from vlmsae.store import write_store


def _synthetic(spec: dict) -> dict:
    return synthetic.generate(synthetic.SyntheticParams(**spec["synthetic"]))


def _precomputed(spec: dict) -> dict:
    return precomputed.build(spec["precomputed"])


_SOURCES: dict[str, Callable[[dict], dict]] = {
    "synthetic": _synthetic,
    "precomputed": _precomputed,
}


def available() -> list[str]:
    """Names of the registered dataset sources."""
    return sorted(_SOURCES)


def build_store(dataset: str, model: str, spec: dict, path: str | Path) -> Path:
    """Build the store of (`dataset`, `model`) from its config `spec` and write it to `path`."""
    arrays = _SOURCES[spec["source"]](spec)
    attrs = {**arrays.pop("attrs"), "dataset": dataset, "model": model}
    return write_store(path, **arrays, attrs=attrs)
