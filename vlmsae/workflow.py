"""What every workflow script needs: its log file and its thread count."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch


@contextlib.contextmanager
def logged(log_path: str | Path, threads: int = 1) -> Iterator[None]:
    """Send logging, stderr (progress bars, warnings, tracebacks) and stdout to `log_path`."""
    torch.set_num_threads(threads)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "w") as handle,
        contextlib.redirect_stderr(handle),
        contextlib.redirect_stdout(handle),
    ):
        logging.basicConfig(
            stream=handle,
            level=logging.INFO,
            force=True,
            format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        )
        try:
            yield
        except Exception:
            logging.exception("failed")
            raise

