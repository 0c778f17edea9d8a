"""scripts/compare_results.py: the before/after check of a refactor's results folders."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_results.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _write(root: Path, r2: float, seconds: float, store_value: float, word: str) -> None:
    (root / "tables").mkdir(parents=True)
    pd.DataFrame({"variant": ["topk", "mp"], "r2": [0.5, r2]}).to_csv(
        root / "tables" / "summary.csv", index=False
    )
    pd.DataFrame({"step": [100], "loss": [0.25], "seconds": [seconds]}).to_csv(
        root / "train_log.csv", index=False
    )
    crc = {"train_log.csv": {"bytes": 30 + int(seconds), "crc32": int(seconds * r2 * 1000)}}
    (root / "manifest.json").write_text(json.dumps({"checksum": "crc32", "files": crc}))
    (root / "summary.json").write_text(json.dumps({"r2": r2, "names": [word, "dog"]}))
    (root / "table.md").write_text(f"| variant | r2 |\n| topk | {r2:.6f} |\n")
    group = zarr.open_group(root / "store.zarr", mode="w")
    group.attrs["d"] = 2
    group.create_array("image", shape=(2, 2), dtype="float32")[...] = [[1, 0], [0, store_value]]


def _statuses(compare, before: Path, after: Path) -> dict[str, str]:
    outcomes = compare.compare_folders(before, after, compare.Tolerance(rtol=1e-5, atol=1e-6))
    return {outcome.path: outcome.status for outcome in outcomes}


def test_equal_within_tolerance_and_durations_left_out(tmp_path, compare):
    _write(tmp_path / "a", r2=0.7, seconds=1.0, store_value=1.0, word="cat")
    _write(tmp_path / "b", r2=0.7 + 1e-9, seconds=9.0, store_value=1.0 + 1e-9, word="cat")
    assert _statuses(compare, tmp_path / "a", tmp_path / "b") == {
        "manifest.json": "equal",  # its checksum of train_log.csv, which differs in `seconds`
        "store.zarr": "identical",  # float32 absorbs the 1e-9
        "summary.json": "equal",
        "table.md": "identical",
        "tables/summary.csv": "equal",
        "train_log.csv": "equal",
    }
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def test_a_changed_number_a_changed_word_and_a_missing_file_are_reported(tmp_path, compare):
    _write(tmp_path / "a", r2=0.7, seconds=1.0, store_value=1.0, word="cat")
    _write(tmp_path / "b", r2=0.71, seconds=1.0, store_value=0.5, word="cow")
    (tmp_path / "b" / "train_log.csv").write_text("step,loss,seconds\n100,0.3,1.0\n")
    (tmp_path / "a" / "only_here.txt").write_text("x")
    statuses = _statuses(compare, tmp_path / "a", tmp_path / "b")
    assert statuses == {
        "manifest.json": "different",  # train_log.csv's loss changed, so its checksum counts
        "only_here.txt": "only_before",
        "store.zarr": "different",
        "summary.json": "different",
        "table.md": "different",
        "tables/summary.csv": "different",
        "train_log.csv": "different",
    }
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1


def test_nan_in_the_same_places_is_equal_and_in_others_is_not(compare):
    tolerance = compare.Tolerance(rtol=0.0, atol=0.0)
    assert tolerance.arrays(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), "x") == 0.0
    with pytest.raises(compare.Difference, match="NaN"):
        tolerance.arrays(np.array([np.nan, 1.0]), np.array([1.0, np.nan]), "x")
