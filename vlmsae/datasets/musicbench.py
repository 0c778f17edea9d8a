"""MusicBench (amaai-lab/MusicBench on Hugging Face): 10 s music clips with text captions.

Layout under `root` (the dataset repository, with MusicBench.tar.gz extracted in place):

    MusicBench_train.json        json lines, one caption per line:
                                 {"location": "data_aug2/<ytid>_<n>.wav", "main_caption": ...,
                                  "alt_caption": ..., "prompt_ch": ..., "bpm": ..., ...}
    MusicBench_test_A.json       the test clips, captions without control sentences
    MusicBench_test_B.json       the same clips, captions with control sentences
    datashare/data/<ytid>.wav           MusicCaps clips (the archive unpacks to datashare/)
    datashare/data_aug2/<ytid>_<n>.wav  their pitch-, tempo- and volume-shifted copies

`location` is relative to `datashare/`. The dataset's split is kept: clips named in the train file
are train, clips named in a test file are eval (a clip named in both is eval, and counted in
attrs["clips_in_train_and_eval"]). Every caption line is one text row paired with its clip; a clip
named on several lines (test A and B share their clips, the train file repeats some) is one media
row. Older revisions of the repository name the test files MusicBench_testA.json and
MusicBench_testB.json: set `eval_files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlmsae.datasets import SOURCES
from vlmsae.datasets.captioned_audio import field, is_caption, pair_captions, read_jsonl
from vlmsae.datasets.common import MaxItems
from vlmsae.datasets.raw import (
    EVAL,
    TRAIN,
    FileMedia,
    RawDataset,
    SkipReport,
    existing_files,
    limit_media,
    require,
)
from vlmsae.registry_base import setting

LOCATION_FIX = "use the caption files of amaai-lab/MusicBench unchanged"
CAPTION_FIX = "set `caption_key` to the field that holds the caption"


@dataclass(frozen=True, kw_only=True)
class MusicBenchSettings(MaxItems):
    """Config section `datasets.X.musicbench`."""

    root: str = setting(description="the dataset folder holding MusicBench_*.json and datashare/")
    audio_dir: str = setting(
        "datashare",
        "folder (relative to root) that `location` is relative to: where MusicBench.tar.gz unpacks",
    )
    caption_key: str = setting(
        "main_caption",
        "caption field of each line (main_caption, alt_caption...); lines where it is empty are "
        "skipped",
    )
    train_files: list[str] = setting(
        ["MusicBench_train.json"], "caption files whose clips are train"
    )
    eval_files: list[str] = setting(
        ["MusicBench_test_A.json", "MusicBench_test_B.json"],
        "caption files whose clips are eval (older revisions: MusicBench_testA.json, "
        "MusicBench_testB.json)",
    )


@SOURCES.register(
    "musicbench",
    MusicBenchSettings,
    "MusicBench (amaai-lab/MusicBench): MusicBench_{train,test_A,test_B}.json + "
    "MusicBench.tar.gz extracted to datashare/; train file → train, test files → eval; one text "
    "row per caption line.",
    kind="raw",
    modality="audio",
)
def read(settings: MusicBenchSettings) -> RawDataset:
    """The MusicBench clips under `root`, with their captions and splits."""
    root = Path(settings.root)
    audio_root = require(
        root / settings.audio_dir,
        "MusicBench audio folder",
        "extract MusicBench.tar.gz in `root` (it unpacks to datashare/), or set `audio_dir`",
    )
    caption_key = settings.caption_key
    files = {TRAIN: settings.train_files, EVAL: settings.eval_files}
    lines = [
        (split, where, location, caption)
        for split, names in files.items()
        for name in names
        for where, location, caption in _lines(root / name, caption_key)
    ]
    skipped = SkipReport()
    captions, named = _usable(lines, audio_root, caption_key, skipped)
    # Eval wins: a clip the test files name never trains.
    split = {location: TRAIN for location in named[TRAIN]} | {
        location: EVAL for location in named[EVAL]
    }
    locations = sorted(split)
    texts, pairs = pair_captions(locations, captions)
    raw = RawDataset(
        modality="audio",
        media=FileMedia([audio_root / location for location in locations]),
        texts=texts,
        pairs=pairs,
        media_split=[split[location] for location in locations],
        attrs={
            "root": str(root),
            "layout": "MusicBench_{train,test_A,test_B}.json + datashare/",
            "split_source": f"{', '.join(files[TRAIN])}→train, {', '.join(files[EVAL])}→eval",
            "caption_key": caption_key,
            "clips_in_train_and_eval": len(named[TRAIN] & named[EVAL]),
        },
        skipped=skipped,
    )
    return limit_media(raw, settings.max_items)


def _lines(path: Path, caption_key: str) -> list[tuple[str, str, object]]:
    """(file:line, location, caption field) of every line of a caption file."""
    require(path, "MusicBench caption file", "check `root`, or set `train_files`/`eval_files`")
    return [
        (
            where,
            str(field(record, "location", where, LOCATION_FIX)),
            field(record, caption_key, where, CAPTION_FIX),
        )
        for where, record in read_jsonl(path)
    ]


def _usable(
    lines: list[tuple], audio_root: Path, caption_key: str, skipped: SkipReport
) -> tuple[list[tuple[str, str]], dict[int, set[str]]]:
    """(location, caption) of the lines whose clip exists and whose caption is not empty, and
    the clips each split names; the other lines are skipped."""
    locations = sorted({location for _, _, location, _ in lines})
    found = existing_files([audio_root / location for location in locations])
    exists = dict(zip(locations, found, strict=True))
    captions: list[tuple[str, str]] = []
    named: dict[int, set[str]] = {TRAIN: set(), EVAL: set()}
    for split, where, location, caption in lines:
        if not exists[location]:
            skipped.add("caption whose audio file is missing", str(audio_root / location))
        elif not is_caption(caption):
            skipped.add(f"empty {caption_key}", where)
        else:
            captions.append((location, caption.strip()))
            named[split].add(location)
    return captions, named
