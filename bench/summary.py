"""One screen after `make bench`: every figure the bench scripts measured against its target.

    python bench/summary.py [results/bench]

Reads every *.json in the folder and prints one line per figure that has a target: its name (the
path of keys to it in the file), the measured value, the target, their ratio, whether the target
is met, and the file. The targets and their verdicts are the ones each file holds, in the forms
the scripts write them:
- "targets": {key: {"target": t, "met": m}} beside key (metrics_scale, explorer_bench,
  start_time);
- "targets": {key: t} and "met": {key: m} beside key (train_throughput, per case);
- "target": {key: t, "met": m} beside key (slurm_bench);
- "target_<key>": t and "met": m beside <key> (embed_overhead, checksum_overhead);
- "bounds_<unit>": {key: t} beside key, upper bounds without a verdict: met when value <= t
  (interventions_bench);
- "ok" or "<name>_ok": a check without a number (gpu_check).
A "skipped" entry prints its reason; a file of EXPECTED that is absent is listed as not run,
with the command that writes it. Always exits 0: the verdicts are in the lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# What `make bench` (and `make gpu-check`) write, and how to get each one.
EXPECTED = {
    "train_throughput.json": "make bench",
    "metrics_scale.json": "make bench",
    "start_time.json": "make bench",
    "embed_overhead.json": "make bench",
    "explorer.json": "make bench",
    "checksum.json": "make bench",
    "interventions.json": "make bench",
    "slurm.json": "make bench, with scripts/local-slurm.sh start",
    "iso_energy_authors.json": "make bench ISOENERGY=<checkout of Parabrele/IsoEnergy>",
    "gpu.json": "make gpu-check, on a machine with an NVIDIA GPU",
}
NAME_WIDTH = 44


@dataclass(frozen=True)
class Figure:
    """One measured figure against its target; `value`/`target` None for a check without
    numbers, `met` None where the file gives no verdict."""

    name: str
    value: float | None
    target: float | None
    met: bool | None


@dataclass(frozen=True)
class Skipped:
    """A part of a bench that did not run, and why."""

    name: str
    reason: str


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _verdict(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def figures(node: object, path: str = "") -> Iterator[Figure | Skipped]:
    """Every figure with a target, and every skipped part, in `node` (a bench script's parsed
    JSON), depth first in the file's order."""
    if not isinstance(node, dict):
        return
    if isinstance(node.get("skipped"), str):
        yield Skipped(path or "(all)", node["skipped"])
    met = node.get("met")
    targets = node.get("targets")
    if isinstance(targets, dict):
        for key, spec in targets.items():
            if isinstance(spec, dict):
                target, verdict = _number(spec.get("target")), _verdict(spec.get("met"))
            else:
                target = _number(spec)
                verdict = _verdict(met.get(key)) if isinstance(met, dict) else None
            yield Figure(_join(path, key), _number(node.get(key)), target, verdict)
    target = node.get("target")
    if isinstance(target, dict):
        for key, bound in target.items():
            if key != "met":
                value, bound = _number(node.get(key)), _number(bound)
                yield Figure(_join(path, key), value, bound, _verdict(target.get("met")))
    for key, entry in node.items():
        if key.startswith("target_") and _number(entry) is not None:
            name = key.removeprefix("target_")
            yield Figure(_join(path, name), _number(node.get(name)), _number(entry), _verdict(met))
        elif key.startswith("bounds") and isinstance(entry, dict):
            for name, bound in entry.items():
                value, bound = _number(node.get(name)), _number(bound)
                upper = None if value is None or bound is None else value <= bound
                yield Figure(_join(path, name), value, bound, upper)
        elif (key == "ok" or key.endswith("_ok")) and isinstance(entry, bool):
            yield Figure(_join(path, key), None, None, entry)
        elif isinstance(entry, dict) and key not in ("targets", "target", "met"):
            yield from figures(entry, _join(path, key))


def _format(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _status(met: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "?"}[met]


def _line(name: str, measured: str, target: str, ratio: str, status: str, file: str) -> str:
    if len(name) > NAME_WIDTH:
        name = "…" + name[-(NAME_WIDTH - 1) :]
    return f"{name:<{NAME_WIDTH}} {measured:>11} {target:>11} {ratio:>7}  {status:<6} {file}"


def summary(folder: Path) -> list[str]:
    """The summary's lines for the bench results in `folder`."""
    lines = [_line("figure", "measured", "target", "ratio", "status", "file")]
    quiet, skipped, counts = [], [], {"pass": 0, "FAIL": 0, "?": 0}
    for path in sorted(folder.glob("*.json")):
        try:
            found = list(figures(json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError) as error:
            skipped.append(f"{path.name}: unreadable ({error})")
            continue
        for item in found:
            if isinstance(item, Skipped):
                skipped.append(f"{path.name} {item.name}: skipped: {item.reason}")
                continue
            ratio = (
                "-" if item.value is None or not item.target else f"{item.value / item.target:.3g}"
            )
            status = _status(item.met)
            counts[status] += 1
            lines.append(
                _line(
                    item.name,
                    _format(item.value),
                    _format(item.target),
                    ratio,
                    status,
                    path.name,
                )
            )
        if not found:
            quiet.append(path.name)
    if quiet:
        lines.append(f"no figure with a target in: {', '.join(quiet)}")
    lines += skipped
    missing = [name for name in EXPECTED if not (folder / name).exists()]
    lines += [f"not run: {name} ({EXPECTED[name]})" for name in missing]
    lines.append(
        f"{counts['pass']} met, {counts['FAIL']} not met, {counts['?']} without a verdict; "
        f"ratio = measured / target; files in {folder}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    print("\n".join(summary(args.folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
