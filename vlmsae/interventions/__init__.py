"""Interventions: DAG stages that act on a run's dictionary and measure the effect (iso-energy §5,
group-sparse §5.3 and App. A.2.3/A.5).

An intervention is a module that declares its options as a Settings dataclass (config
`interventions.<name>`, schema generated) and registers a function telling whether it runs on a
dataset: `@INTERVENTIONS.register(name, Settings)` on `applies(spec: dict, settings) -> bool`,
where `spec` is the dataset's config entry. Every Settings has `enabled`; the DAG asks for an
intervention's outputs on every run of every dataset it applies to (rules/interventions.smk).
"""

from __future__ import annotations

from typing import Any

from vlmsae.registry import Registry, parse_settings

INTERVENTIONS: Registry[Any] = Registry("intervention", "vlmsae.interventions")


def settings_of(config: dict, name: str) -> Any:
    """The typed settings of intervention `name` from config `interventions.<name>`."""
    entry = INTERVENTIONS.get(name, f"interventions.{name}")
    section = (config.get("interventions") or {}).get(name)
    return parse_settings(entry.settings, section, f"interventions.{name}")


def applies(config: dict, name: str, dataset: str) -> bool:
    """Whether intervention `name` runs on `dataset` under `config` (enabled and fed); False for
    a dataset the config does not hold."""
    spec = config.get("datasets", {}).get(dataset)
    if spec is None:
        return False
    settings = settings_of(config, name)
    return bool(settings.enabled) and bool(INTERVENTIONS.get(name).obj(spec, settings))
