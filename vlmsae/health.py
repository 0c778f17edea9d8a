"""A run's health: named warnings, each with its numbers, read off its eval summary and train log.

A run can finish, and every metric be computed, while the SAE is broken: text rows reconstructed
worse than by their mean, most atoms dead, a reconstruction that got worse over training. The
checks below say so in `summary.json` (`health`), `summary.csv`, the metrics job's log,
`vlmsae runs`, the report and the explorer. Each flag starts with the name of what it checks:

- `r2`: the eval R² (both modalities pooled) is below `min_r2`;
- `r2_image`, `r2_text`: a modality's eval R² is below 0, i.e. its rows are reconstructed worse
  than by their own mean (a definition, not a tuned threshold);
- `dead_atoms`: the share of atoms active on no eval row is above `max_dead_share`;
- `train_gap`: the train-split R² exceeds the eval R² by more than `max_train_gap`;
- `loss_rise`, `mse_rise`: the training loss (the sum of all terms), or its reconstruction term,
  rose over the end of training (`rise`);
- `non_finite`: a summary value, or a train-log cell, is NaN or infinite. Such summary values are
  dropped: summary.json never holds NaN (docs/results.md), an absent key means undefined.

Thresholds are config keys `evaluation.health.*` (HealthSettings), chosen from what the numbers
mean, never to pass or fail a particular run.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlmsae.registry_base import Settings, setting

# numpy and pandas are imported inside the functions: the Snakefile reads HealthSettings at every
# start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

OK = "ok"
SEPARATOR = "; "
MODALITIES = ("image", "text")
# Train-log columns whose rise over the end of training is flagged: the loss minimised, and its
# reconstruction term, which a regulariser can push up while the total still falls.
RISING_COLUMNS = ("loss", "mse")


@dataclass(frozen=True, kw_only=True)
class HealthSettings(Settings):
    min_r2: float = setting(
        0.5,
        "flag a run whose eval R² (`r2`, both modalities pooled) is below this: most of the "
        "variance left unexplained",
        maximum=1,
    )
    max_dead_share: float = setting(
        0.5,
        "flag a run whose share of dead atoms (`dead_atoms` / `n_atoms`) is above this: most of "
        "the dictionary unused",
        minimum=0,
        maximum=1,
    )
    max_train_gap: float = setting(
        0.2,
        "flag a run whose train-split R² exceeds its eval R² (`r2_train` − `r2`) by more than this",
        minimum=0,
    )
    max_loss_rise: float = setting(
        0.1,
        "flag a run whose training loss (or mse) averaged over the last `tail_share` of its "
        "logged rows exceeds the smallest such moving average by more than this share of it",
        minimum=0,
    )
    tail_share: float = setting(
        0.2,
        "the end of training the loss-rise check reads, as a share of the logged rows (at least "
        "one row); also the width of its moving average",
        exclusiveMinimum=0,
        maximum=1,
    )


@dataclass(frozen=True)
class Rise:
    """How much a logged column rose at the end of training (`rise`)."""

    tail_mean: float  # mean of the last w rows
    minimum: float  # smallest mean of w consecutive rows
    minimum_step: int  # the step of the last row of that window
    relative: float  # (tail_mean − minimum) / minimum; NaN when minimum ≤ 0


def rise(values: np.ndarray, steps: np.ndarray, tail_share: float) -> Rise:
    """The rise of logged values [n] (steps [n]) over the last w = max(1, ⌈tail_share·n⌉) rows.

    The moving means of w consecutive rows smooth the batch noise; the last of them is the mean
    of the tail, so the tail is compared with the best stretch of the same length and the rise is
    never negative. Relative to a minimum ≤ 0 (a loss with a negative alignment term) a rise is
    undefined: NaN.
    """
    import numpy as np

    width = max(1, math.ceil(tail_share * len(values)))
    moving = np.convolve(values, np.ones(width) / width, mode="valid")
    best = int(np.argmin(moving))
    tail_mean, minimum = float(moving[-1]), float(moving[best])
    relative = (tail_mean - minimum) / minimum if minimum > 0 else math.nan
    return Rise(tail_mean, minimum, int(steps[best + width - 1]), relative)


def _number(value: float) -> str:
    return f"{value:.3g}"


def _non_finite_value(value: Any) -> bool:
    # numbers.Real less Integral: Python and numpy floats (numpy registers its scalar types).
    real = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
    return real and not math.isfinite(value)


def _non_finite(summary: Mapping[str, Any], train_log: pd.DataFrame | None) -> list[str]:
    """Summary keys and train-log columns (with their count of rows) holding NaN or ±inf."""
    where = [key for key, value in summary.items() if _non_finite_value(value)]
    if train_log is not None:
        import numpy as np

        numeric = train_log.select_dtypes("number")
        bad = (~np.isfinite(numeric.to_numpy(dtype=np.float64))).sum(axis=0)
        where += [
            f"train_log {column} ({count} rows)"
            for column, count in zip(numeric.columns, bad, strict=True)
            if count
        ]
    return where


def _summary_flags(summary: Mapping[str, Any], settings: HealthSettings) -> list[str]:
    """The flags read off the eval summary; a check whose keys the summary lacks is skipped."""
    flags = []
    r2 = summary.get("r2")
    if r2 is not None and r2 < settings.min_r2:
        flags.append(f"r2 {_number(r2)} < {_number(settings.min_r2)}")
    for modality in MODALITIES:
        value = summary.get(f"r2_{modality}")
        if value is not None and value < 0:
            flags.append(f"r2_{modality} {_number(value)} < 0")
    dead, n_atoms = summary.get("dead_atoms"), summary.get("n_atoms")
    if dead is not None and n_atoms and dead / n_atoms > settings.max_dead_share:
        flags.append(
            f"dead_atoms {dead}/{n_atoms} = {dead / n_atoms:.0%} > {settings.max_dead_share:.0%}"
        )
    r2_train = summary.get("r2_train")
    if r2 is not None and r2_train is not None and r2_train - r2 > settings.max_train_gap:
        flags.append(
            f"train_gap r2_train {_number(r2_train)} - r2 {_number(r2)} = "
            f"{_number(r2_train - r2)} > {_number(settings.max_train_gap)}"
        )
    return flags


def _log_flags(train_log: pd.DataFrame, settings: HealthSettings) -> list[str]:
    """`loss_rise` and `mse_rise` of the train log (rows with a non-finite value left out)."""
    import numpy as np

    flags = []
    for column in RISING_COLUMNS:
        if column not in train_log:
            continue
        logged = train_log[["step", column]].to_numpy(dtype=np.float64)
        logged = logged[np.isfinite(logged).all(axis=1)]
        if len(logged) == 0:
            continue
        found = rise(logged[:, 1], logged[:, 0].astype(np.int64), settings.tail_share)
        if found.relative > settings.max_loss_rise:  # False for NaN: an undefined rise
            flags.append(
                f"{column}_rise {found.relative:.0%} > {settings.max_loss_rise:.0%}: mean of the "
                f"last {settings.tail_share:.0%} of logged steps {_number(found.tail_mean)}, "
                f"smoothed minimum {_number(found.minimum)} at step {found.minimum_step}"
            )
    return flags


def health_flags(
    summary: Mapping[str, Any], train_log: pd.DataFrame | None, settings: HealthSettings
) -> list[str]:
    """Every flag of a run, each a name and its numbers (module docstring); [] when healthy.

    `summary`: the run's summary dict (summary.json); `train_log`: its train_log.csv, or None
    when the run has none (then only the summary is checked).
    """
    finite = {key: value for key, value in summary.items() if not _non_finite_value(value)}
    flags = _summary_flags(finite, settings)
    if train_log is not None:
        flags += _log_flags(train_log, settings)
    non_finite = _non_finite(summary, train_log)
    if non_finite:
        flags.append(f"non_finite {', '.join(non_finite)}")
    return flags


def health_text(flags: list[str]) -> str:
    """The `health` value: "ok", or the flags joined by "; "."""
    return SEPARATOR.join(flags) if flags else OK


def with_health(
    summary: Mapping[str, Any], train_log: pd.DataFrame | None, settings: HealthSettings
) -> tuple[dict[str, Any], list[str]]:
    """(the summary without its non-finite values and with `health` last, the flags)."""
    flags = health_flags(summary, train_log, settings)
    kept = {key: value for key, value in summary.items() if not _non_finite_value(value)}
    return {**kept, "health": health_text(flags)}, flags


def warn(run: str, flags: list[str]) -> None:
    """One line `vlmsae: warning: <run>: <flag>` per flag on stdout: the job's log under
    vlmsae.workflow.job_log.logged."""
    for flag in flags:
        print(f"vlmsae: warning: {run}: {flag}")
