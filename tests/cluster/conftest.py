"""The SLURM cluster the cluster tests submit to: one with the profile's partitions, `cpu` and
`gpu` (scripts/local-slurm.sh start). Without one the tests are skipped with the reason."""

import shutil
import subprocess

import pytest

PARTITIONS = {"cpu", "gpu"}


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


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    problem = cluster_problem()
    if problem is not None:
        pytest.skip(f"no SLURM cluster: {problem}; start one with scripts/local-slurm.sh start")
