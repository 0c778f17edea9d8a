"""FMACaps (Melechovsky et al., 2024): 1,000 clips of the Free Music Archive, 5–10 s at 16 kHz,
with captions; the text-to-music retrieval set of group-sparse Table 2.

It ships inside the MusicBench dataset repository (amaai-lab/MusicBench) as
FMACaps_eval_set.tar.gz. Layout under `root` (the folder the archive extracts to):

    audiodata/<clip>.wav   the 1,000 clips
    FMACaps_A.json         json lines, one caption per clip, in MusicBench's format
                           ({"location": ..., "main_caption": ..., "alt_caption": "", ...});
                           captions without control sentences
    FMACaps_B.json         the same clips, captions with all four control sentences
    FMACaps_C.json         the same clips, captions with some control sentences

Only the file name of `location` is used: the clip is `audio_dir`/<that name>, so a location
written relative to the archive's folder or to its parent finds the same file.

Each usable caption line is one text row paired with its clip; a clip named on several lines
(`caption_files` listing A and B) is one media row with several captions. Media rows are sorted
by file name. The release has no split (it is an evaluation set): a seeded random
`eval_fraction` of the clips is eval.

Bad input: a line whose clip is missing, a line with an empty caption, and a clip no line names
are skipped; a missing folder or caption file, a line without `location` or the caption field,
and a caption file none of whose clips is in `audio_dir` (the file and the folder disagree) stop
the read with the file named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vlmsae.datasets import SOURCES
from vlmsae.datasets.captioned_audio import field, is_caption, pair_captions, read_jsonl
from vlmsae.datasets.common import MaxItems, RandomSplit
from vlmsae.datasets.raw import (
    FileMedia,
    RawDataset,
    SkipReport,
    limit_media,
    require,
    seeded_split,
)
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting

LOCATION_FIX = "use the caption files of FMACaps_eval_set.tar.gz unchanged"
ARCHIVE_FIX = "extract FMACaps_eval_set.tar.gz (amaai-lab/MusicBench) and set `root` to its folder"


@dataclass(frozen=True, kw_only=True)
class FmaCapsSettings(MaxItems, RandomSplit):
    """Config section `datasets.X.fmacaps`."""

    root: str = setting(
        description="the folder FMACaps_eval_set.tar.gz extracts to (audiodata/, FMACaps_*.json)"
    )
    audio_dir: str = setting("audiodata", "folder of the clips, relative to root")
    caption_files: list[str] = setting(
        ["FMACaps_A.json"],
        "caption files read (FMACaps_A: no control sentences; _B: all four; _C: some)",
        minItems=1,
    )
    caption_key: str = setting(
        "main_caption", "caption field of each line (the release has every caption there)"
    )


def _lines(path: Path, caption_key: str) -> list[tuple[str, str, object]]:
    """(file:line, clip file name, caption field) of every line of a caption file."""
    require(path, "FMACaps caption file", f"check `caption_files`, or {ARCHIVE_FIX}")
    fix = f"set `caption_key` to the field that holds the caption; or {LOCATION_FIX}"
    return [
        (
            where,
            PurePosixPath(str(field(record, "location", where, LOCATION_FIX))).name,
            field(record, caption_key, where, fix),
        )
        for where, record in read_jsonl(path)
    ]


@SOURCES.register(
    "fmacaps",
    FmaCapsSettings,
    "FMACaps (FMACaps_eval_set.tar.gz of amaai-lab/MusicBench): FMACaps_A.json + audiodata/; "
    "one text row per caption line; no dataset split (seeded random eval share).",
    kind="raw",
    modality="audio",
)
def read(settings: FmaCapsSettings) -> RawDataset:
    """The FMACaps clips under `root` with their captions and a random split (module
    docstring)."""
    root = Path(settings.root)
    audio_dir = require(root / settings.audio_dir, "FMACaps audio folder", ARCHIVE_FIX)
    present = set(os.listdir(audio_dir))
    skipped = SkipReport()
    captions: list[tuple[str, str]] = []
    named: set[str] = set()
    for name in settings.caption_files:
        lines = _lines(root / name, settings.caption_key)
        if lines and not any(clip in present for _, clip, _ in lines):
            raise InputFileError(
                str(root / name),
                f"names {len(lines)} clips and none of them is in {audio_dir}",
                f"set `audio_dir` to the clips' folder, or {ARCHIVE_FIX}",
            )
        for where, clip, caption in lines:
            named.add(clip)
            if clip not in present:
                skipped.add("caption whose audio file is missing", str(audio_dir / clip))
            elif not is_caption(caption):
                skipped.add(f"empty {settings.caption_key}", where)
            else:
                captions.append((clip, caption.strip()))
    clips = sorted({clip for clip, _ in captions})
    for name in sorted(present - named):
        skipped.add("audio without caption", str(audio_dir / name))
    texts, pairs = pair_captions(clips, captions)
    split, split_source = seeded_split(len(clips), settings)
    raw = RawDataset(
        modality="audio",
        media=FileMedia([audio_dir / clip for clip in clips]),
        texts=texts,
        pairs=pairs,
        media_split=split,
        attrs={
            "root": str(root),
            "layout": f"{', '.join(settings.caption_files)} + {settings.audio_dir}/",
            "split_source": f"{split_source} (the release has no split)",
            "caption_key": settings.caption_key,
        },
        skipped=skipped,
    )
    return limit_media(raw, settings.max_items)
