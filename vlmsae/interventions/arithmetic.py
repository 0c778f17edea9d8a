"""Vector arithmetic restricted to bimodal atoms (iso-energy §5, Figs. 5–6, Table 2).

A triplet is (source image I_src, relative caption Δ, target image). Query kinds:
- `Q` = I_src + Δ (classical arithmetic, dense rows) and `Q_SAE` = I_src + Ã_Δ with
  Ã_Δ = (Z_Δ ⊙ δ)D the caption's bimodal-only reconstruction (the paper's §5 text);
- `Q_recon` = x̂_src + x̂_Δ and `Q_SAE_recon` = x̂_src + Ã_Δ, with x̂ the SAE reconstructions
  (DESIGN §5's form: both sides through the SAE, so only δ differs);
- the baselines `Q_src` = I_src and `Q_delta` = Δ.
δ keeps the bimodal atoms of the run (interventions.gap_closing's ε and moment).

Measured per kind: the OOD score, AUROC of the kNN score (1 − cos to the k-th nearest
reference target image) separating the queries (positive) from held-out target images (Sun et
al. 2022; DESIGN §5; lower is more in distribution), the distances' mean and median and their
histogram (Fig. 6); and target retrieval R@k among all candidate images by cosine.
The candidates' groups (a source and its targets) are split in half with the seed: targets of
one half are the kNN reference, the other half's targets and queries are scored, so no query
meets its own target or a sibling of it among the references.

Triplets come from the store's `triplets` array (FashionIQ: reference image, caption, target
rows; eval-split references only) or, for synthetic stores, from `swap_triplets` (a known
answer: one bimodal concept swapped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.datasets.synthetic import swap_triplets
from vlmsae.errors import ConfigError, InputFileError
from vlmsae.interventions import INTERVENTIONS, InterventionSettings
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import EmbeddingStore

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from vlmsae.sae.base import SparseAutoencoder

QUERY_KINDS = ("Q", "Q_SAE", "Q_recon", "Q_SAE_recon", "Q_src", "Q_delta")
SCORES_PER_BLOCK = 1 << 24  # query × candidate cosines per block of the ranking: 64 MB


@dataclass(frozen=True, kw_only=True)
class ArithmeticSettings(InterventionSettings):
    enabled: bool = setting(True, "measure vector arithmetic (vector_arithmetic.csv)")
    n_sources: int = setting(
        500,
        "synthetic stores: eval pairs used as sources (fewer when the split is smaller)",
        minimum=2,
    )
    swaps_per_source: int = setting(
        4, "synthetic stores: targets per source, each with another concept swapped in", minimum=1
    )
    knn_k: int = setting(10, "the k of the OOD score's k-th nearest target image", minimum=1)
    recall_at: list[int] = setting([1, 10, 50], "k of the target recalls R@k", items={"minimum": 1})
    histogram_bins: int = setting(50, "bins of the distance histograms", minimum=2)
    seed: int = setting(0, "draws of the synthetic triplets and of the reference half")
    batch_size: int = setting(4096, "rows encoded at a time", minimum=1)


@INTERVENTIONS.register("arithmetic", ArithmeticSettings)
def applies(spec: dict, settings: ArithmeticSettings) -> bool:
    """Synthetic stores (triplets drawn from the truth) and FashionIQ (its own triplets)."""
    return spec["source"] in ("synthetic", "fashioniq")


@dataclass(frozen=True)
class Triplets:
    source: np.ndarray  # [n, d] source image rows
    caption: np.ndarray  # [n, d] relative captions
    candidates: np.ndarray  # [m, d] every image a query may retrieve
    target: np.ndarray  # [n] index of each triplet's target among the candidates
    candidate_group: np.ndarray  # [m] group of each candidate (its source), for the OOD split
    group: np.ndarray  # [n] group of each triplet


def store_triplets(store: EmbeddingStore, settings: ArithmeticSettings) -> Triplets:
    """The triplets of a store: its `triplets` array, or drawn from a synthetic store's truth."""
    import numpy as np

    truth = store.truth()
    if truth is not None:
        pairs = store.split_pairs("eval")
        rng = np.random.default_rng(settings.seed)
        chosen = np.sort(rng.choice(len(pairs), min(settings.n_sources, len(pairs)), replace=False))
        drawn = swap_triplets(truth, pairs[chosen], settings.swaps_per_source, settings.seed)
        return Triplets(
            source=store.rows("image", drawn["source_row"]),
            caption=drawn["caption"],
            candidates=drawn["target"],
            target=np.arange(len(drawn["target"])),
            candidate_group=drawn["group"],
            group=drawn["group"],
        )
    rows = store.optional("triplets")
    if rows is None:
        raise InputFileError(
            str(store.path),
            "the store has no triplets (vector arithmetic needs FashionIQ-like data)",
            "set interventions.arithmetic.enabled: false for this dataset",
        )
    eval_images = store.split_rows("image", "eval")
    rows = rows[np.isin(rows[:, 0], eval_images)]
    n_images, n_texts = store.array("image").shape[0], store.array("text").shape[0]
    if not len(rows):
        raise InputFileError(
            str(store.path),
            "no triplet has its reference image in the eval split",
            "rebuild the store with eval triplets",
        )
    if rows[:, [0, 2]].max() >= n_images or rows[:, 1].max() >= n_texts or rows.min() < 0:
        raise InputFileError(
            str(store.path),
            "triplets name rows the store does not hold",
            "rebuild the store (rule embed) from the dataset",
        )
    candidate_rows, target = np.unique(rows[:, 2], return_inverse=True)
    # A candidate's group: the reference of the first triplet it is the target of.
    _, first = np.unique(target, return_index=True)
    return Triplets(
        source=store.rows("image", rows[:, 0]),
        caption=store.rows("text", rows[:, 1]),
        candidates=store.rows("image", candidate_rows),
        target=target,
        candidate_group=rows[first, 0],
        group=rows[:, 0],
    )


def queries(
    model: SparseAutoencoder, triplets: Triplets, keep: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
    """{kind: [n, d]} the query rows of every kind in QUERY_KINDS."""
    import numpy as np

    from vlmsae.metrics.evaluate import encode
    from vlmsae.metrics.gap import bimodal_only

    dictionary = model.W_dec.detach().float().cpu().numpy()
    _, source_hat = encode(model, triplets.source, batch_size, 0)
    caption_codes, caption_hat = encode(model, triplets.caption, batch_size, 1)
    caption_bimodal = bimodal_only(caption_codes, dictionary, keep.astype(np.float64))
    return {
        "Q": triplets.source + triplets.caption,
        "Q_SAE": triplets.source + caption_bimodal,
        "Q_recon": source_hat + caption_hat,
        "Q_SAE_recon": source_hat + caption_bimodal,
        "Q_src": triplets.source,
        "Q_delta": triplets.caption,
    }


def target_ranks(query: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[n] rank (0 = first) of each query's target among the candidates by cosine; ties count
    against the target (a query equal to every candidate ranks it last)."""
    import numpy as np

    from vlmsae.metrics.rows import unit_rows

    query, candidates = unit_rows(query), unit_rows(candidates)
    ranks = np.empty(len(query), dtype=np.int64)
    block = max(1, SCORES_PER_BLOCK // max(1, len(candidates)))
    for start in range(0, len(query), block):
        scores = query[start : start + block] @ candidates.T
        own = scores[np.arange(len(scores)), target[start : start + block]]
        ranks[start : start + block] = (scores >= own[:, None]).sum(axis=1) - 1
    return ranks


def reference_split(candidate_group: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference groups mask over candidates, held-out group ids): half the groups, seeded."""
    import numpy as np

    groups = np.unique(candidate_group)
    if len(groups) < 2:
        raise ConfigError(
            "interventions.arithmetic",
            "the OOD score needs the targets of at least two sources",
            "give the store more eval triplets, or set enabled: false",
        )
    rng = np.random.default_rng(seed)
    reference = rng.permutation(groups)[: len(groups) // 2]
    return np.isin(candidate_group, reference), np.setdiff1d(groups, reference)


def measure(
    kinds: dict[str, np.ndarray], triplets: Triplets, settings: ArithmeticSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per query kind, distance histograms [query, population, bins...])."""
    import numpy as np
    import pandas as pd

    from vlmsae.metrics.gap import distance_histograms, knn_distance
    from vlmsae.metrics.retrieval import recall_at

    is_reference, held_out = reference_split(triplets.candidate_group, settings.seed)
    reference = triplets.candidates[is_reference]
    if settings.knn_k > len(reference):
        raise ConfigError(
            "interventions.arithmetic.knn_k",
            f"{settings.knn_k} neighbours, but the triplets give {len(reference)} reference "
            "targets",
            "lower knn_k (or, on synthetic data, raise n_sources)",
        )
    scored = np.isin(triplets.group, held_out)
    held_out_targets = triplets.candidates[~is_reference]
    target_distance = knn_distance(held_out_targets, reference, settings.knn_k)
    from sklearn.metrics import roc_auc_score  # here: scikit-learn takes a second to import

    rows, distances = [], {"target": target_distance}
    for kind, query in kinds.items():
        distance = knn_distance(query[scored], reference, settings.knn_k)
        is_query = np.concatenate([np.zeros(len(target_distance)), np.ones(len(distance))])
        ranks = target_ranks(query, triplets.candidates, triplets.target)
        rows.append(
            {
                "query": kind,
                "ood_auroc": float(
                    roc_auc_score(is_query, np.concatenate([target_distance, distance]))
                ),
                "knn_distance_mean": float(distance.mean()),
                "knn_distance_median": float(np.median(distance)),
                "target_knn_distance_median": float(np.median(target_distance)),
                **{f"recall_at_{k}": recall_at(ranks, k) for k in settings.recall_at},
                "n_triplets": len(query),
                "n_candidates": len(triplets.candidates),
                "n_scored": int(scored.sum()),
            }
        )
        distances[kind] = distance
    histograms = distance_histograms(distances, settings.histogram_bins)
    return pd.DataFrame(rows), histograms
