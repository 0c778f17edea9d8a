"""Run the registered metric groups on a store's balanced evaluation split.

The split: the store's "eval" pairs (a seeded subsample of at most `max_pairs`), giving N image
rows I and N text rows T. `evaluate_store` runs the store-level groups on the dense rows once per
store; `evaluate_run` encodes the rows with one SAE, computes what every group reads (codes,
reconstructions, energies, modality scores and atom kinds) and runs the run-level groups.
Outputs follow docs/results.md: one row per atom (`atoms`), one flat dict of scalars (`summary`)
and named tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from vlmsae.errors import InputFileError
from vlmsae.metrics import RUN_METRICS, STORE_METRICS, energy, modality, ordered
from vlmsae.metrics import parse_group_settings as parse_group_settings
from vlmsae.metrics.context import EvalContext, MetricResult, StoreContext, TrainRows
from vlmsae.metrics.gap import train_half_gap
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.vocabulary import Vocabulary

if TYPE_CHECKING:  # torch is imported by the jobs that encode, not by the store-level ones
    from vlmsae.sae.base import SparseAutoencoder


@dataclass(frozen=True)
class EvalSettings:
    max_pairs: int = 10000
    seed: int = 0
    modality_epsilon: float = 0.05
    batch_size: int = 4096
    split: str = "eval"  # sweeps score on "val", so selection never sees the reported rows
    train_pairs: int = 2000  # training pairs encoded for the train-split R² and L0
    metrics: dict = field(default_factory=dict)  # config `evaluation.metrics`: group options


def eval_pairs(store: EmbeddingStore, max_pairs: int, seed: int, split: str = "eval") -> np.ndarray:
    """[n, 2] pairs of `split`, a seeded subsample when there are more than `max_pairs`."""
    pairs = store.split_pairs(split)
    if len(pairs) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))
        pairs = pairs[keep]
    return pairs


def encode(
    model: SparseAutoencoder, x: np.ndarray, batch_size: int, modality: int
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """(codes [N, p] sparse, reconstruction [N, d]) in float32; modality 0 is image, 1 is text."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    codes = []
    # Filled batch by batch: a list of blocks and their concatenation would allocate (and fault
    # in) the [N, d] rows twice.
    recon = np.empty(x.shape, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(x[start : start + batch_size]).to(device)
            z, x_hat = model(batch, modality)
            if z.is_sparse:
                coordinates = (z.rows.cpu().numpy(), z.cols.cpu().numpy())
                values = z.values.float().cpu().numpy()
                block = sparse.csr_matrix((values, coordinates), shape=z.shape)
            else:
                block = sparse.csr_matrix(z.dense_codes.float().cpu().numpy())
            block.eliminate_zeros()
            codes.append(block)
            recon[start : start + len(batch)] = x_hat.float().cpu().numpy()
    return sparse.vstack(codes, format="csr", dtype=np.float32), recon


def encode_modalities(
    model: SparseAutoencoder, rows: dict[str, np.ndarray], batch_size: int, workers: int = 1
) -> dict[str, tuple[sparse.csr_matrix, np.ndarray]]:
    """{image, text}: `encode` of rows["image"] (modality 0) and rows["text"] (modality 1).

    With `workers` > 1 and the model on the CPU the two modalities encode side by side, torch
    on one thread each (restored on return). Each batch's top-k, sparse assembly and copies
    keep one core busy while the other waits; two streams keep both busy (2 × 100k rows at
    p = 8192: 17.0 s against 19.7 s). The bench's codes and reconstructions came out the same
    bit for bit: the products split rows and columns over threads, not sums.
    """
    import torch

    order = ("image", "text")

    def one(m: str) -> tuple[sparse.csr_matrix, np.ndarray]:
        return encode(model, rows[m], batch_size, order.index(m))

    if workers <= 1 or next(model.parameters()).device.type != "cpu":
        return {m: one(m) for m in order}
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(len(order), thread_name_prefix="encode") as pool:
            futures = {m: pool.submit(one, m) for m in order}
            return {m: futures[m].result() for m in order}
    finally:
        torch.set_num_threads(threads)


def _store_context(
    store: EmbeddingStore,
    pairs: np.ndarray,
    seed: int,
    reference_store: EmbeddingStore | None,
) -> StoreContext:
    """The dense eval rows and what the store knows of them (labels, truth, a second encoder).

    `reference_store`: another model's store of the same items, the second encoder of MMS;
    without it a synthetic store's true codes serve.
    """
    true_codes: dict = {}
    truth = store.truth()
    if truth is not None:
        true_codes = {
            m: truth.codes[m].to_csr(len(truth.dictionary))[pairs[:, i]]
            for i, m in enumerate(("image", "text"))
        }
    reference = true_codes
    if reference_store is not None:
        if reference_store.array("image").shape[0] != store.array("image").shape[0]:
            raise ValueError(f"{reference_store.path} does not hold the items of {store.path}")
        reference = {
            m: reference_store.rows(m, pairs[:, i]) for i, m in enumerate(("image", "text"))
        }
    labels = store.optional("label")
    text_groups = store.optional("text_group")
    return StoreContext(
        image=store.rows("image", pairs[:, 0]),
        text=store.rows("text", pairs[:, 1]),
        seed=seed,
        pairs=pairs,
        text_groups=None if text_groups is None else text_groups[pairs[:, 1]],
        reference_image=reference.get("image"),
        reference_text=reference.get("text"),
        labels=None if labels is None else labels[pairs[:, 0]],
        class_prompts=store.optional("class_prompts"),
        truth=truth,
        true_codes_image=true_codes.get("image"),
        true_codes_text=true_codes.get("text"),
    )


def run_groups(registry, context: StoreContext, sections: dict, workers: int) -> MetricResult:
    """Every group of `registry` on `context`, merged in the registry's order.

    With `workers` > 1 the groups run in that many threads. Most of their time is in numpy,
    scipy, POT and torch calls that release the GIL, and a scipy sparse product or a network
    simplex runs on one core, so a second group fills the other. Groups only read the context
    and seed their own random draws, so every value is the same as run one after another.

    Meanwhile numpy's BLAS runs one thread per call (the count is process-wide; restored on
    return): two groups' products each split over every core wait on one another's time slices
    and spin, measured 20% more CPU time for the suite of bench/metrics_scale.py. The products
    split rows and columns over threads, not sums, so their values do not change (the bench's
    summary stays the same bit for bit).
    """
    options = parse_group_settings(sections)
    entries = ordered(registry)

    def run(entry) -> MetricResult:
        return entry.obj(context, options[entry.name])

    if workers <= 1:
        return _merge([run(entry) for entry in entries])
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    # The costliest groups start first (their registered `cost`), so that no long group is
    # left to run alone at the end; results merge in the registry's order all the same.
    by_cost = sorted(entries, key=lambda entry: -entry.extra.get("cost", 1))
    with (
        threadpool_limits(1, user_api="blas"),
        ThreadPoolExecutor(workers, thread_name_prefix="metric-group") as pool,
    ):
        futures = {entry.name: pool.submit(run, entry) for entry in by_cost}
        return _merge([futures[entry.name].result() for entry in entries])


def _merge(results: list[MetricResult]) -> MetricResult:
    merged = MetricResult()
    for result in results:
        merged.atom_columns.update(result.atom_columns)
        merged.summary.update(result.summary)
        merged.tables.update(result.tables)
    return merged


def evaluate_store(
    store: EmbeddingStore,
    settings: EvalSettings,
    reference_store: EmbeddingStore | None = None,
    workers: int = 1,
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(summary dict, tables) of the store-level groups on the store's eval rows; `workers`
    threads run the groups (`run_groups`)."""
    pairs = eval_pairs(store, settings.max_pairs, settings.seed, settings.split)
    context = _store_context(store, pairs, settings.seed, reference_store)
    # Read here, not in _store_context: only the store-level gap needs the train split, and
    # every run's evaluation would read it again.
    context.train_half_gap = train_half_gap(store)
    result = run_groups(STORE_METRICS, context, settings.metrics, workers)
    summary = {"eval_pairs": len(pairs), "eval_seed": settings.seed, **result.summary}
    return summary, result.tables


def _atoms_table(
    codes: dict[str, sparse.csr_matrix], n_pairs: int, n_atoms: int, epsilon: float
) -> pd.DataFrame:
    """Per atom: where it fires, how often, its energies (both moments), scores and kinds."""
    atoms = pd.DataFrame({"atom": np.arange(n_atoms)})
    counts = {m: codes[m].getnnz(axis=0) for m in codes}
    atoms["active_on"] = modality.activity(counts["image"] > 0, counts["text"] > 0)
    for m in codes:
        atoms[f"frequency_{m}"] = counts[m] / n_pairs
    codes_all = sparse.vstack([codes["image"], codes["text"]], format="csr")
    for moment, suffix in ((1, ""), (2, "_sq")):
        for m in codes:
            atoms[f"energy{suffix}_{m}"] = energy.energy(codes[m], moment)
        atoms[f"energy{suffix}"] = energy.energy(codes_all, moment)
        score = modality.modality_score(
            atoms[f"energy{suffix}_image"].to_numpy(), atoms[f"energy{suffix}_text"].to_numpy()
        )
        atoms[f"modality_score{suffix}"] = score
        atoms[f"atom_kind{suffix}"] = modality.atom_kind(score, epsilon)
    return atoms


def _train_rows(
    model: SparseAutoencoder, store: EmbeddingStore, settings: EvalSettings, workers: int = 1
) -> TrainRows | None:
    """A seeded sample of the training pairs, encoded (None when the store has none)."""
    pairs = eval_pairs(store, settings.train_pairs, settings.seed, "train")
    if len(pairs) == 0:
        return None
    x = {"image": store.rows("image", pairs[:, 0]), "text": store.rows("text", pairs[:, 1])}
    encoded = encode_modalities(model, x, settings.batch_size, workers)
    return TrainRows(
        image=x["image"],
        text=x["text"],
        codes_image=encoded["image"][0],
        codes_text=encoded["text"][0],
        recon_image=encoded["image"][1],
        recon_text=encoded["text"][1],
    )


def evaluate(
    model: SparseAutoencoder, store: EmbeddingStore, settings: EvalSettings, workers: int = 1
) -> tuple[pd.DataFrame, dict]:
    """(atoms table [p rows], summary dict) for `model` on the store's eval split."""
    atoms, summary, _ = evaluate_run(model, store, settings, workers=workers)
    return atoms, summary


def run_context(
    model: SparseAutoencoder,
    store: EmbeddingStore,
    settings: EvalSettings,
    reference_store: EmbeddingStore | None = None,
    vocabulary: Vocabulary | None = None,
    workers: int = 1,
) -> EvalContext:
    """What the run-level groups read: the store's eval rows encoded by `model` once (codes,
    reconstructions), its unit dictionary, the per-atom table with energies and kinds, and a
    sample of encoded training rows; `vocabulary` names atoms (metric group `naming`);
    `workers` > 1 encodes the two modalities side by side (`encode_modalities`)."""
    if model.d != store.dim:
        # An SAE scored on another dataset's store (`sae_from`) whose model d differs.
        raise InputFileError(
            str(store.path),
            f"its rows have d={store.dim} but the SAE has d={model.d}",
            "score SAEs trained on stores of the same model",
        )
    pairs = eval_pairs(store, settings.max_pairs, settings.seed, settings.split)
    rows = _store_context(store, pairs, settings.seed, reference_store)
    rows.vocabulary = vocabulary
    encoded = encode_modalities(
        model, {"image": rows.image, "text": rows.text}, settings.batch_size, workers
    )
    codes = {m: encoded[m][0] for m in encoded}
    recon = {m: encoded[m][1] for m in encoded}
    atoms = _atoms_table(codes, len(pairs), model.n_atoms, settings.modality_epsilon)
    dictionary = model.W_dec.detach().float().cpu().numpy()
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    return EvalContext(
        **vars(rows),
        codes_image=codes["image"],
        codes_text=codes["text"],
        recon_image=recon["image"],
        recon_text=recon["text"],
        dictionary=dictionary,
        energy=atoms["energy"].to_numpy(),
        energy_sq=atoms["energy_sq"].to_numpy(),
        atom_kind=atoms["atom_kind"].to_numpy(),
        atom_kind_sq=atoms["atom_kind_sq"].to_numpy(),
        atoms=atoms,
        encode_text=lambda text: encode(model, text, settings.batch_size, 1)[0],
        train=_train_rows(model, store, settings, workers),
    )


def evaluate_run(
    model: SparseAutoencoder,
    store: EmbeddingStore,
    settings: EvalSettings,
    reference_store: EmbeddingStore | None = None,
    vocabulary: Vocabulary | None = None,
    workers: int = 1,
) -> tuple[pd.DataFrame, dict, dict[str, pd.DataFrame]]:
    """(atoms table [p rows], summary dict, extra tables such as bridge_top) of one run
    (`run_context`); `workers` threads run the groups (`run_groups`)."""
    context = run_context(model, store, settings, reference_store, vocabulary, workers)
    result = run_groups(RUN_METRICS, context, settings.metrics, workers)
    atoms = context.atoms
    for name, column in result.atom_columns.items():
        atoms[name] = column
    summary = {
        "n_atoms": model.n_atoms,
        "eval_pairs": len(context.pairs),
        "eval_seed": settings.seed,
        **result.summary,
    }
    return atoms, summary, result.tables
