"""User-facing errors: one line that names the file or config key and the fix."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class VlmsaeError(Exception):
    """Raised for bad input; the message is meant to be shown to the user as is."""


class ConfigError(VlmsaeError):
    """A config value is wrong. The message names the key and how to fix it."""

    def __init__(self, key: str, problem: str, fix: str):
        super().__init__(f"config key '{key}': {problem}; fix: {fix}")
        self.key, self.problem, self.fix = key, problem, fix


class InputFileError(VlmsaeError):
    """An input file is missing or unreadable. The message names the path and the fix."""

    def __init__(self, path: str, problem: str, fix: str):
        super().__init__(f"{path}: {problem}; fix: {fix}")
        self.path = path


class DamagedOutputError(InputFileError):
    """A pipeline output is missing, truncated or fails its manifest's checks
    (vlmsae.stores.manifest). The fix is to rebuild it with the rule that wrote it."""

    def __init__(self, path: str, problem: str, rule: str):
        super().__init__(path, problem, f"re-run with `snakemake --forcerun {rule}`")
        self.rule = rule


def check_output_folders(paths: Iterable[str | Path]) -> None:
    """InputFileError naming the first file that sits where a folder of an output path in
    `paths` must go (`results/embeddings` written as a file): otherwise creating the output's
    folder ends in a traceback (NotADirectoryError, FileExistsError)."""
    checked: set[Path] = set()
    for path in paths:
        for folder in reversed(Path(path).parents):
            if folder in checked:
                continue
            checked.add(folder)
            if folder.exists() and not folder.is_dir():
                raise InputFileError(
                    str(folder),
                    "a file where a folder of the results should be",
                    "move or delete it, then re-run snakemake",
                )
