"""Image:text mixtures (linear-structure §4.2): how many training rows come from each modality."""

from __future__ import annotations

import re

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
