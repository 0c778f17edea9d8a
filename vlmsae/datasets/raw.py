"""Raw datasets: what an adapter reads from a dataset's root before any model sees it.

An adapter (one module per dataset, e.g. `vlmsae.datasets.coco`) turns its config section into a
`RawDataset`: a `MediaSource` of images or audio clips (read lazily, in DataLoader workers), the
caption of every text row, the (media row, text row) pairs and the dataset's own train/eval split.
`vlmsae.embedding` then runs a model over it and writes the store.

Text rows may repeat a string (a class prompt shared by many images): the embedding stage encodes
each distinct string once.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.datasets.common import RandomSplit
from vlmsae.errors import InputFileError
from vlmsae.stores.embedding_store import SPLITS, assign_pair_splits

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from PIL import Image

MEDIA_MODALITIES = ("image", "audio")
SKIP_EXAMPLES = 20
TRAIN, EVAL = SPLITS.index("train"), SPLITS.index("eval")


class MediaSource(ABC):
    """N media items read by index. Must pickle cheaply: DataLoader workers receive a copy."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def read(self, index: int) -> bytes | Image.Image | np.ndarray:
        """Encoded bytes (jpeg, png, wav, flac, mp3...), a PIL image, or a waveform array."""

    @abstractmethod
    def describe(self, index: int) -> str:
        """Where item `index` lives (a path, `shard.tar:member`), for messages about it."""

    def take(self, rows: np.ndarray) -> MediaSource:
        """Items `rows`, in that order (`max_items`). Sources holding per-item lists override it,
        so that the copy each DataLoader worker receives shrinks with them."""
        return MediaRows(self, rows)


class MediaRows(MediaSource):
    """Some items of another source."""

    def __init__(self, base: MediaSource, rows: np.ndarray):
        import numpy as np

        self.base = base
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int) -> bytes | Image.Image | np.ndarray:
        return self.base.read(int(self.rows[index]))

    def describe(self, index: int) -> str:
        return self.base.describe(int(self.rows[index]))


class FileMedia(MediaSource):
    """One file per item."""

    def __init__(self, paths: list[str]):
        self.paths = [str(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> bytes:
        return Path(self.paths[index]).read_bytes()

    def describe(self, index: int) -> str:
        return self.paths[index]

    def take(self, rows: np.ndarray) -> FileMedia:
        return FileMedia([self.paths[i] for i in rows])


class TarMedia(MediaSource):
    """Members of tar shards (webdataset), read by byte offset without unpacking the tar."""

    def __init__(
        self,
        shards: list[str],
        shard: np.ndarray,
        offset: np.ndarray,
        size: np.ndarray,
        names: list[str],
    ):
        import numpy as np

        self.shards = [str(s) for s in shards]
        self.shard = np.asarray(shard, dtype=np.int32)
        self.offset = np.asarray(offset, dtype=np.int64)
        self.size = np.asarray(size, dtype=np.int64)
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> bytes:
        with open(self.shards[self.shard[index]], "rb") as handle:
            handle.seek(int(self.offset[index]))
            return handle.read(int(self.size[index]))

    def describe(self, index: int) -> str:
        return f"{self.shards[self.shard[index]]}:{self.names[index]}"

    def take(self, rows: np.ndarray) -> TarMedia:
        names = [self.names[i] for i in rows]
        return TarMedia(self.shards, self.shard[rows], self.offset[rows], self.size[rows], names)


class ArrayMedia(MediaSource):
    """Decoded images held in memory: [N, H, W, 3] uint8 (CIFAR's pickles)."""

    def __init__(self, pixels: np.ndarray, origin: str):
        self.pixels = pixels
        self.origin = origin

    def __len__(self) -> int:
        return len(self.pixels)

    def read(self, index: int) -> Image.Image:
        from PIL import Image

        return Image.fromarray(self.pixels[index])

    def describe(self, index: int) -> str:
        return f"{self.origin}[{index}]"

    def take(self, rows: np.ndarray) -> ArrayMedia:
        return ArrayMedia(self.pixels[rows], self.origin)


class ParquetMedia(MediaSource):
    """Media bytes in a parquet column, one row per item (LAION images, JamendoMaxCaps audio).

    Reads a whole row group (parquet's smallest unit) and keeps the last one per process: the
    embedding stage reads items in order, so the next item is usually in it.
    """

    def __init__(
        self,
        files: list[Path],
        column: str,
        file: np.ndarray,
        row_group: np.ndarray,
        row: np.ndarray,
    ):
        import numpy as np

        self.files = [str(f) for f in files]
        self.column = column
        self.file = np.asarray(file, dtype=np.int32)
        self.row_group = np.asarray(row_group, dtype=np.int32)
        self.row = np.asarray(row, dtype=np.int64)
        self._cached: tuple[tuple[int, int], pa.Array] | None = None

    def __len__(self) -> int:
        return len(self.row)

    def __getstate__(self) -> dict:
        # A DataLoader worker receives the index, not this process's row group.
        return {**self.__dict__, "_cached": None}

    def read(self, index: int) -> bytes:
        import pyarrow.parquet as pq

        key = (int(self.file[index]), int(self.row_group[index]))
        if self._cached is None or self._cached[0] != key:
            group = pq.ParquetFile(self.files[key[0]]).read_row_group(key[1], [self.column])
            self._cached = (key, media_bytes(group.column(0)))
        return self._cached[1][int(self.row[index])].as_py()

    def describe(self, index: int) -> str:
        file, group = self.files[self.file[index]], self.row_group[index]
        return f"{file}: row group {group}, row {self.row[index]}"

    def take(self, rows: np.ndarray) -> ParquetMedia:
        return ParquetMedia(
            self.files, self.column, self.file[rows], self.row_group[rows], self.row[rows]
        )


def media_bytes(column: pa.ChunkedArray) -> pa.Array:
    """The bytes of a binary column or of a {bytes, path} struct column, as Hugging Face datasets
    write images and audio (null where a row has none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column.combine_chunks()
    return pc.struct_field(values, "bytes") if pa.types.is_struct(values.type) else values


@dataclass
class SkipReport:
    """Items left out and why: counted per reason, with the first few named."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < SKIP_EXAMPLES:
            examples.append(where)

    def merge(self, other: SkipReport) -> None:
        for reason, examples in other.examples.items():
            self.counts[reason] += other.counts[reason]
            mine = self.examples.setdefault(reason, [])
            mine.extend(examples[: SKIP_EXAMPLES - len(mine)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_attrs(self) -> dict:
        return {
            reason: {"count": int(n), "examples": self.examples.get(reason, [])}
            for reason, n in sorted(self.counts.items())
        }


@dataclass
class RawDataset:
    """A dataset as read from disk: media items, caption strings, pairs and splits.

    modality: "image" or "audio" (the store's first modality; text is the second)
    media: N_media items
    texts: N_text strings (may repeat)
    pairs: [n, 2] int64 (media row, text row)
    media_split: [N_media] int8 codes into `vlmsae.stores.embedding_store.SPLITS`; a text row
        takes the split of the media row it is paired with
    label, class_names, templates: class of each media row, class names, and prompt templates
        with one "{}" for the class name (zero-shot classification)
    attributes, attribute_names: [N_media, A] int8 binary attributes (CelebA)
    triplets: [n, 3] int64 (reference media row, text row, target media row) (FashionIQ)
    attrs: provenance written into the store: root, files read, how splits were assigned
    skipped: items the adapter left out while reading the layout (e.g. a caption whose image file
        is missing)
    """

    modality: str
    media: MediaSource
    texts: list[str]
    pairs: np.ndarray
    media_split: np.ndarray
    label: np.ndarray | None = None
    class_names: list[str] | None = None
    templates: list[str] | None = None
    attributes: np.ndarray | None = None
    attribute_names: list[str] | None = None
    triplets: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    skipped: SkipReport = field(default_factory=SkipReport)

    def __post_init__(self) -> None:
        import numpy as np

        if self.modality not in MEDIA_MODALITIES:
            raise ValueError(f"modality must be one of {MEDIA_MODALITIES}, got {self.modality}")
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.media_split = np.asarray(self.media_split, dtype=np.int8)
        n_media, n_text = len(self.media), len(self.texts)
        if len(self.media_split) != n_media:
            raise ValueError(f"media_split has {len(self.media_split)} rows for {n_media} items")
        beyond = len(self.pairs) and (
            self.pairs[:, 0].max() >= n_media or self.pairs[:, 1].max() >= n_text
        )
        if beyond:
            raise ValueError("pairs reference rows beyond the media or text rows")
        for name in ("label", "attributes"):
            value = getattr(self, name)
            if value is not None and len(value) != n_media:
                raise ValueError(f"{name} has {len(value)} rows for {n_media} media items")

    def text_split(self) -> np.ndarray:
        """[N_text] int8 split codes of the text rows (see `text_split_of`)."""
        return text_split_of(self.pairs, self.media_split, len(self.texts))


def text_split_of(pairs: np.ndarray, media_split: np.ndarray, n_texts: int) -> np.ndarray:
    """[n_texts] int8: each text row in the split of its (first) paired media row; unpaired
    texts go to "train"."""
    import numpy as np

    split = np.zeros(n_texts, dtype=np.int8)
    text_rows, first = np.unique(pairs[:, 1], return_index=True)
    split[text_rows] = media_split[pairs[first, 0]]
    return split


def require(path: str | Path, what: str, fix: str | None = None) -> Path:
    """`path` if it exists; otherwise a one-line error naming the file the adapter expected."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(
            str(path), f"{what} not found", fix or "check the dataset's `root` in the config"
        )
    return path


def index_tar(shard_paths: list[Path]) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Webdataset shards → {sample key: {extension: (shard number, offset, size)}}.

    A member `dir/000123.jpg` has key `dir/000123` and extension `jpg` (webdataset's rule: the
    key ends at the first dot of the file name).
    """
    samples: dict[str, dict[str, tuple[int, int, int]]] = {}
    for number, shard_path in enumerate(shard_paths):
        with tarfile.open(shard_path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, dot, extension = name.partition(".")
                if not dot:
                    continue
                key = f"{folder}/{stem}" if folder else stem
                samples.setdefault(key, {})[extension] = (number, member.offset_data, member.size)
    return samples


def read_member(shard_path: str | Path, offset: int, size: int) -> bytes:
    with open(shard_path, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def decode_text(data: bytes) -> str:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read().strip()


def first_rows(media_split: np.ndarray, max_items: int) -> np.ndarray:
    """Sorted rows of the first `max_items` media items: each split keeps its first items, in
    proportion to its size and at least one (a smoke test on COCO still gets an eval split).

    Items are ranked by (position in their split / split size), so a split's k-th item comes in
    when k/N_split is reached; an item keeps the split it has in the full dataset.
    """
    import numpy as np

    key = np.empty(len(media_split))
    for code in np.unique(media_split):
        rows = np.flatnonzero(media_split == code)
        key[rows] = np.arange(len(rows)) / len(rows)
    order = np.lexsort((np.arange(len(media_split)), key))
    return np.sort(order[:max_items])


def limit_media(raw: RawDataset, max_items: int | None) -> RawDataset:
    """`raw` cut to `first_rows(max_items)` with the text rows, pairs and triplets of those items
    (setting `max_items`, for smoke tests); `raw` itself when `max_items` is None or not smaller."""
    import numpy as np

    if max_items is None or max_items >= len(raw.media):
        return raw
    rows = first_rows(raw.media_split, max_items)
    media_row = np.full(len(raw.media), -1)
    media_row[rows] = np.arange(len(rows))
    pairs = raw.pairs[media_row[raw.pairs[:, 0]] >= 0]
    triplets = raw.triplets
    if triplets is not None:
        triplets = triplets[(media_row[triplets[:, 0]] >= 0) & (media_row[triplets[:, 2]] >= 0)]
        texts_kept = np.unique(np.concatenate([pairs[:, 1], triplets[:, 1]]))
    else:
        texts_kept = np.unique(pairs[:, 1])
    text_row = np.full(len(raw.texts), -1)
    text_row[texts_kept] = np.arange(len(texts_kept))

    def remap(table: np.ndarray, media_columns: tuple[int, ...], text_column: int) -> np.ndarray:
        table = table.copy()
        table[:, list(media_columns)] = media_row[table[:, list(media_columns)]]
        table[:, text_column] = text_row[table[:, text_column]]
        return table

    return dataclasses.replace(
        raw,
        media=raw.media.take(rows),
        texts=[raw.texts[i] for i in texts_kept],
        pairs=remap(pairs, (0,), 1),
        media_split=raw.media_split[rows],
        label=None if raw.label is None else raw.label[rows],
        attributes=None if raw.attributes is None else raw.attributes[rows],
        triplets=None if triplets is None else remap(triplets, (0, 2), 1),
        attrs={**raw.attrs, "max_items": int(max_items)},
    )


def existing_files(paths: list[Path]) -> np.ndarray:
    """[len(paths)] bool: whether each file exists. Lists each folder once: a stat per file takes
    hours for millions of files on a cluster's network file system."""
    import numpy as np

    listings: dict[Path, set[str]] = {}
    found = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        folder = path.parent
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        found[i] = path.name in listings[folder]
    return found


def seeded_split(n_items: int, settings: RandomSplit) -> tuple[np.ndarray, str]:
    """A seeded eval share (`assign_pair_splits`) of the settings' `eval_fraction` and `seed`,
    and its description for the `split_source` attr."""
    fraction, seed = settings.eval_fraction, settings.seed
    split = assign_pair_splits(n_items, fraction, seed)
    return split, f"random eval_fraction={fraction} seed={seed}"
