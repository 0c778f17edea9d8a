"""Metrics of DESIGN §5: one module per quantity on plain arrays, behind two registries.

A metric group is a module that declares its options as a Settings dataclass and registers a
function for either level, or both, under one group name:
- `@RUN_METRICS.register(name, Settings)` on `summarise(context: EvalContext, settings)`: what
  depends on one SAE run (its codes, dictionary, reconstructions);
- `@STORE_METRICS.register(name, Settings)` on `summarise_store(context: StoreContext, settings)`:
  what depends on the store's dense eval rows only (cones, dense retrieval and gap, the MMS
  baseline), computed once per store (rule `store_metrics`, results/tables/stores.csv).
Both return a MetricResult. `evaluation.metrics.<name>` in the config holds the group's options;
its schema is generated from the Settings. The extra `order` (default 100) sets the order in
which groups run and their columns appear; the extra `cost` (default 1: roughly the group's
seconds at the scale of bench/metrics_scale.py, in a thread beside another group, one BLAS thread
each) lets the costliest start first when a job runs groups in threads (`evaluate.run_groups`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vlmsae.registry_base import Entry, Registry, Settings, parse_settings

RUN_METRICS: Registry[Any] = Registry("metric group", "vlmsae.metrics")
STORE_METRICS: Registry[Any] = Registry("store metric group", "vlmsae.metrics")


def ordered(registry: Registry) -> list[Entry]:
    """The registry's entries in their `order`, then by name."""
    return sorted(registry, key=lambda entry: (entry.extra.get("order", 100), entry.name))


def group_settings() -> Iterator[tuple[str, type[Settings], str]]:
    """(name, Settings class, description) of every group, once per name across both levels."""
    seen: dict[str, type[Settings]] = {}
    for entry in [*RUN_METRICS, *STORE_METRICS]:
        if entry.name in seen:
            if seen[entry.name] is not entry.settings:
                raise ValueError(
                    f"metric group '{entry.name}' registers two different Settings classes"
                )
            continue
        seen[entry.name] = entry.settings
        yield entry.name, entry.settings, entry.description


def parse_group_settings(sections: dict[str, dict] | None) -> dict[str, Settings]:
    """Every group's typed settings from config `evaluation.metrics` (defaults for the rest)."""
    sections = sections or {}
    return {
        name: parse_settings(settings, sections.get(name), f"evaluation.metrics.{name}")
        for name, settings, _ in group_settings()
    }
