"""Wall and CPU time of a start: `vlmsae runs`, `vlmsae schema` and the project's share of
parsing the Snakefile, each in fresh processes, without and with the config cache.

    python bench/start_time.py --out results/bench/start_time.json

- cold: VLMSAE_CACHE=off, every check computed (the registries' modules imported: torch, ...);
- warm: the cache filled by one earlier start (vlmsae.config_cache), as every start after the
  first of a config and a source tree.
The Snakefile's share is `snakemake --list-rules` on the default config (it parses the Snakefile
and builds no DAG) minus the same on a Snakefile of one empty rule: Snakemake's own start. Each
figure is the median of REPEATS runs. Targets (issue 27): every warm figure under 1 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEATS = 5
TARGET_SECONDS = 1.0
EMPTY_SNAKEFILE = "rule nothing:\n    output: 'x'\n    shell: 'touch {output}'\n"


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU (user + system of the child) seconds of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def _median(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    runs = [_timed(command, cwd, env) for _ in range(REPEATS)]
    return {kind: statistics.median(run[kind] for run in runs) for kind in ("wall", "cpu")}


def measure(work: Path) -> dict[str, dict[str, float]]:
    """{figure: {"wall", "cpu"}} for the three starts, cold and warm, run in `work` (a copy of
    the workflow's files, so the repository's .snakemake is left alone)."""
    bin_dir = Path(sys.executable).parent
    vlmsae, snakemake = str(bin_dir / "vlmsae"), str(bin_dir / "snakemake")
    empty = work / "empty"
    empty.mkdir()
    (empty / "Snakefile").write_text(EMPTY_SNAKEFILE)
    commands = {
        "runs": ([vlmsae, "runs"], work),
        "schema": ([vlmsae, "schema"], work),
        "snakefile": ([snakemake, "--list-rules", "--cores", "1"], work),
        "snakemake_alone": ([snakemake, "--list-rules", "--cores", "1"], empty),
    }
    figures = {}
    for mode, cache in (("cold", "off"), ("warm", str(work / "cache"))):
        env = {**os.environ, "VLMSAE_CACHE": cache, "PYTHONPATH": str(work)}
        for name, (command, cwd) in commands.items():
            if mode == "warm":
                subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
            figures[f"{name}_{mode}"] = _median(command, cwd, env)
    for mode in ("cold", "warm"):
        parse, alone = figures[f"snakefile_{mode}"], figures[f"snakemake_alone_{mode}"]
        figures[f"snakefile_share_{mode}"] = {kind: parse[kind] - alone[kind] for kind in parse}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="results/bench/start_time.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vlmsae-start-"))
    try:
        for name in ("Snakefile", "config.yaml", "rules", "schemas", "vlmsae", "report", "envs"):
            source = REPO / name
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, work / name)
        figures = measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": " ".join(sys.argv),
        "repeats": REPEATS,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": list(os.getloadavg()),
        },
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        **{f"{name}_seconds": round(value["wall"], 3) for name, value in figures.items()},
        **{f"{name}_cpu_seconds": round(value["cpu"], 3) for name, value in figures.items()},
    }
    warm = ("runs_warm", "schema_warm", "snakefile_share_warm")
    result["targets"] = {
        f"{name}_seconds": {
            "target": TARGET_SECONDS,
            "met": result[f"{name}_seconds"] < TARGET_SECONDS,
        }
        for name in warm
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
