"""The workflow as a user runs it: snakemake on a tiny config in a temporary directory."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from snakemake_runs import REPO, dry_run_jobs, snakemake, tiny_config

from vlmsae.cli import main

pytestmark = pytest.mark.slow


def _written(folder: Path, config: dict) -> Path:
    """`config` as a file outside the shared workflow's folder, which the tests leave as is."""
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_end_to_end_outputs(tiny_workflow):
    summary = pd.read_csv(tiny_workflow / "results/tables/summary.csv")
    assert len(summary) == 4
    assert set(summary["variant"]) == {"topk", "batchtopk"}
    for column in (
        "r2",
        "r2_image",
        "r2_text",
        "l0",
        "dead_atoms_image",
        "dead_atoms_text",
        "energy_top5_share",
        "modality_atoms_bimodal",
        "modality_energy_share_image_sq",
    ):
        assert summary[column].notna().all(), column
    run = tiny_workflow / "results/sae/tiny/generator/topk/5-1/seed0"
    for name in ("sae.safetensors", "config.json", "train_log.csv"):
        assert (run / name).stat().st_size > 0
    atoms = pd.read_parquet(
        tiny_workflow / "results/metrics/tiny/generator/topk/5-1/seed0/atoms.parquet"
    )
    assert len(atoms) == 32
    stability = pd.read_csv(tiny_workflow / "results/tables/stability.csv")
    assert set(stability["kind"]) == {"mixture"} and stability["stability"].between(-1, 1).all()
    assert summary["stability_mixture"].notna().all()
    for figure in ("r2_vs_l0.png", "modality_scores/tiny/generator.png"):
        assert (tiny_workflow / "results/figures" / figure).read_bytes()[:4] == b"\x89PNG"
    assert (tiny_workflow / "logs/train/tiny/generator/topk/5-1/seed0.log").exists()
    # Interventions: every run's dense store and three edited stores, measured alike.
    gap = pd.read_csv(tiny_workflow / "results/tables/gap_closing.csv")
    assert len(gap) == 4 * 4
    assert set(gap["edit"]) == {"dense", "bimodal", "reconstruction", "mean-shift"}
    assert gap[["gap_nn_auroc", "recall_at1_i2t_dense"]].notna().all().all()
    edited = tiny_workflow / "results/interventions/tiny/generator/topk/5-1/seed0/edits"
    edited = edited / "bimodal.zarr"
    assert (edited / "zarr.json").exists()
    # Every store and run folder carries a manifest that its files still match.
    assert main(["verify", str(tiny_workflow / "results")]) == 0
    arithmetic = pd.read_csv(tiny_workflow / "results/tables/vector_arithmetic.csv")
    assert len(arithmetic) == 4 * 6 and arithmetic["ood_auroc"].between(0, 1).all()
    for figure in ("gap_closing", "vector_arithmetic"):
        assert (tiny_workflow / f"results/figures/{figure}/tiny/generator.png").exists()


def test_second_run_has_nothing_to_do(tiny_workflow, tmp_path):
    # In a copy (file times kept): a run locks its folder, which the other tests read meanwhile.
    workdir = shutil.copytree(tiny_workflow, tmp_path / "workflow", symlinks=True)
    result = snakemake(workdir, configfile=_written(tmp_path, tiny_config()))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_variant_reruns_only_its_descendants(tiny_workflow, tmp_path):
    changed = tiny_config()
    changed["variants"]["topk"]["k"] = 4
    jobs = dry_run_jobs(snakemake(tiny_workflow, "-n", configfile=_written(tmp_path, changed)))
    per_run = ("train", "metrics", "stability")
    rules = sorted(rule for rule, _ in jobs)
    assert [rule for rule in rules if rule in per_run] == [
        "metrics",
        "metrics",
        "stability",
        "train",
        "train",
    ]
    assert all("variant=topk" in wildcards for rule, wildcards in jobs if rule in per_run)
    # The store's atom maps are one job over all its runs, redrawn; the store and its
    # store-level metrics do not depend on any variant.
    assert rules.count("atom_map") == 1
    assert not {"embed", "store_metrics"} & set(rules)


def test_slurm_profile_builds_the_default_dag(tmp_path):
    result = snakemake(
        tmp_path, "-n", "--profile", str(REPO / "profiles/slurm"), "--jobs", "4", cores=None,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^train\s+16$", result.stdout, re.M)


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda c: c.update(unknown_key=1), "config key '<top level>': unknown key"),
        (lambda c: c["variants"]["topk"].update(k=-1), "config key 'variants.topk.k'"),
        (lambda c: c["variants"]["topk"].update(type="nope"), "unknown SAE variant 'nope'"),
        (
            lambda c: c["datasets"].update(
                real={"source": "precomputed", "precomputed": {"path": "missing.npy"}}
            ),
            "config key 'datasets.real.precomputed.path': file not found",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, edit, expected):
    config = tiny_config()
    edit(config)
    result = snakemake(tmp_path, config=config)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # Snakemake's own notice that it applies profiles/default comes first; then the one line.
    assert lines and re.match(r"Using workflow specific profile \S*profiles/default ", lines[0])
    lines = lines[1:]
    assert len(lines) == 1 and expected in lines[0] and "fix:" in lines[0], lines
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_of_local_jobs_without_cuda_stops_before_any_job(tmp_path):
    config = tiny_config()
    config["train"]["device"] = "cuda"
    config["resources"] = {"train": {"gpu": 1}}  # so that the config itself is consistent
    result = snakemake(tmp_path, config=config)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # After Snakemake's job counts: one line naming the key and the fix, no traceback.
    assert lines[-1].startswith("vlmsae: config key 'train.device': 'cuda' but no CUDA device")
    assert "fix:" in lines[-1] and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_failed_job_leaves_no_partial_output(tmp_path):
    config = tiny_config()
    # Unreachable τ2 is only discovered while drawing the data: the embed job fails.
    config["datasets"]["tiny"]["synthetic"].update(tau1=0.1, tau2=0.95)
    result = snakemake(tmp_path, "results/embeddings/tiny/generator.zarr", config=config)
    assert result.returncode != 0
    assert "tau2=0.95 is out of reach" in (tmp_path / "logs/embed/tiny/generator.log").read_text()
    # Below Snakemake's report, one line: the rule, its output, the job's own reason, its log.
    (summary,) = [line for line in result.stderr.splitlines() if line.startswith("vlmsae: rule")]
    output = "results/embeddings/tiny/generator.zarr"
    assert summary.startswith(f"vlmsae: rule embed failed ({output}): ")
    assert "tau2=0.95 is out of reach" in summary
    assert summary.endswith("; logs: logs/embed/tiny/generator.log")
    leftovers = (
        list((tmp_path / "results/embeddings/tiny").glob("*"))
        if (tmp_path / "results/embeddings/tiny").exists()
        else []
    )
    assert leftovers == []
