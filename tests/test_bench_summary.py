"""bench/summary.py: `make bench`'s one-screen summary, on small files in the bench scripts' own
output formats (the keys each script writes, made-up values)."""

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import summary  # noqa: E402  (bench/ is a folder of scripts, not a package)
from summary import EXPECTED, Figure, Skipped, figures  # noqa: E402

# One report per script, trimmed to the keys around its figures plus some it writes beside them.
REPORTS = {
    "train_throughput.json": {
        "timestamp": "2026-12-07T10:00:00+00:00",
        "machine": {"cpu_count": 2, "load_average_before": [1.0, 1.0, 1.0]},
        "cases": {
            "topk": {
                "d": 512,
                "speedup_vs_overcomplete": 3.6,
                "fraction_of_gemm_bound": 0.45,
                "targets": {"speedup_vs_overcomplete": 3.0, "fraction_of_gemm_bound": 0.5},
                "met": {"speedup_vs_overcomplete": True, "fraction_of_gemm_bound": False},
                "ratios_at_p10": {"speedup_vs_overcomplete": 3.9, "note": "supplementary"},
                "timing": {"ours": {"median_ms": 12.0, "samples_per_s": 85000.0}},
            },
            "mp": {"skipped": "variant 'mp' is not registered in vlmsae.sae"},
        },
    },
    "metrics_scale.json": {
        "scale": {"d": 768, "n_atoms": 8192},
        "suite_seconds": 45.5,
        "suite_peak_gb": 6.5,
        "targets": {
            "suite_seconds": {"target": 60.0, "met": True},
            "suite_peak_gb": {"target": 8.0, "met": True},
        },
    },
    "start_time.json": {
        "runs_warm_seconds": 0.4,
        "runs_warm_cpu_seconds": 0.35,
        "runs_cold_seconds": 4.2,
        "targets": {"runs_warm_seconds": {"target": 1.0, "met": True}},
    },
    "explorer.json": {
        "first_paint_s": 1.2,
        "select_ms": 250.0,
        "bytes": 12_345_678,
        "targets": {
            "first_paint_s": {"target": 2.0, "met": True},
            "select_ms": {"target": 200.0, "met": False},
            "bytes": {"target": 31_457_280, "met": True},
        },
    },
    "embed_overhead.json": {
        "date": "2026-12-07T10:00:00+00:00",
        "machine": {"cpus": 2, "load_average_1min": 1.5},
        "cpu": {"overhead_share": 0.25, "target_overhead_share": 0.2, "met": False},
    },
    "checksum.json": {
        "embed": {"share": 0.01, "target_share": 0.05, "met": True},
        "train": {"share": 0.002, "target_share": 0.05, "met": True},
    },
    "interventions.json": {
        "edited_store_seconds": 30.0,
        "naming_seconds": 12.0,
        "edited_store_ratio_to_bound": 0.5,
        "bounds_seconds": {"edited_store_seconds": 60.0, "naming_seconds": 10.0},
    },
    "slurm.json": {
        "overhead_per_job_s": 4.0,
        "target": {"overhead_per_job_s": 10.0, "met": True},
        "machine": {"load_average": [2.0, 2.0, 2.0]},
    },
    "gpu.json": {
        "embedding": {"image_min_cosine": 0.999, "ok": True},
        "training": {"topk": {"loss_mean_relative_difference": 0.3, "loss_ok": False}},
    },
    "iso_energy_authors.json": {"summary": [{"trainer": "ours", "mma": 0.5}]},
}

# What each report holds: (name, measured, target, met).
FIGURES = {
    "train_throughput.json": [
        ("cases.topk.speedup_vs_overcomplete", 3.6, 3.0, True),
        ("cases.topk.fraction_of_gemm_bound", 0.45, 0.5, False),
    ],
    "metrics_scale.json": [("suite_seconds", 45.5, 60.0, True), ("suite_peak_gb", 6.5, 8.0, True)],
    "start_time.json": [("runs_warm_seconds", 0.4, 1.0, True)],
    "explorer.json": [
        ("first_paint_s", 1.2, 2.0, True),
        ("select_ms", 250.0, 200.0, False),
        ("bytes", 12_345_678, 31_457_280, True),
    ],
    "embed_overhead.json": [("cpu.overhead_share", 0.25, 0.2, False)],
    "checksum.json": [("embed.share", 0.01, 0.05, True), ("train.share", 0.002, 0.05, True)],
    # Bounds without a verdict in the file: met when the value is at most the bound.
    "interventions.json": [
        ("edited_store_seconds", 30.0, 60.0, True),
        ("naming_seconds", 12.0, 10.0, False),
    ],
    "slurm.json": [("overhead_per_job_s", 4.0, 10.0, True)],
    "gpu.json": [("embedding.ok", None, None, True), ("training.topk.loss_ok", None, None, False)],
    "iso_energy_authors.json": [],
}


def write_reports(folder: Path, names) -> None:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text(json.dumps(REPORTS[name], indent=2))


@pytest.mark.parametrize("name", REPORTS)
def test_each_scripts_figures_are_found_with_their_targets(name):
    found = [item for item in figures(REPORTS[name]) if isinstance(item, Figure)]
    assert [(f.name, f.value, f.target, f.met) for f in found] == FIGURES[name]


def test_a_skipped_part_keeps_its_reason():
    skipped = [
        item for item in figures(REPORTS["train_throughput.json"]) if isinstance(item, Skipped)
    ]
    assert skipped == [Skipped("cases.mp", "variant 'mp' is not registered in vlmsae.sae")]
    whole = list(figures({"skipped": "no SLURM cluster: sinfo failed"}))
    assert whole == [Skipped("(all)", "no SLURM cluster: sinfo failed")]


def test_one_line_per_figure_with_ratio_and_verdict(tmp_path):
    write_reports(tmp_path, REPORTS)
    lines = summary.summary(tmp_path)
    rows = {row[0]: row for row in map(str.split, lines[1:]) if len(row) == 6}
    assert rows["suite_seconds"][1:] == ["45.5", "60", "0.758", "pass", "metrics_scale.json"]
    assert rows["naming_seconds"][1:] == ["12", "10", "1.2", "FAIL", "interventions.json"]
    assert rows["cpu.overhead_share"][-2:] == ["FAIL", "embed_overhead.json"]
    assert rows["bytes"][1:3] == ["12,345,678", "31,457,280"]
    assert rows["training.topk.loss_ok"][1:] == ["-", "-", "-", "FAIL", "gpu.json"]
    expected_rows = sum(len(found) for found in FIGURES.values())
    assert len(rows) == expected_rows
    assert "no figure with a target in: iso_energy_authors.json" in lines
    assert any("train_throughput.json cases.mp: skipped: variant 'mp'" in line for line in lines)
    assert not any(line.startswith("not run:") for line in lines)
    met = sum(f[3] is True for found in FIGURES.values() for f in found)
    assert lines[-1].startswith(f"{met} met, {expected_rows - met} not met, 0 without a verdict")


def test_missing_files_are_listed_as_not_run(tmp_path):
    write_reports(tmp_path, ["metrics_scale.json"])
    lines = summary.summary(tmp_path)
    not_run = [line for line in lines if line.startswith("not run:")]
    assert len(not_run) == len(EXPECTED) - 1
    assert f"not run: gpu.json ({EXPECTED['gpu.json']})" in not_run
    assert not any("metrics_scale.json" in line for line in not_run)


def test_a_file_that_is_not_json_is_reported_not_fatal(tmp_path, capsys):
    write_reports(tmp_path, ["slurm.json"])
    (tmp_path / "explorer.json").write_text("{truncated")
    assert summary.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "explorer.json: unreadable" in out
    assert re.search(r"^overhead_per_job_s .* pass +slurm\.json$", out, re.M)


def test_make_bench_ends_with_the_summary_of_the_files_it_writes():
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^bench:.*\n((?:\t.*\n)+)", makefile, re.M).group(1).splitlines()
    written = {Path(out).name for out in re.findall(r"--out ([\w./]+)", "\n".join(recipe))}
    assert written and written <= set(EXPECTED)
    assert "bench/summary.py" in recipe[-1]
