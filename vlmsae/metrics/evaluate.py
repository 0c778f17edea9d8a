"""Run every per-run metric on a store's balanced evaluation split.

The split: the store's "eval" pairs (a seeded subsample of at most `max_pairs`), giving N image
rows I and N text rows T. Outputs follow docs/results.md: one row per atom (`atoms`) and one flat
dict of scalars (`summary`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from vlmsae.metrics import energy, modality, reconstruction, recovery
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.store import EmbeddingStore

KINDS = ("image", "text", "bimodal", modality.DEAD)
ACTIVITIES = ("both", "image_only", "text_only", modality.DEAD)


@dataclass(frozen=True)
class EvalSettings:
    max_pairs: int = 10000
    seed: int = 0
    modality_epsilon: float = 0.05
    energy_top_m: list[int] = field(default_factory=lambda: [10, 100])
    batch_size: int = 4096


def eval_pairs(store: EmbeddingStore, max_pairs: int, seed: int) -> np.ndarray:
    """[n, 2] eval pairs, a seeded subsample when there are more than `max_pairs`."""
    pairs = store.split_pairs("eval")
    if len(pairs) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))
        pairs = pairs[keep]
    return pairs


@torch.no_grad()
def encode(
    model: SparseAutoencoder, x: np.ndarray, batch_size: int, modality: int
) -> tuple[np.ndarray, np.ndarray]:
    """(codes [N, p], reconstruction [N, d]) in float32; modality 0 is image, 1 is text."""
    model.eval()
    device = next(model.parameters()).device
    codes, recon = [], []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[start : start + batch_size]).to(device)
        z, x_hat = model(batch, modality)
        codes.append(z.dense().float().cpu().numpy())
        recon.append(x_hat.float().cpu().numpy())
    return np.concatenate(codes), np.concatenate(recon)


def _modality_columns(e_image: np.ndarray, e_text: np.ndarray, epsilon: float, suffix: str) -> dict:
    score = modality.modality_score(e_image, e_text)
    return {
        f"modality_score{suffix}": score,
        f"atom_kind{suffix}": modality.atom_kind(score, epsilon),
    }


def _kind_summary(atoms: pd.DataFrame, suffix: str) -> dict:
    """Counts and energy shares of each atom kind (energy of the same moment as the score)."""
    kinds = atoms[f"atom_kind{suffix}"]
    atom_energy = atoms[f"energy{suffix}"]
    total = atom_energy.sum()
    live = kinds != modality.DEAD
    summary = {f"modality_atoms_{kind}{suffix}": int((kinds == kind).sum()) for kind in KINDS}
    for kind in KINDS[:3]:
        summary[f"modality_energy_share_{kind}{suffix}"] = float(
            atom_energy[kinds == kind].sum() / total
        )
    score = atoms[f"modality_score{suffix}"][live]
    summary[f"modality_score_mean{suffix}"] = float(score.mean())
    summary[f"modality_score_energy_weighted_mean{suffix}"] = float(
        np.average(score, weights=atom_energy[live])
    )
    return summary


def evaluate(
    model: SparseAutoencoder, store: EmbeddingStore, settings: EvalSettings
) -> tuple[pd.DataFrame, dict]:
    """(atoms table [p rows], summary dict) for `model` on the store's eval split."""
    pairs = eval_pairs(store, settings.max_pairs, settings.seed)
    x = {"image": store.rows("image", pairs[:, 0]), "text": store.rows("text", pairs[:, 1])}
    codes, recon = {}, {}
    for modality_index, m in enumerate(x):
        codes[m], recon[m] = encode(model, x[m], settings.batch_size, modality_index)
    x_all = np.concatenate([x["image"], x["text"]])
    recon_all = np.concatenate([recon["image"], recon["text"]])
    codes_all = np.concatenate([codes["image"], codes["text"]])

    atoms = pd.DataFrame({"atom": np.arange(model.n_atoms)})
    atoms["active_on"] = modality.activity(codes["image"], codes["text"])
    for m in x:
        atoms[f"frequency_{m}"] = np.count_nonzero(codes[m], axis=0) / len(codes[m])
    for moment, suffix in ((1, ""), (2, "_sq")):
        for m in x:
            atoms[f"energy{suffix}_{m}"] = energy.energy(codes[m], moment)
        atoms[f"energy{suffix}"] = energy.energy(codes_all, moment)
        for column, values in _modality_columns(
            atoms[f"energy{suffix}_image"].to_numpy(),
            atoms[f"energy{suffix}_text"].to_numpy(),
            settings.modality_epsilon,
            suffix,
        ).items():
            atoms[column] = values

    summary: dict = {
        "n_atoms": model.n_atoms,
        "eval_pairs": len(pairs),
        "eval_seed": settings.seed,
        "mse": reconstruction.mean_squared_error(x_all, recon_all),
        "r2": reconstruction.r_squared(x_all, recon_all),
        "l0": reconstruction.l0(codes_all),
    }
    for m in x:
        summary[f"mse_{m}"] = reconstruction.mean_squared_error(x[m], recon[m])
        summary[f"r2_{m}"] = reconstruction.r_squared(x[m], recon[m])
        summary[f"l0_{m}"] = reconstruction.l0(codes[m])
    activity_counts = atoms["active_on"].value_counts()
    for label in ACTIVITIES[:3]:
        summary[f"atoms_active_{label}"] = int(activity_counts.get(label, 0))
    # Dead per modality: never active on that modality's rows; dead_atoms: active on neither.
    summary["dead_atoms"] = int(activity_counts.get(modality.DEAD, 0))
    summary["dead_atoms_image"] = int((atoms["frequency_image"] == 0).sum())
    summary["dead_atoms_text"] = int((atoms["frequency_text"] == 0).sum())
    for suffix in ("", "_sq"):
        for m_top in settings.energy_top_m:
            summary[f"energy{suffix}_top{m_top}_share"] = energy.top_share(
                atoms[f"energy{suffix}"].to_numpy(), m_top
            )
        summary.update(_kind_summary(atoms, suffix))
    truth = store.truth()
    if truth is not None:
        true_codes = np.concatenate([
            truth.codes[m].to_dense(len(truth.dictionary))[pairs[:, i]]
            for i, m in enumerate(("image", "text"))
        ])
        learned = model.W_dec.detach().float().cpu().numpy()
        summary["recovery_w"] = recovery.dictionary_distance(learned, truth.dictionary)
        summary["recovery_mma"] = recovery.usage_agreement(codes_all, true_codes)
    return atoms, summary
