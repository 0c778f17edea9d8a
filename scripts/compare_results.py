"""Compare two results folders of the same DAG (before and after a refactor), file by file.

    python scripts/compare_results.py BEFORE AFTER [--rtol 1e-5] [--atol 1e-6] [--json OUT]

Each file (a zarr store counts as one) is `identical` (same bytes), `equal` (same content once
decoded: tables, JSON, arrays, images; floats within rtol/atol, the largest difference reported),
`different` (with the first difference found), or only in one folder. Text that differs only in
the values of its numbers (Markdown tables, SVG coordinates) is compared number by number. Keys
that record how long something ran (VOLATILE_KEYS) are left out of JSON, zarr attrs and tables,
and so is the checksum a folder manifest keeps of a file that differs only there;
`.snakemake_timestamp` files and `benchmarks/` (Snakemake's per-job timings) are skipped; nothing
else is. Exit status 1 when any file is different or missing on one side.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# JSON keys and table columns whose values are wall-clock durations (train_log.csv's
# `seconds`): they differ between any two runs.
VOLATILE_KEYS = frozenset({"seconds"})
# Snakemake's own bookkeeping, and its `benchmark:` records (run time and memory of each job).
SKIPPED_NAMES = frozenset({".snakemake_timestamp"})
SKIPPED_FOLDERS = frozenset({"benchmarks"})
MANIFEST = "manifest.json"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Outcome:
    path: str
    status: str  # identical | equal | different | only_before | only_after
    detail: str = ""
    max_difference: float = 0.0


class Difference(Exception):
    """The first difference found between two decoded files."""


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    def arrays(self, before: np.ndarray, after: np.ndarray, where: str) -> float:
        """The largest |before − after| of two arrays; Difference when they differ in shape,
        dtype kind, a non-float value or a float beyond tolerance."""
        if before.shape != after.shape:
            raise Difference(f"{where}: shape {before.shape} → {after.shape}")
        if before.dtype.kind != after.dtype.kind:
            raise Difference(f"{where}: dtype {before.dtype} → {after.dtype}")
        if before.dtype.kind not in "fc":
            if not np.array_equal(before, after):
                first = np.argwhere(before != after)[0]
                raise Difference(f"{where}: value at {tuple(first)} differs")
            return 0.0
        nan_before, nan_after = np.isnan(before), np.isnan(after)
        if not np.array_equal(nan_before, nan_after):
            raise Difference(f"{where}: NaN in different places")
        finite = ~nan_before
        gap = np.abs(before[finite].astype(np.float64) - after[finite].astype(np.float64))
        bound = self.atol + self.rtol * np.abs(before[finite].astype(np.float64))
        if np.any(gap > bound):
            worst = float(gap.max())
            raise Difference(f"{where}: values differ by up to {worst:.3g}")
        return float(gap.max()) if gap.size else 0.0

    def values(self, before: Any, after: Any, where: str) -> float:
        """The largest float difference of two decoded JSON values, VOLATILE_KEYS left out."""
        if isinstance(before, dict) and isinstance(after, dict):
            keys_before = set(before) - VOLATILE_KEYS
            keys_after = set(after) - VOLATILE_KEYS
            if keys_before != keys_after:
                raise Difference(f"{where}: keys {sorted(keys_before ^ keys_after)} on one side")
            return max(
                [self.values(before[k], after[k], f"{where}.{k}") for k in keys_before],
                default=0.0,
            )
        if isinstance(before, list) and isinstance(after, list):
            if len(before) != len(after):
                raise Difference(f"{where}: length {len(before)} → {len(after)}")
            pairs = enumerate(zip(before, after, strict=True))
            return max([self.values(b, a, f"{where}[{i}]") for i, (b, a) in pairs], default=0.0)
        numbers = (int, float)
        if isinstance(before, numbers) and isinstance(after, numbers) and not (
            isinstance(before, bool) or isinstance(after, bool)
        ):
            if math.isnan(before) and math.isnan(after):
                return 0.0
            gap = abs(before - after)
            if not gap <= self.atol + self.rtol * abs(before):
                raise Difference(f"{where}: {before!r} → {after!r}")
            return float(gap)
        if before != after:
            raise Difference(f"{where}: {before!r} → {after!r}")
        return 0.0


def _table(path: Path):
    import pandas as pd

    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _compare_tables(before: Path, after: Path, tolerance: Tolerance) -> float:
    left, right = _table(before), _table(after)
    left = left.drop(columns=[c for c in left.columns if c in VOLATILE_KEYS])
    right = right.drop(columns=[c for c in right.columns if c in VOLATILE_KEYS])
    if list(left.columns) != list(right.columns):
        raise Difference(f"columns {list(left.columns)} → {list(right.columns)}")
    return max(
        [
            tolerance.arrays(
                _column_array(left[column]), _column_array(right[column]), f"column {column}"
            )
            for column in left.columns
        ],
        default=0.0,
    )


def _column_array(column) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype.kind == "O" or str(column.dtype) in ("string", "str"):
        return np.array([repr(value) for value in values])
    if values.dtype.kind == "b":
        return values.astype(np.int8)
    return values


def _compare_zarr(before: Path, after: Path, tolerance: Tolerance) -> float:
    import zarr

    left, right = zarr.open_group(before, mode="r"), zarr.open_group(after, mode="r")
    return _compare_groups(left, right, "", tolerance)


def _compare_groups(left, right, where: str, tolerance: Tolerance) -> float:
    worst = tolerance.values(dict(left.attrs), dict(right.attrs), f"{where or '/'} attrs")
    names_left, names_right = set(left.keys()), set(right.keys())
    if names_left != names_right:
        raise Difference(f"{where or '/'}: members {sorted(names_left ^ names_right)} on one side")
    for name in sorted(names_left):
        a, b = left[name], right[name]
        member = f"{where}/{name}"
        if hasattr(a, "shape") and hasattr(b, "shape"):
            worst = max(worst, tolerance.values(dict(a.attrs), dict(b.attrs), f"{member} attrs"))
            worst = max(worst, tolerance.arrays(np.asarray(a[...]), np.asarray(b[...]), member))
        else:
            worst = max(worst, _compare_groups(a, b, member, tolerance))
    return worst


def _compare_safetensors(before: Path, after: Path, tolerance: Tolerance) -> float:
    from safetensors.numpy import load_file

    left, right = load_file(before), load_file(after)
    if set(left) != set(right):
        raise Difference(f"tensors {sorted(set(left) ^ set(right))} on one side")
    return max(
        [tolerance.arrays(left[name], right[name], name) for name in sorted(left)], default=0.0
    )


def _compare_png(before: Path, after: Path, tolerance: Tolerance) -> float:
    from PIL import Image

    left = np.asarray(Image.open(before).convert("RGBA"), dtype=np.int16)
    right = np.asarray(Image.open(after).convert("RGBA"), dtype=np.int16)
    if left.shape != right.shape:
        raise Difference(f"image size {left.shape[:2]} → {right.shape[:2]}")
    changed = np.any(left != right, axis=-1)
    if changed.any():
        raise Difference(f"{int(changed.sum())} of {changed.size} pixels differ")
    return 0.0


def _compare_text(before: Path, after: Path, tolerance: Tolerance) -> float:
    """Text equal but for the values of its numbers, each within tolerance."""
    left, right = before.read_text(errors="replace"), after.read_text(errors="replace")
    if NUMBER.split(left) != NUMBER.split(right):
        lines = zip(left.splitlines(), right.splitlines(), strict=False)
        line = next((i for i, (a, b) in enumerate(lines, 1) if a != b), None)
        raise Difference(f"text differs beyond its numbers (first at line {line})")
    numbers_left = np.array([float(x) for x in NUMBER.findall(left)])
    numbers_right = np.array([float(x) for x in NUMBER.findall(right)])
    return tolerance.arrays(numbers_left, numbers_right, "numbers")


def _compare_manifest(before: Path, after: Path, tolerance: Tolerance) -> float:
    """A folder manifest (vlmsae.stores.manifest): equal when its entries are, except that the
    checksum and size of a listed file that is itself equal but not identical (its volatile
    values differ) are left out."""
    left, right = json.loads(before.read_text()), json.loads(after.read_text())
    for name in set(left.get("files", {})) & set(right.get("files", {})):
        listed_before, listed_after = before.parent / name, after.parent / name
        if not (listed_before.is_file() and listed_after.is_file()):
            continue
        if _same_bytes(listed_before, listed_after):
            continue
        compare = COMPARERS.get(listed_before.suffix, _compare_text)
        compare(listed_before, listed_after, tolerance)  # raises Difference when it differs
        for entry in (left["files"][name], right["files"][name]):
            entry.pop(left.get("checksum", "crc32"), None)
            entry.pop("bytes", None)
    return tolerance.values(left, right, "$")


COMPARERS = {
    ".parquet": _compare_tables,
    ".csv": _compare_tables,
    ".json": lambda b, a, t: t.values(json.loads(b.read_text()), json.loads(a.read_text()), "$"),
    ".zarr": _compare_zarr,
    ".safetensors": _compare_safetensors,
    ".png": _compare_png,
}


def _units(root: Path) -> dict[str, Path]:
    """Relative path → path of every file below `root`, a zarr store as one unit."""
    units = {}
    stores = sorted(path for path in root.rglob("*.zarr") if path.is_dir())
    for store in stores:
        units[str(store.relative_to(root))] = store
    for path in root.rglob("*"):
        if not path.is_file() or path.name in SKIPPED_NAMES:
            continue
        if SKIPPED_FOLDERS & set(path.relative_to(root).parts[:-1]):
            continue
        if any(store in path.parents for store in stores):
            continue
        units[str(path.relative_to(root))] = path
    return units


def _same_bytes(before: Path, after: Path) -> bool:
    if before.is_dir():
        left = {p.relative_to(before): p for p in before.rglob("*") if p.is_file()}
        right = {p.relative_to(after): p for p in after.rglob("*") if p.is_file()}
        return left.keys() == right.keys() and all(
            left[name].read_bytes() == right[name].read_bytes() for name in left
        )
    return before.read_bytes() == after.read_bytes()


def compare_folders(before: Path, after: Path, tolerance: Tolerance) -> list[Outcome]:
    """One Outcome per file or store of either folder, sorted by path."""
    left, right = _units(before), _units(after)
    outcomes = []
    for name in sorted(left.keys() | right.keys()):
        if name not in right:
            outcomes.append(Outcome(name, "only_before"))
            continue
        if name not in left:
            outcomes.append(Outcome(name, "only_after"))
            continue
        a, b = left[name], right[name]
        if a.is_dir() != b.is_dir():
            outcomes.append(Outcome(name, "different", "a store on one side only"))
            continue
        if _same_bytes(a, b):
            outcomes.append(Outcome(name, "identical"))
            continue
        compare = (
            _compare_manifest if a.name == MANIFEST else COMPARERS.get(a.suffix, _compare_text)
        )
        try:
            worst = compare(a, b, tolerance)
        except Difference as difference:
            outcomes.append(Outcome(name, "different", str(difference)))
        else:
            outcomes.append(Outcome(name, "equal", max_difference=worst))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--atol", type=float, default=1e-6)
    parser.add_argument("--json", type=Path, help="write every outcome to this file")
    args = parser.parse_args(argv)
    for folder in (args.before, args.after):
        if not folder.is_dir():
            print(f"compare_results: {folder} is not a folder; pass two results folders")
            return 2
    outcomes = compare_folders(args.before, args.after, Tolerance(args.rtol, args.atol))
    counts = Counter(outcome.status for outcome in outcomes)
    for outcome in outcomes:
        if outcome.status not in ("identical", "equal"):
            print(f"{outcome.status:12} {outcome.path}  {outcome.detail}")
    worst = max((o.max_difference for o in outcomes if o.status == "equal"), default=0.0)
    print(
        f"{len(outcomes)} files: "
        + ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
        + f"; largest difference among equal files {worst:.3g}"
        + f" (rtol {args.rtol:g}, atol {args.atol:g})"
    )
    if args.json:
        args.json.write_text(json.dumps([outcome.__dict__ for outcome in outcomes], indent=1))
    failed = counts["different"] + counts["only_before"] + counts["only_after"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
