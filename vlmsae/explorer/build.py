"""Build a store's explorer: results/explorer/{dataset}/{model}/ (package docstring).

Everything is written to a sibling `.partial` folder that replaces the explorer only once whole:
bad input (a missing or corrupted file, named in an InputFileError) leaves no half-written page.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import zarr

from vlmsae.errors import InputFileError
from vlmsae.explorer import data
from vlmsae.explorer.inputs import load_model, read_health, read_table
from vlmsae.explorer.items import store_items
from vlmsae.explorer.js import write_global
from vlmsae.metrics.evaluate import EvalSettings, encode_modalities, eval_pairs
from vlmsae.stores.embedding_store import MODALITIES, EmbeddingStore

TOP_K = 8  # items per atom and modality
BINS = 12  # histogram bins per atom
NEIGHBOURS = 8
ASSETS = ("explorer.css", "util.js", "table.js", "map.js", "panel.js", "app.js")
BRIDGE_COLUMNS = ("atom_image", "atom_text", "bridge", "cosine", "coactivation", "form")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFiles:
    """One run of the store and the files the explorer reads of it."""

    variant: str
    mixture: str
    seed: int
    weights: Path  # results/sae/<run>/sae.safetensors, config.json beside it
    atoms: Path  # results/metrics/<run>/atoms.parquet
    bridge_top: Path  # results/metrics/<run>/bridge_top.parquet
    atom_maps: Path  # results/metrics/<dataset>/<model>/atom_maps.parquet, the store's
    # results/metrics/<dataset>/<model>/<variant>/atom_stability.parquet; None: not computed
    atom_stability: Path | None = None
    # results/metrics/<run>/summary.json, whose `health` the page shows beside the run; None: none
    summary: Path | None = None

    @property
    def id(self) -> str:
        return f"{self.variant}/{self.mixture}/seed{self.seed}"

    @classmethod
    def of_run(cls, run: str, results: Path = Path("results")) -> RunFiles:
        """The files of run `dataset/model/variant/mixture/seedN` below `results`."""
        *_, variant, mixture, seed = run.split("/")
        sae, metrics = results / "sae" / run, results / "metrics" / run
        return cls(
            variant,
            mixture,
            int(seed.removeprefix("seed")),
            sae / "sae.safetensors",
            metrics / "atoms.parquet",
            metrics / "bridge_top.parquet",
            metrics.parent.parent.parent / "atom_maps.parquet",
            metrics.parent.parent / "atom_stability.parquet",
            metrics / "summary.json",
        )


def _open_store(path: Path) -> EmbeddingStore:
    try:
        return EmbeddingStore(path)
    except zarr.errors.NodeNotFoundError as error:
        raise InputFileError(
            str(path), "not a zarr embedding store", f"delete it and re-run `snakemake {path}`"
        ) from error


def _atom_order(table, path: Path, n_atoms: int, what: str):
    """`table` sorted by atom, checked to hold one row per atom of the SAE."""
    if "atom" in table.columns:
        table = table.sort_values("atom", kind="stable").reset_index(drop=True)
    atoms = table["atom"].to_numpy() if "atom" in table.columns else np.arange(len(table))
    if len(table) != n_atoms or not np.array_equal(atoms, np.arange(n_atoms)):
        raise InputFileError(
            str(path),
            f"{what} has {len(table)} rows for the {n_atoms} atoms of the SAE (another SAE's?)",
            f"delete it and re-run `snakemake {path}`",
        )
    return table


def _run_rows(path: Path, run: RunFiles):
    """The rows of `run` in a table of several runs (a store's or a variant's)."""
    keys = (("variant", run.variant), ("mixture", run.mixture), ("seed", run.seed))
    return read_table(path, filters=[(key, "==", value) for key, value in keys])


def _atom_stability(run: RunFiles, n_atoms: int) -> tuple[np.ndarray | None, int]:
    """(stability [p] of the run's atoms, the number of other seeds it is averaged over) from
    the variant's atom_stability.parquet; (None, 0) when the run has no other seed."""
    if run.atom_stability is None:
        return None, 0
    rows = _run_rows(run.atom_stability, run)
    if rows.empty:
        return None, 0
    rows = _atom_order(rows, run.atom_stability, n_atoms, "its rows of atom_stability.parquet")
    return rows["stability"].to_numpy(), int(rows["partners"].max())


def run_data(
    run: RunFiles,
    rows: dict[str, np.ndarray],
    settings: EvalSettings,
    top_k: int,
    bins: int,
) -> dict:
    """Everything the page shows of one run, `rows` being each modality's eval rows [N_m, d]."""
    model = load_model(run.weights)
    dictionary = model.W_dec.detach().float().cpu().numpy()
    n_atoms = len(dictionary)
    atoms = _atom_order(read_table(run.atoms), run.atoms, n_atoms, "atoms.parquet")
    coordinates = _atom_order(
        _run_rows(run.atom_maps, run), run.atom_maps, n_atoms, "its rows of atom_maps.parquet"
    )
    bridge = read_table(run.bridge_top)
    columns = data.table_columns(atoms)
    # Not a column of atoms.parquet: the stability rule's, across the variant's seeds.
    stability, stability_seeds = _atom_stability(run, n_atoms)
    if stability is not None:
        columns["stability"] = stability
    codes = {
        m: coded[0] for m, coded in encode_modalities(model, rows, settings.batch_size).items()
    }
    lo, hi = data.value_range(list(codes.values()))
    top = {m: data.top_rows(codes[m], top_k) for m in codes}
    neighbours, cosines = data.nearest_atoms(dictionary, NEIGHBOURS)
    return {
        "id": run.id,
        "variant": run.variant,
        "mixture": run.mixture,
        "seed": run.seed,
        "n_atoms": n_atoms,
        "stability_seeds": stability_seeds,
        "columns": columns,
        "map": {
            "x": coordinates["x"].to_numpy(),
            "y": coordinates["y"].to_numpy(),
            "method": str(coordinates["method"].iloc[0]) if "method" in coordinates else "",
        },
        "top": {
            "k": top_k,
            **{m: {"items": top[m].rows, "values": top[m].values} for m in top},
        },
        "hist": {
            "bins": bins,
            "lo": lo,
            "hi": hi,
            **{m: data.histograms(codes[m], lo, hi, bins) for m in codes},
        },
        "neighbours": {"k": neighbours.shape[1], "atoms": neighbours, "cosine": cosines},
        "bridge": {name: bridge[name].to_numpy() for name in BRIDGE_COLUMNS if name in bridge},
    }


def _file_name(index: int, run: RunFiles) -> str:
    return f"runs/{index:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', run.id)}.js"


def _write_page(out: Path, title: str) -> None:
    assets = resources.files("vlmsae.explorer") / "assets"
    (out / "assets").mkdir()
    for name in ASSETS:
        (out / "assets" / name).write_bytes((assets / name).read_bytes())
    page = (assets / "index.html").read_text().replace("{{title}}", title)
    (out / "index.html").write_text(page)


def build_explorer(
    out: str | Path,
    store_path: str | Path,
    runs: Sequence[RunFiles],
    settings: EvalSettings | None = None,
    top_k: int = TOP_K,
    bins: int = BINS,
) -> Path:
    """Write the explorer of one store's `runs` to `out` (replacing it); returns index.html.

    The eval rows are those of the metrics (`settings`: max_pairs, seed, split), each distinct
    item once, encoded once per run.
    """
    out, settings = Path(out), settings or EvalSettings()
    if not runs:
        raise ValueError("the explorer needs at least one run")
    store = _open_store(Path(store_path))
    pairs = eval_pairs(store, settings.max_pairs, settings.seed, settings.split)
    rows = {m: np.unique(pairs[:, i]) for i, m in enumerate(MODALITIES)}
    x = {m: store.rows(m, rows[m]) for m in MODALITIES}
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        index, used = [], {m: np.zeros(len(rows[m]), dtype=bool) for m in MODALITIES}
        for number, run in enumerate(runs):
            start = time.perf_counter()
            run_entry = run_data(run, x, settings, top_k, bins)
            for m in MODALITIES:
                items = run_entry["top"][m]["items"]
                used[m][items[items >= 0]] = True
            file = _file_name(number, run)
            size = write_global(partial / file, "VLMSAE_RUNS", run.id, run_entry)
            log.info("%s: %d bytes in %.1f s", file, size, time.perf_counter() - start)
            index.append(
                {
                    "id": run.id,
                    "variant": run.variant,
                    "mixture": run.mixture,
                    "seed": run.seed,
                    "n_atoms": run_entry["n_atoms"],
                    # "ok" or the run's flags (vlmsae.health); null when it has no summary
                    "health": None if run.summary is None else read_health(run.summary),
                    "file": file,
                }
            )
        dataset, model = store.attrs.get("dataset", ""), store.attrs.get("model", "")
        store_entry = {
            "dataset": dataset,
            "model": model,
            "modalities": list(store.modalities),
            "eval_pairs": len(pairs),
            "runs": index,
            "items": store_items(store, rows, used, partial),
        }
        write_global(partial / "data" / "store.js", "VLMSAE_STORE", None, store_entry)
        _write_page(partial, f"{dataset} / {model}")
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out / "index.html"
