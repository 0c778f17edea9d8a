"""GPU check: the CUDA paths (bf16 embedding, bf16 training) against the CPU ones, and speed.

    make gpu-check     # python bench/gpu_check.py [--steps 300] [--out results/bench/gpu.json]

On a machine with one NVIDIA GPU and a CUDA build of torch:
1. embedding: a tiny open_clip model in its real on-disk layout (vlmsae.fixtures.models) embeds
   the same images on CPU (fp32) and on CUDA (bf16); every row's cosine with its CPU row must be
   ≥ EMBED_MIN_COSINE;
2. training: TopK, BatchTopK, MP and SAE-A (iso-energy's MP with the alignment loss) train for
   `--steps` steps on one synthetic store (the built-in generator), once on CPU (fp32) and once on
   CUDA (bf16 autocast, as the trainer does on CUDA); the logged loss curves must agree within
   LOSS_RTOL (mean relative difference over the logged steps) and the dead-atom counts within
   one order of magnitude;
3. speed: samples/s and peak GPU memory of each training, and of overcomplete 0.3.0's TopK SAE on
   the same GPU and data when overcomplete is importable (else the reason is recorded).
Writes results/bench/gpu.json and prints one line per check; exit status 1 when a check fails, 2
with a one-line reason when no CUDA device is visible. `--against cpu` runs every step with the
CPU in place of the GPU (a check of the script itself, on any machine; tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# bf16 against fp32: the bf16 mantissa (8 bits) gives about 0.4 % per value; the curves of two
# devices also differ by their random streams (dead-atom resampling, BatchTopK's batch).
LOSS_RTOL = 0.15
EMBED_MIN_COSINE = 0.99
VARIANTS = {
    "topk": {"type": "topk", "n_atoms": 2048, "k": 32},
    "batchtopk": {"type": "batchtopk", "n_atoms": 2048, "k": 32},
    "mp": {"type": "mp", "n_atoms": 2048, "k": 20},
    "sae-a": {"preset": "sae-a", "n_atoms": 2048},
}
SYNTHETIC_D = 512
EMBEDDED_ITEMS = 256
BATCH_SIZE = 1024


def _no_gpu_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed; install the project (make install) or use a CUDA build"
    if not torch.cuda.is_available():
        build = torch.version.cuda or "CPU-only"
        return (
            f"no CUDA device visible to torch {torch.__version__} (build: {build}); "
            "run it on a machine with an NVIDIA GPU and a CUDA build of torch"
        )
    return None


def _store(folder: Path, pairs: int) -> Path:
    from vlmsae.datasets.synthetic import SyntheticParams, build
    from vlmsae.registry_base import parse_settings
    from vlmsae.stores.embedding_store import write_store

    section = {"n_pairs": pairs, "d": SYNTHETIC_D}
    params = parse_settings(SyntheticParams, section, "gpu_check.synthetic")
    return write_store(folder / "synthetic.zarr", **build(params))


def _train(store_path: Path, name: str, entry: dict, device: str, steps: int, out: Path) -> dict:
    import pandas as pd
    import torch

    from vlmsae.stores.embedding_store import EmbeddingStore
    from vlmsae.training.trainer import TrainSettings, train
    from vlmsae.training.variants import Variant

    variant = Variant.from_config(name, entry)
    settings = TrainSettings(steps=steps, batch_size=BATCH_SIZE, log_every=25, device=device)
    mixture = "1-1"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    model = train(EmbeddingStore(store_path), variant, settings, mixture, 0, out, progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    log = pd.read_csv(out / "train_log.csv")
    return {
        "device": device,
        "seconds": round(wall, 3),
        "samples_per_s": round(steps * settings.batch_size / wall, 1),
        "peak_gpu_mib": (
            round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None
        ),
        "loss": log["loss"].round(6).tolist(),
        "final_r2": float(log["r2"].iloc[-1]),
        "dead_atoms": int(log["dead"].iloc[-1]),
        "n_atoms": model.n_atoms,
    }


def _compare_training(cpu: dict, gpu: dict) -> dict:
    loss_cpu, loss_gpu = np.asarray(cpu["loss"]), np.asarray(gpu["loss"])
    relative = float(np.mean(np.abs(loss_gpu - loss_cpu) / np.maximum(np.abs(loss_cpu), 1e-12)))
    dead_ratio = (gpu["dead_atoms"] + 1) / (cpu["dead_atoms"] + 1)
    return {
        "loss_mean_relative_difference": round(relative, 4),
        "loss_ok": relative <= LOSS_RTOL,
        "dead_atoms_cpu_gpu": [cpu["dead_atoms"], gpu["dead_atoms"]],
        "dead_ok": 0.1 <= dead_ratio <= 10,
        "speedup_gpu_over_cpu": round(gpu["samples_per_s"] / cpu["samples_per_s"], 2),
    }


def _embedding(folder: Path, against: str) -> dict:
    from PIL import Image

    from vlmsae import models
    from vlmsae.datasets.raw import EVAL, FileMedia, RawDataset
    from vlmsae.embedding import EmbedSettings, embed_dataset
    from vlmsae.fixtures.models import write_open_clip
    from vlmsae.stores.embedding_store import EmbeddingStore

    rng = np.random.default_rng(0)
    paths = []
    (folder / "images").mkdir()
    for index in range(EMBEDDED_ITEMS):
        path = folder / "images" / f"{index:04d}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    texts = [f"a photo of thing number {index}" for index in range(EMBEDDED_ITEMS)]
    raw = RawDataset(
        modality="image",
        media=FileMedia(paths),
        texts=texts,
        pairs=np.stack([np.arange(EMBEDDED_ITEMS)] * 2, axis=1),
        media_split=np.full(EMBEDDED_ITEMS, EVAL, dtype=np.int8),
    )
    (folder / "model").mkdir()
    entry = write_open_clip(folder / "model")
    result = {}
    rows = {}
    for device, precision in (("cpu", "fp32"), (against, "bf16" if against == "cuda" else "fp32")):
        encoder = models.load(models.resolve("gpu-check-clip", entry), device=device)
        settings = EmbedSettings(batch_size=64, num_workers=2, device=device, precision=precision)
        start = time.perf_counter()
        embed_dataset(raw, encoder, folder / f"{device}.zarr", settings, {"dataset": "gpu"})
        result[f"{device}_seconds"] = round(time.perf_counter() - start, 3)
        store = EmbeddingStore(folder / f"{device}.zarr")
        rows[device] = {m: store.rows(m) for m in ("image", "text")}
    for modality in ("image", "text"):
        cosine = np.sum(rows["cpu"][modality] * rows[against][modality], axis=1)
        result[f"{modality}_min_cosine"] = round(float(cosine.min()), 5)
    result["ok"] = min(result["image_min_cosine"], result["text_min_cosine"]) >= EMBED_MIN_COSINE
    return result


def _overcomplete(steps: int) -> dict:
    """Step throughput on CUDA (fp32 both) of our TopK and overcomplete's TopKSAE at
    train_throughput's topk shape, on the same batches, with the same optimiser."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import train_throughput as bench

    from vlmsae import sae

    try:
        overcomplete = bench.import_overcomplete()
    except ImportError as error:
        return {"skipped": f"overcomplete is not importable here: {error}"}
    shape = bench.CASES["topk"]
    d, n_atoms, k, batch = shape["d"], shape["n_atoms"], shape["k"], shape["batch"]
    batches = [x.cuda() for x in bench.synthetic_batches(d, batch, count=4)]
    torch.manual_seed(0)
    ours = sae.build("topk", d=d, n_atoms=n_atoms, k=k).cuda().train()
    torch.manual_seed(0)
    theirs = overcomplete.sae.TopKSAE(d, n_atoms, top_k=k, encoder_module="linear").cuda().train()
    result = {**shape, "steps": steps}
    for name, step in (
        ("ours", bench.ours_step(ours, bench.adamw(ours.parameters()))),
        ("overcomplete", bench.overcomplete_step(theirs, bench.adamw(theirs.parameters()))),
    ):
        for i in range(10):  # warm-up: kernels chosen, allocator filled
            step(batches[i % 4])
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            step(batches[i % 4])
        torch.cuda.synchronize()
        result[f"{name}_samples_per_s"] = round(steps * batch / (time.perf_counter() - start), 1)
    result["speedup_vs_overcomplete"] = round(
        result["ours_samples_per_s"] / result["overcomplete_samples_per_s"], 2
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=40_000, help="synthetic pairs trained on")
    parser.add_argument("--out", type=Path, default=Path("results/bench/gpu.json"))
    parser.add_argument("--against", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args(argv)
    reason = _no_gpu_reason() if args.against == "cuda" else None
    if reason is not None:
        print(f"gpu-check: {reason}")
        return 2
    import torch

    report = {
        "gpu": torch.cuda.get_device_name(0) if args.against == "cuda" else "none (--against cpu)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "steps": args.steps,
        "loss_rtol": LOSS_RTOL,
        "embed_min_cosine": EMBED_MIN_COSINE,
        "training": {},
    }
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        report["embedding"] = _embedding(folder, args.against)
        if not report["embedding"]["ok"]:
            failed.append("embedding")
        store_path = _store(folder, args.pairs)
        for name, entry in VARIANTS.items():
            runs = [
                _train(store_path, name, entry, device, args.steps, folder / name / str(side))
                for side, device in enumerate(("cpu", args.against))
            ]
            comparison = _compare_training(*runs)
            report["training"][name] = {"cpu": runs[0], "gpu": runs[1], **comparison}
            if not (comparison["loss_ok"] and comparison["dead_ok"]):
                failed.append(name)
        report["overcomplete_topk"] = (
            _overcomplete(args.steps) if args.against == "cuda" else {"skipped": "--against cpu"}
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    embedding = report["embedding"]
    print(
        f"embedding: min cosine CPU fp32 vs CUDA bf16 image {embedding['image_min_cosine']}, "
        f"text {embedding['text_min_cosine']} (≥ {EMBED_MIN_COSINE})"
    )
    for name, row in report["training"].items():
        print(
            f"{name}: loss curves differ by {row['loss_mean_relative_difference']:.3f} "
            f"(≤ {LOSS_RTOL}), dead atoms {row['dead_atoms_cpu_gpu']}, "
            f"{row['gpu']['samples_per_s']:.0f} samples/s on {report['gpu']} "
            f"({row['speedup_gpu_over_cpu']}× CPU), peak {row['gpu']['peak_gpu_mib']} MiB"
        )
    print(f"overcomplete TopK: {report['overcomplete_topk']}")
    print(f"gpu-check: {'FAILED ' + ', '.join(failed) if failed else 'passed'}; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
