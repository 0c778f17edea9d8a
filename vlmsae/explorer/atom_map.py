"""2-D coordinates of a dictionary's atoms (results/metrics/<dataset>/<model>/atom_maps.parquet).

UMAP (umap-learn, seeded, so single-threaded and reproducible) of the unit decoder rows, with
euclidean distance on unit rows, which orders neighbours as cosine does and keeps a zero row
(no direction) harmless. The neighbour graph is exact and computed here with blocked matrix
products: umap-learn's approximate search (NN-descent) took 220 s of the 280 s at p = 8192,
d = 768 on 2 cores. A dictionary with too few atoms for UMAP's neighbour graph, or one on which
UMAP fails, gets the first two principal components instead; the `method` column says which.
A store's runs are mapped by one process (`store_atom_maps`): numba compiles UMAP's kernels for
8 s in every new process, far longer than mapping a dictionary of a few thousand atoms, so they
are kept in numba's on-disk cache (`cache_umap_kernels`) and later processes load them.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vlmsae.explorer.data import nearest_atoms
from vlmsae.explorer.inputs import read_decoder
from vlmsae.metrics.rows import unit_rows
from vlmsae.tables.summary import RUN_KEYS

N_NEIGHBORS = 15  # umap-learn's default; each atom's graph holds itself and 14 others
# Below this, the graph would join every atom to nearly every other: PCA says as much.
MIN_UMAP_ATOMS = N_NEIGHBORS + 2

log = logging.getLogger(__name__)


def pca_coordinates(rows: np.ndarray) -> np.ndarray:
    """[p, 2] projections of rows [p, d] on their first two principal axes (zeros past rank)."""
    centred = rows - rows.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    coordinates = np.zeros((len(rows), 2), dtype=np.float64)
    n_axes = min(2, axes.shape[0])
    coordinates[:, :n_axes] = centred @ axes[:n_axes].T
    return coordinates


@functools.cache
def cache_umap_kernels() -> None:
    """Have numba keep umap-learn's compiled kernels on disk, as pynndescent's already are.

    umap-learn jit-compiles its kernels (the fuzzy graph's, the layout's epochs) without numba's
    `cache=True`: 7.5 s of each atom_map job's 8.5 s of UMAP (p = 512, two cores). Cached (beside
    umap's sources, or in numba's user folder where those are read-only), a later process loads
    them in a fraction of a second. The cache holds the machine code numba compiled, and numba
    recompiles when umap's sources or the CPU change, so every coordinate stays the same.
    """
    # umap.umap_, .layouts and .utils define every kernel a fit_transform of precomputed
    # neighbours compiles; other modules' kernels (distances, sparse, spectral) are not run.
    import umap.layouts
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts, umap.utils):
        for kernel in vars(module).values():
            if isinstance(kernel, CPUDispatcher):
                try:
                    kernel.enable_caching()
                except RuntimeError:  # no writable cache folder: numba compiles as before
                    return


def umap_coordinates(rows: np.ndarray, seed: int) -> np.ndarray:
    """[p, 2] UMAP of unit rows [p, d], given the exact graph of N_NEIGHBORS (self included)."""
    import umap  # imported here: it imports numba and pynndescent, a few seconds

    cache_umap_kernels()
    neighbours, cosines = nearest_atoms(rows, N_NEIGHBORS - 1)
    own = np.arange(len(rows))[:, None]
    indices = np.concatenate([own, neighbours], axis=1)
    cosines = np.concatenate([np.ones_like(own, dtype=np.float32), cosines], axis=1)
    distances = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * cosines))  # euclidean, on unit rows
    with warnings.catch_warnings():
        # With a random_state UMAP runs on one thread and says so; without a search index it
        # warns that transform() is unavailable. Neither matters here.
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(
            n_neighbors=N_NEIGHBORS,
            n_components=2,
            random_state=seed,
            precomputed_knn=(indices, distances, None),
        )
        return reducer.fit_transform(rows).astype(np.float64)


def atom_map(dictionary: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Columns atom, x, y, method (`umap` or `pca`) for dictionary [p, d] (its decoder rows)."""
    rows = unit_rows(dictionary)
    method = "pca"
    if len(rows) < MIN_UMAP_ATOMS:
        log.info("%d atoms: too few for UMAP (%d needed), using PCA", len(rows), MIN_UMAP_ATOMS)
        coordinates = pca_coordinates(rows)
    else:
        try:
            coordinates, method = umap_coordinates(rows, seed), "umap"
        except (ValueError, TypeError, np.linalg.LinAlgError) as error:
            log.warning("UMAP failed (%s), using PCA", error)
            coordinates = pca_coordinates(rows)
    return pd.DataFrame(
        {
            "atom": np.arange(len(rows), dtype=np.int64),
            "x": coordinates[:, 0],
            "y": coordinates[:, 1],
            "method": method,
        }
    )


def store_atom_maps(runs: list[dict], weights: list[Path], seed: int = 0) -> pd.DataFrame:
    """`atom_map` of each run's decoder (weights[i] is runs[i]'s sae.safetensors), stacked, each
    row prefixed by its run's keys (dataset, model, variant, mixture, seed)."""
    maps = [
        atom_map(read_decoder(path), seed).assign(**{key: run[key] for key in RUN_KEYS})
        for run, path in zip(runs, weights, strict=True)
    ]
    columns = [*RUN_KEYS, "atom", "x", "y", "method"]
    return pd.concat(maps, ignore_index=True)[columns]
