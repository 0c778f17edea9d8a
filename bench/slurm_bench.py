"""What running through SLURM costs: the tiny config on the local one-node cluster against
`--cores 2` on the same machine.

    python bench/slurm_bench.py --out results/bench/slurm.json

tests/tiny_config.yaml runs in a fresh directory twice, one run after the other: with
`--cores 2`, then through profiles/slurm with the README's command for a cluster without
accounting and the first status check 2 s after a submission (tests/cluster/slurm_cluster.py).
Reported:
- wall_s: each run's wall time;
- jobs: every job of the DAG but `all`; slurm_jobs: those submitted (the others are localrules);
- overhead_per_job_s: (SLURM wall - local wall) / slurm_jobs, the target (issue 13) under 10 s;
- queue_wait_s, job_s: mean seconds from a job's submission to its start, and from its start to
  its end (squeue), so that the overhead splits into waiting in the queue and the rest (status
  polling, each job's own Snakemake start).
Without a cluster (scripts/local-slurm.sh start) it writes the reason and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "cluster"))
from slurm_cluster import SLURM_ARGS, cluster_problem  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CONFIG = REPO / "tests" / "tiny_config.yaml"
TARGET_OVERHEAD_S = 10.0


def timed_run(workdir: Path, *args: str) -> tuple[float, str]:
    """Wall seconds and output of the tiny config's run in `workdir`."""
    start = time.perf_counter()
    result = subprocess.run(
        [
            SNAKEMAKE,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            *args,
            "--configfile",
            str(CONFIG),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=3600,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def squeue_times(run_id: str) -> list[tuple[float, float]]:
    """(queue wait, run time) in seconds of every job of Snakemake run `run_id`."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--name={run_id}", "--format=%V|%S|%e"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = []
    for line in out.splitlines():
        submitted, started, ended = (datetime.datetime.fromisoformat(t) for t in line.split("|"))
        times.append(((started - submitted).total_seconds(), (ended - started).total_seconds()))
    return times


def measure() -> dict:
    root = Path(tempfile.mkdtemp())
    local_s, local_out = timed_run(root / "local", "--cores", "2")
    slurm_s, slurm_out = timed_run(root / "slurm", *SLURM_ARGS)
    run_id = re.search(r"SLURM run ID: (\S+)", slurm_out).group(1)
    times = squeue_times(run_id)
    jobs = len(re.findall(r"^(?:local)?rule (?!all:)\w+:", local_out, re.M))
    return {
        "wall_s": {"cores_2": round(local_s, 1), "slurm": round(slurm_s, 1)},
        "jobs": jobs,
        "slurm_jobs": len(times),
        "overhead_per_job_s": round((slurm_s - local_s) / len(times), 2),
        "queue_wait_s": round(sum(wait for wait, _ in times) / len(times), 2),
        "job_s": round(sum(run for _, run in times) / len(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="results/bench/slurm.json")
    args = parser.parse_args()
    problem = cluster_problem()
    if problem is None:
        result = measure()
        result["target"] = {
            "overhead_per_job_s": TARGET_OVERHEAD_S,
            "met": result["overhead_per_job_s"] < TARGET_OVERHEAD_S,
        }
    else:
        result = {"skipped": f"no SLURM cluster: {problem}; scripts/local-slurm.sh start"}
    result.update(
        {
            "command": " ".join(sys.argv),
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average": list(os.getloadavg()),
            },
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        }
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
