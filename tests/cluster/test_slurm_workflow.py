"""The workflow on a real SLURM cluster (scripts/local-slurm.sh start), as a user without job
accounting runs it: `snakemake --profile profiles/slurm --slurm-status-command squeue`.

One run of the tiny config goes through the cluster; the local run to compare it with is the
finished tiny workflow the other tests read (`--cores 2`, tests/conftest.py). During the
cluster run one train job is cancelled (`scancel`: Snakemake submits it again) and another is
requeued (`scontrol requeue`: what SLURM does to a pre-empted job); both resume from their
checkpoint. The cluster's outputs must equal the local ones.
"""

import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from slurm_cluster import SLURM_ARGS
from snakemake_runs import REPO, snakemake, snakemake_command, tiny_config

CONFIG = tiny_config()
# Long enough (tests/tiny_config.yaml) that a job can be interrupted between its first
# checkpoint and its end.
STEPS = CONFIG["train"]["steps"]
CANCELLED = "tiny/generator/topk/1-1/seed0"
REQUEUED = "tiny/generator/batchtopk/5-1/seed0"
# Seconds before a run that hangs (say, on a status command that never sees a job finish) fails.
TIMEOUT = 1800

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def command(*args: str, timeout: int = 60) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)
    return result.stdout


def cluster_command(workdir: Path, *args: str) -> list[str]:
    """The command line of a run of CONFIG in `workdir`."""
    return snakemake_command(workdir, *args, config=CONFIG, cores=None)


@dataclass
class SlurmJob:
    id: str
    rule: str
    wildcards: str
    partition: str
    state: str
    reason: str


def slurm_jobs(run_id: str) -> list[SlurmJob]:
    """Every job of Snakemake run `run_id` that squeue still shows (finished ones: MinJobAge)."""
    out = command(
        "squeue", "--noheader", "--states=all", f"--name={run_id}", "--format=%i|%k|%P|%T|%r"
    )
    jobs = []
    for line in out.splitlines():
        job_id, comment, partition, state, reason = line.split("|")
        # The plugin's comment: rule_<rule>[_wildcards_<values joined by _>].
        rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
        jobs.append(SlurmJob(job_id, rule, wildcards, partition, state, reason))
    return jobs


def train_wildcards(run: str) -> str:
    """The plugin's comment form of a run's wildcards: tiny/generator/topk/1-1/seed0 ->
    tiny_generator_topk_1-1_0."""
    return run.replace("/seed", "/").replace("/", "_")


def job_record(job_id: str) -> dict[str, str]:
    """`scontrol show job`'s fields of one job."""
    out = command("scontrol", "show", "job", job_id)
    return dict(re.findall(r"(\w+)=(\S*)", out))


@dataclass
class ClusterRun:
    slurm_dir: Path
    local_dir: Path
    run_id: str
    output: str
    interrupted: dict[str, str] = field(default_factory=dict)  # run -> SLURM job id


def interrupt_when_checkpointed(run: ClusterRun, pending: dict[str, list[str]]) -> None:
    """Send `pending`'s command to a run's running train job once its first checkpoint exists."""
    for target, action in list(pending.items()):
        if not (run.slurm_dir / "results/sae" / target / "checkpoint.json").exists():
            continue
        wildcards = train_wildcards(target)
        running = [
            job
            for job in slurm_jobs(run.run_id)
            if job.rule == "train" and job.wildcards == wildcards and job.state == "RUNNING"
        ]
        if running:
            command(*action, running[0].id)
            run.interrupted[target] = running[0].id
            del pending[target]


@pytest.fixture(scope="module")
def cluster_run(slurm_cluster, tiny_workflow, tmp_path_factory) -> ClusterRun:
    slurm_dir = tmp_path_factory.mktemp("slurm")
    started = time.monotonic()
    with open(slurm_dir / "snakemake.out", "w") as slurm_out:
        cluster = subprocess.Popen(
            cluster_command(slurm_dir, *SLURM_ARGS),
            stdout=slurm_out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        run = ClusterRun(slurm_dir, tiny_workflow, run_id="", output="")
        pending = {
            CANCELLED: ["scancel"],
            REQUEUED: ["scontrol", "requeue"],
        }
        try:
            while cluster.poll() is None and time.monotonic() - started < TIMEOUT:
                if not run.run_id:
                    found = re.search(
                        r"SLURM run ID: (\S+)", (slurm_dir / "snakemake.out").read_text()
                    )
                    run.run_id = found.group(1) if found else ""
                if run.run_id:
                    interrupt_when_checkpointed(run, pending)
                    release_requeued(run)
                time.sleep(0.2)
        finally:
            if cluster.poll() is None:
                cluster.terminate()
            cluster.wait(60)
    run.output = (slurm_dir / "snakemake.out").read_text()
    assert cluster.returncode == 0, run.output[-4000:]
    assert not pending, f"train jobs finished before they could be interrupted: {pending}"
    return run


def release_requeued(run: ClusterRun) -> None:
    """SLURM holds a requeued job for two minutes (reason BeginTime); start it now instead."""
    job_id = run.interrupted.get(REQUEUED)
    if job_id is None:
        return
    for job in slurm_jobs(run.run_id):
        if job.id == job_id and job.state == "PENDING" and job.reason == "BeginTime":
            command("scontrol", "update", f"JobId={job_id}", "StartTime=now")


# Rules of the tiny config that run as SLURM jobs; the others (tables, figures) are localrules,
# run by the submitting Snakemake itself.
SUBMITTED = {
    "embed",
    "store_metrics",
    "train",
    "metrics",
    "atom_map",
    "stability",
    "explorer",
    "vocabulary",
    "gap_closing",
    "mean_shift_store",
    "arithmetic",
    "probe_concepts",
    "steering",
}


def test_every_job_but_the_local_ones_runs_as_a_slurm_job(cluster_run):
    local_run = (cluster_run.local_dir / "snakemake.out").read_text()
    jobs_of_rule = Counter(re.findall(r"^(?:local)?rule (\w+):", local_run, re.M))
    cancelled = cluster_run.interrupted[CANCELLED]
    jobs = [job for job in slurm_jobs(cluster_run.run_id) if job.id != cancelled]
    assert Counter(job.rule for job in jobs) == {rule: jobs_of_rule[rule] for rule in SUBMITTED}
    assert {job.state for job in jobs} == {"COMPLETED"}
    logs = cluster_run.slurm_dir / ".snakemake" / "slurm_logs"
    assert {path.name.removeprefix("rule_") for path in logs.iterdir()} == SUBMITTED
    # The submitting process's own jobs; a failed job's log, printed in between, adds none.
    ran_here = set(re.findall(r"^localrule (\w+):", cluster_run.output, re.M)) - SUBMITTED
    assert ran_here == jobs_of_rule.keys() - SUBMITTED
    assert all(
        rule.startswith("figures") or rule.endswith(("_table", "_tables", "_recovery", "all"))
        for rule in ran_here
    ), ran_here


def test_gpu_jobs_ask_for_a_gpu_on_the_gpu_partition(cluster_run):
    for job in slurm_jobs(cluster_run.run_id):
        record = job_record(job.id)
        if job.rule in ("train", "embed", "vocabulary"):
            assert job.partition == "gpu", job
        else:
            assert job.partition == "cpu", job
        # resources.train.gpu is 1 by default, resources.embed.gpu only applies to raw sources
        # (and to the vocabulary, embedded by their text encoders); the plugin's --gpus=1 is
        # SLURM's TresPerJob.
        gpus = "gres:gpu:1" if job.rule == "train" else None
        assert record.get("TresPerJob") == gpus, (job, record.get("TresPerJob"))


def safetensors_of(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        str(path.relative_to(root)): load_file(path)
        for path in sorted((root / "results" / "sae").rglob("sae.safetensors"))
    }


def test_weights_equal_a_local_run_bit_for_bit(cluster_run):
    on_cluster = safetensors_of(cluster_run.slurm_dir)
    local = safetensors_of(cluster_run.local_dir)
    assert len(on_cluster) == 4 and on_cluster.keys() == local.keys()
    for run, tensors in on_cluster.items():
        assert tensors.keys() == local[run].keys()
        for name, tensor in tensors.items():
            assert torch.equal(tensor, local[run][name]), (run, name)
    assert not list(cluster_run.slurm_dir.rglob("checkpoint.json"))


def test_tables_equal_a_local_run_byte_for_byte(cluster_run):
    tables = sorted((cluster_run.local_dir / "results" / "tables").iterdir())
    assert len(tables) >= 10
    for path in tables:
        on_cluster = cluster_run.slurm_dir / "results" / "tables" / path.name
        assert on_cluster.read_bytes() == path.read_bytes(), path.name


def resumed_step(run: ClusterRun, target: str) -> int:
    """The step the last attempt of `target`'s train job resumed at (its log: vlmsae.training)."""
    log = (run.slurm_dir / "logs" / "train" / f"{target}.log").read_text()
    found = re.search(r"resumed from \S+checkpoint\.json at step (\d+)", log)
    assert found, log[-3000:]
    return int(found.group(1))


def test_cancelled_train_job_is_resubmitted_and_resumes(cluster_run):
    cancelled = cluster_run.interrupted[CANCELLED]
    attempts = [
        job
        for job in slurm_jobs(cluster_run.run_id)
        if job.rule == "train" and job.wildcards == train_wildcards(CANCELLED)
    ]
    assert sorted((job.id == cancelled, job.state) for job in attempts) == [
        (False, "COMPLETED"),
        (True, "CANCELLED"),
    ]
    assert 0 < resumed_step(cluster_run, CANCELLED) < STEPS


def test_requeued_train_job_saves_its_state_and_resumes(cluster_run):
    record = job_record(cluster_run.interrupted[REQUEUED])
    assert (record["JobState"], record["Restarts"]) == ("COMPLETED", "1")
    assert 0 < resumed_step(cluster_run, REQUEUED) < STEPS


@pytest.mark.parametrize(
    "resource,message,logged,summary",
    [
        # sbatch refuses the job: its reason is in Snakemake's message.
        (
            "slurm_partition=nowhere",
            "invalid partition specified: nowhere",
            None,
            "sbatch refused the job: sbatch: error: Batch job submission failed: Invalid "
            "partition name specified; logs: logs/embed/tiny/generator.log",
        ),
        # SLURM kills the job (OverMemoryKill): the job's state, and the reason in its SLURM log.
        (
            "mem_mb=50",
            "SLURM status is: 'FAILED'",
            "exceeded memory limit",
            # slurmstepd's last line: "slurmstepd-<node>: error: Exceeded job memory limit".
            r"SLURM job \d+ ended FAILED: slurmstepd\S*: error: (?i:.*exceeded.*memory limit.*); "
            r"logs: logs/embed/tiny/generator.log, \S+/slurm_logs/\S+\.log",
        ),
    ],
    ids=["partition", "memory"],
)
def test_a_job_slurm_refuses_or_kills_fails_with_the_slurm_reason(
    slurm_cluster, tmp_path, resource, message, logged, summary
):
    result = snakemake(
        tmp_path,
        "results/embeddings/tiny/generator.zarr",
        *SLURM_ARGS,
        "--set-resources",
        f"embed:{resource}",
        "--retries",  # the retry would fail the same way: half the test's time
        "0",
        config=CONFIG,
        cores=None,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Error in rule embed:" in output and message in output, output[-3000:]
    if logged is not None:
        slurm_log = re.search(r"(\S+/slurm_logs/\S+\.log)", output).group(1)
        assert logged in Path(slurm_log).read_text()
    # Below Snakemake's report: one line with the rule, its output, the reason and the logs.
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("vlmsae: rule")]
    prefix = "vlmsae: rule embed failed (results/embeddings/tiny/generator.zarr): "
    assert line.startswith(prefix) and re.fullmatch(summary, line.removeprefix(prefix)), line
    assert not (tmp_path / "results" / "embeddings" / "tiny" / "generator.zarr").exists()


def test_an_account_the_cluster_does_not_know_is_one_line(slurm_cluster, tmp_path):
    """The plugin checks a job's account against `sacctmgr` before submitting it. The test
    cluster keeps no accounts (sacctmgr lists none, and SLURM takes any account), so a stand-in
    sacctmgr first on PATH lists the one account a cluster with accounting would: `root`."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacctmgr").write_text("#!/bin/sh\necho root\n")
    (fake / "sacctmgr").chmod(0o755)
    result = snakemake(
        tmp_path,
        "results/embeddings/tiny/generator.zarr",
        *SLURM_ARGS,
        "--set-resources",
        "embed:slurm_account=nobody",
        "--retries",
        "0",
        config=CONFIG,
        cores=None,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
    )
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("vlmsae: rule")]
    assert line == (
        "vlmsae: rule embed failed (results/embeddings/tiny/generator.zarr): Job submission "
        "failed with exception: The given account nobody appears to be invalid. Available "
        "accounts: root; logs: logs/embed/tiny/generator.log"
    )
    assert not (tmp_path / "results" / "embeddings" / "tiny" / "generator.zarr").exists()
