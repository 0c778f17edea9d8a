"""The registry of SAE variants: adding a variant is adding one module that calls `register`.

A variant is a `SparseAutoencoder` subclass with a class attribute `variant` (its config name) and
`Settings`, a frozen dataclass derived from `SAESettings` that lists its hyper-parameters with
their defaults (vlmsae.registry_base.setting); the config schema of `variants.<name>` is generated
from those dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.registry_base import Registry, Settings, setting

if TYPE_CHECKING:
    from vlmsae.sae.base import SparseAutoencoder

VARIANTS: Registry[type[SparseAutoencoder]] = Registry("SAE variant", "vlmsae.sae")


@dataclass(frozen=True, kw_only=True)
class SAESettings(Settings):
    """What every variant takes."""

    n_atoms: int = setting(512, "dictionary size p", minimum=1)
    modality_biases: bool = setting(
        False, "one pre-encoder bias per modality (GSAE, group-sparse eq. 3)"
    )

    def check(self) -> None:
        """Raise ValueError ("field=value ...; fix") for settings that contradict each other."""


class KWithinAtoms:
    """Mixin, listed before SAESettings, of the Settings with a `k` (active atoms per row, or
    None where optional): k ≤ n_atoms."""

    k: int | None
    n_atoms: int

    def check(self) -> None:
        super().check()  # type: ignore[misc]
        if self.k is not None and self.k > self.n_atoms:
            raise ValueError(f"k={self.k} exceeds n_atoms={self.n_atoms}; lower k or raise n_atoms")


def register(cls: type[SparseAutoencoder]) -> type[SparseAutoencoder]:
    """Class decorator: register a variant under `cls.variant` with `cls.Settings`."""
    return VARIANTS.register(cls.variant, cls.Settings)(cls)
