"""The workflow as a user runs it: snakemake on a tiny config in a temporary directory."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from vlmsae.cli import main

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = yaml.safe_load((REPO / "tests" / "tiny_config.yaml").read_text())

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, config: dict | None = None) -> subprocess.CompletedProcess:
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]
    if config is not None:
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        command += ["--configfile", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def dry_run_jobs(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    return re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$", result.stdout, re.M)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir, config=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_end_to_end_outputs(finished):
    summary = pd.read_csv(finished / "results/tables/summary.csv")
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
    run = finished / "results/sae/tiny/generator/topk/5-1/seed0"
    for name in ("sae.safetensors", "config.json", "train_log.csv"):
        assert (run / name).stat().st_size > 0
    atoms = pd.read_parquet(
        finished / "results/metrics/tiny/generator/topk/5-1/seed0/atoms.parquet"
    )
    assert len(atoms) == 32
    stability = pd.read_csv(finished / "results/tables/stability.csv")
    assert set(stability["kind"]) == {"mixture"} and stability["stability"].between(-1, 1).all()
    assert summary["stability_mixture"].notna().all()
    for figure in ("r2_vs_l0.png", "modality_scores/tiny/generator.png"):
        assert (finished / "results/figures" / figure).read_bytes()[:4] == b"\x89PNG"
    assert (finished / "logs/train/tiny/generator/topk/5-1/seed0.log").exists()
    # Interventions: every run's dense store and three edited stores, measured alike.
    gap = pd.read_csv(finished / "results/tables/gap_closing.csv")
    assert len(gap) == 4 * 4
    assert set(gap["edit"]) == {"dense", "bimodal", "reconstruction", "mean-shift"}
    assert gap[["gap_nn_auroc", "recall_at1_i2t_dense"]].notna().all().all()
    edited = finished / "results/interventions/tiny/generator/topk/5-1/seed0/edits/bimodal.zarr"
    assert (edited / "zarr.json").exists()
    # Every store and run folder carries a manifest that its files still match.
    assert main(["verify", str(finished / "results")]) == 0
    arithmetic = pd.read_csv(finished / "results/tables/vector_arithmetic.csv")
    assert len(arithmetic) == 4 * 6 and arithmetic["ood_auroc"].between(0, 1).all()
    for figure in ("gap_closing", "vector_arithmetic"):
        assert (finished / f"results/figures/{figure}/tiny/generator.png").exists()


def test_second_run_has_nothing_to_do(finished):
    result = snakemake(finished, config=TINY)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_variant_reruns_only_its_descendants(finished):
    changed = yaml.safe_load(yaml.safe_dump(TINY))
    changed["variants"]["topk"]["k"] = 4
    jobs = dry_run_jobs(snakemake(finished, "-n", config=changed))
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
    result = subprocess.run(
        [
            SNAKEMAKE,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "-n",
            "--profile",
            str(REPO / "profiles/slurm"),
            "--jobs",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    config = yaml.safe_load(yaml.safe_dump(TINY))
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
    config = yaml.safe_load(yaml.safe_dump(TINY))
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
    config = yaml.safe_load(yaml.safe_dump(TINY))
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


def test_sweeps_choose_values_that_runs_then_use(tmp_path):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["variants"] = {
        "sae-a": {"preset": "sae-a", "n_atoms": 32, "k": 3, "alignment": "sweep"},
        "mgsae": {
            "preset": "mgsae",
            "n_atoms": 32,
            "k": 3,
            "group_sparsity": "sweep",
            "mask_probability": "sweep",
        },
    }
    config["sweeps"] = {
        "alignment": {"values": [1e-3, 1e-1]},
        "group_sparsity": {"values": [0.01, 0.1]},
        "mask_probability": {"values": [0.1, 0.3]},
    }
    dry = snakemake(tmp_path, "-n", config=config)
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = dry_run_jobs(dry)
    points = sorted(w.split("parameter=")[1] for r, w in jobs if r == "train_sweep_point")
    # β ∈ {0, 1e-3, 1e-1}; λ ∈ {0.01, 0.1}; p ∈ {0, 0.1, 0.3}; paired variants train at 1-1 only.
    assert len(points) == 8
    assert sorted(w for r, w in jobs if r == "train") == [
        "dataset=tiny, model=generator, variant=mgsae, mixture=1-1, seed=0",
        "dataset=tiny, model=generator, variant=sae-a, mixture=1-1, seed=0",
    ]
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = tmp_path / "results/sweeps/tiny/generator"
    for variant, parameter in (
        ("sae-a", "alignment"),
        ("mgsae", "group_sparsity"),
        ("mgsae", "mask_probability"),
    ):
        chosen = yaml.safe_load((sweeps / variant / f"{parameter}.json").read_text())["chosen"]
        table = pd.read_csv(sweeps / variant / f"{parameter}.csv")
        assert table["chosen"].sum() == 1 and chosen in set(table["value"])
        run_config = yaml.safe_load(
            (tmp_path / f"results/sae/tiny/generator/{variant}/1-1/seed0/config.json").read_text()
        )
        assert run_config["training"][parameter] == chosen


def test_tiny_real_path_preset_runs_every_adapter_and_model_family(tmp_path):
    """presets/tiny-real-path.yaml: fixtures in each dataset's layout, tiny models of each
    library loaded from disk like real checkpoints, through training, metrics and tables."""
    preset = yaml.safe_load((REPO / "presets" / "tiny-real-path.yaml").read_text())
    result = snakemake(tmp_path, config=preset)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "results/tables/summary.csv")
    expected = {(d, m) for d, spec in preset["datasets"].items() for m in spec["models"]}
    assert set(zip(summary["dataset"], summary["model"], strict=True)) == expected
    assert summary["r2"].notna().all() and (summary["l0"] > 0).all()
    labelled = summary[summary["dataset"].isin(["cifar10", "cifar100", "imagenet"])]
    # The dense baseline is store-level (stores.csv); the codes' accuracy is per run.
    stores = pd.read_csv(tmp_path / "results/tables/stores.csv")
    labelled_stores = stores[stores["dataset"].isin(["cifar10", "cifar100", "imagenet"])]
    assert len(labelled_stores) and labelled_stores["zero_shot_top1_dense"].notna().all()
    assert labelled["zero_shot_top1_codes"].notna().all()
    assert summary.loc[summary["dataset"] == "coco", "mms_image_text"].notna().any()

    from vlmsae.store import EmbeddingStore

    audio = EmbeddingStore(tmp_path / "results/embeddings/musicbench/tiny-clap.zarr")
    assert audio.modalities == ("audio", "text") and "audio" in audio.root
    assert audio.attrs["model_family"] == "laion_clap" and audio.attrs["normalised"]
    coco = EmbeddingStore(tmp_path / "results/embeddings/coco/tiny-siglip2.zarr")
    assert coco.attrs["provenance"]["root"].endswith("results/fixtures/data/coco")
    assert len(coco.optional("text_caption")) == coco.array("text").shape[0]
    # The fixture's missing image (adapter) and undecodable image (embedding) are both reported.
    # Each image took its 5 captions with it.
    counts = {reason: entry["count"] for reason, entry in coco.attrs["skipped"].items()}
    assert counts == {
        "image file missing": 1,
        "caption of a missing image": 5,
        "truncated": 1,
        "caption of an undecodable image": 5,
    }
    assert coco.attrs["skipped_total"] == 12 and coco.array("image").shape[0] == 11
    log = (tmp_path / "logs/embed/coco/tiny-openclip.log").read_text()
    assert re.search(r"embedded \d+ image items in .* items/s", log)

    again = snakemake(tmp_path, "-n", config=preset)
    assert "Nothing to be done" in again.stdout + again.stderr
