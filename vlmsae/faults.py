"""Named fault points: the tests' way to kill a process at an exact step of a write.

Setting `VLMSAE_FAULT=<point>` makes the process end at once (`os._exit`, so no `finally`
block, buffer flush or atexit handler runs: as a SIGKILL would) when it reaches `fault(<point>)`.
Unset, `fault` does nothing. The points are listed where they are raised (e.g.
`vlmsae.embedding.FINALISE_POINTS`); `tests/test_embedding.py` kills at each and re-runs.
"""

from __future__ import annotations

import os

FAULT_VARIABLE = "VLMSAE_FAULT"
FAULT_EXIT = 86  # the exit status of a process ended at a fault point


def fault(point: str) -> None:
    """End the process now when `VLMSAE_FAULT` names `point`."""
    if os.environ.get(FAULT_VARIABLE) == point:
        os._exit(FAULT_EXIT)
