"""Where a run's files live: one pattern for the rules (as wildcards), the config's run list and
the figures (filled in), so the layout is written once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A run's folder below results/sae/, results/metrics/ and results/interventions/; as it stands,
# the wildcard pattern of the rules' outputs.
RUN_PATH = "{dataset}/{model}/{variant}/{mixture}/seed{seed}"


def run_path(run: Mapping[str, Any]) -> str:
    """The folder of `run` (its dataset, model, variant, mixture and seed) below results/sae/
    and results/metrics/."""
    return RUN_PATH.format(**run)


def sae_run_path(run: Mapping[str, Any]) -> str:
    """The folder below results/sae/ of the SAE that `run` is measured with: the run's own, or,
    where `run["trained_on"]` names another dataset (its dataset's `sae_from`), that dataset's
    run of the same model, variant, mixture and seed."""
    return RUN_PATH.format(**{**run, "dataset": run.get("trained_on") or run["dataset"]})
