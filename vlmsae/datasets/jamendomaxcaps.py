"""JamendoMaxCaps (amaai-lab/JamendoMaxCaps on Hugging Face): full Jamendo tracks (instrumental,
Creative Commons) with machine captions of 30 s segments.

Layout under `root` (the dataset repository as downloaded):

    data/train-00000-of-01256.parquet ...  the audio: one row per track, column `audio` =
                                           {bytes: the mp3 file, path: "<track id>.mp3"}
    final_caption30sec.jsonl               captions, one line per captioned 30 s segment:
                                           {"id": <track id>, "caption": ..., "start_time": 0.0,
                                            "end_time": 30.0}; a track has several lines
    YYYY-MM-DD.jsonl                       Jamendo metadata of the tracks (not read)

With `audio_layout: files`, the audio is instead one file per track, `<track id>.mp3` in
`audio_dir` (default mp3_files/): what the dataset card's extraction script writes.

Media rows are the tracks that have both audio and a caption, in storage order (shard, then
row; sorted by id for files); `max_items` keeps the first ones of each split. Each caption line
is a text row paired with its track; `segments: middle` keeps only the caption of the segment
nearest the middle of each track's captioned span, the part the embedding stage's centre crop
hears. The release has no split: a seeded random `eval_fraction` of the tracks is eval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vlmsae.datasets import SOURCES
from vlmsae.datasets.captioned_audio import field, is_caption, pair_captions, read_jsonl
from vlmsae.datasets.common import MaxItems, RandomSplit
from vlmsae.datasets.raw import (
    FileMedia,
    MediaSource,
    ParquetMedia,
    RawDataset,
    SkipReport,
    limit_media,
    require,
    seeded_split,
)
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

    # Makes the media of chosen audio rows.
    MediaOfRows = Callable[[np.ndarray], MediaSource]

AUDIO_COLUMN = "audio"
AUDIO_DIRS = {"parquet": "data", "files": "mp3_files"}


@dataclass(frozen=True, kw_only=True)
class JamendoMaxCapsSettings(MaxItems, RandomSplit):
    """Config section `datasets.X.jamendomaxcaps`."""

    root: str = setting(description="the dataset folder holding final_caption30sec.jsonl and data/")
    audio_layout: Literal["parquet", "files"] = setting(
        "parquet",
        "parquet: the release's data/*.parquet (column audio = {bytes, path: <id>.mp3}); files: "
        "one <id>.mp3 per track, as the dataset card's extraction script writes",
    )
    audio_dir: str | None = setting(
        None,
        f"audio folder relative to root; default {AUDIO_DIRS['parquet']} (parquet) or "
        f"{AUDIO_DIRS['files']} (files)",
    )
    caption_file: str = setting(
        "final_caption30sec.jsonl", "json-lines caption file relative to root"
    )
    id_key: str = setting("id", "caption-file field holding the track id")
    caption_key: str = setting("caption", "caption-file field holding the caption")
    segments: Literal["all", "middle"] = setting(
        "all",
        "all: every segment caption is a text row; middle: per track only the caption of the "
        "segment nearest the middle (what the centre crop hears; needs start_time/end_time)",
    )


@SOURCES.register(
    "jamendomaxcaps",
    JamendoMaxCapsSettings,
    "JamendoMaxCaps (amaai-lab/JamendoMaxCaps): full tracks, captions of 30 s segments in "
    "final_caption30sec.jsonl, audio in data/*.parquet; no dataset split (seeded random eval "
    "share).",
    kind="raw",
    modality="audio",
)
def read(settings: JamendoMaxCapsSettings) -> RawDataset:
    """The JamendoMaxCaps tracks under `root`, with their captions and a random split."""
    import numpy as np

    root = Path(settings.root)
    layout = settings.audio_layout
    caption_file = require(
        root / settings.caption_file,
        "JamendoMaxCaps caption file",
        "download final_caption30sec.jsonl from amaai-lab/JamendoMaxCaps into `root`, "
        "or set `caption_file`",
    )
    audio_dir = require(
        root / (settings.audio_dir or AUDIO_DIRS[layout]),
        "JamendoMaxCaps audio folder",
        "download the audio of amaai-lab/JamendoMaxCaps into `root`, or set `audio_dir`",
    )
    skipped = SkipReport()
    captions = _captions(caption_file, settings, skipped)
    if layout == "parquet":
        names, where, make_media = _parquet_audio(audio_dir)
        missing_in = f"{audio_dir / '*.parquet'}:"
    else:
        names, where, make_media = _file_audio(audio_dir)
        missing_in = f"{audio_dir}/"
    tracks = [_track_id(name) for name in names]
    rows, captions = _usable(tracks, where, captions, missing_in, skipped)
    texts, pairs = pair_captions([tracks[row] for row in rows], captions)
    split, split_source = seeded_split(len(rows), settings)
    raw = RawDataset(
        modality="audio",
        media=make_media(np.array(rows, dtype=np.int64)),
        texts=texts,
        pairs=pairs,
        media_split=split,
        attrs={
            "root": str(root),
            "layout": f"{caption_file.name} + {audio_dir.name}/ ({layout})",
            "split_source": f"{split_source} (the release has no split)",
            "segments": settings.segments,
        },
        skipped=skipped,
    )
    return limit_media(raw, settings.max_items)


def _captions(
    path: Path, settings: JamendoMaxCapsSettings, skipped: SkipReport
) -> list[tuple[str, str]]:
    """(track id, caption) of the usable caption lines, in file order."""
    id_key, caption_key = settings.id_key, settings.caption_key
    lines = []
    for where, record in read_jsonl(path):
        track = field(record, id_key, where, "set `id_key` to the field that holds the track id")
        caption = field(record, caption_key, where, "set `caption_key` to the caption's field")
        if is_caption(caption):
            # Ids are numbers in some files and strings in others; audio names them as text.
            lines.append((str(track), caption.strip(), where, record))
        else:
            skipped.add(f"empty {caption_key}", where)
    if settings.segments == "middle":
        lines = _middle_segments(lines)
    return [(track, caption) for track, caption, _, _ in lines]


def _middle_segments(lines: list[tuple]) -> list[tuple]:
    """Of each track's caption lines, the one whose segment centre is nearest the centre of the
    span its segments cover (the first such line on a tie); file order is kept."""
    fix = "use `segments: all` with a caption file that has no segment times"
    segment: dict[int, tuple[float, float]] = {}
    by_track: dict[str, list[int]] = {}
    for number, (track, _, where, record) in enumerate(lines):
        start = float(field(record, "start_time", where, fix))
        segment[number] = (start, float(field(record, "end_time", where, fix)))
        by_track.setdefault(track, []).append(number)
    keep = set()
    for numbers in by_track.values():
        middle = (min(segment[n][0] for n in numbers) + max(segment[n][1] for n in numbers)) / 2
        keep.add(min(numbers, key=lambda n: abs(sum(segment[n]) / 2 - middle)))
    return [line for number, line in enumerate(lines) if number in keep]


def _parquet_audio(
    folder: Path,
) -> tuple[list[str], list[str], MediaOfRows]:
    """The audio rows of the parquet shards in `folder`, in storage order: their file names,
    where they are (for messages) and the media of chosen rows. Media rows follow storage order,
    which the row-group cache of `ParquetMedia` needs."""
    shards = sorted(folder.glob("*.parquet"))
    if not shards:
        raise InputFileError(
            str(folder / "*.parquet"),
            "no parquet shards",
            "download the data/ folder of amaai-lab/JamendoMaxCaps, or set `audio_layout`",
        )
    index = [row for number, shard in enumerate(shards) for row in _index_shard(number, shard)]
    media = ParquetMedia(
        shards,
        AUDIO_COLUMN,
        [shard for shard, _, _, _ in index],
        [group for _, group, _, _ in index],
        [row for _, _, row, _ in index],
    )
    names = [str(name) for _, _, _, name in index]
    where = [f"{shards[shard]}:{name}" for shard, _, _, name in index]
    return names, where, media.take


def _index_shard(number: int, shard: Path) -> list[tuple[int, int, int, str]]:
    """(shard number, row group, row, audio file name) of every row, reading only the names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(shard)
        found = []
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=[f"{AUDIO_COLUMN}.path"])
            names = table.column(AUDIO_COLUMN).combine_chunks().field("path").to_pylist()
            found += [(number, group, row, name) for row, name in enumerate(names)]
    except (pa.ArrowException, KeyError) as error:
        raise InputFileError(
            str(shard),
            f"not a parquet file with an '{AUDIO_COLUMN}' column of bytes and path ({error})",
            "re-download the shard from amaai-lab/JamendoMaxCaps unchanged",
        ) from error
    return found


def _file_audio(folder: Path) -> tuple[list[str], list[str], MediaOfRows]:
    """The audio files in `folder`, sorted by name, as `_parquet_audio` returns them."""
    paths = sorted((path for path in folder.iterdir() if path.is_file()), key=lambda p: p.name)
    return [path.name for path in paths], [str(path) for path in paths], FileMedia(paths).take


def _track_id(name: str) -> str:
    """The track id an audio file name carries: "1990389.mp3" → "1990389"."""
    return name.rpartition("/")[2].split(".")[0]


def _usable(
    tracks: list[str],
    where: list[str],
    captions: list[tuple[str, str]],
    missing_in: str,
    skipped: SkipReport,
) -> tuple[list[int], list[tuple[str, str]]]:
    """The audio rows that are the first of their track and have a caption, and the captions of
    their tracks; the other rows, and the captions of tracks without audio (named
    `<missing_in><track id>.mp3`), are skipped."""
    captioned = {track for track, _ in captions}
    rows, seen = [], set()
    for row, track in enumerate(tracks):
        if track in seen:
            skipped.add("second audio of a track", where[row])
        elif track not in captioned:
            skipped.add("audio without caption", where[row])
        else:
            rows.append(row)
        seen.add(track)
    for track, _ in captions:
        if track not in seen:
            skipped.add("caption whose audio file is missing", f"{missing_in}{track}.mp3")
    return rows, [(track, caption) for track, caption in captions if track in seen]
