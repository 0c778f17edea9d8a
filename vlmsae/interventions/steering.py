"""Steering retrieval (group-sparse App. A.5, Fig. 7): add to one named atom of a text query's
code and retrieve the other modality with the decoded query.

Queries: a seeded sample of `n_queries` eval pairs whose image does not carry the concept, so
strength 0 shows the rate at which plain queries find it. A query's text row is encoded by the
SAE, its atom k's code raised by s × a_k and decoded: since decoding is linear in the codes, the
steered query is x̂ + s·a_k·W_dec[k]. a_k is the atom's mean non-zero activation on the eval rows
of both modalities (atoms.parquet: (energy_image + energy_text) / (frequency_image +
frequency_text)), so strengths are unit-free: s = 1 adds one typical firing of the atom. The
steered query (normalised) ranks every eval image by cosine; per strength the table reports the
share of the top-k images that carry the concept: on synthetic stores, images whose true code
holds the concept the word names; on real stores, images of the class of that name, or else
images one of whose captions contains the word as a whole word (`text_caption`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmsae.errors import ConfigError, InputFileError
from vlmsae.interventions import INTERVENTIONS, InterventionSettings
from vlmsae.interventions.concepts import (
    captions_with_word,
    images_with_caption_word,
    images_with_concept,
    most_frequent_bimodal_concept,
)
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import EmbeddingStore
from vlmsae.stores.vocabulary import Vocabulary

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from vlmsae.sae.base import SparseAutoencoder

KEY = "interventions.steering.atom"
LISTED_NAMES = 8  # valid names an error message lists


@dataclass(frozen=True, kw_only=True)
class SteeringSettings(InterventionSettings):
    """Config `interventions.steering`."""

    enabled: bool = setting(True, "steer text queries along one named atom")
    atom: str | None = setting(
        None,
        "the vocabulary word naming the steered atom; default on synthetic stores the word of "
        "the most frequent bimodal concept (other stores need it)",
    )
    strengths: list[float] = setting(
        [0.0, 0.5, 1.5],
        "added codes, in units of the atom's mean non-zero activation on the eval rows",
        minItems=1,
    )
    n_queries: int = setting(100, "eval captions steered (seeded)", minimum=1)
    top_k: int = setting(10, "images retrieved per query", minimum=1)
    seed: int = setting(0, "seed of the query sample", minimum=0)
    batch_size: int = setting(4096, "rows per SAE forward pass", minimum=1)


@INTERVENTIONS.register("steering", SteeringSettings)
def applies(spec: dict, settings: SteeringSettings) -> bool:
    """Synthetic stores, and others once `atom` names a word (naming must apply too)."""
    return spec["source"] == "synthetic" or settings.atom is not None


def steering_atom(atoms: pd.DataFrame, word: str) -> int:
    """The atom named `word` of highest name_score among those that fire on the eval rows."""
    live = atoms[(atoms["frequency_image"] + atoms["frequency_text"]) > 0]
    named = live[live["name"] == word]
    if named.empty:
        valid = (
            live.sort_values("name_score", ascending=False)["name"]
            .drop_duplicates()
            .head(LISTED_NAMES)
        )
        raise ConfigError(
            KEY, f"'{word}' names no live atom", f"use a name such as: {', '.join(valid)}"
        )
    return int(named.loc[named["name_score"].idxmax(), "atom"])


def mean_active_code(atoms: pd.DataFrame, atom: int) -> float:
    """The atom's mean non-zero activation over the eval rows of both modalities."""
    row = atoms.set_index("atom").loc[atom]
    return float(
        (row["energy_image"] + row["energy_text"])
        / (row["frequency_image"] + row["frequency_text"])
    )


def concept_judge(
    store: EmbeddingStore, vocabulary: Vocabulary, word: str, pairs: np.ndarray
) -> np.ndarray:
    """[N_img] bool: the image row carries the concept `word` names (module doc); real stores
    judge by the captions of `pairs` [n, 2] only."""
    import numpy as np

    truth = store.truth()
    n_images = store.array("image").shape[0]
    if truth is not None:
        true_row = vocabulary.true_row[vocabulary.words == word]
        if len(true_row) == 0 or true_row[0] < 0:
            return np.zeros(n_images, dtype=bool)
        return images_with_concept(truth, int(np.asarray(truth.atom_concept)[true_row[0]]))
    class_names = [name.lower() for name in store.attrs.get("class_names") or []]
    label = store.optional("label")
    if label is not None and word.lower() in class_names:
        return label == class_names.index(word.lower())
    captions = store.optional("text_caption")
    if captions is None:
        raise InputFileError(
            str(store.path),
            f"no truth, class named '{word}' or captions to judge the steered concept by",
            f"steer a class name of the store, or another store ({KEY})",
        )
    has_word = captions_with_word(captions[pairs[:, 1]], word)
    return images_with_caption_word(pairs, has_word, n_images)


def default_word(
    store: EmbeddingStore, vocabulary: Vocabulary, pairs: np.ndarray, atoms: pd.DataFrame
) -> str:
    """The word of the bimodal concept most frequent among the eval images (synthetic stores),
    among the concepts a live atom is named after when there are any (a weak SAE may name none:
    the most frequent concept then, and steering_atom reports it)."""
    import numpy as np

    truth = store.truth()
    if truth is None:
        raise ConfigError(KEY, "is required for a store without ground truth", "set a word")
    has_row = vocabulary.true_row >= 0
    concept_of_word = np.full(len(vocabulary), -1)
    concept_of_word[has_row] = np.asarray(truth.atom_concept)[vocabulary.true_row[has_row]]
    live = atoms[(atoms["frequency_image"] + atoms["frequency_text"]) > 0]
    named = concept_of_word[np.isin(vocabulary.words, live["name"].to_numpy())]
    concept = most_frequent_bimodal_concept(truth, np.unique(pairs[:, 0]), named[named >= 0])
    words = vocabulary.words[concept_of_word == concept]
    if len(words) == 0:
        raise ConfigError(KEY, f"no word names concept {concept}", "set a word")
    return str(words[0])


def steer_retrieval(
    store: EmbeddingStore,
    model: SparseAutoencoder,
    atoms: pd.DataFrame,
    vocabulary: Vocabulary,
    settings: SteeringSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, items) of steering the run's text queries along the named atom (module doc).

    summary, one row per strength: `strength`, `word`, `atom`, `added_code` (s × a_k),
    `share_with_concept` (mean over queries of the share of the top-k images carrying the
    concept), `source_in_top_k` (share of queries whose own image is still retrieved),
    `concept_base_rate` (share of all eval images carrying it), `n_queries`.
    items, one row per (strength, query, rank): `strength`, `query` (text row), `rank` (1 =
    nearest), `image` (image row), `cosine`, `has_concept`.
    """
    import numpy as np
    import pandas as pd

    from vlmsae.metrics.evaluate import encode
    from vlmsae.metrics.rows import unit_rows

    if "name" not in atoms.columns:
        raise InputFileError(
            "atoms.parquet", "the run's atoms have no names", "enable interventions.naming"
        )
    pairs = store.split_pairs("eval")
    word = (
        settings.atom
        if settings.atom is not None
        else default_word(store, vocabulary, pairs, atoms)
    )
    if word not in set(vocabulary.words):
        fix = f"use a vocabulary word such as: {', '.join(vocabulary.words[:LISTED_NAMES])}"
        raise ConfigError(KEY, f"'{word}' is not in the vocabulary", fix)
    atom = steering_atom(atoms, word)
    has_concept = concept_judge(store, vocabulary, word, pairs)
    images = np.unique(pairs[:, 0])
    candidates = pairs[~has_concept[pairs[:, 0]]]
    if len(candidates) == 0:
        raise ConfigError(KEY, f"every eval image carries '{word}'", "steer a rarer concept")
    rng = np.random.default_rng(settings.seed)
    n_queries = min(settings.n_queries, len(candidates))
    queries = candidates[np.sort(rng.choice(len(candidates), n_queries, replace=False))]

    _, reconstruction = encode(model, store.rows("text", queries[:, 1]), settings.batch_size, 1)
    direction = model.W_dec[atom].detach().float().cpu().numpy()
    scale = mean_active_code(atoms, atom)
    strengths = np.asarray(settings.strengths, dtype=np.float64)
    # [S, Q, d] steered queries, as unit rows against the unit eval images.
    steered = reconstruction[None] + (strengths * scale)[:, None, None] * direction
    unit = unit_rows(steered.reshape(-1, steered.shape[-1])).reshape(steered.shape)
    cosine = unit @ store.rows("image", images).T  # [S, Q, n_images]
    k = min(settings.top_k, len(images))
    top = np.argpartition(-cosine, k - 1, axis=2)[..., :k]
    top_cosine = np.take_along_axis(cosine, top, axis=2)
    order = np.argsort(-top_cosine, axis=2, kind="stable")
    top, top_cosine = (
        np.take_along_axis(top, order, axis=2),
        np.take_along_axis(top_cosine, order, axis=2),
    )
    top_images = images[top]  # [S, Q, k] image rows
    carried = has_concept[top_images]
    source_found = np.any(top_images == queries[None, :, 0, None], axis=2)
    summary = pd.DataFrame(
        {
            "strength": strengths,
            "word": word,
            "atom": atom,
            "added_code": strengths * scale,
            "share_with_concept": carried.mean(axis=(1, 2)),
            "source_in_top_k": source_found.mean(axis=1),
            "concept_base_rate": float(has_concept[images].mean()),
            "n_queries": n_queries,
        }
    )
    n_strengths = len(strengths)
    items = pd.DataFrame(
        {
            "strength": np.repeat(strengths, n_queries * k),
            "query": np.tile(np.repeat(queries[:, 1], k), n_strengths),
            "rank": np.tile(np.arange(1, k + 1), n_strengths * n_queries),
            "image": top_images.ravel(),
            "cosine": top_cosine.ravel(),
            "has_concept": carried.ravel(),
        }
    )
    return summary, items
