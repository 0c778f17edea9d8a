"""Size and speed of the concept explorer at the scale of a real run, in headless Chromium.

    python bench/explorer_bench.py --out results/bench/explorer.json

One run of a TopK SAE with random weights (p = 8192 atoms, k = 32, d = 768) on a synthetic store
with 8,000 eval pairs and a caption per text row, its atoms.parquet, bridge_top.parquet and
atom_maps.parquet (UMAP) written directly, not trained or measured by the DAG. Then the explorer is
built and opened from disk (file://) in Debian's chromium through chromedriver:
- first_paint_s: navigation start to the first frame with the table and map drawn (median of
  PAGE_LOADS fresh loads);
- select_ms: from selecting an atom to the next frame with its panel drawn (median over
  SELECTIONS random atoms; the maximum is kept too);
- bytes: every file of the store's explorer (one run, page and assets included).
Targets (issue 10): first paint under 2 s, select under 200 ms, under 30 MB.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from synthetic_sizes import synthetic_section  # bench/, the script's folder

THREADS = 2
D, N_ATOMS, K, EVAL_PAIRS, TRAIN_PAIRS = 768, 8192, 32, 8000, 2000
PAGE_LOADS, SELECTIONS, BRIDGE_PAIRS = 3, 20, 200
TARGETS = {"first_paint_s": 2.0, "select_ms": 200.0, "bytes": 30 * 1024**2}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Without the networking flags, chromium's background connections are refused on an offline
# machine many at a time.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)
WORDS = (
    "a dog cat man woman child red blue green yellow car bus train street park beach table kitchen "
    "plate pizza bird sky tree field horse bike snow water boat room bed window people sitting on "
    "in the with near two three small large old young running standing holding"
).split()


def _store(path: Path) -> None:
    """A synthetic store (linear-structure-like sizes) with a caption per text row."""
    from vlmsae import datasets
    from vlmsae.stores.embedding_store import write_store

    n_pairs = EVAL_PAIRS + TRAIN_PAIRS
    section = synthetic_section(D, n_pairs, EVAL_PAIRS / n_pairs)
    arrays = datasets.SOURCES.get("synthetic").obj(
        datasets.source_settings("synthetic", section, "bench")
    )
    rng = np.random.default_rng(0)
    words = np.array(WORDS, dtype=object)[rng.integers(0, len(WORDS), (n_pairs, 10))]
    captions = np.array([" ".join(row) for row in words], dtype=object)
    attrs = {**arrays.pop("attrs"), "dataset": "bench", "model": "generator"}
    write_store(path, **arrays, attrs=attrs, extra={"text_caption": captions})


def _run(root: Path, store_path: Path) -> tuple[object, dict]:
    """A random TopK SAE and the files the explorer reads of it; seconds per step."""
    from vlmsae import sae
    from vlmsae.explorer import RunFiles
    from vlmsae.explorer.atom_map import store_atom_maps
    from vlmsae.metrics import energy, modality
    from vlmsae.metrics.evaluate import EvalSettings, encode, eval_pairs
    from vlmsae.stores.embedding_store import MODALITIES, EmbeddingStore

    torch.manual_seed(0)
    model = sae.build("topk", D, N_ATOMS, k=K)
    # One seed: no stability column (the stability rule's per-atom table would be empty).
    files = dataclasses.replace(
        RunFiles.of_run("bench/generator/topk/1-1/seed0", root / "results"), atom_stability=None
    )
    sae.save(model, files.weights.parent)
    files.atoms.parent.mkdir(parents=True)
    store = EmbeddingStore(store_path)
    pairs = eval_pairs(store, EvalSettings().max_pairs, 0)
    codes = [
        encode(model, store.rows(m, pairs[:, i]), 4096, i)[0] for i, m in enumerate(MODALITIES)
    ]
    image, text = (energy.energy(c, 1) for c in codes)
    score = modality.modality_score(image, text)
    pd.DataFrame(
        {
            "atom": np.arange(N_ATOMS),
            "frequency_image": codes[0].getnnz(axis=0) / len(pairs),
            "frequency_text": codes[1].getnnz(axis=0) / len(pairs),
            "energy": (image + text) / 2,
            "modality_score": score,
            "atom_kind": modality.atom_kind(score, 0.05),
        }
    ).to_parquet(files.atoms)
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "atom_image": rng.integers(0, N_ATOMS, BRIDGE_PAIRS),
            "atom_text": rng.integers(0, N_ATOMS, BRIDGE_PAIRS),
            "bridge": np.sort(rng.random(BRIDGE_PAIRS))[::-1] * 1e-3,
            "cosine": rng.random(BRIDGE_PAIRS),
            "coactivation": rng.random(BRIDGE_PAIRS) * 1e-2,
            "form": ["coactivation", "transport"] * (BRIDGE_PAIRS // 2),
        }
    ).to_parquet(files.bridge_top)
    start = time.perf_counter()
    run = {"dataset": "bench", "model": "generator", "variant": "topk", "mixture": "1-1", "seed": 0}
    coordinates = store_atom_maps([run], [files.weights], 0)
    coordinates.to_parquet(files.atom_maps)
    return files, {
        "atom_map_s": time.perf_counter() - start,
        "atom_map_method": coordinates["method"].iloc[0],
    }


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _wait_ready(driver, timeout: float = 60.0) -> float:
    """Seconds from navigation start to the page's first frame with table and map."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first_paint = driver.execute_script(
            "return document.body.dataset.ready && window.VLMSAE_EXPLORER.timings.firstPaint"
        )
        if first_paint:
            return first_paint / 1000
        time.sleep(0.02)
    raise TimeoutError("the explorer did not finish its first paint")


SELECT = """
const [atom, done] = arguments;
const start = performance.now();
window.VLMSAE_EXPLORER.select(atom);
requestAnimationFrame(() => done(performance.now() - start));
"""


def _measure(page: Path) -> dict:
    driver = _browser()
    try:
        paints = []
        for _ in range(PAGE_LOADS):
            driver.get(page.as_uri())
            paints.append(_wait_ready(driver))
        atoms = np.random.default_rng(1).choice(N_ATOMS, SELECTIONS, replace=False)
        selects = [driver.execute_async_script(SELECT, int(atom)) for atom in atoms]
        panel_items = driver.execute_script("return document.querySelectorAll('#panel li').length")
    finally:
        driver.quit()
    return {
        "first_paint_s": statistics.median(paints),
        "first_paint_all_s": paints,
        "select_ms": statistics.median(selects),
        "select_max_ms": max(selects),
        "panel_items_last": panel_items,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="results/bench/explorer.json")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        sys.exit(
            f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver"
        )
    from vlmsae.explorer import build_explorer

    root = Path(tempfile.mkdtemp())
    store_path = root / "store.zarr"
    start = time.perf_counter()
    _store(store_path)
    result: dict = {"store_build_s": time.perf_counter() - start}
    files, timings = _run(root, store_path)
    result.update(timings)
    start = time.perf_counter()
    page = build_explorer(root / "explorer", store_path, [files])
    result["build_s"] = time.perf_counter() - start
    result["bytes"] = sum(f.stat().st_size for f in page.parent.rglob("*") if f.is_file())
    result["run_file_bytes"] = sum(f.stat().st_size for f in (page.parent / "runs").iterdir())
    result["n_atoms"] = N_ATOMS
    result.update(_measure(page))
    result.update(
        {
            "command": " ".join(sys.argv),
            "scale": {"d": D, "n_atoms": N_ATOMS, "k": K, "eval_pairs": EVAL_PAIRS},
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average": list(os.getloadavg()),
            },
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        }
    )
    result["targets"] = {
        key: {"target": bound, "met": result[key] < bound} for key, bound in TARGETS.items()
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
