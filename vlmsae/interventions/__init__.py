"""Interventions: DAG stages that act on a run's dictionary and measure the effect (iso-energy §5,
group-sparse §5.3 and App. A.2.3/A.5).

An intervention is a module that declares its options as a Settings dataclass (config
`interventions.<name>`, schema generated) and registers a function telling whether it runs on a
dataset: `@INTERVENTIONS.register(name, Settings)` on `applies(spec: dict, settings) -> bool`,
where `spec` is the dataset's config entry. Every Settings derives from InterventionSettings
(`enabled`, `datasets`); the DAG asks for an intervention's outputs on every run of every dataset
it applies to (rules/interventions.smk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlmsae.errors import ConfigError
from vlmsae.registry_base import Registry, Settings, parse_settings, setting

INTERVENTIONS: Registry[Any] = Registry("intervention", "vlmsae.interventions")


@dataclass(frozen=True, kw_only=True)
class InterventionSettings(Settings):
    """What every stage's Settings holds: whether it runs, and on which datasets."""

    enabled: bool = setting(True, "run the stage on every dataset it applies to")
    datasets: list[str] | None = setting(
        None, "the datasets the stage runs on (null: every dataset it applies to)"
    )


def parse(name: str, section: dict | None) -> Any:
    """The typed settings of intervention `name` from its config section (a rule's params)."""
    entry = INTERVENTIONS.get(name, f"interventions.{name}")
    return parse_settings(entry.settings, section, f"interventions.{name}")


def settings_of(config: dict, name: str) -> Any:
    """The typed settings of intervention `name` from config `interventions.<name>`."""
    return parse(name, (config.get("interventions") or {}).get(name))


def applies(config: dict, name: str, dataset: str) -> bool:
    """Whether intervention `name` runs on `dataset` under `config` (enabled and fed); False for
    a dataset the config does not hold."""
    spec = config.get("datasets", {}).get(dataset)
    if spec is None:
        return False
    settings = settings_of(config, name)
    unknown = sorted(set(settings.datasets or ()) - set(config["datasets"]))
    if unknown:
        raise ConfigError(
            f"interventions.{name}.datasets",
            f"names datasets the config does not have: {', '.join(unknown)}",
            f"use some of: {', '.join(config['datasets'])}",
        )
    if not settings.enabled or (settings.datasets is not None and dataset not in settings.datasets):
        return False
    return bool(INTERVENTIONS.get(name).obj(spec, settings))
