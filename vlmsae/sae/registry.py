"""The registry of SAE variants: adding a variant is adding one module that calls `register`."""

from __future__ import annotations

from vlmsae.sae.base import SparseAutoencoder

VARIANTS: dict[str, type[SparseAutoencoder]] = {}


def register(cls: type[SparseAutoencoder]) -> type[SparseAutoencoder]:
    VARIANTS[cls.variant] = cls
    return cls
