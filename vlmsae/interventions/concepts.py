"""Which items carry a concept: the ground truth of synthetic stores, and the labels, attributes
and captions of real ones (probe targets and the steering judge)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from vlmsae.stores.embedding_store import TrueStructure

# Heavy imports stay inside functions: the registries the Snakefile reads at every start
# import this module.
if TYPE_CHECKING:
    import numpy as np


def image_concepts(truth: TrueStructure) -> np.ndarray:
    """[N_img, L] the true concept of each active atom of each image row."""
    import numpy as np

    return np.asarray(truth.atom_concept)[truth.codes["image"].indices]


def most_frequent_bimodal_concept(
    truth: TrueStructure, image_rows: np.ndarray, among: np.ndarray | None = None
) -> int:
    """The bimodal concept active in most of the given image rows (the smallest id on a tie),
    among the concepts `among` when given and not empty."""
    import numpy as np

    bimodal = np.unique(np.asarray(truth.atom_concept)[np.asarray(truth.atom_kind) == "bimodal"])
    if among is not None and np.isin(bimodal, among).any():
        bimodal = bimodal[np.isin(bimodal, among)]
    if len(bimodal) == 0:
        raise ValueError("the store's truth has no bimodal concept")
    concepts = image_concepts(truth)[image_rows].ravel()
    counts = np.bincount(concepts, minlength=bimodal.max() + 1)[bimodal]
    return int(bimodal[np.argmax(counts)])


def images_with_concept(truth: TrueStructure, concept: int) -> np.ndarray:
    """[N_img] bool: the image's true code holds an atom of `concept`."""
    import numpy as np

    return np.any(image_concepts(truth) == concept, axis=1)


def captions_with_word(captions: np.ndarray, word: str) -> np.ndarray:
    """[n] bool: the caption contains `word` as a whole word (or phrase), ignoring case."""
    import numpy as np
    import pandas as pd

    pattern = rf"(?<!\w){re.escape(word.strip())}(?!\w)"
    series = pd.Series(np.asarray(captions, dtype=object), dtype="string")
    return series.str.contains(pattern, case=False, regex=True).fillna(False).to_numpy(bool)


def images_with_caption_word(
    pairs: np.ndarray, caption_has_word: np.ndarray, n_images: int
) -> np.ndarray:
    """[n_images] bool: some caption paired with the image (pairs [n, 2], caption_has_word [n]
    for the pairs' captions) contains the word."""
    import numpy as np

    hits = np.bincount(pairs[:, 0], weights=caption_has_word.astype(np.float64), minlength=n_images)
    return hits > 0
