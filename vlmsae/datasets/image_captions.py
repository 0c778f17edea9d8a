"""Image–caption pairs in the formats web-scale datasets ship in (CC3M, LAION); one text row per
caption, paired with its image.

Formats (setting `format`, default told by the suffix of the `train` pattern):
  webdataset (.tar): shards as img2dataset writes them, `00000.tar` holding `000000000.jpg`
      (or .jpeg/.png/.webp), `000000000.txt` (the caption) and `000000000.json`;
  tsv (.tsv, .csv): open_clip's CSV convention, a header then one row per pair: column
      `image_key` (default "filepath", a path relative to `root`) and `caption_key` (default
      "title"), separated by `separator` (default tab);
  parquet (.parquet): one row per pair, image bytes in `image_column` (default "jpg"; binary, as
      img2dataset writes, or a {bytes, path} struct, as Hugging Face datasets write) and the
      caption in `caption_column` (default "caption").
Files: settings `train` and `eval`, paths or glob patterns relative to `root`. Without `eval`, a
seeded random split of the `train` items (settings `eval_fraction`, `seed`).

`CaptionedImageSettings` holds these settings once for every source in these formats; its
`train` and `eval` defaults are img2dataset's plain output (shards in `root`, no split), which a
source overrides with its release's layout (`train_files`, `eval_files`).
"""

from __future__ import annotations

import functools
import glob
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vlmsae.datasets import SOURCES
from vlmsae.datasets.common import MaxItems, RandomSplit
from vlmsae.datasets.raw import (
    EVAL,
    TRAIN,
    FileMedia,
    MediaSource,
    ParquetMedia,
    RawDataset,
    SkipReport,
    TarMedia,
    decode_text,
    existing_files,
    index_tar,
    limit_media,
    media_bytes,
    require,
    seeded_split,
)
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

FORMATS = {".tar": "webdataset", ".tsv": "tsv", ".csv": "tsv", ".parquet": "parquet"}
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def train_files(default: str) -> Any:
    """The `train` setting with a source's default."""
    return setting(default, "path or glob of the training files")


def eval_files(default: str | None) -> Any:
    """The `eval` setting with a source's default."""
    return setting(default, "path or glob of the eval files; null = seeded random split of train")


@dataclass(frozen=True, kw_only=True)
class CaptionedImageSettings(MaxItems, RandomSplit):
    """The settings of a source in these formats."""

    root: str = setting(description="the folder the file patterns are relative to")
    format: Literal["webdataset", "tsv", "parquet"] | None = setting(
        None, "default: told by the suffix of `train` (.tar, .tsv/.csv, .parquet)"
    )
    train: str = train_files("*.tar")
    eval: str | None = eval_files(None)
    separator: str = setting("\t", "tsv column separator")
    image_key: str = setting("filepath", "tsv column of image paths (relative to root)")
    caption_key: str = setting("title", "tsv column of captions")
    image_column: str = setting(
        "jpg", "parquet column of image bytes (binary or {bytes, path} struct)"
    )
    caption_column: str = setting("caption", "parquet column of captions")

    def check(self) -> None:
        # Messages start with "key=" and give the fix after "; "
        # (vlmsae.registry_base.parse_settings).
        if not self.train:
            raise ValueError("train='' names no file; name the training files (a glob)")
        self.layout()

    def patterns(self) -> dict[int, str]:
        """{split code: file pattern} of the splits whose files are named (eval may not be)."""
        named = {TRAIN: self.train, EVAL: self.eval}
        return {code: pattern for code, pattern in named.items() if pattern}

    def layout(self) -> str:
        """`format`, or the format the suffixes of the file patterns tell."""
        if self.format is not None:
            return self.format
        patterns = list(self.patterns().values())
        formats = {FORMATS.get(Path(pattern).suffix.lower()) for pattern in patterns}
        if len(formats) != 1 or None in formats:
            raise ValueError(
                f"format=None and the suffixes of {patterns} tell no format; "
                "set format to webdataset, tsv or parquet"
            )
        return formats.pop()


@dataclass
class _Items:
    """What a format reader found besides the media: captions, the media row of each, and the
    file each media row came from."""

    texts: list[str] = field(default_factory=list)
    media_of_text: list[int] = field(default_factory=list)
    media_file: list[int] = field(default_factory=list)


def _files(root: Path, pattern: str, option: str, source: str) -> list[Path]:
    if not glob.has_magic(pattern):
        return [require(root / pattern, f"{source} {option} file")]
    matched = sorted(Path(p) for p in glob.glob(str(root / pattern)))
    if not matched:
        raise InputFileError(
            str(root / pattern), "no file matches this pattern", f"check `root` and `{option}`"
        )
    return matched


def _caption(handle, member: tuple[int, int, int]) -> str | None:
    handle.seek(member[1])
    try:
        return decode_text(handle.read(member[2]))
    except UnicodeDecodeError:
        return None


def _webdataset(
    files: list[Path], settings: CaptionedImageSettings, skipped: SkipReport
) -> tuple[MediaSource, _Items]:
    shard, offset, size, names = [], [], [], []
    items = _Items()
    for number, path in enumerate(files):
        try:
            samples = index_tar([path])
        except (OSError, tarfile.TarError) as error:
            raise InputFileError(
                str(path), f"not a readable tar ({error})", "download or write the shard again"
            ) from error
        # One open per shard rather than per caption: millions of opens are slow on a cluster.
        with open(path, "rb") as handle:
            for key in sorted(samples):
                members, where = samples[key], f"{path}:{key}"
                image = next((e for e in IMAGE_EXTENSIONS if e in members), None)
                if image is None:
                    skipped.add("sample without an image", where)
                    continue
                if "txt" not in members:
                    skipped.add("sample without a caption", where)
                    continue
                caption = _caption(handle, members["txt"])
                if not caption:
                    skipped.add("empty or non-UTF-8 caption", where)
                    continue
                items.texts.append(caption)
                items.media_of_text.append(len(names))
                items.media_file.append(number)
                shard.append(number)
                offset.append(members[image][1])
                size.append(members[image][2])
                names.append(f"{key}.{image}")
    return TarMedia(files, shard, offset, size, names), items


def _table(path: Path, settings: CaptionedImageSettings) -> pd.DataFrame:
    import pandas as pd

    table = pd.read_csv(path, sep=settings.separator, dtype=str, keep_default_na=False)
    _require_columns(
        path,
        list(table.columns),
        (("image_key", settings.image_key), ("caption_key", settings.caption_key)),
        f"header: {list(table.columns)}",
        ", or `separator` if the header was not split",
    )
    return table


def _require_columns(
    path: Path, present: list[str], named: tuple[tuple[str, str], ...], shown: str, fix: str = ""
) -> None:
    """InputFileError for the first (setting, column) of `named` whose column `path` lacks."""
    for option, column in named:
        if column not in present:
            raise InputFileError(
                str(path),
                f"no column '{column}' ({shown})",
                f"set {option} to one of its columns{fix}",
            )


def _tsv(
    files: list[Path], settings: CaptionedImageSettings, skipped: SkipReport
) -> tuple[MediaSource, _Items]:
    root = Path(settings.root)
    paths = []
    items = _Items()
    for number, file in enumerate(files):
        table = _table(file, settings)
        rows = []
        captions = table[settings.caption_key].str.strip()
        column = zip(table[settings.image_key], captions, strict=True)
        # Line numbers count the header as line 1.
        for line, (image, caption) in enumerate(column, start=2):
            if not image:
                skipped.add("row without an image path", f"{file}:{line}")
            elif not caption:
                skipped.add("empty caption", f"{file}:{line}")
            else:
                rows.append((root / image, caption))
        captions_of: dict[Path, list[str]] = {}
        found = existing_files([image for image, _ in rows])
        for (image, caption), exists in zip(rows, found, strict=True):
            if exists:
                captions_of.setdefault(image, []).append(caption)
            else:
                skipped.add("image file missing", str(image))
        for image in sorted(captions_of):
            items.texts.extend(captions_of[image])
            items.media_of_text.extend([len(paths)] * len(captions_of[image]))
            items.media_file.append(number)
            paths.append(image)
    return FileMedia(paths), items


def _check_columns(parquet: pq.ParquetFile, path: Path, settings: CaptionedImageSettings) -> None:
    import pyarrow as pa

    schema = parquet.schema_arrow
    _require_columns(
        path,
        schema.names,
        (("image_column", settings.image_column), ("caption_column", settings.caption_column)),
        f"has {schema.names}",
    )
    image_type = schema.field(settings.image_column).type
    is_struct = pa.types.is_struct(image_type)
    if not (pa.types.is_binary(image_type) or pa.types.is_large_binary(image_type)) and not (
        is_struct and image_type.get_field_index("bytes") >= 0
    ):
        raise InputFileError(
            str(path),
            f"column '{settings.image_column}' is {image_type}, not image bytes",
            "set image_column to a binary column or a {bytes, path} struct",
        )


def _missing_images(parquet: pq.ParquetFile, group: int, column: str) -> np.ndarray:
    """[rows of the group] bool: rows without image bytes. The column statistics answer without
    reading the bytes when they count no null, as they almost always do."""
    import numpy as np

    meta = parquet.metadata.row_group(group)
    leaves = [meta.column(j) for j in range(meta.num_columns)]
    leaf = next((c for c in leaves if c.path_in_schema in (column, f"{column}.bytes")), None)
    stats = leaf.statistics if leaf is not None else None
    if stats is not None and stats.has_null_count and stats.null_count == 0:
        return np.zeros(meta.num_rows, dtype=bool)
    values = media_bytes(parquet.read_row_group(group, [column]).column(0))
    return values.is_null().to_numpy(zero_copy_only=False)


def _parquet(
    files: list[Path], settings: CaptionedImageSettings, skipped: SkipReport
) -> tuple[MediaSource, _Items]:
    import pyarrow.parquet as pq

    file_of, group_of, row_of = [], [], []
    items = _Items()
    for number, path in enumerate(files):
        parquet = pq.ParquetFile(path)
        _check_columns(parquet, path, settings)
        for group in range(parquet.num_row_groups):
            captions = parquet.read_row_group(group, [settings.caption_column]).column(0)
            missing = _missing_images(parquet, group, settings.image_column)
            for row, caption in enumerate(captions.to_pylist()):
                where = f"{path}: row group {group}, row {row}"
                if missing[row]:
                    skipped.add("row without image bytes", where)
                elif not caption or not caption.strip():
                    skipped.add("row without a caption", where)
                else:
                    items.texts.append(caption.strip())
                    items.media_of_text.append(len(row_of))
                    items.media_file.append(number)
                    file_of.append(number)
                    group_of.append(group)
                    row_of.append(row)
    return ParquetMedia(files, settings.image_column, file_of, group_of, row_of), items


READERS = {"webdataset": _webdataset, "tsv": _tsv, "parquet": _parquet}


def read_captioned(settings: CaptionedImageSettings, source: str) -> RawDataset:
    """The RawDataset of `source`, a captioned dataset in one of these formats."""
    import numpy as np

    root = Path(settings.root)
    patterns = settings.patterns()
    layout = settings.layout()
    files, file_split = [], []
    for code, pattern in patterns.items():
        matched = _files(root, pattern, "train" if code == TRAIN else "eval", source)
        files += matched
        file_split += [code] * len(matched)
    skipped = SkipReport()
    media, items = READERS[layout](files, settings, skipped)
    if EVAL in patterns:
        media_split = np.asarray(file_split, dtype=np.int8)[items.media_file]
        split_source = f"{patterns[TRAIN]}→train, {patterns[EVAL]}→eval"
    else:
        media_split, split_source = seeded_split(len(media), settings)
    raw = RawDataset(
        modality="image",
        media=media,
        texts=items.texts,
        pairs=np.stack([items.media_of_text, np.arange(len(items.texts))], axis=1),
        media_split=media_split,
        attrs={
            "root": str(root),
            "layout": layout,
            "files": {"train": patterns[TRAIN], "eval": patterns.get(EVAL)},
            "n_files": {"train": file_split.count(TRAIN), "eval": file_split.count(EVAL)},
            "split_source": split_source,
        },
        skipped=skipped,
    )
    return limit_media(raw, settings.max_items)


def register_captioned(name: str, settings: type[CaptionedImageSettings], description: str) -> None:
    """Register source `name`, read by `read_captioned` under its config section `settings`:
    the captioned web datasets (CC3M, LAION) differ only in their default files and split."""
    SOURCES.register(name, settings, description, kind="raw", modality="image")(
        functools.partial(read_captioned, source=name)
    )
