"""profiles/slurm sends every job that asks for a GPU to the GPU partition (checked on dry runs;
tests/cluster/ submits for real)."""

import re
from pathlib import Path

import pytest
import yaml
from snakemake_runs import REPO, snakemake

pytestmark = pytest.mark.slow


def dry_run_resources(workdir: Path, config: dict) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run of `config` through profiles/slurm lists."""
    profile = str(REPO / "profiles" / "slurm")
    result = snakemake(
        workdir, "-n", "--profile", profile, config=config, cores=None, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = re.findall(
        r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, re.M
    )
    return [(rule, dict(re.findall(r"(\w+)=([^,]*)", resources))) for rule, resources in jobs]


def preset(name: str, **changes) -> dict:
    return {**yaml.safe_load((REPO / "presets" / name).read_text()), **changes}


@pytest.mark.parametrize(
    "config,gpu_rules",
    [
        (preset("iso-energy.yaml"), {"train", "train_sweep_point"}),  # β is swept
        # Raw datasets, embedded on a GPU (the preset itself asks for none: CI has no GPU); the
        # vocabulary is embedded by the same text encoders.
        (preset("tiny-real-path.yaml", resources={}), {"train", "embed", "vocabulary"}),
    ],
    ids=["iso-energy", "tiny-real-path"],
)
def test_every_gpu_job_goes_to_the_gpu_partition(tmp_path, config, gpu_rules):
    gpu_jobs = [
        (rule, resources)
        for rule, resources in dry_run_resources(tmp_path, config)
        if int(resources.get("gpu", 0)) > 0
    ]
    assert {rule for rule, _ in gpu_jobs} == gpu_rules
    for rule, resources in gpu_jobs:
        assert resources.get("slurm_partition") == "gpu", (rule, resources)
