"""Manifests and verification: every kind of damage to a store, a run's folders or a training
checkpoint is found and reported in one line naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vlmsae import sae
from vlmsae.cli import main
from vlmsae.errors import DamagedOutputError, InputFileError
from vlmsae.stores.embedding_store import EmbeddingStore, write_store
from vlmsae.stores.manifest import checksum, verify_folder, verify_store, write_folder_manifest
from vlmsae.training.checkpoint import (
    CHECKPOINT_FILE,
    CHECKPOINT_TENSORS,
    load_checkpoint,
    save_checkpoint,
)

RUN = "tiny/generator/topk/1-1/seed0"
ROWS, DIM = 40, 8


def _unit_rows(rng, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    split = np.zeros(ROWS, np.int8)
    split[::5] = 1
    return write_store(
        path,
        image=_unit_rows(rng, ROWS),
        text=_unit_rows(rng, ROWS),
        pairs=np.stack([np.arange(ROWS)] * 2, axis=1),
        image_split=split,
        text_split=split,
        attrs={"dataset": "tiny", "model": "generator", "normalised": True},
        label=np.arange(ROWS) % 4,
    )


@pytest.fixture
def outputs(tmp_path) -> dict[str, Path]:
    return write_outputs(tmp_path)


def write_outputs(tmp_path: Path) -> dict[str, Path]:
    """A store, a run's SAE folder and metrics folder, as the workflow lays them out."""
    results = tmp_path / "results"
    store = _store(results / "embeddings" / "tiny" / "generator.zarr")
    sae_dir = results / "sae" / RUN
    sae_dir.mkdir(parents=True)
    (sae_dir / "train_log.csv").write_text("step,loss\n1,0.5\n")
    sae.save(sae.build("topk", d=DIM, n_atoms=16, k=2), sae_dir, with_files=["train_log.csv"])
    metrics = results / "metrics" / RUN
    metrics.mkdir(parents=True)
    atoms = pd.DataFrame({"atom": np.arange(16), "energy": np.linspace(0, 1, 16)})
    atoms.to_parquet(metrics / "atoms.parquet", index=False)
    (metrics / "summary.json").write_text(json.dumps({"r2": 0.9, "l0": 2.0}, indent=2))
    write_folder_manifest(metrics, ["atoms.parquet", "summary.json"])
    return {"results": results, "store": store, "sae": sae_dir, "metrics": metrics}


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _sae_tensor_bytes_flipped(folder: Path) -> None:
    """Flip a byte inside W_dec's data (after the safetensors header): the file still parses."""
    path = folder / "sae.safetensors"
    header = int.from_bytes(path.read_bytes()[:8], "little")
    _flip(path, 8 + header + 4)


# (what is damaged, how, the file the message must name)
DAMAGE = {
    "store chunk deleted": ("store", lambda s: (s / "image" / "c" / "0" / "0").unlink(), "image"),
    "store chunk truncated": ("store", lambda s: _truncate(s / "text" / "c" / "0" / "0"), "text"),
    "store chunk bytes flipped": ("store", lambda s: _flip(s / "image" / "c" / "0" / "0"), "image"),
    "store zarr.json damaged": ("store", lambda s: _truncate(s / "zarr.json"), "zarr.json"),
    "store array zarr.json damaged": (
        "store",
        lambda s: (s / "label" / "zarr.json").write_text("{"),
        "label",
    ),
    "store array deleted": ("store", lambda s: _rmtree(s / "pairs"), "pairs"),
    "store label chunk deleted": ("store", lambda s: (s / "label" / "c" / "0").unlink(), "label"),
    "sae.safetensors truncated": ("sae", lambda f: _truncate(f / "sae.safetensors"), "sae.safet"),
    "sae.safetensors empty": ("sae", lambda f: (f / "sae.safetensors").write_bytes(b""), "sae.s"),
    "sae.safetensors bytes flipped": ("sae", _sae_tensor_bytes_flipped, "sae.safetensors"),
    "sae.safetensors deleted": ("sae", lambda f: (f / "sae.safetensors").unlink(), "sae.safet"),
    "config.json truncated": ("sae", lambda f: _truncate(f / "config.json"), "config.json"),
    "train_log.csv truncated": ("sae", lambda f: _truncate(f / "train_log.csv"), "train_log"),
    "sae manifest.json deleted": ("sae", lambda f: (f / "manifest.json").unlink(), "seed0"),
    "atoms.parquet truncated": ("metrics", lambda f: _truncate(f / "atoms.parquet"), "atoms"),
    "atoms.parquet deleted": ("metrics", lambda f: (f / "atoms.parquet").unlink(), "atoms"),
    "summary.json truncated": ("metrics", lambda f: _truncate(f / "summary.json"), "summary"),
    "summary.json garbage": ("metrics", lambda f: (f / "summary.json").write_text("{]"), "summ"),
    # The file is whole, but the manifest no longer lists it (or never did): it is unchecked.
    "atoms.parquet unlisted": ("metrics", lambda f: _unlist(f, "atoms.parquet"), "atoms.parquet"),
    "train_log.csv unlisted": ("sae", lambda f: _unlist(f, "train_log.csv"), "train_log.csv"),
    "a file added to a run": ("sae", lambda f: (f / "notes.txt").write_text("x"), "notes.txt"),
}


def _unlist(folder: Path, name: str) -> None:
    """Remove `name`'s entry from the folder's manifest.json (the file stays)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"][name]
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def test_undamaged_outputs_verify(outputs, capsys):
    assert main(["verify", str(outputs["results"])]) == 0
    assert capsys.readouterr().out.count(": ok, ") == 3  # the store and the run's two folders
    assert main(["verify", str(outputs["store"])]) == 0
    assert main(["verify", RUN, "--results", str(outputs["results"])]) == 0
    assert main(["check-store", str(outputs["store"])]) == 0
    out = capsys.readouterr().out
    assert "every chunk matches" in out and "2 files match" in out and "3 files match" in out
    assert "verified\t" in out and "label\t(40,)" in out


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_every_kind_of_damage_is_one_line_naming_the_file(outputs, capsys, kind):
    target, damage, named = DAMAGE[kind]
    damage(outputs[target])
    capsys.readouterr()
    assert main(["verify", str(outputs[target])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vlmsae: ") and named in err, err
    assert "fix:" in err and "Traceback" not in err
    # The loaders the rules use refuse it the same way.
    with pytest.raises(InputFileError, match=named):
        if target == "store":
            EmbeddingStore(outputs["store"], verify=True)
        elif target == "sae":
            sae.load(outputs["sae"], require_manifest=True)
        else:
            verify_folder(outputs["metrics"], "metrics")


def test_damaged_store_messages_name_the_rule_to_rerun(outputs):
    (outputs["store"] / "image" / "c" / "0" / "0").unlink()
    with pytest.raises(DamagedOutputError, match=r"snakemake --forcerun embed"):
        verify_store(outputs["store"])


def test_a_store_with_nan_or_zero_rows_fails_verification(tmp_path):
    path = _store(tmp_path / "s.zarr")
    import zarr

    # Written behind the manifest's back, with the manifest updated: only the value check fails.
    root = zarr.open_group(path, mode="r+")
    image = root["image"][...]
    image[3] = 0.0
    root["image"][...] = image
    manifest = dict(root.attrs["manifest"])
    manifest["arrays"]["image"]["crc32"] = [checksum(image)]
    root.attrs["manifest"] = manifest
    with pytest.raises(DamagedOutputError, match="row 3 is zero"):
        verify_store(path)


CHECKPOINT_DAMAGE = {
    "tensors truncated": lambda d: _truncate(d / CHECKPOINT_TENSORS),
    "tensors empty": lambda d: (d / CHECKPOINT_TENSORS).write_bytes(b""),
    "tensors garbage": lambda d: (d / CHECKPOINT_TENSORS).write_bytes(b"\x00garbage" * 9),
    "json truncated": lambda d: _truncate(d / CHECKPOINT_FILE),
}


@pytest.mark.parametrize("kind", list(CHECKPOINT_DAMAGE))
def test_a_damaged_checkpoint_is_one_line_naming_its_file(tmp_path, kind):
    state = {"fingerprint": "run", "step": 3, "weights": torch.arange(6.0)}
    save_checkpoint(state, tmp_path)
    assert load_checkpoint(tmp_path, "run")["step"] == 3
    CHECKPOINT_DAMAGE[kind](tmp_path)
    with pytest.raises(InputFileError, match="checkpoint") as error:
        load_checkpoint(tmp_path, "run")
    assert "\n" not in str(error.value) and str(tmp_path) in str(error.value)
