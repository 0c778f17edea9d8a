"""The store's eval items as the page shows them: captions, item sources and thumbnails.

Only items that some run lists among an atom's top rows are written (`used`): search runs over
those captions, and the page never shows the others.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vlmsae.stores.embedding_store import EmbeddingStore, read_rows

THUMBNAIL_PIXELS = 64  # longest side; a JPEG of about 2 kB
THUMBNAIL_DIR = "thumbs"

log = logging.getLogger(__name__)


def _strings(store: EmbeddingStore, name: str, rows: np.ndarray, used: np.ndarray) -> list | None:
    """Array `name` at the used positions of rows (None elsewhere), or None without the array."""
    if name not in store.root:
        return None
    values: list[str | None] = [None] * len(rows)
    if used.any():
        for position, text in zip(
            np.flatnonzero(used), read_rows(store.root[name], rows[used]), strict=True
        ):
            values[position] = str(text)
    return values


def _thumbnail(source: str, target: Path) -> bool:
    """Write a small JPEG of the image file `source` to `target`; False when it cannot."""
    if not Path(source).is_file():
        return False
    try:
        with Image.open(source) as image:
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            image.convert("RGB").save(target, "JPEG", quality=80)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        log.warning("no thumbnail for %s: %s", source, error)
        return False
    return True


def thumbnails(sources: list | None, rows: np.ndarray, out: Path) -> list | None:
    """Relative paths of thumbnails written below `out` for every source that is an image file
    (None for the others), or None when no item has one."""
    if sources is None:
        return None
    paths: list[str | None] = [None] * len(sources)
    (out / THUMBNAIL_DIR).mkdir()
    for position, source in enumerate(sources):
        relative = f"{THUMBNAIL_DIR}/{rows[position]}.jpg"
        if source is not None and _thumbnail(source, out / relative):
            paths[position] = relative
    if not any(paths):
        (out / THUMBNAIL_DIR).rmdir()
        return None
    return paths


def store_items(
    store: EmbeddingStore, rows: dict[str, np.ndarray], used: dict[str, np.ndarray], out: Path
) -> dict:
    """Per modality role (image, text): store rows of the eval items, and where the store has
    them the captions, item sources and thumbnails of the used ones (lists aligned with rows)."""
    image_name = store.modalities[0]
    sources = _strings(store, f"{image_name}_source", rows["image"], used["image"])
    image = {"rows": rows["image"], "sources": sources, "thumbs": None}
    if image_name == "image":
        image["thumbs"] = thumbnails(sources, rows["image"], out)
    captions = _strings(store, "text_caption", rows["text"], used["text"])
    return {"image": image, "text": {"rows": rows["text"], "captions": captions}}
