import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vlmsae.datasets import read_raw, source_settings
from vlmsae.datasets.raw import EVAL, TRAIN, RawDataset, first_rows
from vlmsae.decode import UndecodableMedia, decode_audio
from vlmsae.errors import ConfigError, InputFileError
from vlmsae.fixtures.audio_datasets import (
    GTZAN_GENRES,
    NSYNTH_FAMILIES,
    write_all,
    write_fmacaps,
    write_gtzan,
    write_jamendomaxcaps,
    write_musicbench,
    write_nsynth,
)

MUSICBENCH_FILES = ("MusicBench_train.json", "MusicBench_test_A.json", "MusicBench_test_B.json")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, dict]:
    return write_all(tmp_path_factory.mktemp("audio"))


def read(source: str, section: dict) -> RawDataset:
    """The RawDataset of a config section, read as the embed stage reads it."""
    return read_raw(source, source_settings(source, section, f"datasets.test.{source}"))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pairs(raw) -> list[tuple[str, str]]:
    """(where the clip is, caption) of every pair."""
    return [(raw.media.describe(m), raw.texts[t]) for m, t in raw.pairs]


def test_musicbench_pairs_every_caption_line_with_its_clip(written):
    root = Path(written["musicbench"]["root"])
    raw = read("musicbench", written["musicbench"])
    lines = {name: _lines(root / name) for name in MUSICBENCH_FILES}
    every = [line for name in MUSICBENCH_FILES for line in lines[name]]
    locations = sorted({line["location"] for line in every})
    assert raw.modality == "audio"
    assert len(raw.media) == len(locations) == 10  # 4 clips + 4 copies + 2 test clips
    assert [raw.media.describe(i) for i in range(len(raw.media))] == [
        str(root / "datashare" / location) for location in locations
    ]
    assert len(raw.texts) == len(every) == 9 + 2 + 2  # the train file repeats one clip
    assert sorted(_pairs(raw)) == sorted(
        (str(root / "datashare" / line["location"]), line["main_caption"]) for line in every
    )
    assert raw.skipped.total == 0


def test_musicbench_keeps_the_dataset_split(written):
    root = Path(written["musicbench"]["root"])
    raw = read("musicbench", written["musicbench"])
    test_clips = {
        str(root / "datashare" / line["location"]) for line in _lines(root / MUSICBENCH_FILES[1])
    }
    split = {raw.media.describe(i): code for i, code in enumerate(raw.media_split)}
    assert {where for where, code in split.items() if code == EVAL} == test_clips
    assert sum(code == TRAIN for code in split.values()) == 8
    # Test A and B caption the same clips: both captions are eval text rows.
    text_split = raw.text_split()
    assert sum(text_split == EVAL) == 4
    assert raw.attrs["split_source"] == (
        "MusicBench_train.json→train, MusicBench_test_A.json, MusicBench_test_B.json→eval"
    )
    assert raw.attrs["clips_in_train_and_eval"] == 0


def test_musicbench_caption_key_picks_the_caption_field(written):
    root = Path(written["musicbench"]["root"])
    raw = read("musicbench", {**written["musicbench"], "caption_key": "alt_caption"})
    # As in the release, alt_caption is empty on train lines; on test lines it is the caption
    # without control sentences.
    assert raw.skipped.counts == {"empty alt_caption": 9}
    assert len(raw.media) == 2 and list(raw.media_split) == [EVAL, EVAL]
    tests = [line for name in MUSICBENCH_FILES[1:] for line in _lines(root / name)]
    assert sorted(raw.texts) == sorted(line["alt_caption"] for line in tests)


def test_musicbench_max_items_keeps_the_first_clips_of_each_split(written):
    full = read("musicbench", written["musicbench"])
    first = read("musicbench", {**written["musicbench"], "max_items": 3})
    kept = [full.media.describe(row) for row in first_rows(full.media_split, 3)]
    assert [first.media.describe(i) for i in range(len(first.media))] == kept
    assert sorted(first.media_split) == [TRAIN, TRAIN, EVAL]
    assert sorted(_pairs(first)) == sorted(pair for pair in _pairs(full) if pair[0] in kept)


def test_musicbench_clips_decode(written):
    raw = read("musicbench", written["musicbench"])
    for index in range(len(raw.media)):
        waveform = decode_audio(raw.media.read(index), 48000, max_seconds=10.0)
        assert waveform.dtype == np.float32 and 48000 <= len(waveform) <= 3 * 48000
        assert 0.01 < np.abs(waveform).max() <= 1.0


def test_musicbench_bad_input(tmp_path):
    options = write_musicbench(tmp_path, missing_audio=1, corrupt_audio=1)
    raw = read("musicbench", options)
    missing = tmp_path / "datashare" / _lines(tmp_path / MUSICBENCH_FILES[0])[-1]["location"]
    assert raw.skipped.counts == {"caption whose audio file is missing": 1}
    assert raw.skipped.examples["caption whose audio file is missing"] == [str(missing)]
    assert len(raw.media) == 9 and str(missing) not in raw.media.paths
    corrupt = [i for i in range(len(raw.media)) if raw.media.read(i).startswith(b"this is not")]
    assert len(corrupt) == 1
    with pytest.raises(UndecodableMedia, match="unreadable audio"):
        decode_audio(raw.media.read(corrupt[0]), 48000, max_seconds=10.0)
    (tmp_path / "MusicBench_test_B.json").unlink()
    with pytest.raises(InputFileError, match="MusicBench_test_B.json: MusicBench caption file"):
        read("musicbench", options)


def test_musicbench_malformed_caption_files_are_named(tmp_path):
    options = write_musicbench(tmp_path)
    with pytest.raises(InputFileError, match="no 'caption' field .*main_caption.*caption_key"):
        read("musicbench", {**options, "caption_key": "caption"})
    with open(tmp_path / "MusicBench_test_A.json", "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(InputFileError, match=r"MusicBench_test_A.json:3: not a JSON line"):
        read("musicbench", options)
    shutil.rmtree(tmp_path / "datashare")
    with pytest.raises(InputFileError, match="datashare: MusicBench audio folder not found"):
        read("musicbench", options)


def _captions(root: Path) -> list[dict]:
    return _lines(root / "final_caption30sec.jsonl")


def _shard_audio(root: Path) -> dict[str, bytes]:
    """{track id: mp3 bytes} as the fixture stored them, in storage order."""
    stored = {}
    for shard in sorted((root / "data").glob("*.parquet")):
        for cell in pq.read_table(shard).column("audio").to_pylist():
            stored[cell["path"].removesuffix(".mp3")] = cell["bytes"]
    return stored


def test_jamendomaxcaps_pairs_every_caption_with_its_track(written):
    root = Path(written["jamendomaxcaps"]["root"])
    raw = read("jamendomaxcaps", written["jamendomaxcaps"])
    captions = _captions(root)
    stored = _shard_audio(root)
    assert len(raw.media) == len(stored) == 8
    assert len(raw.texts) == len(captions) == 15  # track k is captioned on 1 + k % 3 segments
    # Media rows in storage order; each caption paired with its track's audio.
    tracks = list(stored)
    assert sorted((tracks[m], raw.texts[t]) for m, t in raw.pairs) == sorted(
        (line["id"], line["caption"]) for line in captions
    )
    # No split in the release: a seeded fifth of the tracks is eval, the same on every read.
    assert sum(raw.media_split == EVAL) == 2
    again = read("jamendomaxcaps", written["jamendomaxcaps"])
    np.testing.assert_array_equal(again.media_split, raw.media_split)
    reseeded = read("jamendomaxcaps", {**written["jamendomaxcaps"], "seed": 1})
    assert not np.array_equal(reseeded.media_split, raw.media_split)
    assert raw.skipped.total == 0


def test_jamendomaxcaps_reads_the_mp3_bytes_of_the_shards(written):
    root = Path(written["jamendomaxcaps"]["root"])
    raw = read("jamendomaxcaps", written["jamendomaxcaps"])
    stored = list(_shard_audio(root).values())
    copy = pickle.loads(pickle.dumps(raw.media))  # what a DataLoader worker gets
    for index in range(len(raw.media)):
        assert copy.read(index) == raw.media.read(index) == stored[index]
        waveform = decode_audio(raw.media.read(index), 48000, max_seconds=10.0)
        assert waveform.dtype == np.float32 and 48000 <= len(waveform) <= 3 * 48000


def test_jamendomaxcaps_files_layout_reads_the_same_dataset(written, tmp_path):
    parquet = read("jamendomaxcaps", written["jamendomaxcaps"])
    files = read("jamendomaxcaps", write_jamendomaxcaps(tmp_path, audio_layout="files"))
    tracks = list(_shard_audio(Path(written["jamendomaxcaps"]["root"])))
    assert files.media.paths == [str(tmp_path / "mp3_files" / f"{t}.mp3") for t in tracks]
    assert files.texts == parquet.texts
    np.testing.assert_array_equal(files.pairs, parquet.pairs)
    np.testing.assert_array_equal(files.media_split, parquet.media_split)
    assert [files.media.read(i) for i in range(8)] == [parquet.media.read(i) for i in range(8)]


def test_jamendomaxcaps_middle_segments(written):
    root = Path(written["jamendomaxcaps"]["root"])
    raw = read("jamendomaxcaps", {**written["jamendomaxcaps"], "segments": "middle"})
    parts = {}
    for line in _captions(root):
        parts.setdefault(line["id"], []).append(line["caption"])
    # 1 segment: it; 2 segments (0–30 s, 30–60 s): a tie, the first; 3 segments: the second.
    assert raw.texts == [captions[(len(captions) - 1) // 2] for captions in parts.values()]
    np.testing.assert_array_equal(raw.pairs, np.stack([np.arange(8), np.arange(8)], axis=1))


def test_jamendomaxcaps_max_items_keeps_the_first_tracks_of_each_split(written):
    full = read("jamendomaxcaps", written["jamendomaxcaps"])
    first = read("jamendomaxcaps", {**written["jamendomaxcaps"], "max_items": 4})
    rows = first_rows(full.media_split, 4)
    assert [first.media.read(i) for i in range(4)] == [full.media.read(r) for r in rows]
    assert sum(first.media_split == EVAL) == 1
    kept_texts = [full.texts[t] for m, t in full.pairs if m in rows]
    assert first.texts == kept_texts


def test_jamendomaxcaps_bad_input(tmp_path):
    options = write_jamendomaxcaps(tmp_path, missing_audio=1, corrupt_audio=1, uncaptioned_audio=1)
    raw = read("jamendomaxcaps", options)
    assert len(raw.media) == 8
    missing_track = "1063352"  # the ninth id: captioned on 1 + 8 % 3 = 3 segments, no audio
    assert raw.skipped.counts == {
        "caption whose audio file is missing": 3,
        "audio without caption": 1,
    }
    assert raw.skipped.examples["caption whose audio file is missing"][0].endswith(
        f"*.parquet:{missing_track}.mp3"
    )
    assert raw.skipped.examples["audio without caption"][0].endswith(".parquet:1071271.mp3")
    with pytest.raises(UndecodableMedia, match="unreadable audio"):
        decode_audio(raw.media.read(0), 48000, max_seconds=10.0)
    (tmp_path / "final_caption30sec.jsonl").unlink()
    with pytest.raises(
        InputFileError, match="final_caption30sec.jsonl: JamendoMaxCaps caption file"
    ):
        read("jamendomaxcaps", options)


def test_jamendomaxcaps_missing_audio_is_named_by_its_path_in_the_files_layout(tmp_path):
    raw = read(
        "jamendomaxcaps", write_jamendomaxcaps(tmp_path, audio_layout="files", missing_audio=1)
    )
    assert raw.skipped.examples["caption whose audio file is missing"][0] == str(
        tmp_path / "mp3_files" / "1063352.mp3"
    )


def test_jamendomaxcaps_caption_keys_are_options(tmp_path):
    options = write_jamendomaxcaps(tmp_path, n_tracks=3)
    lines = _captions(tmp_path)
    renamed = [{"track_id": int(line["id"]), "text": line["caption"]} for line in lines]
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in renamed))
    raw = read(
        "jamendomaxcaps",
        {**options, "caption_file": "captions.jsonl", "id_key": "track_id", "caption_key": "text"},
    )
    assert raw.texts == [line["caption"] for line in lines]
    with pytest.raises(InputFileError, match="captions.jsonl:1: no 'id' field"):
        read("jamendomaxcaps", {**options, "caption_file": "captions.jsonl"})


def _undecodable(raw: RawDataset) -> list[int]:
    """Media rows holding bytes that are not audio (decoding them fails as in the embed stage)."""
    rows = []
    for index in range(len(raw.media)):
        try:
            decode_audio(raw.media.read(index), 48000, max_seconds=10.0)
        except UndecodableMedia:
            rows.append(index)
    return rows


def test_gtzan_reads_each_genre_folder_as_a_class_with_prompts(written):
    root = Path(written["gtzan"]["root"])
    raw = read("gtzan", written["gtzan"])
    assert raw.modality == "audio" and len(raw.media) == 20
    assert raw.class_names == list(GTZAN_GENRES)
    assert raw.templates == ["This is a {} song."]
    paths = [raw.media.describe(i) for i in range(20)]
    assert paths == [
        str(root / "genres" / genre / f"{genre}.{k:05d}.wav")
        for genre in GTZAN_GENRES
        for k in (0, 1)
    ]
    np.testing.assert_array_equal(raw.label, np.repeat(np.arange(10), 2))
    # One class prompt per clip, paired with it.
    np.testing.assert_array_equal(raw.pairs, np.stack([np.arange(20)] * 2, axis=1))
    assert raw.texts == [f"This is a {genre} song." for genre in GTZAN_GENRES for _ in (0, 1)]
    # No split in the release: a seeded fifth of the clips is eval, the same on every read.
    assert sum(raw.media_split == EVAL) == 4
    np.testing.assert_array_equal(read("gtzan", written["gtzan"]).media_split, raw.media_split)
    assert raw.skipped.total == 0 and not _undecodable(raw)


def test_gtzan_genres_templates_and_folder_are_settings(written, tmp_path):
    section = written["gtzan"]
    templates = ["This is a {} song.", "A {} track."]
    raw = read("gtzan", {**section, "genres": ["rock", "jazz"], "templates": templates})
    # Classes in the order given; the other eight folders are unknown classes, counted.
    assert raw.class_names == ["rock", "jazz"] and list(raw.label) == [1, 1, 0, 0]
    assert raw.skipped.counts == {"genre not in `genres`": 16}
    assert all(text in {"This is a jazz song.", "A jazz track."} for text in raw.texts[:2])
    # Kaggle's copy: the same folders under Data/genres_original.
    shutil.copytree(Path(section["root"]) / "genres", tmp_path / "Data" / "genres_original")
    moved = read("gtzan", {"root": str(tmp_path), "genres_dir": "Data/genres_original"})
    assert moved.texts == read("gtzan", section).texts
    with pytest.raises(ConfigError, match="templates"):
        read("gtzan", {**section, "templates": "This {} is {}."})


def test_gtzan_bad_input(tmp_path):
    options = write_gtzan(tmp_path, corrupt_audio=1, unknown_genre=2)
    (tmp_path / "genres" / "jazz" / "notes.txt").write_text("not a clip")
    raw = read("gtzan", options)
    assert raw.skipped.counts == {"genre not in `genres`": 2, "not an audio file": 1}
    assert raw.skipped.examples["not an audio file"] == [str(tmp_path / "genres/jazz/notes.txt")]
    assert len(raw.media) == 20
    # The corrupt clip is read as it is and left to the embedding stage, which skips it.
    assert _undecodable(raw) == [0]
    shutil.rmtree(tmp_path / "genres" / "metal")
    with pytest.raises(InputFileError, match="genres/metal: GTZAN genre folder 'metal' not found"):
        read("gtzan", options)
    shutil.rmtree(tmp_path / "genres")
    with pytest.raises(InputFileError, match="genres: GTZAN genre folder not found.*genres_dir"):
        read("gtzan", options)


def _examples(folder: Path) -> dict[str, dict]:
    return json.loads((folder / "examples.json").read_text())


def test_nsynth_reads_notes_by_family_and_keeps_the_split(written):
    root = Path(written["nsynth"]["root"])
    raw = read("nsynth", written["nsynth"])
    folders = {"nsynth-valid": TRAIN, "nsynth-test": EVAL}
    examples = {folder: _examples(root / folder) for folder in folders}
    notes = [(folder, name) for folder in folders for name in examples[folder]]
    assert len(raw.media) == len(notes) == 15  # 5 families × (2 valid + 1 test)
    assert [raw.media.describe(i) for i in range(15)] == [
        str(root / folder / "audio" / f"{name}.wav") for folder, name in notes
    ]
    families = [examples[folder][name]["instrument_family_str"] for folder, name in notes]
    assert [raw.class_names[c] for c in raw.label] == families
    # The class index is NSynth's instrument_family; prompts name the family with spaces.
    assert list(raw.label) == [examples[f][n]["instrument_family"] for f, n in notes]
    assert raw.class_names == [family.replace("_", " ") for family in NSYNTH_FAMILIES]
    assert "synth lead" in raw.class_names
    assert raw.texts == [f"This is the sound of a {family}." for family in families]
    assert list(raw.media_split) == [folders[folder] for folder, _ in notes]
    assert raw.attrs["split_source"] == "nsynth-valid→train, nsynth-test→eval"
    assert raw.skipped.total == 0 and not _undecodable(raw)
    swapped = read(
        "nsynth",
        {**written["nsynth"], "train_folders": ["nsynth-test"], "eval_folders": ["nsynth-valid"]},
    )
    assert sum(swapped.media_split == EVAL) == 10


def test_nsynth_bad_input(tmp_path):
    options = write_nsynth(
        tmp_path, missing_audio=1, corrupt_audio=1, unknown_family=2, unlisted_audio=1
    )
    raw = read("nsynth", options)
    valid = tmp_path / "nsynth-valid"
    listed = list(_examples(valid))
    assert raw.skipped.counts == {
        "note whose audio file is missing": 1,
        "instrument family not in `families`": 1,  # the other theremin note has no wav
        "audio without an examples.json entry": 1,
    }
    assert raw.skipped.examples["note whose audio file is missing"] == [
        str(valid / "audio" / f"{listed[-1]}.wav")
    ]
    assert len(raw.media) == 15 and _undecodable(raw) == [0]
    families = read("nsynth", {**options, "families": ["bass", "guitar"]})
    assert families.skipped.counts["instrument family not in `families`"] == 1 + 6 + 3


def test_nsynth_missing_or_disagreeing_files_are_named(tmp_path):
    options = write_nsynth(tmp_path)
    valid = tmp_path / "nsynth-valid"
    examples = _examples(valid)
    first = next(iter(examples))
    del examples[first]["instrument_family_str"]
    (valid / "examples.json").write_text(json.dumps(examples))
    with pytest.raises(InputFileError, match=f"examples.json: {first}: no 'instrument_family_str'"):
        read("nsynth", options)
    (valid / "examples.json").write_text("[1, 2]")
    with pytest.raises(InputFileError, match="examples.json: not an object of"):
        read("nsynth", options)
    (valid / "examples.json").write_text(json.dumps(_examples(tmp_path / "nsynth-test")))
    with pytest.raises(InputFileError, match="names 5 notes and none has its wav in"):
        read("nsynth", options)
    (valid / "examples.json").unlink()
    with pytest.raises(InputFileError, match="nsynth-valid/examples.json: NSynth examples.json"):
        read("nsynth", options)
    with pytest.raises(InputFileError, match="nsynth-train: NSynth split folder not found"):
        read("nsynth", {**options, "train_folders": ["nsynth-train"]})


def test_fmacaps_pairs_each_caption_line_with_its_clip(written):
    root = Path(written["fmacaps"]["root"])
    raw = read("fmacaps", written["fmacaps"])
    lines = _lines(root / "FMACaps_A.json")
    clips = sorted(Path(line["location"]).name for line in lines)
    assert [raw.media.describe(i) for i in range(len(raw.media))] == [
        str(root / "audiodata" / clip) for clip in clips
    ]
    assert sorted(_pairs(raw)) == sorted(
        (str(root / "audiodata" / Path(line["location"]).name), line["main_caption"])
        for line in lines
    )
    assert sum(raw.media_split == EVAL) == 2 and raw.skipped.total == 0
    assert raw.label is None and not _undecodable(raw)
    # Captions A and B of each clip: one media row, two text rows.
    both = read(
        "fmacaps", {**written["fmacaps"], "caption_files": ["FMACaps_A.json", "FMACaps_B.json"]}
    )
    assert len(both.media) == 10 and len(both.texts) == 20
    np.testing.assert_array_equal(np.bincount(both.pairs[:, 0]), np.full(10, 2))
    np.testing.assert_array_equal(both.media_split, raw.media_split)


def test_fmacaps_uses_the_file_name_of_location(written, tmp_path):
    root = Path(written["fmacaps"]["root"])
    raw = read("fmacaps", written["fmacaps"])
    lines = _lines(root / "FMACaps_A.json")
    for prefix in ("", "FMACaps_eval_set/audiodata/"):
        moved = [{**line, "location": prefix + Path(line["location"]).name} for line in lines]
        name = f"captions_{len(prefix)}.json"
        (tmp_path / name).write_text("".join(json.dumps(line) + "\n" for line in moved))
        shutil.copy(tmp_path / name, root / name)
        again = read("fmacaps", {**written["fmacaps"], "caption_files": [name]})
        assert _pairs(again) == _pairs(raw)
        (root / name).unlink()


def test_fmacaps_bad_input(tmp_path):
    options = write_fmacaps(tmp_path, missing_audio=1, corrupt_audio=2, uncaptioned_audio=2)
    lines = _lines(tmp_path / "FMACaps_A.json")
    lines[0]["main_caption"] = "  "
    (tmp_path / "FMACaps_A.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    raw = read("fmacaps", options)
    assert raw.skipped.counts == {
        "caption whose audio file is missing": 1,
        "empty main_caption": 1,
        "audio without caption": 2,
    }
    missing = Path(lines[-1]["location"]).name
    assert raw.skipped.examples["caption whose audio file is missing"] == [
        str(tmp_path / "audiodata" / missing)
    ]
    # Clip 0 lost its only caption, and with it its corrupt audio; clip 1's is left to the
    # embedding stage.
    assert len(raw.media) == 8 and _undecodable(raw) == [0]
    (tmp_path / "FMACaps_A.json").write_text("{not json\n")
    with pytest.raises(InputFileError, match="FMACaps_A.json:1: not a JSON line"):
        read("fmacaps", options)
    with pytest.raises(InputFileError, match="FMACaps_C.json:1: no 'text' field"):
        read("fmacaps", {**options, "caption_files": ["FMACaps_C.json"], "caption_key": "text"})
    shutil.rmtree(tmp_path / "audiodata")
    (tmp_path / "audiodata").mkdir()
    (tmp_path / "audiodata" / "other.wav").write_bytes(b"")
    with pytest.raises(
        InputFileError, match="FMACaps_B.json: names 10 clips and none of them is in"
    ):
        read("fmacaps", {**options, "caption_files": ["FMACaps_B.json"]})
    with pytest.raises(InputFileError, match="FMACaps_D.json: FMACaps caption file not found"):
        read("fmacaps", {**options, "caption_files": ["FMACaps_D.json"]})
    shutil.rmtree(tmp_path / "audiodata")
    with pytest.raises(InputFileError, match="audiodata: FMACaps audio folder not found"):
        read("fmacaps", options)
