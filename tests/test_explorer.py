"""The concept explorer's data (vlmsae.explorer) on a tiny captioned store and random SAEs.

`tiny_explorer` builds it once per session (tests/test_explorer_browser.py opens the same page):
the synthetic store of tests/tiny_config.yaml with a caption per text row naming its true
concepts and an image file for every other item, three runs (two seeds of one variant, so the
atoms get a stability, and a run whose atoms.parquet has a `name` and no classifier column).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import sparse
from snakemake_runs import TINY_CONFIG, snakemake, tiny_config

from vlmsae import datasets, sae
from vlmsae.errors import InputFileError
from vlmsae.explorer import RunFiles, atom_map, build_explorer
from vlmsae.explorer.atom_map import store_atom_maps
from vlmsae.explorer.data import histograms, nearest_atoms, top_rows, value_range
from vlmsae.explorer.inputs import read_decoder
from vlmsae.health import HealthSettings, with_health
from vlmsae.metrics.evaluate import EvalSettings, encode, eval_pairs, evaluate_run
from vlmsae.metrics.stability import stability_tables
from vlmsae.stores.embedding_store import EmbeddingStore, write_store

SETTINGS = EvalSettings(max_pairs=100, metrics={"atom_usage": {"energy_top_m": [5]}})
# A URL the page would load from a server: a remote src/href or CSS url().
REMOTE = r"""(src|href)\s*[=:]\s*["'`]?(https?:)?//|url\(\s*["']?https?:"""
RUNS = ("topk/1-1/seed0", "topk/1-1/seed1", "topk/5-1/seed0")


@dataclass(frozen=True)
class TinyExplorer:
    page: Path
    store: EmbeddingStore
    runs: list[RunFiles]
    results: Path  # the runs' results/ folder


def read_global(path: Path) -> dict:
    """The object a data file assigns (the right-hand side is JSON)."""
    text = path.read_text()
    return json.loads(text[text.index(" = {") + 3 :].rstrip().rstrip(";"))


def run_file(explorer: TinyExplorer, run_id: str) -> dict:
    store = read_global(explorer.page.parent / "data" / "store.js")
    (entry,) = [run for run in store["runs"] if run["id"] == run_id]
    return read_global(explorer.page.parent / entry["file"])


def captioned_store(path: Path, images: Path) -> EmbeddingStore:
    """The tiny config's synthetic store with captions ("a photo with concept03 concept11") and
    image files for the even items (the odd ones name files that do not exist)."""
    config = tiny_config()["datasets"]["tiny"]
    source = datasets.SOURCES.get("synthetic").obj
    arrays = source(datasets.source_settings("synthetic", config["synthetic"], "tiny"))
    concepts = arrays["truth"].codes["text"].indices
    captions = [" ".join(["a photo with", *(f"concept{k:02d}" for k in row)]) for row in concepts]
    images.mkdir(parents=True)
    sources = [str(images / f"{item}.png") for item in range(len(concepts))]
    for item in range(0, len(sources), 2):
        Image.new("RGB", (24, 16), (item % 256, 90, 160)).save(sources[item])
    attrs = {**arrays.pop("attrs"), "dataset": "tiny", "model": "generator"}
    extra = {
        "text_caption": np.array(captions, dtype=object),
        "image_source": np.array(sources, dtype=object),
    }
    write_store(path, **arrays, attrs=attrs, extra=extra)
    return EmbeddingStore(path)


def make_run(store: EmbeddingStore, files: RunFiles, seed: int) -> None:
    """A random TopK SAE of the tiny config's size (whatever the run's variant: the explorer
    reads its weights only), a one-row train log (an input of the metrics rule, older than its
    outputs) and the metric files of it the explorer reads, summary.json with its health."""
    torch.manual_seed(seed)
    model = sae.build("topk", store.dim, 32, k=3)
    files.weights.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"step": [1], "loss": [1.0], "mse": [1.0]}).to_csv(
        files.weights.parent / "train_log.csv", index=False
    )
    sae.save(model, files.weights.parent, with_files=["train_log.csv"])
    atoms, summary, tables = evaluate_run(model, store, SETTINGS)
    files.atoms.parent.mkdir(parents=True, exist_ok=True)
    atoms.to_parquet(files.atoms, index=False)
    tables["bridge_top"].to_parquet(files.bridge_top, index=False)
    summary, _ = with_health(summary, None, HealthSettings())
    files.summary.write_text(json.dumps(summary))


def run_keys(files: RunFiles) -> dict:
    return {"dataset": "tiny", "model": "generator", "variant": files.variant,
            "mixture": files.mixture, "seed": files.seed}  # fmt: skip


def write_atom_maps(runs: list[RunFiles]) -> None:
    """The atom_map rule's file: the maps of every run of the store."""
    maps = store_atom_maps([run_keys(files) for files in runs], [files.weights for files in runs])
    maps.to_parquet(runs[0].atom_maps, index=False)


def write_stability(runs: list[RunFiles]) -> None:
    """The stability rule's two files of each variant of `runs` (vlmsae.metrics.stability)."""
    for variant in dict.fromkeys(files.variant for files in runs):
        of_variant = [files for files in runs if files.variant == variant]
        pairs, atoms = stability_tables(
            [
                {
                    **run_keys(files),
                    "dictionary": read_decoder(files.weights),
                    "energy": pd.read_parquet(files.atoms)["energy"].to_numpy(),
                }
                for files in of_variant
            ],
            [],
        )
        path = of_variant[0].atom_stability
        pairs.to_parquet(path.with_name("stability.parquet"), index=False)
        atoms.to_parquet(path, index=False)


@functools.cache
def tiny_explorer_at(root: Path) -> TinyExplorer:
    store = captioned_store(root / "store.zarr", root / "images")
    runs = []
    for run in RUNS:
        files = RunFiles.of_run(f"tiny/generator/{run}", root / "results")
        make_run(store, files, files.seed)
        runs.append(files)
    write_atom_maps(runs)
    write_stability(runs)
    named = pd.read_parquet(runs[2].atoms).drop(columns="classifier_accuracy")
    named["name"] = [f"concept name {atom}" for atom in named["atom"]]
    named["name_score"] = np.linspace(0.1, 0.9, len(named))
    named["runner_up"] = [f"other name {atom}" for atom in named["atom"]]
    named.to_parquet(runs[2].atoms, index=False)
    # The random SAEs fail the health checks; one run is marked as passing them, so the page
    # shows both states.
    healthy = json.loads(runs[1].summary.read_text())
    runs[1].summary.write_text(json.dumps({**healthy, "health": "ok"}))
    page = build_explorer(root / "explorer", store.path, runs, SETTINGS)
    return TinyExplorer(page, store, runs, root / "results")


@pytest.fixture(scope="session")
def tiny_explorer(tmp_path_factory) -> TinyExplorer:
    return tiny_explorer_at(tmp_path_factory.getbasetemp() / "tiny_explorer")


def random_codes(seed: int = 0) -> sparse.csr_matrix:
    return sparse.random(60, 12, density=0.3, random_state=seed, format="csr", dtype=np.float32)


def test_top_rows_are_each_atoms_largest_codes():
    codes = random_codes()
    top = top_rows(codes, 4)
    dense = codes.toarray()
    for atom in range(dense.shape[1]):
        active = np.flatnonzero(dense[:, atom])
        expected = active[np.argsort(-dense[active, atom], kind="stable")][:4]
        found = top.rows[atom][top.rows[atom] >= 0]
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_allclose(top.values[atom][: len(found)], dense[expected, atom])


def test_histograms_count_every_nonzero_code_within_its_atoms_range():
    codes = [random_codes(0), -random_codes(1)]  # signed codes (matching pursuit) too
    lo, hi = value_range(codes)
    dense = np.concatenate([c.toarray() for c in codes])
    np.testing.assert_allclose(lo, np.minimum(dense.min(axis=0), 0))
    np.testing.assert_allclose(hi, np.maximum(dense.max(axis=0), 0))
    for matrix in codes:
        counts = histograms(matrix, lo, hi, 5)
        np.testing.assert_array_equal(counts.sum(axis=1), matrix.getnnz(axis=0))


def test_nearest_atoms_follow_the_decoder_cosine():
    dictionary = np.random.default_rng(0).standard_normal((30, 8))
    atoms, cosines = nearest_atoms(dictionary, 5)
    unit = dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    np.testing.assert_array_equal(atoms, np.argsort(-cosine, axis=1)[:, :5])
    np.testing.assert_allclose(cosines, np.take_along_axis(cosine, atoms, axis=1), rtol=1e-5)


def test_atom_map_is_seeded_umap_with_pca_for_tiny_dictionaries():
    dictionary = np.random.default_rng(0).standard_normal((40, 16))
    first, again = atom_map(dictionary, seed=3), atom_map(dictionary, seed=3)
    assert list(first.columns) == ["atom", "x", "y", "method"]
    assert (first["method"] == "umap").all()
    pd.testing.assert_frame_equal(first, again)
    tiny = atom_map(dictionary[:8])
    assert (tiny["method"] == "pca").all() and len(tiny) == 8
    assert np.isfinite(tiny[["x", "y"]].to_numpy()).all()


def test_a_new_process_loads_the_compiled_umap_kernels_and_maps_the_same(tmp_path):
    # cache_umap_kernels: numba keeps umap-learn's kernels on disk, so a new process (each
    # atom_map job) loads them instead of compiling them again, and its map is the same.
    dictionary = np.random.default_rng(0).standard_normal((40, 16))
    here = atom_map(dictionary, seed=3)  # compiles (or loads) the kernels, and caches them
    script = """
import sys
import numpy as np
import umap.layouts, umap.umap_
from vlmsae.explorer import atom_map

dictionary = np.random.default_rng(0).standard_normal((40, 16))
atom_map(dictionary, seed=3).to_parquet(sys.argv[1])
kernels = (umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths,
           umap.layouts._nb_optimize_layout_euclidean_single_epoch)
print(all(kernel.stats.cache_hits and not kernel.stats.cache_misses for kernel in kernels))
"""
    there = tmp_path / "map.parquet"
    result = subprocess.run(
        [sys.executable, "-c", script, str(there)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]  # every kernel loaded, none compiled
    pd.testing.assert_frame_equal(pd.read_parquet(there), here)


def test_top_items_are_those_of_the_encoded_eval_rows(tiny_explorer):
    data = run_file(tiny_explorer, RUNS[0])
    store = read_global(tiny_explorer.page.parent / "data" / "store.js")
    model = sae.load(tiny_explorer.runs[0].weights.parent)
    pairs = eval_pairs(tiny_explorer.store, SETTINGS.max_pairs, SETTINGS.seed)
    k = data["top"]["k"]
    for index, role in enumerate(("image", "text")):
        rows = np.unique(pairs[:, index])
        assert store["items"][role]["rows"] == rows.tolist()
        codes = encode(model, tiny_explorer.store.rows(role, rows), 64, index)[0].toarray()
        items = np.array(data["top"][role]["items"]).reshape(-1, k)
        values = np.array(data["top"][role]["values"]).reshape(-1, k)
        for atom in range(data["n_atoms"]):
            expected = np.sort(codes[:, atom][codes[:, atom] != 0])[::-1][:k]
            shown = items[atom] >= 0
            np.testing.assert_allclose(values[atom][shown], expected, rtol=1e-3)
            np.testing.assert_allclose(codes[items[atom][shown], atom], expected, rtol=1e-6)
        counts = np.array(data["hist"][role]).reshape(data["n_atoms"], -1).sum(axis=1)
        np.testing.assert_array_equal(counts, (codes != 0).sum(axis=0))


def test_store_file_holds_captions_and_thumbnails_of_the_items_shown(tiny_explorer):
    store = read_global(tiny_explorer.page.parent / "data" / "store.js")
    assert [run["id"] for run in store["runs"]] == list(RUNS)
    used = {"image": set(), "text": set()}
    for run in RUNS:
        data = run_file(tiny_explorer, run)
        for role in used:
            used[role] |= {item for item in data["top"][role]["items"] if item >= 0}
    text, image = store["items"]["text"], store["items"]["image"]
    captions = tiny_explorer.store.root["text_caption"][...]
    for position, caption in enumerate(text["captions"]):
        assert caption == (captions[text["rows"][position]] if position in used["text"] else None)
    for position, thumb in enumerate(image["thumbs"]):
        row = image["rows"][position]
        # Even items have an image file; a thumbnail exists for each one that is shown.
        assert (thumb is not None) == (position in used["image"] and row % 2 == 0)
        if thumb is not None:
            with Image.open(tiny_explorer.page.parent / thumb) as picture:
                assert max(picture.size) <= 64


def test_each_run_carries_the_health_of_its_summary(tiny_explorer):
    store = read_global(tiny_explorer.page.parent / "data" / "store.js")
    health = {run["id"]: run["health"] for run in store["runs"]}
    assert health == {
        files.id: json.loads(files.summary.read_text())["health"] for files in tiny_explorer.runs
    }
    # An untrained SAE explains little of the variance: flagged, with its numbers.
    assert health[RUNS[0]].startswith("r2 0.") and "< 0.5" in health[RUNS[0]]
    assert health[RUNS[1]] == "ok"


def test_table_columns_follow_what_each_run_has(tiny_explorer):
    seed0, seed1, named = (run_file(tiny_explorer, run) for run in RUNS)
    atoms = pd.read_parquet(tiny_explorer.runs[0].atoms)
    columns = seed0["columns"]
    np.testing.assert_allclose(columns["energy"], atoms["energy"], rtol=1e-3)
    frequency = (atoms["frequency_image"] + atoms["frequency_text"]) / 2
    np.testing.assert_allclose(columns["frequency"], frequency, rtol=1e-3)
    assert columns["atom_kind"] == atoms["atom_kind"].tolist()
    assert "classifier_accuracy" in columns and "name" not in columns
    # Two seeds of a variant: each atom's matched cosine in the other seed, the same both ways,
    # as atom_stability.parquet holds it.
    assert seed0["stability_seeds"] == seed1["stability_seeds"] == 1
    assert sorted(seed0["columns"]["stability"]) == pytest.approx(
        sorted(seed1["columns"]["stability"]), abs=1e-3
    )
    table = pd.read_parquet(tiny_explorer.runs[0].atom_stability)
    seed0_rows = table[(table["mixture"] == "1-1") & (table["seed"] == 0)].sort_values("atom")
    np.testing.assert_allclose(seed0["columns"]["stability"], seed0_rows["stability"], rtol=1e-3)
    assert named["stability_seeds"] == 0 and "stability" not in named["columns"]
    assert "classifier_accuracy" not in named["columns"]
    assert named["columns"]["name"][5] == "concept name 5"
    assert named["columns"]["runner_up"][5] == "other name 5"
    n_atoms = len(named["columns"]["name"])
    np.testing.assert_allclose(
        named["columns"]["name_score"], np.linspace(0.1, 0.9, n_atoms), rtol=1e-3
    )


def test_map_and_bridge_partners_come_from_the_run_files(tiny_explorer):
    data = run_file(tiny_explorer, RUNS[0])
    first = tiny_explorer.runs[0]
    coordinates = pd.read_parquet(first.atom_maps).query(
        "variant == @first.variant and mixture == @first.mixture and seed == @first.seed"
    )
    assert len(coordinates) == data["n_atoms"]
    np.testing.assert_allclose(data["map"]["x"], coordinates["x"], rtol=1e-3, atol=1e-4)
    assert data["map"]["method"] == "umap"
    bridge = pd.read_parquet(tiny_explorer.runs[0].bridge_top)
    assert data["bridge"]["atom_image"] == bridge["atom_image"].tolist()
    assert data["bridge"]["form"] == bridge["form"].tolist()
    assert len(data["neighbours"]["atoms"]) == data["n_atoms"] * data["neighbours"]["k"]


def test_page_and_assets_are_self_contained(tiny_explorer):
    folder = tiny_explorer.page.parent
    html = tiny_explorer.page.read_text()
    assert "tiny / generator" in html and "http" not in html
    for script in ("data/store.js", "assets/app.js", "assets/map.js"):
        assert f'src="{script}"' in html and (folder / script).is_file()
    for asset in (folder / "assets").iterdir():
        text = asset.read_text()
        assert not re.search(REMOTE, text)
        assert not re.search(r"\bfetch\(\w", text)  # browsers refuse fetch() of file:// URLs


def copy_runs(tiny_explorer: TinyExplorer, root: Path) -> list[RunFiles]:
    shutil.copytree(tiny_explorer.results, root / "results")
    return [RunFiles.of_run(f"tiny/generator/{run}", root / "results") for run in RUNS]


def test_bad_input_names_the_file_and_leaves_no_half_written_explorer(tiny_explorer, tmp_path):
    runs = copy_runs(tiny_explorer, tmp_path)
    out = tmp_path / "explorer"
    maps = runs[1].atom_maps.read_bytes()
    runs[1].atom_maps.unlink()
    with pytest.raises(InputFileError, match="atom_maps.parquet: not found; fix: run `snakemake"):
        build_explorer(out, tiny_explorer.store.path, runs, SETTINGS)
    assert not out.exists() and not (tmp_path / "explorer.partial").exists()

    runs[1].atom_maps.write_bytes(maps)
    build_explorer(out, tiny_explorer.store.path, runs, SETTINGS)
    before = sorted(path.name for path in out.rglob("*"))
    runs[2].atoms.write_bytes(b"PAR1 truncated")
    with pytest.raises(InputFileError, match="atoms.parquet: not a readable parquet file"):
        build_explorer(out, tiny_explorer.store.path, runs, SETTINGS)
    assert sorted(path.name for path in out.rglob("*")) == before  # the old explorer stays whole
    assert not (tmp_path / "explorer.partial").exists()


def test_atoms_of_another_sae_and_a_broken_checkpoint_are_named(tiny_explorer, tmp_path):
    runs = copy_runs(tiny_explorer, tmp_path)
    pd.read_parquet(runs[0].atoms).head(10).to_parquet(runs[0].atoms)
    with pytest.raises(InputFileError, match="has 10 rows for the 32 atoms"):
        build_explorer(tmp_path / "explorer", tiny_explorer.store.path, runs, SETTINGS)
    runs[1].weights.write_bytes(b"not safetensors")
    with pytest.raises(InputFileError, match="sae.safetensors: not a readable SAE checkpoint"):
        read_decoder(runs[1].weights)


@pytest.mark.slow
def test_rule_writes_one_log_line_for_a_corrupted_parquet(tiny_explorer, tmp_path):
    """The explorer rule on the tiny config's store: a corrupted bridge_top.parquet fails it with
    one line in its log and no output; once the file is rebuilt the explorer is written."""
    config = tiny_config()
    workdir = tmp_path / "work"
    (workdir / "results" / "embeddings" / "tiny").mkdir(parents=True)
    store = workdir / "results" / "embeddings" / "tiny" / "generator.zarr"
    shutil.copytree(tiny_explorer.store.path, store)
    store_files = EmbeddingStore(store)
    runs = []
    for variant in config["variants"]:
        for mixture in config["mixtures"]:
            files = RunFiles.of_run(
                f"tiny/generator/{variant}/{mixture}/seed0", workdir / "results"
            )
            make_run(store_files, files, 0)
            runs.append(files)
    write_atom_maps(runs)
    write_stability(runs)
    # bridge_top.parquet: read by the explorer alone (atoms.parquet would first rerun stability).
    good = runs[1].bridge_top.read_bytes()
    runs[1].bridge_top.write_bytes(b"PAR1 truncated")
    args = ("--rerun-triggers", "mtime", "--", "results/explorer/tiny/generator")
    failed = snakemake(workdir, *args, configfile=TINY_CONFIG, cores=1)
    assert failed.returncode != 0
    log = (workdir / "logs" / "explorer" / "tiny" / "generator.log").read_text().splitlines()
    (line,) = [line for line in log if "vlmsae:" in line]
    assert line.startswith(f"vlmsae: {runs[1].bridge_top.relative_to(workdir)}: not a readable")
    assert "fix: delete it and re-run" in line and "Traceback" not in "\n".join(log)
    assert not (workdir / "results" / "explorer" / "tiny" / "generator").exists()
    assert not (workdir / "results" / "explorer" / "tiny" / "generator.partial").exists()

    runs[1].bridge_top.write_bytes(good)
    done = snakemake(workdir, *args, configfile=TINY_CONFIG, cores=1)
    assert done.returncode == 0, done.stderr[-3000:]
    page = workdir / "results" / "explorer" / "tiny" / "generator" / "index.html"
    assert page.is_file() and len(read_global(page.parent / "data" / "store.js")["runs"]) == 4
