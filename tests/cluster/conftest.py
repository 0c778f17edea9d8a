"""The SLURM cluster the cluster tests submit to: one with the profile's partitions, `cpu` and
`gpu` (scripts/local-slurm.sh start). Without one the tests are skipped with the reason."""

import pytest
from slurm_cluster import cluster_problem


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    problem = cluster_problem()
    if problem is not None:
        pytest.skip(f"no SLURM cluster: {problem}; start one with scripts/local-slurm.sh start")
