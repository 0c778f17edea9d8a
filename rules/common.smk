# Config validation (schema + vlmsae.config checks), the run list and resource helpers.
import sys

from vlmsae.config import check_config, runs
from vlmsae.errors import VlmsaeError
from vlmsae.sweeps import PARAMETERS as SWEEP_PARAMETERS
from vlmsae.sweeps import sweep_points, swept_parameters

try:
    check_config(config, base_dir=os.getcwd())
except VlmsaeError as error:
    # One line naming the key and the fix, exit status 1, nothing built.
    sys.exit(f"vlmsae: {error}")

RUNS = runs(config)
STORE_PATHS = sorted({f"{run.dataset}/{run.model}" for run in RUNS})
VARIANT_PATHS = sorted({f"{run.dataset}/{run.model}/{run.variant}" for run in RUNS})
RUN_DIR = "{dataset}/{model}/{variant}/{mixture}/seed{seed}"
# Per-run evaluation settings (stability is across runs, so its settings are not among them).
EVAL_SETTINGS = {k: v for k, v in config["evaluation"].items() if k != "stability_top_m"}


wildcard_constraints:
    dataset="[^/]+",
    model="[^/]+",
    variant="[^/]+",
    mixture="[0-9]+-[0-9]+",
    seed="[0-9]+",


def rule_resources(rule_name):
    """Generic resources of a rule, from config `resources.<rule>`; profiles map them further."""
    spec = config["resources"][rule_name]
    return {"gpu": spec["gpu"], "mem_mb": spec["mem_mb"], "runtime": spec["runtime"]}


def runs_of_store(wildcards):
    return [run for run in RUNS if (run.dataset, run.model) == (wildcards.dataset, wildcards.model)]
