"""What every workflow script needs: its log file and its thread count."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(log_path: str | Path, threads: int = 1) -> Iterator[None]:
    """Send logging, stderr (progress bars, warnings, tracebacks) and stdout to `log_path`."""
    # Only jobs that compute with torch have imported it (their scripts import the package's
    # torch modules first); table and figure jobs would pay seconds to import it for nothing.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
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

