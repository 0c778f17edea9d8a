"""What a variant config entry holds besides the SAE's own Settings, and how it splits."""

from __future__ import annotations

from vlmsae.training.regularisers import REGULARISER_KEYS, REGULARISER_OPTIONS, Regularisers

# Keys of a variant config entry that are not SAE Settings: `family` only groups variants in
# tables and figures (a variant listing several k is one family).
VARIANT_KEYS = ("type", "family", *REGULARISER_KEYS, *REGULARISER_OPTIONS)


def split_variant(variant: dict) -> tuple[str, int, dict, Regularisers]:
    """(type, n_atoms, SAE hyper-parameters, regularisers) of a variant config entry."""
    hyper = {k: v for k, v in variant.items() if k not in ("n_atoms", *VARIANT_KEYS)}
    return variant["type"], variant["n_atoms"], hyper, Regularisers.from_variant(variant)
