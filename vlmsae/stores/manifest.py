"""Manifests: what a finished output holds, so that every reader can tell it is whole.

A store's manifest sits in its attrs (`attrs["manifest"]`): per array its shape, dtype, rows per
chunk and a CRC-32 of each chunk's decoded values. A folder's manifest (`manifest.json`, written
last, atomically) lists each file's size and CRC-32, and for safetensors files each tensor's
shape, dtype, CRC-32 and finiteness; with `whole_folder` it covers every file of the folder, so a
file it does not list (an entry removed, a file added later, an interrupted job's leftover) is
damage too. `verify_store` and `verify_folder` read every chunk or file back and check it against
the manifest, that embedding rows are finite (and non-zero where attrs["normalised"] is true) and
that tensors finite when written still are. A failed check raises `DamagedOutputError`: one line
naming the file and the rule to re-run. Schema: docs/architecture.md, "Manifests".

CRC-32 (zlib, about 2.4 GB/s on one core) detects the damage that happens to files (truncation,
deleted chunks, flipped bits); it is not a defence against a forger.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.errors import DamagedOutputError, InputFileError

# numpy and zarr are imported inside the functions: the workflow imports this module at every
# Snakemake start.
if TYPE_CHECKING:
    import numpy as np
    import zarr

MANIFEST_FORMAT = 1
CHECKSUM = "crc32"
MANIFEST_FILE = "manifest.json"
# A folder manifest with this key true lists every file of its folder (this module's docstring).
WHOLE = "whole_folder"
# Rows whose norm is below this are "zero": stores hold L2-normalised rows.
MIN_ROW_NORM = 1e-6
READ_BYTES = 64 << 20  # decoded bytes read from a store at a time while verifying it


def checksum(data: np.ndarray) -> int:
    """CRC-32 of an array's values: its bytes, or each string's UTF-8 for string arrays."""
    import numpy as np

    if data.dtype.kind in "OUT":
        digest = 0
        for value in np.asarray(data).ravel():
            digest = zlib.crc32(str(value).encode() + b"\x1f", digest)
        return digest
    return zlib.crc32(np.ascontiguousarray(data).reshape(-1).view(np.uint8))


def chunk_ranges(n_rows: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each chunk of rows."""
    for start in range(0, max(n_rows, 1), chunk_rows):
        yield start, min(start + chunk_rows, n_rows)


def array_record(array: zarr.Array, checksums: list[int]) -> dict:
    """The manifest entry of a written zarr array whose chunk checksums are `checksums`."""
    return {
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "chunk_rows": int(array.chunks[0]) if array.shape else 1,
        CHECKSUM: checksums,
    }


def data_checksums(data: np.ndarray, chunk_rows: int) -> list[int]:
    """The checksum of each chunk of rows of in-memory `data`."""
    if not data.shape:
        return [checksum(data)]
    return [checksum(data[start:stop]) for start, stop in chunk_ranges(len(data), chunk_rows)]


def store_manifest(arrays: dict[str, dict]) -> dict:
    """The `attrs["manifest"]` of a store whose arrays (by path) have these records."""
    return {"format": MANIFEST_FORMAT, "checksum": CHECKSUM, "arrays": arrays}


def _store_damage(path: Path, problem: str) -> DamagedOutputError:
    return DamagedOutputError(str(path), problem, "embed")


def open_group(path: Path, rule: str = "embed") -> zarr.Group:
    """The zarr group at `path`; InputFileError when there is none, DamagedOutputError when its
    zarr.json is unreadable."""
    if not (path / "zarr.json").is_file():
        problem = "not found" if not path.exists() else "not a zarr embedding store (no zarr.json)"
        raise InputFileError(
            str(path),
            problem,
            f"give a results/embeddings/<dataset>/<model>.zarr folder, or build it with "
            f"`snakemake --forcerun {rule}`",
        )
    import zarr

    try:
        return zarr.open_group(path, mode="r")
    except Exception as error:  # zarr raises many kinds on a damaged zarr.json
        raise DamagedOutputError(
            str(path / "zarr.json"), f"unreadable ({type(error).__name__})", rule
        ) from error


def _rows_problem(values: np.ndarray, start: int, nonzero: bool) -> str | None:
    """Why rows [start, ...) of an embedding array are not usable (NaN or Inf; with `nonzero`, a
    zero row), or None."""
    import numpy as np

    flat = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(-1, 1)
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        return f"row {start + int(np.flatnonzero(~finite)[0])} holds NaN or Inf"
    if not nonzero:
        return None
    norms = np.linalg.norm(flat, axis=1)
    if (norms < MIN_ROW_NORM).any():
        return f"row {start + int(np.flatnonzero(norms < MIN_ROW_NORM)[0])} is zero"
    return None


def _read_chunks(
    array: zarr.Array, chunk_rows: int, where: Path
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """(number, first row, end row, values) of each chunk of rows. Chunks are read READ_BYTES at
    a time, so that zarr decodes them on several threads; a read that fails is repeated chunk by
    chunk to name the damaged one."""
    import numpy as np

    if not array.shape:
        yield 0, 0, 0, array[...]
        return
    ranges = list(chunk_ranges(array.shape[0], chunk_rows))
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    per_read = max(1, READ_BYTES // max(1, row_bytes * chunk_rows))
    for first in range(0, len(ranges), per_read):
        group = ranges[first : first + per_read]
        offset = group[0][0]
        try:
            values = array[offset : group[-1][1]]
        except Exception:  # a truncated or garbled chunk fails in its codec: find which
            values = None
        for number, (start, stop) in enumerate(group, start=first):
            if values is not None:
                yield number, start, stop, values[start - offset : stop - offset]
                continue
            try:
                chunk = array[start:stop]
            except Exception as error:
                raise _store_damage(
                    where, f"chunk {number} unreadable ({type(error).__name__})"
                ) from error
            yield number, start, stop, chunk


def verify_store(path: str | Path) -> dict[str, list[int]]:
    """Read every chunk of the store at `path` and check it against the store's manifest; check
    that embedding rows (each modality and class prompts) are finite, and non-zero where
    attrs["normalised"] is true.

    Returns each array's shape. Raises DamagedOutputError naming the first damaged part.
    """
    path = Path(path)
    root = open_group(path)
    attrs = dict(root.attrs)
    if not attrs.get("complete", False):
        raise _store_damage(path, "incomplete store (an interrupted write?)")
    manifest = attrs.get("manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise _store_damage(path, "the store has no manifest (written by an older vlmsae?)")
    embeddings = {*attrs.get("modalities", ["image", "text"]), "class_prompts"}
    # Only rows said to be normalised cannot be zero: an intervention's edited rows may be.
    nonzero = attrs.get("normalised") is True
    shapes = {}
    for name, record in manifest["arrays"].items():
        where = path / name
        try:
            array = root[name]
        except Exception as error:
            problem = f"array missing or its zarr.json unreadable ({type(error).__name__})"
            raise _store_damage(where, problem) from error
        if list(array.shape) != record["shape"] or str(array.dtype) != record["dtype"]:
            raise _store_damage(
                where,
                f"shape {list(array.shape)} {array.dtype} differs from the manifest's "
                f"{record['shape']} {record['dtype']}",
            )
        for number, start, stop, values in _read_chunks(array, record["chunk_rows"], where):
            if checksum(values) != record[CHECKSUM][number]:
                raise _store_damage(
                    where,
                    f"chunk {number} (rows {start}–{stop - 1}) differs from its checksum "
                    "(a deleted or damaged chunk file)",
                )
            problem = _rows_problem(values, start, nonzero) if name in embeddings else None
            if problem is not None:
                raise _store_damage(where, problem)
        shapes[name] = list(array.shape)
    return shapes


def _file_checksum(path: Path) -> tuple[int, int]:
    """(size, CRC-32) of a file, read in 16 MiB pieces."""
    digest, size = 0, 0
    with path.open("rb") as handle:
        while piece := handle.read(1 << 24):
            digest, size = zlib.crc32(piece, digest), size + len(piece)
    return size, digest


def _tensor_records(path: Path) -> dict[str, dict]:
    """Per tensor: shape, dtype, CRC-32 and whether every value is finite (a buffer may hold NaN
    on purpose, e.g. BatchTopK's threshold before calibration)."""
    import numpy as np
    from safetensors.numpy import load_file

    return {
        name: {
            "shape": list(tensor.shape),
            "dtype": str(tensor.dtype),
            CHECKSUM: checksum(tensor),
            "finite": bool(np.isfinite(tensor).all()) if tensor.dtype.kind == "f" else True,
        }
        for name, tensor in load_file(path).items()
    }


def write_folder_manifest(folder: str | Path, names: list[str]) -> Path:
    """Write `manifest.json` in `folder` for its files `names`, which are the whole folder
    (`whole_folder`: any other file found there later is reported); written last, atomically, so
    a folder with a manifest is a folder whose every listed file was complete."""
    folder = Path(folder)
    files = {}
    for name in names:
        size, digest = _file_checksum(folder / name)
        files[name] = {"bytes": size, CHECKSUM: digest}
        if name.endswith(".safetensors"):
            files[name]["tensors"] = _tensor_records(folder / name)
    manifest = {"format": MANIFEST_FORMAT, "checksum": CHECKSUM, "files": files, WHOLE: True}
    temporary = folder / f".{MANIFEST_FILE}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1))
    os.replace(temporary, folder / MANIFEST_FILE)
    return folder / MANIFEST_FILE


def _check_tensors(path: Path, expected: dict[str, dict], rule: str) -> None:
    """Every tensor of a safetensors file is readable and as the manifest says (values, and
    finiteness where they were finite when written)."""
    from safetensors import SafetensorError

    try:
        records = _tensor_records(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise DamagedOutputError(str(path), f"unreadable ({type(error).__name__})", rule) from error
    for name, record in expected.items():
        found = records.get(name)
        if found is None:
            raise DamagedOutputError(str(path), f"tensor '{name}' is missing", rule)
        if record["finite"] and not found["finite"]:
            raise DamagedOutputError(str(path), f"tensor '{name}' holds NaN or Inf", rule)
        if found != record:
            raise DamagedOutputError(str(path), f"tensor '{name}' differs from the manifest", rule)


def _unlisted(folder: Path, files: dict) -> list[str]:
    """Names in `folder` that its manifest does not list: neither manifest.json nor hidden
    (a temporary file such as `.manifest.json.tmp`)."""
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.name not in files
        and entry.name != MANIFEST_FILE
        and not entry.name.startswith(".")
    )


def verify_folder(folder: str | Path, rule: str) -> dict[str, int]:
    """Check every file `manifest.json` lists in `folder`: present, same size and CRC-32, and
    safetensors tensors readable and finite; and, where the manifest covers the whole folder,
    that it lists every file there. Returns each file's size; raises DamagedOutputError naming
    the first damaged (or unlisted) file and `rule`, which rebuilds it."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise DamagedOutputError(str(folder), "not found", rule)
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except FileNotFoundError as error:
        problem = "no manifest.json (an interrupted job, or written by an older vlmsae)"
        raise DamagedOutputError(str(folder), problem, rule) from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DamagedOutputError(str(manifest_path), "unreadable", rule) from error
    unlisted = _unlisted(folder, files) if manifest.get(WHOLE) is True else []
    if unlisted:
        raise DamagedOutputError(
            str(folder / unlisted[0]),
            f"not listed in {MANIFEST_FILE}, so unchecked (its entry was removed, or the file "
            "was added after the job, or left by an interrupted one)",
            rule,
        )
    sizes = {}
    for name, record in files.items():
        path = folder / name
        if not path.is_file():
            raise DamagedOutputError(str(path), "missing", rule)
        size, digest = _file_checksum(path)
        if size != record["bytes"]:
            raise DamagedOutputError(
                str(path), f"{size} bytes where {record['bytes']} were written (truncated?)", rule
            )
        if digest != record[CHECKSUM]:
            raise DamagedOutputError(str(path), "content differs from its checksum", rule)
        if "tensors" in record:
            _check_tensors(path, record["tensors"], rule)
        sizes[name] = size
    return sizes


def verify_folders(paths: Iterable[str | Path], rule: str) -> None:
    """`verify_folder` on the folder of each file in `paths` (each folder once)."""
    for folder in dict.fromkeys(Path(path).parent for path in paths):
        verify_folder(folder, rule)
