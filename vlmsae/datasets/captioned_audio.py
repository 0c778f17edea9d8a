"""Helpers shared by the audio–caption adapters (`musicbench`, `jamendomaxcaps`).

Both read json-lines caption files and pair every caption with the clip it describes: one media
row per clip, one text row per caption.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.errors import InputFileError

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np


def read_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    """("file:line", record) for every non-blank line of a json-lines file."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputFileError(
                    where,
                    f"not a JSON line ({error.msg})",
                    "re-download the file: it should hold one JSON object per line",
                ) from error
            if not isinstance(record, dict):
                raise InputFileError(where, "not a JSON object", "re-download the file unchanged")
            yield where, record


def field(record: dict, key: str, where: str, fix: str) -> object:
    """record[key], or an error naming the line and the fields it has."""
    if key not in record:
        raise InputFileError(where, f"no '{key}' field (it has: {', '.join(sorted(record))})", fix)
    return record[key]


def is_caption(value: object) -> bool:
    """Whether a caption field holds text (some fields are empty on part of the rows)."""
    return isinstance(value, str) and bool(value.strip())


def pair_captions(keys: list[str], captions: list[tuple[str, str]]) -> tuple[list[str], np.ndarray]:
    """Text rows and [n, 2] (media row, text row) pairs: one text row per caption, in file order.

    keys: the clips, in the order of the media rows (each with at least one caption)
    captions: (clip key, caption)
    """
    import numpy as np

    row = {key: number for number, key in enumerate(keys)}
    pairs = [(row[key], number) for number, (key, _) in enumerate(captions)]
    return [caption for _, caption in captions], np.array(pairs, dtype=np.int64).reshape(-1, 2)
