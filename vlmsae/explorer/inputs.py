"""Reading a run's files for the explorer: every missing or unreadable one is an InputFileError
naming the file and the fix, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file

from vlmsae.errors import InputFileError

if TYPE_CHECKING:  # torch: only the explorer's own job loads a model, not the atom maps' job
    from vlmsae.sae.base import SparseAutoencoder


def _rerun(path: Path) -> str:
    return f"run `snakemake {path}` first"


def need(path: Path) -> Path:
    """`path`, or InputFileError when it does not exist."""
    if not path.exists():
        raise InputFileError(str(path), "not found", _rerun(path))
    return path


def read_table(
    path: Path, columns: list[str] | None = None, filters: list[tuple] | None = None
) -> pd.DataFrame:
    """The parquet table in `path` (only `columns`, and only the rows matching pyarrow
    `filters`, when given)."""
    try:
        return pd.read_parquet(need(path), columns=columns, filters=filters)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise InputFileError(
            str(path),
            f"not a readable parquet file ({str(error).splitlines()[0]})",
            f"delete it and re-run `snakemake {path}`",
        ) from error


def read_health(summary: Path) -> str | None:
    """The `health` of a run's summary.json (vlmsae.health); None when its metrics predate it."""
    try:
        return json.loads(need(summary).read_text()).get("health")
    except json.JSONDecodeError as error:
        raise InputFileError(
            str(summary),
            f"not valid JSON ({error.msg}, line {error.lineno})",
            f"delete it and re-run `snakemake {summary}`",
        ) from error


def read_decoder(weights: Path) -> np.ndarray:
    """W_dec [p, d] of a run's sae.safetensors."""
    try:
        return load_file(need(weights))["W_dec"]
    except (OSError, SafetensorError, KeyError) as error:
        raise InputFileError(
            str(weights),
            f"not a readable SAE checkpoint ({error})",
            f"delete it and re-run `snakemake {weights}`",
        ) from error


def load_model(weights: Path) -> SparseAutoencoder:
    """The SAE saved beside `weights` (sae.safetensors and config.json), on the CPU."""
    from vlmsae import sae

    folder = weights.parent
    need(weights)
    need(folder / sae.CONFIG_FILE)
    try:
        return sae.load(folder)
    except (OSError, SafetensorError, KeyError, RuntimeError, json.JSONDecodeError) as error:
        raise InputFileError(
            str(folder),
            f"the SAE cannot be loaded ({str(error).splitlines()[0]})",
            f"delete the folder and re-run `snakemake {weights}`",
        ) from error
