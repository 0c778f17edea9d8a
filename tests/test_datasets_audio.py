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
from vlmsae.errors import InputFileError
from vlmsae.fixtures.audio_datasets import write_all, write_jamendomaxcaps, write_musicbench

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
