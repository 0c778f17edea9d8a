"""Wall time of the interventions at the scale of a real run, against the issue's bounds.

    python bench/interventions_bench.py --out results/bench/interventions.json

A synthetic store of d = 512 with 100k pairs and a TopK SAE of p = 8192 atoms, k = 32 (random
weights: the cost does not depend on what the dictionary learned), 2 threads:
- edited stores: the SAE's codes of every row (200k rows encoded once, shared by the SAE edits as
  in rule gap_closing), then each edit written; an edit's figure is what it costs alone (the
  encoding plus its write for `bimodal` and `reconstruction`, the write for `mean-shift`), and
  the bound, 60 s, applies to the largest;
- naming: `name_atoms` of the 8192 atoms against 10k vocabulary words, bound 10 s;
- arithmetic: 10k synthetic triplets (2500 sources × 4 swaps): queries encoded and measured
  (OOD score and recalls of every query kind), bound 30 s.
Each figure is written as seconds and as a ratio to its bound (below 1 meets it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from synthetic_sizes import synthetic_section  # bench/, the script's folder

THREADS = 2
D, N_ATOMS, K, N_PAIRS, N_WORDS = 512, 8192, 32, 100_000, 10_000
BOUNDS = {"edited_store_seconds": 60.0, "naming_seconds": 10.0, "arithmetic_seconds": 30.0}


def _timed(work, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = work(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)

    from vlmsae import sae
    from vlmsae.interventions.arithmetic import ArithmeticSettings, measure, queries, store_triplets
    from vlmsae.interventions.edits import (
        EDITS,
        GapClosingSettings,
        kept_atoms,
        store_codes,
        write_edited_store,
    )
    from vlmsae.metrics.naming import name_atoms
    from vlmsae.stores.build import build_store
    from vlmsae.stores.embedding_store import EmbeddingStore
    from vlmsae.stores.vocabulary import Vocabulary

    rng = np.random.default_rng(0)
    model = sae.build("topk", D, N_ATOMS, k=K).eval()
    score = rng.uniform(0, 1, N_ATOMS)
    atoms = pd.DataFrame({"atom": np.arange(N_ATOMS), "modality_score_sq": score})
    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        synthetic = synthetic_section(D, N_PAIRS, 0.1)
        path = Path(folder) / "bench.zarr"
        build_store("bench", "generator", {"source": "synthetic", "synthetic": synthetic}, path)
        store = EmbeddingStore(path)
        settings = GapClosingSettings()
        results["codes_seconds"], codes = _timed(store_codes, model, store, settings.batch_size)
        for edit in EDITS:
            edited_path = Path(folder) / f"{edit}.zarr"
            write_seconds, _ = _timed(
                write_edited_store, store, edited_path, edit, model, atoms, settings, "bench", codes
            )
            shared = 0.0 if edit == "mean-shift" else results["codes_seconds"]
            results[f"edited_store_seconds_{edit}"] = shared + write_seconds
        results["edited_store_seconds"] = max(results[f"edited_store_seconds_{e}"] for e in EDITS)
        words = rng.standard_normal((N_WORDS, D)).astype(np.float32)
        words /= np.linalg.norm(words, axis=1, keepdims=True)
        vocabulary = Vocabulary(
            words=np.array([f"w{i}" for i in range(N_WORDS)]),
            vectors=words,
            true_row=np.full(N_WORDS, -1),
            source="bench",
        )
        dictionary = model.W_dec.detach().numpy()
        results["naming_seconds"], _ = _timed(lambda: name_atoms(dictionary, vocabulary))
        arithmetic = ArithmeticSettings(n_sources=2500, swaps_per_source=4)
        keep = kept_atoms(atoms.assign(modality_score=score), settings)

        def arithmetic_run():
            triplets = store_triplets(store, arithmetic)
            return measure(queries(model, triplets, keep, 4096), triplets, arithmetic)

        results["arithmetic_seconds"], (table, _) = _timed(arithmetic_run)
        results["arithmetic_queries"] = int(table["n_triplets"].iloc[0])
    for name, bound in BOUNDS.items():
        results[name.replace("_seconds", "_ratio_to_bound")] = results[name] / bound
    results.update(
        bounds_seconds=BOUNDS,
        shape={"d": D, "n_atoms": N_ATOMS, "k": K, "pairs": N_PAIRS, "words": N_WORDS},
        threads=THREADS,
        machine=platform.platform(),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
