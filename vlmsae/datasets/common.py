"""Settings several dataset sources take, declared once.

A source's settings dataclass derives from the ones it takes, so a key means the same thing,
with the same default, bounds and description, in every source that has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmsae.registry_base import Settings, setting

EVAL_FRACTION = 0.2


@dataclass(frozen=True, kw_only=True)
class MaxItems(Settings):
    """A cut for smoke tests: the first items only."""

    max_items: int | None = setting(
        None,
        "keep the first N items with their texts; a dataset with a split of its own keeps each "
        "split's first items, in proportion",
        minimum=1,
    )


@dataclass(frozen=True, kw_only=True)
class Seeded(Settings):
    """The seed of what a source draws at random."""

    seed: int = setting(
        0,
        "seed of the source's random draws (a random eval split, class-prompt templates)",
        minimum=0,
    )


@dataclass(frozen=True, kw_only=True)
class EvalShare(Settings):
    """The eval share of a seeded random split."""

    eval_fraction: float = setting(
        EVAL_FRACTION,
        "eval share of the seeded random split (of sources without a split of their own)",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )


@dataclass(frozen=True, kw_only=True)
class RandomSplit(EvalShare, Seeded):
    """A seeded random eval share, for releases without a split of their own."""
