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
from scipy import sparse

from vlmsae.metrics import (
    bridge,
    cones,
    energy,
    gap,
    mms,
    modality,
    modality_classifier,
    probing,
    reconstruction,
    recovery,
    retrieval,
    zero_shot,
)
from vlmsae.metrics.context import EvalContext
from vlmsae.sae.base import SparseAutoencoder
from vlmsae.store import EmbeddingStore

# Metric groups run on every run's EvalContext, in this order (each: summarise(context)).
METRIC_GROUPS = (cones, modality_classifier, gap, mms, bridge, probing, retrieval)
KINDS = ("image", "text", "bimodal", modality.DEAD)
ACTIVITIES = ("both", "image_only", "text_only", modality.DEAD)


@dataclass(frozen=True)
class EvalSettings:
    max_pairs: int = 10000
    seed: int = 0
    modality_epsilon: float = 0.05
    energy_top_m: list[int] = field(default_factory=lambda: [10, 100])
    batch_size: int = 4096
    options: dict = field(default_factory=dict)  # settings of the metric groups


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
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(codes [N, p] sparse, reconstruction [N, d]) in float32; modality 0 is image, 1 is text."""
    model.eval()
    device = next(model.parameters()).device
    codes, recon = [], []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[start : start + batch_size]).to(device)
        z, x_hat = model(batch, modality)
        if z.is_sparse:
            coordinates = (z.rows.cpu().numpy(), z.cols.cpu().numpy())
            block = sparse.csr_matrix((z.values.float().cpu().numpy(), coordinates), shape=z.shape)
        else:
            block = sparse.csr_matrix(z.dense_codes.float().cpu().numpy())
        block.eliminate_zeros()
        codes.append(block)
        recon.append(x_hat.float().cpu().numpy())
    return sparse.vstack(codes, format="csr", dtype=np.float32), np.concatenate(recon)


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
    atoms, summary, _ = evaluate_run(model, store, settings)
    return atoms, summary


def evaluate_run(
    model: SparseAutoencoder,
    store: EmbeddingStore,
    settings: EvalSettings,
    reference_store: EmbeddingStore | None = None,
) -> tuple[pd.DataFrame, dict, dict[str, pd.DataFrame]]:
    """(atoms table [p rows], summary dict, extra tables such as bridge_top) of one run.

    `reference_store`: another model's store of the same items, the second encoder of MMS;
    without it a synthetic store's true codes serve.
    """
    pairs = eval_pairs(store, settings.max_pairs, settings.seed)
    x = {"image": store.rows("image", pairs[:, 0]), "text": store.rows("text", pairs[:, 1])}
    codes, recon = {}, {}
    for modality_index, m in enumerate(x):
        codes[m], recon[m] = encode(model, x[m], settings.batch_size, modality_index)
    x_all = np.concatenate([x["image"], x["text"]])
    recon_all = np.concatenate([recon["image"], recon["text"]])
    codes_all = sparse.vstack([codes["image"], codes["text"]], format="csr")

    atoms = pd.DataFrame({"atom": np.arange(model.n_atoms)})
    counts = {m: codes[m].getnnz(axis=0) for m in x}
    atoms["active_on"] = modality.activity(counts["image"] > 0, counts["text"] > 0)
    for m in x:
        atoms[f"frequency_{m}"] = counts[m] / len(pairs)
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
    summary["dead_atoms_image"] = int((counts["image"] == 0).sum())
    summary["dead_atoms_text"] = int((counts["text"] == 0).sum())
    for suffix in ("", "_sq"):
        for m_top in settings.energy_top_m:
            summary[f"energy{suffix}_top{m_top}_share"] = energy.top_share(
                atoms[f"energy{suffix}"].to_numpy(), m_top
            )
        summary.update(_kind_summary(atoms, suffix))

    dictionary = model.W_dec.detach().float().cpu().numpy()
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    truth = store.truth()
    reference = {}
    if truth is not None:
        true_codes = {
            m: truth.codes[m].to_csr(len(truth.dictionary))[pairs[:, i]] for i, m in enumerate(x)
        }
        summary["recovery_w"] = recovery.dictionary_distance(dictionary, truth.dictionary)
        summary["recovery_mma"] = recovery.usage_agreement(
            codes_all, sparse.vstack([true_codes["image"], true_codes["text"]])
        )
        # The true codes are the "second encoder" of synthetic data (MMS).
        reference = true_codes
    if reference_store is not None:
        if reference_store.array("image").shape[0] != store.array("image").shape[0]:
            raise ValueError(f"{reference_store.path} does not hold the items of {store.path}")
        reference = {m: reference_store.rows(m, pairs[:, i]) for i, m in enumerate(x)}
    labels, class_prompts = store.optional("label"), store.optional("class_prompts")
    if labels is not None and class_prompts is not None:
        summary.update(
            zero_shot.zero_shot(
                x["image"],
                codes["image"],
                labels[pairs[:, 0]],
                class_prompts,
                lambda text: encode(model, text, settings.batch_size, 1)[0],
            )
        )

    context = EvalContext(
        image=x["image"],
        text=x["text"],
        codes_image=codes["image"],
        codes_text=codes["text"],
        recon_image=recon["image"],
        recon_text=recon["text"],
        dictionary=dictionary,
        energy=atoms["energy"].to_numpy(),
        energy_sq=atoms["energy_sq"].to_numpy(),
        atom_kind=atoms["atom_kind"].to_numpy(),
        atom_kind_sq=atoms["atom_kind_sq"].to_numpy(),
        seed=settings.seed,
        reference_image=reference.get("image"),
        reference_text=reference.get("text"),
        options=dict(settings.options),
    )
    tables: dict[str, pd.DataFrame] = {}
    for group in METRIC_GROUPS:
        result = group.summarise(context)
        for name, column in result.atom_columns.items():
            atoms[name] = column
        summary.update(result.summary)
        tables.update(result.tables)
    return atoms, summary, tables
