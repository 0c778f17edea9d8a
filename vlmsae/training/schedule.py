"""The learning-rate schedule of a training run, and the step at which the run ends.

Without a stop rule (`train.stop_tolerance` unset): linear warmup, then cosine decay to 0 at
`steps`; the run ends at `steps`. With one (`StopRule`: `train.stop_tolerance`, `stop_window`,
`stop_decay_steps`), warmup–stable–decay: linear warmup, a constant learning rate, then a cosine
decay to 0 over `decay_steps`. The decay starts when the logged
training loss reaches a plateau (`plateau`), or at `steps − decay_steps` if it never does, so
`steps` is a cap, and a run stopped early still ends on a decayed learning rate.

The step at which the decay started is the whole state of a `Schedule`: it goes into the
run's checkpoint, so a resumed run decays from the same step as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StopRule:
    """Stop on a plateau: the loss of the last log row is less than `tolerance` (relative) below
    that of the row `window` rows before it; then `decay_steps` of learning-rate decay."""

    tolerance: float
    window: int
    decay_steps: int

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < 1:
            raise ValueError(f"train.stop_tolerance must lie in (0, 1), not {self.tolerance}")
        if self.window < 1 or self.decay_steps < 1:
            raise ValueError("train.stop_window and train.stop_decay_steps must be at least 1")


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1 over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def plateau(losses: Sequence[float], rule: StopRule) -> str | None:
    """Why the run has reached a plateau after the logged `losses` (one per log row, oldest
    first), or None while the loss still falls by at least `rule.tolerance` over `rule.window`
    rows (or fewer rows than that are logged)."""
    if len(losses) <= rule.window:
        return None
    before, now = losses[-1 - rule.window], losses[-1]
    if not (math.isfinite(before) and math.isfinite(now)) or before <= 0:
        return None
    improvement = (before - now) / before
    if improvement >= rule.tolerance:
        return None
    return (
        f"plateau: the loss fell {improvement:.2%} over the last {rule.window} log rows "
        f"(< {rule.tolerance:.2%})"
    )


class Schedule:
    """The learning-rate factor of each step and the last step of a run.

    `decay_from` is the step at which the learning rate starts to decay (None without a stop
    rule: the cosine over `steps`); `reason` says why it starts there.
    """

    def __init__(self, steps: int, warmup: int, rule: StopRule | None):
        self.steps, self.warmup, self.rule = steps, warmup, rule
        self.decay_from: int | None = None
        self.reason: str | None = None
        if rule is not None:
            # The cap: a run that never reaches a plateau decays over its last decay_steps.
            self.decay_from = max(warmup, steps - rule.decay_steps)
            self.reason = f"cap: no plateau before step {self.decay_from}"

    @property
    def end(self) -> int:
        """The step after which the run stops."""
        if self.decay_from is None:
            return self.steps
        return min(self.steps, self.decay_from + self.rule.decay_steps)

    def factor(self, step: int) -> float:
        """The learning rate of `step` (0-based) as a share of `train.lr`."""
        if self.rule is None:
            return lr_factor(step, self.warmup, self.steps)
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.decay_from) / max(1, self.end - self.decay_from)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))

    def observe(self, step: int, losses: Sequence[float]) -> None:
        """After the log row of `step`: start the decay here if the loss has reached a plateau
        (only during the stable phase, after warmup)."""
        if self.rule is None or not self.warmup <= step < self.decay_from:
            return
        reason = plateau(losses, self.rule)
        if reason is not None:
            self.decay_from, self.reason = step, reason

    def record(self) -> dict:
        """What config.json records of when and why the run stopped (empty without a rule):
        `steps_run`, `decay_from` and `stop_reason`."""
        if self.rule is None:
            return {}
        return {"steps_run": self.end, "decay_from": self.decay_from, "stop_reason": self.reason}

    def state_dict(self) -> dict:
        return {"decay_from": self.decay_from, "reason": self.reason}

    def load_state_dict(self, state: dict) -> None:
        self.decay_from, self.reason = state["decay_from"], state["reason"]
