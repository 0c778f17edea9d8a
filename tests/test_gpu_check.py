"""bench/gpu_check.py (`make gpu-check`): its verdicts, its refusal without a GPU, and the whole
check run with the CPU standing in for the GPU."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up there
    spec.loader.exec_module(module)
    return module


def _run(loss, dead, samples_per_s):
    return {"loss": loss, "dead_atoms": dead, "samples_per_s": samples_per_s}


def test_loss_curves_and_dead_atoms_are_judged_by_the_stated_tolerances(gpu_check):
    cpu = _run([1.0, 0.5], 9, 100.0)
    close = gpu_check._compare_training(cpu, _run([1.1, 0.55], 0, 400.0))
    # mean(|0.1|/1, |0.05|/0.5) = 0.1 ≤ 0.15; (0 + 1)/(9 + 1) = 0.1: one order of magnitude.
    assert close["loss_mean_relative_difference"] == pytest.approx(0.1)
    assert close["loss_ok"] and close["dead_ok"] and close["speedup_gpu_over_cpu"] == 4.0
    far = gpu_check._compare_training(cpu, _run([1.0, 0.8], 200, 100.0))
    assert not far["loss_ok"] and not far["dead_ok"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_a_gpu_it_exits_2_with_one_line_saying_why(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "gpu.json")]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("gpu-check: no CUDA device visible")
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
def test_the_whole_check_runs_with_the_cpu_in_place_of_the_gpu(gpu_check, tmp_path, monkeypatch):
    small = {name: {**entry, "n_atoms": 64} for name, entry in gpu_check.VARIANTS.items()}
    monkeypatch.setattr(gpu_check, "VARIANTS", small)
    monkeypatch.setattr(gpu_check, "SYNTHETIC_D", 32)
    monkeypatch.setattr(gpu_check, "EMBEDDED_ITEMS", 16)
    monkeypatch.setattr(gpu_check, "BATCH_SIZE", 64)
    out = tmp_path / "gpu.json"
    arguments = ["--against", "cpu", "--steps", "10", "--pairs", "500", "--out", str(out)]
    assert gpu_check.main(arguments) == 0
    report = json.loads(out.read_text())
    assert set(report["training"]) == {"topk", "batchtopk", "mp", "sae-a"}
    # The same device twice, seeded: the same curves.
    assert all(row["loss_mean_relative_difference"] == 0 for row in report["training"].values())
    assert report["embedding"]["ok"]
