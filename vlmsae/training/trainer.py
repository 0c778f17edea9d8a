"""Train one SAE on one store (DESIGN §4, Training).

AdamW, linear warmup + cosine decay (or warmup–stable–decay with a stop rule that ends the run
once its loss reaches a plateau: vlmsae.training.schedule), grad-norm clipping, the variant's
constraints restored after each step (`project_parameters`: unit-norm decoder rows by default),
b_dec at the data mean (per modality when the SAE has modality pre-biases), the variant's own
start from the data (`initialise_from_data`), the AuxK loss that revives dead latents (Gao et
al. 2024), bf16 autocast on CUDA, seeded data streams read block by block from the store,
image:text mixtures for unpaired training and aligned pairs for the regularisers.

Resumable: every `checkpoint_every` steps, and on SIGTERM (vlmsae.training.preemption), the
complete state goes to the run folder as a checkpoint (vlmsae.training.checkpoint); a re-run with
the same settings continues from it and, on CPU, ends with the same weights as an uninterrupted
run. Once the weights are final, the SAE is calibrated (vlmsae.training.sae_calibration).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vlmsae import sae as sae_registry
from vlmsae.devices import resolve_device
from vlmsae.errors import VlmsaeError
from vlmsae.faults import fault
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.sae.penalty import STEERED_SHARE, Penalised
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.training.checkpoint import (
    CHECKPOINT_FILE,
    fingerprint,
    load_checkpoint,
    remove_checkpoint,
    restore,
    save_checkpoint,
    snapshot,
)
from vlmsae.training.mixture import batch_counts
from vlmsae.training.preemption import Preemption
from vlmsae.training.regularisers import Regularisers
from vlmsae.training.sae_calibration import calibrate
from vlmsae.training.schedule import Schedule, StopRule
from vlmsae.training.stream import BlockStream, modality_stream, pair_stream
from vlmsae.training.variants import Variant

log = logging.getLogger(__name__)

LOG_COLUMNS = ("step", "samples", "loss", "mse", "r2", "l0", "dead", "lr", "seconds")
# Fault points of a training run (vlmsae.faults), in the order a run reaches them: after step n
# (`train:step-<n>`), inside each checkpoint write, inside sae.save, and after the saved run
# before its checkpoint is removed.
TRAIN_FAULT_POINTS = (
    "train:step-<n>",
    "checkpoint:tensors-written",
    "checkpoint:tensors-renamed",
    "checkpoint:marker-written",
    "sae:weights-written",
    "sae:config-written",
    "train:saved",
)
LOG_FILE = "train_log.csv"
# A run whose logged training R² falls below −DIVERGENCE_PER_ATOM × n_atoms has diverged. A fresh
# dictionary starts far above it: a ReLU SAE near −n_atoms (its many small codes add up), a TopK
# one near −10; so slow starts and short runs are not mistaken for divergence.
DIVERGENCE_PER_ATOM = 1000.0


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
    aux_k: int | None = None  # dead latents used by AuxK; None: d // 2
    aux_coefficient: float = 1 / 32
    checkpoint_every: int = 1000
    buffer_rows: int = 65536  # rows per modality held in memory by the data streams
    device: str = "auto"
    # The stop rule (vlmsae.training.schedule), on when stop_tolerance is set: `steps` is a cap.
    stop_tolerance: float | None = None
    stop_window: int = 3
    stop_decay_steps: int = 300

    def stop_rule(self) -> StopRule | None:
        """The rule that ends the run on a plateau of its loss, or None (it runs `steps`)."""
        if self.stop_tolerance is None:
            return None
        return StopRule(self.stop_tolerance, self.stop_window, self.stop_decay_steps)


class Batches:
    """Training batches: aligned pairs when the regularisers need them, else an image:text mix.

    Each batch is (x [B, d], modality [B] long: 0 image, 1 text); a paired batch holds the b image
    rows first and their b captions after, in the same order.
    """

    def __init__(
        self,
        store: EmbeddingStore,
        mixture: str,
        batch_size: int,
        paired: bool,
        seed: int,
        buffer_rows: int,
    ):
        self.paired = paired
        if paired:
            self.streams: dict[str, BlockStream] = {
                "pairs": pair_stream(store, seed, 0, buffer_rows)
            }
            self.counts = (batch_size // 2, batch_size // 2)
        else:
            self.streams = {
                m: modality_stream(store, m, seed, i + 1, buffer_rows)
                for i, m in enumerate(("image", "text"))
            }
            self.counts = batch_counts(mixture, batch_size)

    @property
    def size(self) -> int:
        """Rows per batch."""
        return sum(self.counts)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.paired:
            image, text = self.streams["pairs"].take(self.counts[0])
        else:
            (image,), (text,) = (
                self.streams[m].take(c) for m, c in zip(("image", "text"), self.counts, strict=True)
            )
        x = torch.from_numpy(np.concatenate([image, text]))
        modality = torch.cat(
            [torch.zeros(len(image), dtype=torch.long), torch.ones(len(text), dtype=torch.long)]
        )
        return x, modality

    def state_dict(self) -> dict:
        return {name: stream.state_dict() for name, stream in self.streams.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, stream in self.streams.items():
            stream.load_state_dict(state[name])


class Trainer:
    """One optimisation step at a time; all state needed to resume is in `state_dict`."""

    def __init__(
        self,
        model: SparseAutoencoder,
        settings: TrainSettings,
        regularisers: Regularisers,
        device: torch.device,
        seed: int,
    ):
        self.model, self.settings, self.regularisers, self.device = (
            model,
            settings,
            regularisers,
            device,
        )
        # foreach: one kernel per operation over all parameters rather than one per parameter
        # (CPU's default), the same arithmetic, bit for bit, and faster.
        self.optimiser = torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, foreach=True
        )
        self.schedule = Schedule(settings.steps, settings.warmup_steps, settings.stop_rule())
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda step: self.schedule.factor(step)
        )
        self.steps_since_active = torch.zeros(model.n_atoms, dtype=torch.long, device=device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        # The regularisers switched on: masks change the forward pass, the others add a loss term.
        self.active = list(regularisers.active())
        self.loss_terms = [regulariser for regulariser in self.active if regulariser.term]
        self.aux_k = settings.aux_k or max(1, model.d // 2)
        self.uses_aux = model.has_encoder and model.sparse_path and settings.aux_coefficient > 0
        # A penalised variant with target_l0 has its λ steered over the first steps of the run.
        self.steered_steps = (
            round(STEERED_SHARE * settings.steps)
            if isinstance(model, Penalised) and model.target_l0 is not None
            else 0
        )

    def step(self, x: torch.Tensor, modality: torch.Tensor) -> dict[str, torch.Tensor]:
        """One AdamW step on batch x [B, d]; returns detached loss terms, r2 and l0."""
        model, settings = self.model, self.settings
        mask = None
        for regulariser in self.active:
            keep = regulariser.keep_mask(len(x) // 2, model.n_atoms, self.generator, self.device)
            if keep is not None:
                mask = keep if mask is None else mask & keep
        with torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
        ):
            codes, reconstruction = model(x, modality, mask)
            terms = model.losses(x, codes, reconstruction, modality)
            if self.loss_terms:
                image, text = codes.dense().float().chunk(2)
                for regulariser in self.loss_terms:
                    terms[regulariser.term] = regulariser.loss(image, text)
            dead = self.steps_since_active >= settings.dead_window
            if self.uses_aux and bool(dead.any()):
                terms["aux"] = settings.aux_coefficient * self._aux_loss(
                    x, modality, codes.pre, reconstruction, dead
                )
            loss = sum(terms.values())
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        self.optimiser.step()
        self.scheduler.step()
        model.project_parameters()

        with torch.no_grad():
            fired, l0 = codes.activity()
            self.steps_since_active = torch.where(fired, 0, self.steps_since_active + 1)
            variance = (x - x.mean(dim=0)).pow(2).sum(dim=1).mean()
            metrics = {name: value.detach().float() for name, value in terms.items()}
            metrics["loss"] = loss.detach().float()
            metrics["r2"] = 1 - terms["mse"].detach().float() / variance
            metrics["l0"] = l0
        if self.steered_steps:
            self._steer(x, modality, metrics["l0"])
        return metrics

    @torch.no_grad()
    def _steer(self, x: torch.Tensor, modality: torch.Tensor, l0: torch.Tensor) -> None:
        """target_l0 (vlmsae.sae.penalty): a dual-ascent step on λ while the run is steered, and
        at the end of the lr warmup, whose steps move the pre-activations most, the variant's
        start at the target again, from this batch's pre-activations under the new weights."""
        step = self.scheduler.last_epoch
        if step == self.settings.warmup_steps:
            model = self.model
            model.initialise_for_target(model.pre_activation(x - model.bias(modality), None))
        if step <= self.steered_steps:
            self.model.steer_penalty(l0)

    def _aux_loss(self, x, modality, pre, reconstruction, dead) -> torch.Tensor:
        """AuxK: the top-k_aux dead latents reconstruct the residual the live ones left."""
        with torch.no_grad():
            dead_pre = pre.masked_fill(~dead, float("-inf"))
            values, cols = dead_pre.topk(min(self.aux_k, int(dead.sum())), dim=1)
            rows = torch.arange(len(x), device=x.device).unsqueeze(1).expand_as(cols)
            positive = values > 0
        x_centred = x - self.model.bias(modality)
        aux_codes = self.model.codes_at(x_centred, rows[positive], cols[positive])
        residual = (x - reconstruction).detach().float()
        aux_reconstruction = self.model.decode(aux_codes, modality) - self.model.bias(modality)
        return (residual - aux_reconstruction.float()).pow(2).sum(dim=1).mean()

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "steps_since_active": self.steps_since_active,
            "generator": self.generator.get_state(),
            "schedule": self.schedule.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps_since_active.copy_(state["steps_since_active"])
        self.generator.set_state(state["generator"])
        self.schedule.load_state_dict(state["schedule"])


def train(
    store: EmbeddingStore,
    variant: Variant,
    settings: TrainSettings,
    mixture: str,
    seed: int,
    out_dir: str | Path,
    progress: bool = True,
    verify_store: bool = False,
) -> SparseAutoencoder:
    """Train `variant` (its sweeps resolved: vlmsae.sweeps) on the train split.

    Writes sae.safetensors, config.json and train_log.csv into `out_dir`; resumes from
    `out_dir/checkpoint.json` (and .safetensors) when one with the same fingerprint is there.
    `verify_store`: check every chunk of the store against its manifest before anything reads it
    (the workflow's rule does): a damaged store stops the run naming the damaged file, before any
    weights are written, and its checkpoint is removed. Whatever `verify_store`, a run that
    diverges or fails while reading first checks the store, and blames it when it is damaged.
    """
    if variant.swept:
        raise ValueError(
            f"{', '.join(variant.swept)} still set to 'sweep': resolve the variant's sweeps first"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if verify_store:
        _verify(store, out_dir)
    try:
        return _train(store, variant, settings, mixture, seed, out_dir, progress)
    except TrainingDiverged as error:
        _verify(store, out_dir, error)
        raise
    except VlmsaeError:
        raise
    except Exception as error:  # a chunk that fails to decode, an array that is gone, ...
        _verify(store, out_dir, error)
        raise


def _train(
    store: EmbeddingStore,
    variant: Variant,
    settings: TrainSettings,
    mixture: str,
    seed: int,
    out_dir: Path,
    progress: bool,
) -> SparseAutoencoder:
    """`train` on a store that has been checked (or need not be)."""
    torch.manual_seed(seed)
    device = resolve_device(settings.device, "train.device")
    variant_type, regularisers = variant.type, variant.regularisers
    n_atoms = variant.settings.n_atoms
    model = sae_registry.build_from_settings(variant_type, store.dim, variant.settings)
    batches = Batches(
        store, mixture, settings.batch_size, regularisers.paired, seed, settings.buffer_rows
    )
    checkpoint_path = out_dir / CHECKPOINT_FILE
    run_id = fingerprint(variant, settings, mixture, seed, store)
    state = load_checkpoint(out_dir, run_id)
    if state is None:
        _initialise_from_data(model, batches, seed)
    model.to(device).train()
    trainer = Trainer(model, settings, regularisers, device, seed)
    rows: list[dict] = []
    start_step, window, elapsed = 0, {}, 0.0
    if state is not None:
        rows, start_step, window, elapsed = restore(state, trainer, batches)
        log.info("resumed from %s at step %d", checkpoint_path, start_step)

    def state_at(step: int) -> dict:
        seconds = elapsed + time.perf_counter() - started
        return snapshot(run_id, step, trainer, batches, rows, window, seconds)

    started = time.perf_counter()
    bar = tqdm(
        range(start_step, settings.steps),
        initial=start_step,
        total=settings.steps,
        desc=f"train {variant_type}",
        disable=not progress,
        mininterval=1.0,
    )
    schedule = trainer.schedule
    with Preemption() as preemption:
        for step in bar:
            if step >= schedule.end:  # stopped on a plateau (or resumed at its last step)
                break
            x, modality = batches.next()
            metrics = trainer.step(x.to(device, non_blocking=True), modality.to(device))
            for name, value in metrics.items():
                window[name] = window.get(name, 0.0) + value
            window["n"] = window.get("n", 0) + 1
            done = step + 1
            fault(f"train:step-{done}")
            if done % settings.log_every == 0 or done == schedule.end:
                rows.append(
                    _log_row(
                        window, trainer, done, settings, elapsed + time.perf_counter() - started
                    )
                )
                window = {}
                _stop_if_diverged(rows[-1], out_dir, -DIVERGENCE_PER_ATOM * n_atoms)
                bar.set_postfix(
                    loss=f"{rows[-1]['loss']:.4f}",
                    r2=f"{rows[-1]['r2']:.3f}",
                    l0=f"{rows[-1]['l0']:.1f}",
                    dead=rows[-1]["dead"],
                )
                schedule.observe(done, [row["loss"] for row in rows])
                bar.total = schedule.end
            if preemption.requested:
                save_checkpoint(state_at(done), out_dir)
                log.warning("SIGTERM: saved the state at step %d to %s", done, checkpoint_path)
                raise SystemExit(143)
            if done % settings.checkpoint_every == 0 and done < schedule.end:
                save_checkpoint(state_at(done), out_dir)

    model.eval()
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise TrainingDiverged(
                f"{out_dir}: training diverged: parameter '{name}' holds NaN or Inf; no weights "
                "written (the store matches its manifest); fix: lower 'train.lr'"
            )
    calibrated = calibrate(model, store, batches, seed, device, rows[-1]["l0"])
    if calibrated:
        log.info("calibrated: %s", calibrated)
    _write_log(out_dir / LOG_FILE, rows)
    sae_registry.save(
        model,
        out_dir,
        with_files=[LOG_FILE],
        extra={
            "training": {
                **dataclasses.asdict(settings),
                "mixture": mixture,
                "seed": seed,
                "paired": regularisers.paired,
                **regularisers.as_config(),
                **schedule.record(),
            },
            "store": {
                "path": str(store.path),
                "dataset": store.attrs.get("dataset"),
                "model": store.attrs.get("model"),
            },
            **({"calibrated": calibrated} if calibrated else {}),
        },
    )
    fault("train:saved")
    remove_checkpoint(out_dir)
    log.info(
        "trained %s for %d steps%s: final r2 %.4f, l0 %.2f, %.1f s",
        variant_type,
        rows[-1]["step"],
        f" ({schedule.reason})" if schedule.reason else "",
        rows[-1]["r2"],
        rows[-1]["l0"],
        rows[-1]["seconds"],
    )
    return model


class TrainingDiverged(VlmsaeError):
    """The loss became NaN or Inf, or the reconstructions diverged; the message names the step."""


@torch.no_grad()
def _initialise_from_data(model: SparseAutoencoder, batches: Batches, seed: int) -> None:
    """What starts from the data, estimated on 8 batches (or the model's `initialisation_rows`,
    if more): b_dec at the data mean (one mean per modality for modality pre-biases; a fixed zero
    b_dec stays zero), with target_l0 what the variant sets from the initial pre-activations
    (vlmsae.sae.penalty), then whatever the variant's `initialise_from_data` sets.

    The streams are rewound afterwards so these estimates do not shift the training data.
    """
    state = batches.state_dict()
    n_batches = max(8, -(-model.initialisation_rows // batches.size))
    x, modality = zip(*(batches.next() for _ in range(n_batches)), strict=True)
    x, modality = torch.cat(x), torch.cat(modality)
    if model.b_dec.requires_grad and model.b_dec.ndim == 1:
        model.b_dec.copy_(x.mean(dim=0))
    elif model.b_dec.requires_grad:
        for index in (0, 1):
            model.b_dec[index].copy_(x[modality == index].mean(dim=0))
    if isinstance(model, Penalised) and model.target_l0 is not None:
        model.initialise_for_target(model.pre_activation(x - model.bias(modality), None))
    model.initialise_from_data(x, modality, torch.Generator().manual_seed(seed))
    batches.load_state_dict(state)


def _log_row(
    window: dict, trainer: Trainer, step: int, settings: TrainSettings, seconds: float
) -> dict:
    n = window["n"]
    row = {name: float(value) / n for name, value in window.items() if name != "n"}
    row.update(
        step=step,
        samples=step * settings.batch_size,
        dead=int((trainer.steps_since_active >= settings.dead_window).sum()),
        lr=trainer.scheduler.get_last_lr()[0],
        seconds=round(seconds, 3),
    )
    return row


def _verify(store: EmbeddingStore, out_dir: Path, cause: Exception | None = None) -> None:
    """Check every chunk of the store against its manifest. When it is damaged, remove the run's
    checkpoint (it may hold what damaged rows taught it) and raise the DamagedOutputError that
    names the damaged file, from `cause` (the failure that made the run check its store)."""
    try:
        store.verify()
    except VlmsaeError as damage:
        remove_checkpoint(out_dir)
        raise damage from cause


def _stop_if_diverged(row: dict, out_dir: Path, lowest_r2: float) -> None:
    """TrainingDiverged when a logged loss is NaN or Inf or R² fell below `lowest_r2`: nothing
    more is trained, no weights are written."""
    losses = {name: value for name, value in row.items() if name.startswith("loss")}
    bad = [name for name, value in losses.items() if not math.isfinite(value)]
    if bad or not math.isfinite(row["r2"]) or row["r2"] < lowest_r2:
        what = f"{bad[0]} is {losses[bad[0]]}" if bad else f"training R² is {row['r2']:.3g}"
        raise TrainingDiverged(
            f"{out_dir}: training diverged at step {row['step']} ({what}); no weights written "
            "(the store matches its manifest); fix: lower 'train.lr' (or raise "
            "'train.warmup_steps')"
        )


def _write_log(path: Path, rows: list[dict]) -> None:
    """train_log.csv: LOG_COLUMNS, then one `loss_<term>` column per extra loss term."""
    extra = sorted({key for row in rows for key in row} - set(LOG_COLUMNS))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*LOG_COLUMNS, *(f"loss_{term}" for term in extra)])
        for row in rows:
            writer.writerow([row[c] for c in LOG_COLUMNS] + [row.get(t, 0.0) for t in extra])
