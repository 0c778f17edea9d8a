"""GTZAN genre collection (Tzanetakis and Cook, 2002): 1,000 clips of 30 s, 100 per genre.

Layout under `root` (the release's genres.tar.gz extracted in place):

    genres/blues/blues.00000.au ... genres/rock/rock.00099.au

Copies that converted the clips to wav keep the folders (Kaggle's and Hugging Face's
`Data/genres_original/<genre>/<genre>.000NN.wav`: set `genres_dir`). Any audio suffix of
AUDIO_SUFFIXES is read.

Classes: the genres of the setting `genres` (default the release's ten), in that order; a
folder under `genres_dir` that is not one of them is an unknown class, its files skipped. A
named genre without its folder stops the read (a missing folder). Files that are not audio (by
suffix) are skipped; a clip that does not decode is skipped by the embedding stage. Split: the
release has none, so a seeded random `eval_fraction` of the clips is eval. Text rows: class
prompts (`vlmsae.datasets.image_prompts`), default "This is a {} song.".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.datasets import SOURCES
from vlmsae.datasets.common import RandomSplit
from vlmsae.datasets.image_prompts import (
    ClassPromptSettings,
    class_prompt_dataset,
    templates_setting,
)
from vlmsae.datasets.raw import FileMedia, RawDataset, SkipReport, require, seeded_split
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

GENRES = [
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
]
AUDIO_SUFFIXES = (".au", ".wav", ".flac", ".mp3", ".ogg")
TEMPLATES = ["This is a {} song."]


@dataclass(frozen=True, kw_only=True)
class GtzanSettings(ClassPromptSettings, RandomSplit):
    """Config section `datasets.X.gtzan`."""

    root: str = setting(description="the folder holding genres/ (where genres.tar.gz extracts)")
    genres_dir: str = setting(
        "genres",
        "folder of the genre folders, relative to root (Kaggle/Hugging Face copies: "
        "Data/genres_original)",
    )
    genres: list[str] = setting(
        GENRES, "the classes: genre folder names, in class order", minItems=2, uniqueItems=True
    )
    templates: str | list[str] = templates_setting(TEMPLATES, "clip")


def _clips(folder: Path, genres: list[str], skipped: SkipReport) -> tuple[list[Path], np.ndarray]:
    """(audio files, [N] class of each) under the genre folders of `folder`, sorted by genre and
    file name; files of other folders, and files that are not audio, are skipped."""
    import numpy as np

    index = {genre: number for number, genre in enumerate(genres)}
    for genre in genres:
        require(folder / genre, f"GTZAN genre folder '{genre}'", "check `root` and `genres`")
    paths, label = [], []
    for genre_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in genre_folder.iterdir() if p.is_file()):
            if genre_folder.name not in index:
                skipped.add("genre not in `genres`", str(path))
            elif path.suffix.lower() not in AUDIO_SUFFIXES:
                skipped.add("not an audio file", str(path))
            else:
                paths.append(path)
                label.append(index[genre_folder.name])
    return paths, np.array(label, dtype=np.int64)


@SOURCES.register(
    "gtzan",
    GtzanSettings,
    "GTZAN genres (genres/<genre>/*.au or *.wav); seeded random split; text = class prompts "
    "('This is a {} song.').",
    kind="raw",
    modality="audio",
)
def read(settings: GtzanSettings) -> RawDataset:
    """The GTZAN clips under `root` with their genres and class-prompt texts (module docstring)."""
    root = Path(settings.root)
    folder = require(
        root / settings.genres_dir,
        "GTZAN genre folder",
        "extract genres.tar.gz in `root`, or set `genres_dir` (Kaggle: Data/genres_original)",
    )
    skipped = SkipReport()
    paths, label = _clips(folder, settings.genres, skipped)
    split, split_source = seeded_split(len(paths), settings)
    attrs = {
        "root": str(root),
        "layout": f"{settings.genres_dir}/<genre>/ folders",
        "split_source": f"{split_source} (the release has no split)",
    }
    return class_prompt_dataset(
        FileMedia(paths), label, settings.genres, split, settings, attrs, skipped, "audio"
    )
