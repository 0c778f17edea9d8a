"""A variant: what one `variants.<name>` config entry asks to train, as one frozen, typed object.

`Variant.from_config` expands the entry's preset, parses its SAE hyper-parameters into the variant
type's own Settings class (vlmsae/sae/*.py, checked by that class) and its regulariser weights
into `Regularisers`, with one ConfigError naming the key for anything wrong. The trainer builds
the SAE from `settings` (`vlmsae.sae.build_from_settings`) and its losses from `regularisers`;
nothing splits a dict of mixed keys again. Adding a hyper-parameter to a variant is adding one
field to its Settings class.

The Snakemake config the rules read stays plain dicts (`vlmsae.config.check_config` fills in
every default a Variant holds); each job rebuilds its Variant from `config["variants"][name]`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vlmsae import sae
from vlmsae.errors import ConfigError
from vlmsae.registry_base import parse_settings
from vlmsae.sae.variant_registry import KWithinAtoms, SAESettings
from vlmsae.training.regularisers import REGULARISERS, Regularisers, config_keys

# Named recipes of the papers; a variant's own keys override them.
VARIANT_PRESETS = {
    # iso-energy §3, eq. 1, as the authors' code trains it: their alignment form, no decoder bias
    "sae-a": {
        "type": "mp",
        "k": 20,
        "alignment": 1e-4,
        "alignment_form": "authors",
        "decoder_bias": False,
    },
    "gsae": {"type": "topk", "k": 32, "group_sparsity": 0.05, "modality_biases": True},
    "mgsae": {
        "type": "topk",
        "k": 32,
        "group_sparsity": 0.05,
        "modality_biases": True,
        "mask_probability": 0.2,
    },  # group-sparse App. A.2.1 (CLIP)
}


def expand_preset(entry: dict) -> dict:
    """The config entry with its preset's keys under its own (which override them), and no
    `preset` key."""
    expanded = {**VARIANT_PRESETS.get(entry.get("preset"), {}), **entry}
    expanded.pop("preset", None)
    return expanded


@dataclass(frozen=True)
class Variant:
    """One SAE variant to train: its type, its typed hyper-parameters and its regularisers."""

    type: str
    """The registered SAE variant that trains it (`vlmsae.sae.available()`: topk, mp, ...)."""

    settings: SAESettings
    """The SAE's hyper-parameters (n_atoms, k, ...): an instance of the type's Settings class."""

    regularisers: Regularisers = Regularisers()
    """Weights of the paired-batch regularisers; a weight still to be swept is 'sweep'."""

    family: str | None = None
    """The group it belongs to in tables and figures (a variant listing several k is one family);
    None: the variant's own name."""

    preset: str | None = None
    """The named recipe (VARIANT_PRESETS) its config entry started from, if any."""

    def __post_init__(self) -> None:
        if self.type not in sae.available():
            raise ValueError(f"type='{self.type}' is not a registered SAE variant")
        expected = sae.VARIANTS.get(self.type).settings
        if not isinstance(self.settings, expected):
            raise TypeError(
                f"settings of a {self.type} variant must be {expected.__name__}, "
                f"not {type(self.settings).__name__}"
            )
        if not isinstance(self.regularisers, Regularisers):
            raise TypeError(f"regularisers must be Regularisers, not {type(self.regularisers)}")
        if self.preset is not None and self.preset not in VARIANT_PRESETS:
            raise ValueError(f"preset='{self.preset}' is not one of {', '.join(VARIANT_PRESETS)}")

    @classmethod
    def from_config(cls, name: str, entry: dict) -> Variant:
        """The variant of config entry `variants.<name>`, its preset expanded and every default
        filled in; ConfigError for an unknown type or hyper-parameter, or sweeps that clash."""
        key = f"variants.{name}"
        preset = entry.get("preset")
        entry = expand_preset(entry)
        if "type" not in entry:
            raise ConfigError(
                key,
                "no 'type' and no 'preset'",
                f"add type: one of "
                f"{', '.join(sae.available())}, or preset: one of "
                f"{', '.join(VARIANT_PRESETS)}",
            )
        variant_type = entry.pop("type")
        family = entry.pop("family", None)
        regularising = {name: entry.pop(name) for name in config_keys() if name in entry}
        settings = parse_settings(
            sae.VARIANTS.get(variant_type, f"{key}.type").settings, entry, key
        )
        try:
            regularisers = Regularisers(**regularising)
        except ValueError as error:
            raise ConfigError(key, str(error), "see `vlmsae schema`, section variants") from error
        for regulariser in REGULARISERS:
            regulariser.obj.check_sweeps(key, regularisers.weights)
        return cls(
            type=variant_type,
            settings=settings,
            regularisers=regularisers,
            family=family,
            preset=preset if preset in VARIANT_PRESETS else None,
        )

    @property
    def swept(self) -> list[str]:
        """The regularisers still set to 'sweep' (none once the sweeps are resolved), in the order
        their sweeps run."""
        return self.regularisers.swept

    @property
    def k(self) -> int | None:
        """Active atoms per row its settings fix, for a type whose Settings have a `k`; else
        None (the penalised variants, whose L0 follows their penalty)."""
        return self.settings.k if isinstance(self.settings, KWithinAtoms) else None

    def with_regularisers(self, **weights: float | str) -> Variant:
        """This variant with the named regulariser weights replaced (a sweep point, a chosen
        value)."""
        return dataclasses.replace(self, regularisers=self.regularisers.replace(**weights))

    def as_config(self) -> dict[str, Any]:
        """The variant as a config entry (preset expanded): type, family when set, every SAE
        setting and every regulariser weight that is not its default. `Variant.from_config` of
        it gives this variant back, less `preset`."""
        return {
            "type": self.type,
            **({"family": self.family} if self.family is not None else {}),
            **self.settings.as_dict(),
            **self.regularisers.as_config(defaults=False),
        }

