"""Train one SAE on one store: AdamW, warmup + cosine, grad-norm clipping, unit-norm decoder rows,
b_dec initialised at the data mean, seeded mixture batches, a progress bar and `train_log.csv`."""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vlmsae import sae as sae_registry
from vlmsae.store import EmbeddingStore
from vlmsae.training.mixture import mixture_batches

log = logging.getLogger(__name__)

LOG_COLUMNS = ("step", "samples", "loss", "mse", "r2", "l0", "dead", "lr", "seconds")


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    log_every: int = 100
    dead_window: int = 1000  # an atom silent for this many steps counts as dead
    device: str = "auto"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is visible; set it to 'auto'")
    return torch.device(device)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1 over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def train(
    store: EmbeddingStore,
    variant: dict,
    settings: TrainSettings,
    mixture: str,
    seed: int,
    out_dir: str | Path,
    progress: bool = True,
) -> sae_registry.SparseAutoencoder:
    """Train `variant` ({"type": name, "n_atoms": p, ...hyper}) on the store's train split.

    Writes sae.safetensors, config.json and train_log.csv into `out_dir`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    device = resolve_device(settings.device)
    data = {
        m: torch.from_numpy(store.rows(m, store.split_rows(m, "train"))) for m in ("image", "text")
    }
    hyper = {key: value for key, value in variant.items() if key not in ("type", "n_atoms")}
    model = sae_registry.build(variant["type"], d=store.dim, n_atoms=variant["n_atoms"], **hyper)

    batches = mixture_batches(
        len(data["image"]), len(data["text"]), mixture, settings.batch_size, seed
    )
    with torch.no_grad():
        # b_dec starts at the mean of the training distribution, estimated on a few batches.
        sample = torch.cat([_batch(data, next(batches)) for _ in range(8)])
        model.b_dec.copy_(sample.mean(dim=0))
    model.to(device).train()

    optimiser = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, settings.warmup_steps, settings.steps)
    )
    steps_since_active = torch.zeros(model.n_atoms, dtype=torch.long, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    rows, start = [], time.perf_counter()
    window = {"loss": 0.0, "mse": 0.0, "r2": 0.0, "l0": 0.0, "n": 0}
    bar = tqdm(
        range(settings.steps),
        desc=f"train {variant['type']}",
        disable=not progress,
        mininterval=1.0,
    )
    for step in bar:
        x = _batch(data, next(batches)).to(device, non_blocking=True)
        with autocast:
            codes, reconstruction = model(x)
            terms = model.losses(x, codes, reconstruction)
            mse = terms["mse"]
            loss = sum(terms.values())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimiser.step()
        scheduler.step()
        model.normalise_decoder()

        with torch.no_grad():
            active = codes.active()
            steps_since_active = torch.where(active.any(dim=0), 0, steps_since_active + 1)
            variance = (x - x.mean(dim=0)).pow(2).sum(dim=1).mean()
            window["loss"] += loss.item()
            window["mse"] += mse.item()
            window["r2"] += (1 - mse / variance).item()
            window["l0"] += active.sum(dim=1).float().mean().item()
            window["n"] += 1
        if (step + 1) % settings.log_every == 0 or step + 1 == settings.steps:
            n = window.pop("n")
            row = {key: value / n for key, value in window.items()}
            row.update(
                step=step + 1,
                samples=(step + 1) * settings.batch_size,
                dead=int((steps_since_active >= settings.dead_window).sum()),
                lr=scheduler.get_last_lr()[0],
                seconds=round(time.perf_counter() - start, 3),
            )
            rows.append(row)
            bar.set_postfix(
                loss=f"{row['loss']:.4f}",
                r2=f"{row['r2']:.3f}",
                l0=f"{row['l0']:.1f}",
                dead=row["dead"],
            )
            window = {"loss": 0.0, "mse": 0.0, "r2": 0.0, "l0": 0.0, "n": 0}

    model.eval()
    _write_log(out_dir / "train_log.csv", rows)
    sae_registry.save(
        model,
        out_dir,
        extra={
            "training": {**settings.__dict__, "mixture": mixture, "seed": seed},
            "store": {
                "path": str(store.path),
                "dataset": store.attrs.get("dataset"),
                "model": store.attrs.get("model"),
            },
        },
    )
    log.info(
        "trained %s in %.1f s: final r2 %.4f, l0 %.2f",
        variant["type"],
        time.perf_counter() - start,
        rows[-1]["r2"],
        rows[-1]["l0"],
    )
    return model


def _batch(data: dict[str, torch.Tensor], indices: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
    image_idx, text_idx = indices
    return torch.cat([data["image"][image_idx], data["text"][text_idx]])


def _write_log(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows({key: row[key] for key in LOG_COLUMNS} for row in rows)
