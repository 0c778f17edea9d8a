"""NSynth (Engel et al., 2017): 4 s notes of about 1,000 instruments, classed by instrument family.

Layout under `root` (nsynth-{train,valid,test}.jsonwav.tar.gz extracted in place):

    nsynth-valid/examples.json        one JSON object {note_str: features}, features holding
                                      "note_str", "instrument_family_str" ("bass", ...),
                                      "instrument_family", "pitch", "velocity", ...
    nsynth-valid/audio/<note_str>.wav 16 kHz mono
    nsynth-test/...                   the same

Split: the notes of the `train_folders` are train (default nsynth-valid, 12,678 notes; add
nsynth-train for the 289,205 of the release's train split), those of the `eval_folders` eval
(default nsynth-test, 4,096 notes). Media rows in folder order, then note order of the file.

Classes: the instrument families of the setting `families` (default NSynth's eleven, in the order
of its `instrument_family` index), read from each note's `instrument_family_str`; a note of
another family is an unknown class, skipped. Prompt class names put spaces for underscores
("synth lead"). Text rows: class prompts (`vlmsae.datasets.image_prompts`), default "This is the
sound of a {}.".

Bad input: a note whose wav is missing, and a wav no note names, are skipped; a missing folder or
examples.json, an entry without the family field, and an examples.json none of whose notes has
its wav in audio/ (the file and the folder disagree) stop the read with the file named.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vlmsae.datasets import SOURCES
from vlmsae.datasets.image_prompts import (
    ClassPromptSettings,
    class_prompt_dataset,
    templates_setting,
)
from vlmsae.datasets.raw import (
    EVAL,
    TRAIN,
    FileMedia,
    RawDataset,
    SkipReport,
    require,
)
from vlmsae.errors import InputFileError
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.

FAMILIES = [
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "synth_lead",
    "vocal",
]
FAMILY_KEY = "instrument_family_str"
TEMPLATES = ["This is the sound of a {}."]
NSYNTH_FIX = "extract nsynth-<split>.jsonwav.tar.gz from magenta.tensorflow.org/datasets/nsynth"


@dataclass(frozen=True, kw_only=True)
class NSynthSettings(ClassPromptSettings):
    """Config section `datasets.X.nsynth`."""

    root: str = setting(description="the folder holding the nsynth-<split>/ folders")
    train_folders: list[str] = setting(
        ["nsynth-valid"],
        "split folders (relative to root) whose notes are train; add nsynth-train for the "
        "release's train split",
        minItems=1,
    )
    eval_folders: list[str] = setting(
        ["nsynth-test"], "split folders (relative to root) whose notes are eval", minItems=1
    )
    families: list[str] = setting(
        FAMILIES,
        "the classes: instrument_family_str values, in class order",
        minItems=2,
        uniqueItems=True,
    )
    templates: str | list[str] = templates_setting(TEMPLATES, "note")


def _examples(folder: Path) -> dict[str, dict]:
    """{note name: features} of a split folder's examples.json."""
    path = require(
        folder / "examples.json", "NSynth examples.json", f"check `root`, then {NSYNTH_FIX}"
    )
    try:
        examples = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputFileError(str(path), f"not valid JSON ({error})", NSYNTH_FIX) from error
    if not isinstance(examples, dict) or not all(isinstance(v, dict) for v in examples.values()):
        raise InputFileError(str(path), "not an object of {note_str: features} objects", NSYNTH_FIX)
    for name, features in examples.items():
        if FAMILY_KEY not in features:
            raise InputFileError(
                f"{path}: {name}",
                f"no '{FAMILY_KEY}' field (it has: {sorted(features)})",
                NSYNTH_FIX,
            )
    return examples


def _notes(
    folder: Path, index: dict[str, int], skipped: SkipReport
) -> tuple[list[Path], list[int]]:
    """(wav of each usable note, its class) of one split folder, in the file's note order."""
    import numpy as np

    examples = _examples(folder)
    audio = require(folder / "audio", "NSynth audio folder", f"check `root`, then {NSYNTH_FIX}")
    # One listing of the folder, not a stat per note (289,205 in nsynth-train).
    present = set(os.listdir(audio))
    wavs = [audio / f"{name}.wav" for name in examples]
    found = np.array([wav.name in present for wav in wavs], dtype=bool)
    if examples and not found.any():
        raise InputFileError(
            str(folder / "examples.json"),
            f"names {len(examples)} notes and none has its wav in {audio}",
            "use the examples.json and audio/ of one split folder, unchanged",
        )
    paths, label = [], []
    for wav, exists, features in zip(wavs, found, examples.values(), strict=True):
        family = features[FAMILY_KEY]
        if not exists:
            skipped.add("note whose audio file is missing", str(wav))
        elif family not in index:
            skipped.add("instrument family not in `families`", f"{wav} ({family})")
        else:
            paths.append(wav)
            label.append(index[family])
    for name in sorted(present - {wav.name for wav in wavs}):
        skipped.add("audio without an examples.json entry", str(audio / name))
    return paths, label


@SOURCES.register(
    "nsynth",
    NSynthSettings,
    "NSynth (nsynth-<split>/examples.json + audio/*.wav); nsynth-valid → train, nsynth-test → "
    "eval; classes = instrument families; text = class prompts ('This is the sound of a {}.').",
    kind="raw",
    modality="audio",
)
def read(settings: NSynthSettings) -> RawDataset:
    """The NSynth notes under `root` with their families and class-prompt texts (module
    docstring)."""
    import numpy as np

    root = Path(settings.root)
    index = {family: number for number, family in enumerate(settings.families)}
    skipped = SkipReport()
    paths, label, split = [], [], []
    for code, folders in ((TRAIN, settings.train_folders), (EVAL, settings.eval_folders)):
        for name in folders:
            folder = require(root / name, "NSynth split folder", f"check `root`, then {NSYNTH_FIX}")
            folder_paths, folder_label = _notes(folder, index, skipped)
            paths += folder_paths
            label += folder_label
            split += [code] * len(folder_paths)
    attrs = {
        "root": str(root),
        "layout": "nsynth-<split>/examples.json + audio/",
        "split_source": (
            f"{', '.join(settings.train_folders)}→train, {', '.join(settings.eval_folders)}→eval"
        ),
        "families": list(settings.families),
    }
    class_names = [family.replace("_", " ") for family in settings.families]
    return class_prompt_dataset(
        FileMedia(paths),
        np.array(label, dtype=np.int64),
        class_names,
        np.array(split, dtype=np.int8),
        settings,
        attrs,
        skipped,
        "audio",
    )
