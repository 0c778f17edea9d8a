"""Whether a SLURM cluster with the profile's partitions answers here (scripts/local-slurm.sh
starts one); shared by the cluster tests and bench/slurm_bench.py."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = {"cpu", "gpu"}
# The command line of the README's "Running on a cluster" on a cluster without accounting; the
# first status check 2 s after a submission (40 s by default), and every job's SLURM log kept.
SLURM_ARGS = [
    "--profile",
    str(REPO / "profiles" / "slurm"),
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]


def cluster_problem() -> str | None:
    """Why no job can be submitted here, or None when the profile's partitions are up."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo, sbatch) on this machine"
    try:
        result = subprocess.run(
            ["sinfo", "--noheader", "--format=%R %a %t"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "sinfo got no answer from slurmctld in 30 s"
    if result.returncode != 0:
        return f"sinfo failed: {result.stderr.strip()}"
    usable = {
        name
        for name, availability, state in (line.split() for line in result.stdout.splitlines())
        if availability == "up" and state.startswith(("idle", "mix", "alloc"))
    }
    if not PARTITIONS <= usable:
        return f"partitions {sorted(PARTITIONS - usable)} are not up (sinfo: {result.stdout!r})"
    return None
