"""What checksumming and verification (vlmsae.stores.manifest) cost in the embed and train jobs.

    python bench/checksum_overhead.py --out results/bench/checksum.json

Every function that checksums or verifies is wrapped with a timer while a real job runs, so the
share is measured inside one run rather than as a difference of two noisy wall times:
- embed: the CPU case of bench/embed_overhead.py (512 COCO-sized JPEGs, a ViT-Ti/16-sized
  open_clip model, write_rows 256): per-block CRC-32s on the writer thread, the final store's
  chunk checksums and its read-back verification, over the whole `embed_dataset` wall time;
- train: a TopK SAE (d 512, p 4096, k 32, batch 512, 1000 steps) on a store of 50,000 random unit
  pairs. The train rule reads the store back against its manifest before training reads it (a
  damaged store is then named before any row is used); `checksum_s` is what the job spends on
  it and on writing the run folder's manifest (`verify_store_s` the verification alone),
  `share` their part of the job's wall time.
Target: at most 5 % of each job's time (issue 14).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

TARGET_SHARE = 0.05
TRAIN_PAIRS, TRAIN_DIM = 50_000, 512


class Timed:
    """Wraps functions so that the seconds spent in them add up in `seconds`."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


class _TimedZlib:
    """Stands in for the zlib module inside vlmsae.embedding: crc32 timed."""

    def __init__(self, timer: Timed):
        import zlib

        self.crc32 = timer.wrap(zlib.crc32)


def embed_case(folder: Path, monkey) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    import embed_overhead

    from vlmsae import embedding, models
    from vlmsae.embedding import EmbedSettings, embed_dataset
    from vlmsae.fixtures.models import write_open_clip
    from vlmsae.stores import embedding_store as store

    torch.set_num_threads(1)
    (folder / "vit-ti-16").mkdir()
    entry = write_open_clip(
        folder / "vit-ti-16",
        image_size=224,
        patch=16,
        vision_width=192,
        vision_layers=12,
        embed_dim=192,
    )
    encoder = models.load(models.resolve("bench-vit-ti-16", entry), device="cpu")
    paths = embed_overhead._write_images(folder / "images", embed_overhead.N_IMAGES)
    settings = EmbedSettings(batch_size=64, num_workers=1, write_rows=256, device="cpu")
    embed_dataset(embed_overhead._raw(paths[:128]), encoder, folder / "warm.zarr", settings, {})
    timer = Timed()
    monkey(embedding, "verify_store", timer.wrap(embedding.verify_store))
    monkey(embedding, "checksum", timer.wrap(embedding.checksum))
    monkey(embedding, "zlib", _TimedZlib(timer))
    monkey(store, "data_checksums", timer.wrap(store.data_checksums))
    start = time.perf_counter()
    embed_dataset(embed_overhead._raw(paths), encoder, folder / "store.zarr", settings, {})
    wall = time.perf_counter() - start
    return {
        "images": len(paths),
        "model": "open_clip ViT, 224 px, patch 16, width 192, 12 layers (ViT-Ti/16 size), CPU",
        "job_s": round(wall, 3),
        "checksum_s": round(timer.seconds, 4),
        "share": round(timer.seconds / wall, 5),
    }


def train_case(folder: Path, monkey) -> dict:
    from vlmsae import sae
    from vlmsae.stores import embedding_store as store
    from vlmsae.stores import manifest
    from vlmsae.stores.embedding_store import EmbeddingStore, write_store
    from vlmsae.training.trainer import TrainSettings, train
    from vlmsae.training.variants import Variant

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((2, TRAIN_PAIRS, TRAIN_DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=2, keepdims=True)
    split = (np.arange(TRAIN_PAIRS) % 5 == 0).astype(np.int8)
    path = write_store(
        folder / "train.zarr",
        image=rows[0],
        text=rows[1],
        pairs=np.stack([np.arange(TRAIN_PAIRS)] * 2, axis=1),
        image_split=split,
        text_split=split,
        attrs={"dataset": "bench", "model": "random"},
    )
    checking, writing = Timed(), Timed()
    monkey(store, "verify_store", checking.wrap(store.verify_store))
    monkey(sae, "write_folder_manifest", writing.wrap(manifest.write_folder_manifest))
    settings = TrainSettings(steps=1000, batch_size=512, log_every=100, device="cpu")
    start = time.perf_counter()
    train(
        EmbeddingStore(path),
        variant=Variant.from_config("v", {"type": "topk", "n_atoms": 4096, "k": 32}),
        settings=settings,
        mixture="1-1",
        seed=0,
        out_dir=folder / "run",
        progress=False,
        verify_store=True,  # as the train rule does: before training reads the store
    )
    wall = time.perf_counter() - start
    return {
        "store": f"{TRAIN_PAIRS} pairs, d {TRAIN_DIM}",
        "sae": "topk, p 4096, k 32, batch 512, 1000 steps, CPU",
        "job_s": round(wall, 3),
        "verify_store_s": round(checking.seconds, 4),
        "checksum_s": round(checking.seconds + writing.seconds, 4),
        "share": round((checking.seconds + writing.seconds) / wall, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    replaced: list[tuple[object, str, object]] = []

    def monkey(owner, name: str, value) -> None:
        replaced.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = {"embed": embed_case(folder, monkey), "train": train_case(folder, monkey)}
    for owner, name, value in reversed(replaced):
        setattr(owner, name, value)
    for case in cases.values():
        case["target_share"] = TARGET_SHARE
        case["met"] = case["share"] <= TARGET_SHARE
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        },
        **cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
