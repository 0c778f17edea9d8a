"""Pre-emption: SIGTERM (how SLURM pre-empts) as a flag the training loop checks between steps,
so the run's state can be saved before it exits."""

from __future__ import annotations

import signal
import threading


class Preemption:
    """Turns SIGTERM into a flag the loop checks, so the state can be saved before exiting."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
