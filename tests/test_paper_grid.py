"""presets/paper-grid.yaml is the grid docs/cluster.md counts: its shape, and a dry run through
profiles/slurm (as the doc's count is taken) listing the jobs the doc states."""

import re
from collections import Counter

import pytest
import yaml
from snakemake_runs import REPO, snakemake

from vlmsae.config import check_config
from vlmsae.runs import runs

PRESET = REPO / "presets" / "paper-grid.yaml"
# Its text with every run of whitespace as one space: a sentence may wrap anywhere.
DOC = " ".join((REPO / "docs" / "cluster.md").read_text().split())
# One job per run, per store for these rules (and `stability`: one per store and variant); they
# are the jobs submitted to SLURM.
PER_RUN = ["train", "metrics", "gap_closing", "arithmetic", "probe_concepts", "steering"]
PER_STORE = ["embed", "store_metrics", "vocabulary", "atom_map", "explorer", "mean_shift_store"]


def doc_count(pattern: str) -> int:
    """The number docs/cluster.md states where `pattern` (one group, digits and commas) matches."""
    return int(re.search(pattern, DOC).group(1).replace(",", ""))


@pytest.fixture(scope="module")
def config() -> dict:
    return check_config(yaml.safe_load(PRESET.read_text()))


def test_the_grid_is_4_stores_6_variants_5_seeds_5_mixtures(config):
    assert (len(config["datasets"]), len(config["variants"])) == (4, 6)
    assert (len(config["seeds"]), len(config["mixtures"])) == (5, 5)
    assert len(runs(config)) == 600 == doc_count(r"= ([\d,]+) SAEs")


@pytest.mark.slow  # about 20 s of Snakemake's DAG building on 2 cores
def test_the_dry_run_lists_the_jobs_docs_cluster_states(tmp_path, config):
    result = snakemake(
        tmp_path,
        "-n",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        configfile=PRESET,
        cores=None,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stdout[result.stdout.index("Job stats:") :]
    jobs = Counter({rule: int(n) for rule, n in re.findall(r"^(\w+) +(\d+)$", stats, re.M)})
    assert jobs.pop("total") == jobs.total()
    n_runs, n_stores = len(runs(config)), len(config["datasets"])
    assert {rule: jobs[rule] for rule in PER_RUN} == dict.fromkeys(PER_RUN, n_runs)
    assert {rule: jobs[rule] for rule in PER_STORE} == dict.fromkeys(PER_STORE, n_stores)
    assert jobs["stability"] == n_stores * len(config["variants"])
    assert jobs.total() == doc_count(r"lists ([\d,]+) jobs in a dry run")
    # A dry run does not say which jobs are local; the others are the tables, figures and `all`
    # (localrules), as the run of a reduced grid on the local SLURM cluster showed.
    slurm = sum(jobs[rule] for rule in [*PER_RUN, *PER_STORE, "stability"])
    assert slurm == doc_count(r"So ([\d,]+) jobs go to SLURM")
