"""What every workflow script needs: its log file and its thread count.

A job that stops on an expected error (VlmsaeError: bad input, a damaged input file) writes its
one line to the log and to the terminal and exits with status 2; any other error keeps its
traceback in the log.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from vlmsae.errors import VlmsaeError

EXIT_ERROR = 2


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
        except VlmsaeError as error:
            logging.error("%s", error)
            print(f"vlmsae: {error}", file=sys.__stderr__)
            raise SystemExit(EXIT_ERROR) from error
        except Exception:
            logging.exception("failed")
            raise
