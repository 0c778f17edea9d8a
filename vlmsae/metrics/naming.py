"""Concept names of a run's atoms (group-sparse §5.3, Discover-then-Name), when the store has a
vocabulary (rule `vocabulary`, `interventions.naming`): each atom gets the vocabulary word whose
embedding is closest in cosine to its decoder direction, and on synthetic stores the share of
atoms named after the true concept they are matched to (by direction, or by usage).

Atom columns `name`, `name_score`, `runner_up`, `runner_up_score`; on synthetic stores the
summary keys `naming_accuracy`, `naming_accuracy_bimodal`, `naming_scored_atoms` and
`naming_unnamable_atoms` (atoms matched to true rows by decoder direction, `naming_accuracy`),
the same four ending in `_usage` (matched by what they fire on over the eval rows of both
modalities, `naming_accuracy_by_usage`) and ending in `_random_dictionary` (direction-matched,
for a seeded Gaussian dictionary of the run's shape: the chance level).

The cosine matrix [p, V] is computed a block of atoms at a time (at most NAMING_BLOCK_ELEMENTS
floats in memory) and only its two largest entries per row are kept, by argpartition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.metrics.recovery import matched_cosines, usage_matching
from vlmsae.metrics.rows import unit_rows
from vlmsae.registry_base import Settings
from vlmsae.stores.embedding_store import TrueStructure
from vlmsae.stores.vocabulary import Vocabulary

NAMING_BLOCK_ELEMENTS = 1 << 24  # 64 MiB of float32 cosines per block
RANDOM_DICTIONARY_STREAM = 0x6E616D65  # entropy beside the seed: a stream no other draw uses


def name_atoms(dictionary: np.ndarray, vocabulary: Vocabulary) -> pd.DataFrame:
    """One row per atom of dictionary [p, d]: `atom`, `name` (the word of highest cosine between
    the unit decoder row and the unit word vector), `name_score` (that cosine), `runner_up` and
    `runner_up_score` (the second best word). Ties go to the earlier word."""
    atoms = unit_rows(dictionary)
    words = vocabulary.vectors.astype(np.float32)
    if atoms.shape[1] != words.shape[1]:
        raise ValueError(
            f"dictionary rows have {atoms.shape[1]} dimensions, vocabulary vectors "
            f"{words.shape[1]}: the vocabulary belongs to another store"
        )
    n_atoms, n_words = len(atoms), len(words)
    best = np.zeros((n_atoms, 2), dtype=np.int64)
    scores = np.zeros((n_atoms, 2), dtype=np.float32)
    block = max(1, NAMING_BLOCK_ELEMENTS // n_words)
    for start in range(0, n_atoms, block):
        cosine = atoms[start : start + block] @ words.T
        top = np.argpartition(-cosine, 1, axis=1)[:, :2]
        found = np.take_along_axis(cosine, top, axis=1)
        # Order the pair by score, then by word index, so ties name the earlier word.
        order = np.lexsort((top, -found), axis=1)
        best[start : start + block] = np.take_along_axis(top, order, axis=1)
        scores[start : start + block] = np.take_along_axis(found, order, axis=1)
    return pd.DataFrame(
        {
            "atom": np.arange(n_atoms),
            "name": vocabulary.words[best[:, 0]],
            "name_score": scores[:, 0],
            "runner_up": vocabulary.words[best[:, 1]],
            "runner_up_score": scores[:, 1],
        }
    )


def true_row_words(truth: TrueStructure, vocabulary: Vocabulary) -> np.ndarray:
    """[K] the word that names each true row's concept ("" for a concept with no word, such as
    an image-only atom): both instantiations of a bimodal concept share its word."""
    concept = np.asarray(truth.atom_concept)
    has_word = vocabulary.true_row >= 0
    concept_word = np.full(concept.max() + 1, "", dtype=object)
    concept_word[concept[vocabulary.true_row[has_word]]] = vocabulary.words[has_word]
    return concept_word[concept].astype(str)


def name_agreement(
    names: np.ndarray,
    learned: np.ndarray,
    true: np.ndarray,
    truth: TrueStructure,
    vocabulary: Vocabulary,
    suffix: str = "",
) -> dict[str, float | int]:
    """How often the name of atom learned[i] is the word of true row true[i]'s concept, names
    [p] of the learned atoms, `learned` and `true` a one-to-one matching.

    A matched atom is scored when its true row's concept has a word (`true_row_words`) and is
    correct when its name is that word; atoms matched to image-only rows have no word.
    - naming_accuracy: correct / scored;
    - naming_accuracy_bimodal: the same over atoms matched to bimodal rows;
    - naming_scored_atoms, naming_unnamable_atoms: the scored and the wordless matched atoms.
    Every key ends in `suffix`. A share over no atom is undefined and left out of the dict
    (summary.json holds no NaN).
    """
    expected = true_row_words(truth, vocabulary)[true]
    scored = expected != ""
    correct = np.asarray(names)[learned] == expected
    bimodal = scored & (np.asarray(truth.atom_kind)[true] == "bimodal")
    shares = {
        f"naming_accuracy{kind}{suffix}": float(np.mean(correct[mask]))
        for kind, mask in (("", scored), ("_bimodal", bimodal))
        if mask.any()
    }
    return {
        **shares,
        f"naming_scored_atoms{suffix}": int(scored.sum()),
        f"naming_unnamable_atoms{suffix}": int((~scored).sum()),
    }


def naming_accuracy(
    names: np.ndarray,
    dictionary: np.ndarray,
    truth: TrueStructure,
    vocabulary: Vocabulary,
    suffix: str = "",
) -> dict[str, float | int]:
    """`name_agreement` of names [p] of dictionary [p, d], atoms matched to the true rows by
    decoder direction (the matching of `recovery_w_matched`: linear_sum_assignment maximising
    Σ cos; with p > K the spare atoms are left out).

    The synthetic vocabulary holds the true text rows themselves, so the matching and the names
    both follow decoder directions: an atom matched to a row is likely named after it even when
    the match is poor, and with p ≫ K even a random dictionary scores high (0.71 for a random
    TopK SAE with p = 1024 on K = 256 true rows in d = 128). `naming_accuracy_by_usage` matches
    by codes instead and is lower there (0.42); read both against a random dictionary's
    (`naming_accuracy_random_dictionary`).
    """
    learned, true, _ = matched_cosines(dictionary, truth.dictionary)
    return name_agreement(names, learned, true, truth, vocabulary, suffix)


def naming_accuracy_random_dictionary(
    shape: tuple[int, int], truth: TrueStructure, vocabulary: Vocabulary, seed: int
) -> dict[str, float | int]:
    """`naming_accuracy` (keys ending in `_random_dictionary`) of a dictionary of seeded
    Gaussian rows of `shape` [p, d], named with the same vocabulary: the level a dictionary
    that learned nothing reaches, to read a run's `naming_accuracy` against."""
    dictionary = random_dictionary(shape, seed)
    names = name_atoms(dictionary, vocabulary)["name"].to_numpy()
    return naming_accuracy(names, dictionary, truth, vocabulary, "_random_dictionary")


def random_dictionary(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Seeded Gaussian rows [p, d] from a stream of their own: the synthetic generator draws its
    true dictionary from `default_rng(seed)`, which would hand the baseline the truth."""
    return (
        np.random.default_rng((seed, RANDOM_DICTIONARY_STREAM))
        .standard_normal(shape)
        .astype(np.float32)
    )


def naming_accuracy_by_usage(
    names: np.ndarray,
    codes: sparse.spmatrix,
    true_codes: sparse.spmatrix,
    truth: TrueStructure,
    vocabulary: Vocabulary,
) -> dict[str, float | int]:
    """`name_agreement` (keys ending in `_usage`) with atoms matched to the true rows by what
    they fire on: codes [n, p] and true codes [n, K] over the same rows (`usage_matching`, the
    matching of `recovery_mma_merged`). It asks whether an atom's name, read from its decoder
    direction, says what the atom detects."""
    learned, true, _ = usage_matching(codes, true_codes)
    return name_agreement(names, learned, true, truth, vocabulary, "_usage")


@RUN_METRICS.register("naming", order=95)
def summarise(context: EvalContext, settings: Settings) -> MetricResult:
    """Name every atom with the store's vocabulary; empty without one."""
    if context.vocabulary is None:
        return MetricResult()
    names = name_atoms(context.dictionary, context.vocabulary)
    summary = {}
    if context.truth is not None and context.true_codes_image is not None:
        atom_names = names["name"].to_numpy()
        codes = sparse.vstack([context.codes_image, context.codes_text], format="csr")
        true_codes = sparse.vstack(
            [context.true_codes_image, context.true_codes_text], format="csr"
        )
        summary = {
            **naming_accuracy(atom_names, context.dictionary, context.truth, context.vocabulary),
            **naming_accuracy_by_usage(
                atom_names, codes, true_codes, context.truth, context.vocabulary
            ),
            **naming_accuracy_random_dictionary(
                context.dictionary.shape, context.truth, context.vocabulary, context.seed
            ),
        }
    columns = {name: names[name].to_numpy() for name in names.columns if name != "atom"}
    return MetricResult(atom_columns=columns, summary=summary)
