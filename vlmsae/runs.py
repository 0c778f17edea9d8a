"""The runs a checked config asks for: every (dataset, model, variant, mixture, seed).

Kept apart from `vlmsae.config`, whose checks import every registry: the Snakefile and `vlmsae
runs` list runs at each start, from a config the cache (vlmsae.config_cache) has already checked,
and need nothing heavier than the regularisers' registry for it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vlmsae.run_path import run_path, sae_run_path
from vlmsae.training.regularisers import Regularisers

# Variants with a regulariser train on aligned pairs, so only at this mixture.
PAIRED_MIXTURE = "1-1"


@dataclass(frozen=True)
class Run:
    """One SAE run measured on its dataset's store; `path` is its folder below results/metrics/
    (and below results/sae/ where it trains). `trained_on` is the dataset whose SAE it scores:
    its own (the default), or its `sae_from` dataset's, whose weights are at `sae_path`."""

    dataset: str
    model: str
    variant: str
    mixture: str
    seed: int
    trained_on: str | None = None

    def __post_init__(self) -> None:
        if self.trained_on is None:
            object.__setattr__(self, "trained_on", self.dataset)

    @property
    def path(self) -> str:
        return run_path(self.as_dict())

    @property
    def sae_path(self) -> str:
        """The folder below results/sae/ of the weights the run is measured with."""
        return sae_run_path({**self.as_dict(), "trained_on": self.trained_on})

    @property
    def trains(self) -> bool:
        """Whether the run trains an SAE of its own (rule train), or scores another's."""
        return self.trained_on == self.dataset

    def as_dict(self) -> dict:
        """The run's keys, which name its folder (`trained_on` is not one: see `sae_path`)."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "variant": self.variant,
            "mixture": self.mixture,
            "seed": self.seed,
        }


def sae_source(config: dict, dataset: str) -> str:
    """The dataset whose SAEs `dataset`'s runs are measured with: its `sae_from`, or itself."""
    return config["datasets"][dataset].get("sae_from") or dataset


def runs(config: dict) -> list[Run]:
    """Every (dataset, model, variant, mixture, seed) the config asks for, in a stable order.

    Paired variants (those with a regulariser) train on aligned pairs: mixture 1-1 only. The
    runs of a dataset with `sae_from` are `trained_on` that dataset (`sae_source`).
    """
    found = []
    mixtures_of = {
        name: [PAIRED_MIXTURE] if Regularisers.from_variant(entry).paired else config["mixtures"]
        for name, entry in config["variants"].items()
    }
    for dataset, spec in config["datasets"].items():
        source = sae_source(config, dataset)
        for model, name, seed in itertools.product(spec["models"], mixtures_of, config["seeds"]):
            mixtures = mixtures_of[name]
            found += [Run(dataset, model, name, mixture, seed, source) for mixture in mixtures]
    return found
