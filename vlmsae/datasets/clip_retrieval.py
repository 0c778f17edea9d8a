"""Embeddings in the layout clip-retrieval writes, which is how LAION's embeddings ship.

    root/img_emb/img_emb_{n}.npy        [N_n, d] image embeddings (float16 or float32)
    root/text_emb/text_emb_{n}.npy      [N_n, d] caption embeddings, row i paired with image row i
    root/metadata/metadata_{n}.parquet  N_n rows: caption, and url / image_path / key (optional)

Shards are read in the order of their number `n` (LAION pads it: img_emb_0000.npy). Rows are
re-normalised (the files are normalised in float16, which leaves norms off by ~1e-3). No model
runs: the store's model name only labels it, and should name the model that made the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vlmsae.datasets import SOURCES
from vlmsae.datasets.common import MaxItems, RandomSplit
from vlmsae.datasets.precomputed import row_paired_arrays
from vlmsae.datasets.raw import require, seeded_split
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.

SOURCE_COLUMNS = ("url", "image_path", "key")


@dataclass(frozen=True, kw_only=True)
class ClipRetrievalSettings(MaxItems, RandomSplit):
    """Config section `datasets.X.clip_retrieval` (`max_items`: pairs, shards in order)."""

    root: str = setting(description="the folder holding img_emb/ and text_emb/")
    caption_column: str = setting("caption", "metadata column kept as each text row's caption")


def _shards(folder: Path, prefix: str, suffix: str) -> dict[int, Path]:
    pattern = re.compile(rf"^{prefix}_(\d+)\.{suffix}$")
    found = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _metadata(path: Path | None, n_rows: int, caption_column: str) -> tuple[list, list]:
    """(captions, sources) of one shard; empty strings where the metadata says nothing."""
    import pyarrow.parquet as pq

    if path is None:
        return [""] * n_rows, [""] * n_rows
    table = pq.read_table(path)
    if table.num_rows != n_rows:
        raise InputFileError(
            str(path),
            f"{table.num_rows} metadata rows for {n_rows} embeddings",
            "use the metadata written with these embeddings",
        )
    names = table.column_names
    captions = table[caption_column].to_pylist() if caption_column in names else [""] * n_rows
    column = next((c for c in SOURCE_COLUMNS if c in names), None)
    sources = table[column].to_pylist() if column else [""] * n_rows
    return [c or "" for c in captions], [s or "" for s in sources]


@SOURCES.register(
    "clip_retrieval",
    ClipRetrievalSettings,
    "Embeddings in clip-retrieval's output layout (img_emb/img_emb_N.npy, text_emb/text_emb_N.npy, "
    "metadata/metadata_N.parquet), as LAION ships them. The store's model name only labels it.",
    kind="embedding",
)
def build(settings: ClipRetrievalSettings) -> dict:
    """Arrays and attrs for `write_store` from a clip-retrieval output folder."""
    import numpy as np

    root = require(settings.root, "clip-retrieval folder")
    image_shards = _shards(require(root / "img_emb", "folder img_emb/"), "img_emb", "npy")
    text_shards = _shards(require(root / "text_emb", "folder text_emb/"), "text_emb", "npy")
    metadata_dir = root / "metadata"
    metadata = _shards(metadata_dir, "metadata", "parquet") if metadata_dir.exists() else {}
    if not image_shards:
        raise InputFileError(
            str(root / "img_emb"),
            "no img_emb_<n>.npy files",
            "point `root` at clip-retrieval's output",
        )
    missing = sorted(set(image_shards) - set(text_shards))
    if missing:
        expected = root / "text_emb" / image_shards[missing[0]].name.replace("img_emb", "text_emb")
        raise InputFileError(
            str(expected),
            "caption embeddings of an image shard not found",
            "run clip-retrieval inference with --enable_text True",
        )
    max_items = settings.max_items
    image, text, captions, sources = [], [], [], []
    n_rows = n_shards = 0
    for number in sorted(image_shards):
        image_part = np.load(image_shards[number], mmap_mode="r")
        text_part = np.load(text_shards[number], mmap_mode="r")
        if image_part.shape != text_part.shape or image_part.ndim != 2:
            raise InputFileError(
                str(text_shards[number]),
                f"shape {list(text_part.shape)} does not match the image shard's "
                f"{list(image_part.shape)}",
                "image and caption shards must hold the same pairs",
            )
        part_captions, part_sources = _metadata(
            metadata.get(number), len(image_part), settings.caption_column
        )
        take = len(image_part) if max_items is None else min(len(image_part), max_items - n_rows)
        image.append(np.asarray(image_part[:take], dtype=np.float32))
        text.append(np.asarray(text_part[:take], dtype=np.float32))
        captions += part_captions[:take]
        sources += part_sources[:take]
        n_rows += take
        n_shards += 1
        if max_items is not None and n_rows >= max_items:
            break
    split, split_source = seeded_split(n_rows, settings)
    return {
        **row_paired_arrays(np.concatenate(image), np.concatenate(text), split),
        "extra": {
            "text_caption": np.array(captions, dtype=object),
            "image_source": np.array(sources, dtype=object),
        },
        "attrs": {
            "source": "clip_retrieval",
            "files": str(root),
            "shards": n_shards,
            "normalised": True,
            "split_source": split_source,
        },
    }
