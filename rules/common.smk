# Config validation (schema + vlmsae.config checks), the run list, and the input, param and
# resource functions of the rules (snakemake --lint: rule files hold no functions).
import functools
import json
import sys
from pathlib import Path

from vlmsae.config_cache import checked_config
from vlmsae.datasets import needs_model
from vlmsae.devices import check_local_devices
from vlmsae.errors import VlmsaeError, check_output_folders
from vlmsae.workflow.failed_jobs import failed_job_lines
from vlmsae.figures import figure_jobs, job_inputs, job_targets
from vlmsae.interventions import INTERVENTIONS
from vlmsae.interventions import applies as intervention_applies
from vlmsae.interventions import settings_of as intervention_settings
from vlmsae.interventions.edits import STORE_EDITS
from vlmsae.run_path import RUN_PATH, sae_run_path
from vlmsae.runs import runs, sae_source
from vlmsae.sweeps import PARAMETERS as SWEEP_PARAMETERS
from vlmsae.sweeps import round_values
from vlmsae.tables.recovery import synthetic_datasets
from vlmsae.training.regularisers import Regularisers

# Checked once per config and source tree (vlmsae.config_cache): later starts import no registry.
try:
    checked_config(config, base_dir=os.getcwd())
except VlmsaeError as error:
    # One line naming the key and the fix, exit status 1, nothing built.
    sys.exit(f"vlmsae: {error}")

RUNS = runs(config)
# {name: Regularisers}: what the sweep rules ask of every variant (its swept weights), typed.
REGULARISERS = {
    name: Regularisers.from_variant(entry) for name, entry in config["variants"].items()
}


@functools.cache
def variant_of(name):
    """The typed Variant of `variants.<name>`, built when a rule first needs its SAE settings
    (a sweep's k): building one imports the SAE registry, and so torch, which a start skips.
    """
    from vlmsae.training.variants import Variant

    return Variant.from_config(name, config["variants"][name])


def local_device_sections(jobs):
    """Config sections (`embed`, `train`) whose device the local jobs among `jobs` resolve:
    embedding jobs that run a model, and training jobs (sweep points included)."""
    sections = set()
    for job in jobs:
        if job.rule.name == "embed":
            if needs_model(config["datasets"][job.wildcards.dataset]["source"]):
                sections.add("embed")
        elif job.rule.name in ("train", "train_sweep_point"):
            sections.add("train")
    return sections


STORE_PATHS = sorted({f"{run.dataset}/{run.model}" for run in RUNS})
VARIANT_PATHS = sorted({f"{run.dataset}/{run.model}/{run.variant}" for run in RUNS})
RUN_DIR = RUN_PATH
# Per-run evaluation settings (stability is across runs, so its settings are not among them;
# the health thresholds are the metrics rule's alone, so changing one re-runs no other job).
EVAL_SETTINGS = {
    k: v
    for k, v in config["evaluation"].items()
    if k not in ("stability_top_m", "health")
}


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


def sae_file(name):
    """Input function: file `name` (sae.safetensors, config.json, train_log.csv) of the SAE that
    the wildcards' run is measured with: its own, or its dataset's `sae_from` run's."""
    return lambda wildcards: "results/sae/{}/{}".format(
        sae_run_path(
            {**wildcards, "trained_on": sae_source(config, wildcards.dataset)}
        ),
        name,
    )


def runs_of_store(wildcards):
    return [
        run
        for run in RUNS
        if (run.dataset, run.model) == (wildcards.dataset, wildcards.model)
    ]


# Tables of results/tables/ that figures may read (vlmsae.figures: a figure's `tables`).
TABLE_PATHS = {
    "summary": "results/tables/summary.csv",
    "stability": "results/tables/stability.csv",
    "atom_stability": "results/tables/atom_stability.parquet",
    "bridge_top": "results/tables/bridge_top.csv",
    "stores": "results/tables/stores.csv",
    "runs": "results/tables/runs.csv",
    "metrics_long": "results/tables/metrics_long.csv",
    "synthetic_recovery": "results/tables/synthetic_recovery.csv",
    "gap_closing": "results/tables/gap_closing.csv",
    "gap_histograms": "results/tables/gap_histograms.csv",
    "vector_arithmetic": "results/tables/vector_arithmetic.csv",
    "arithmetic_histograms": "results/tables/arithmetic_histograms.csv",
    "probe_concepts": "results/tables/probe_concepts.csv",
    "steering": "results/tables/steering.csv",
}
# {dataset: τ1} of the synthetic datasets: the recovery table's rows (vlmsae.tables.recovery).
SYNTHETIC_TAU1 = synthetic_datasets(config)
# The runs as figures see them: with the family a variant belongs to (a variant listing several
# k is expanded into one variant per k of one family; vlmsae.config).
FIGURE_RUNS = [
    {
        **run.as_dict(),
        "family": config["variants"][run.variant].get("family", run.variant),
    }
    for run in RUNS
]
# Only the figures the config feeds: e.g. no mixture heat map when every variant has one mixture.
FIGURE_JOBS = figure_jobs(config, FIGURE_RUNS)
FIGURE_TARGETS = job_targets(FIGURE_JOBS)


# ---- embedding stores (rules/embed.smk) ----------------------------------------------------
FIXTURES = "results/fixtures"


def embed_inputs(wildcards):
    """Local files the store is built from: the dataset's root and a local model checkpoint.

    Paths below results/fixtures/ are made by rule `fixtures` (presets/tiny-real-path.yaml).
    """
    spec = config["datasets"][wildcards.dataset]
    section = spec.get(spec["source"], {})
    entry = config["models"].get(wildcards.model, {})
    paths = [section.get(key) for key in ("root", "path", "image_path", "text_path")]
    paths.append(entry.get("checkpoint"))
    inputs = set()
    for path in filter(None, paths):
        if path.startswith(f"{FIXTURES}/"):
            inputs.add(FIXTURES)
        elif os.path.exists(path):
            inputs.add(path)
    return sorted(inputs)


def embed_resources(wildcards):
    """Raw sources run a model: they get the configured GPU; embedding sources need none."""
    spec = config["datasets"][wildcards.dataset]
    return rule_resources("embed")["gpu"] if needs_model(spec["source"]) else 0


def embed_threads(wildcards):
    """Raw sources need a core per DataLoader worker beside the main process."""
    spec = config["datasets"][wildcards.dataset]
    threads = config["resources"]["embed"]["threads"]
    if needs_model(spec["source"]):
        threads = max(threads, config["embed"]["num_workers"] + 1)
    return threads


# ---- selection sweeps and training (rules/sweeps.smk, rules/train.smk) ---------------------
SWEEP_DIR = "results/sweeps/{dataset}/{model}/{variant}"


def chosen_files(dataset, model, variant, parameters):
    return [
        f"results/sweeps/{dataset}/{model}/{variant}/{name}.json" for name in parameters
    ]


def earlier_sweeps(wildcards):
    """The chosen values a sweep point needs: masking is swept on top of the chosen λ."""
    swept = REGULARISERS[wildcards.variant].swept
    earlier = swept[: swept.index(wildcards.parameter)]
    return chosen_files(wildcards.dataset, wildcards.model, wildcards.variant, earlier)


def chosen_of_run(wildcards):
    """The chosen-value files of every regulariser of the run's variant set to 'sweep'."""
    swept = REGULARISERS[wildcards.variant].swept
    return chosen_files(wildcards.dataset, wildcards.model, wildcards.variant, swept)


def sweep_round_file(wildcards, number):
    """The result of round `number` of a sweep, once that checkpoint has run."""
    done = checkpoints.sweep_round.get(**{**wildcards, "round": str(number)})
    return done.output.result


def previous_round(wildcards):
    """Round r's predecessor's result (none for round 0)."""
    number = int(wildcards.round)
    return [] if number == 0 else [sweep_round_file(wildcards, number - 1)]


def round_points(wildcards):
    """point.json of every value a round selects over: the grid, plus each extension so far."""
    previous = previous_round(wildcards)
    record = json.loads(Path(previous[0]).read_text()) if previous else None
    return [
        f"{SWEEP_DIR}/{{parameter}}/{value:g}/point.json".format(**wildcards)
        for value in round_values(wildcards.parameter, config["sweeps"], record)
    ]


def last_round(wildcards):
    """The first round that asks for no extension: its choice is the sweep's."""
    number = 0
    while True:
        result = sweep_round_file(wildcards, number)
        if json.loads(Path(result).read_text())["extend_to"] is None:
            return result
        number += 1


# ---- metrics (rules/metrics.smk, rules/stores.smk) -----------------------------------------
def mms_reference(wildcards):
    """The store of the dataset's `mms_reference` model, for every other model's runs."""
    reference = config["datasets"][wildcards.dataset].get("mms_reference")
    if reference is None or reference == wildcards.model:
        return []
    return [f"results/embeddings/{wildcards.dataset}/{reference}.zarr"]


def runs_of_variant(wildcards):
    return [
        run
        for run in RUNS
        if (run.dataset, run.model, run.variant)
        == (wildcards.dataset, wildcards.model, wildcards.variant)
    ]


# ---- interventions (rules/interventions.smk) -----------------------------------------------
# The runs each intervention stage covers: every run of a dataset the stage applies to
# (vlmsae.interventions: enabled in config `interventions.<name>`, and fed by the dataset).
INTERVENTION_RUNS = {
    name: [run for run in RUNS if intervention_applies(config, name, run.dataset)]
    for name in INTERVENTIONS.names()
}
# Steering retrieves by a named atom: it needs the vocabulary of naming.
INTERVENTION_RUNS["steering"] = [
    run for run in INTERVENTION_RUNS["steering"] if run in INTERVENTION_RUNS["naming"]
]
GAP_EDITS = intervention_settings(config, "gap_closing").edits
# The SAE's edits are written per run; the others depend on the store alone (rule
# mean_shift_store) and are written once per store.
RUN_GAP_EDITS = [edit for edit in GAP_EDITS if edit not in STORE_EDITS]
STORE_EDIT_DIR = "results/interventions/{dataset}/{model}/edits"
INTERVENTION_DIR = f"results/interventions/{RUN_PATH}"


def vocabulary_input(wildcards):
    """Rule metrics names atoms with the store's vocabulary where naming applies."""
    if intervention_applies(config, "naming", wildcards.dataset):
        return [f"results/vocabulary/{wildcards.dataset}/{wildcards.model}.zarr"]
    return []


def intervention_params(table):
    """The runs a table of stage `table` covers, as dicts."""
    return [run.as_dict() for run in INTERVENTION_RUNS[table]]


def intervention_files(table, pattern):
    """`pattern` (a path below a run's intervention folder) for every run of stage `table`."""
    return [
        f"results/interventions/{run.path}/{pattern}"
        for run in INTERVENTION_RUNS[table]
    ]


def gap_closing_store_files(name):
    """File `name` of the dense store of every gap-closing run (one per run, in run order)."""
    return [
        f"results/metrics/{run.dataset}/{run.model}/{name}"
        for run in INTERVENTION_RUNS["gap_closing"]
    ]


def gap_closing_edit_files(suffix):
    """edits/{edit}{suffix} of every gap-closing run: run by run, edits in GAP_EDITS order; a
    store-level edit's file is its store's, listed again for each of the store's runs.
    """

    def folder(run, edit):
        if edit in STORE_EDITS:
            return STORE_EDIT_DIR.format(dataset=run.dataset, model=run.model)
        return f"results/interventions/{run.path}/edits"

    return [
        f"{folder(run, edit)}/{edit}{suffix}"
        for run in INTERVENTION_RUNS["gap_closing"]
        for edit in GAP_EDITS
    ]


# Tables of the interventions the config feeds (rule all asks for them).
INTERVENTION_TABLES = [
    f"results/tables/{table}.csv"
    for name, table in (
        ("gap_closing", "gap_closing"),
        ("arithmetic", "vector_arithmetic"),
        ("probe", "probe_concepts"),
        ("steering", "steering"),
    )
    if INTERVENTION_RUNS[name]
]
