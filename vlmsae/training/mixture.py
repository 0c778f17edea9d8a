"""Image:text mixtures (linear-structure §4.2): how many training rows come from each modality."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

MIXTURE_PATTERN = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]*)$")


def parse_mixture(mixture: str) -> tuple[int, int]:
    """'5-1' → (5, 1): five image rows for every text row."""
    match = MIXTURE_PATTERN.match(mixture)
    if not match:
        raise ValueError(f"mixture '{mixture}' is not of the form IMAGE-TEXT, e.g. '1-1' or '5-1'")
    return int(match.group(1)), int(match.group(2))


def batch_counts(mixture: str, batch_size: int) -> tuple[int, int]:
    """(image rows, text rows) per batch; both at least 1 so each batch sees both modalities."""
    image_weight, text_weight = parse_mixture(mixture)
    n_image = int(round(batch_size * image_weight / (image_weight + text_weight)))
    n_image = min(max(n_image, 1), batch_size - 1)
    return n_image, batch_size - n_image


class EpochSampler:
    """Endless seeded draws without replacement: a fresh permutation each time the rows run out."""

    def __init__(self, n_rows: int, rng: np.random.Generator):
        self.n_rows, self.rng = n_rows, rng
        self.order, self.position = rng.permutation(n_rows), 0

    def take(self, count: int) -> np.ndarray:
        taken = []
        while count > 0:
            if self.position == self.n_rows:
                self.order, self.position = self.rng.permutation(self.n_rows), 0
            chunk = self.order[self.position : self.position + count]
            self.position += len(chunk)
            count -= len(chunk)
            taken.append(chunk)
        return np.concatenate(taken)


def mixture_batches(
    n_image: int, n_text: int, mixture: str, batch_size: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless (image row indices, text row indices) batches in the mixture's ratio."""
    rng = np.random.default_rng(seed)
    images, texts = EpochSampler(n_image, rng), EpochSampler(n_text, rng)
    per_image, per_text = batch_counts(mixture, batch_size)
    while True:
        yield images.take(per_image), texts.take(per_text)
