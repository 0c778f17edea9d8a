"""Reconstruction quality and sparsity (DESIGN §5, Reconstruction; issue 12 item 7).

Two conventions of MSE and R², both reported (x, x̂ [N, d], rows of one modality or pooled):

- vlmsae's (DESIGN §5): `mse` = mean over rows and dimensions of (x − x̂)²; `r2` =
  1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the per-dimension mean (the variance explained per dimension).
- the iso-energy authors' tables (overcomplete's `r2_score`): `mse_sum` = mean over rows of the
  per-sample summed squared error Σ_d (x − x̂)²  (= d · mse); `r2_overall` =
  1 − mean (x − x̂)² / mean (x − m)², m ONE scalar mean over all N·d entries. For unit-norm
  embeddings whose per-dimension means differ, the overall variance is larger than the
  per-dimension one, so r2_overall ≥ r2; the β-selection rule of iso-energy uses r2_overall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.registry_base import Settings

MODALITIES = ("image", "text")


CHUNK_ROWS = 8192  # rows per pass: a float64 chunk at d = 768 is 50 MB, never a copy of x


@dataclass(frozen=True)
class ErrorMoments:
    """What every error and R² convention needs of rows x [N, d] and their reconstructions x̂:
    N, the per-dimension means μ [d] and sums of squared deviations Σ_n (x_nd − μ_d)² [d], and
    the residual Σ (x − x̂)², all in float64.

    Moments of two sets of rows add exactly (`+`, Chan et al.'s pairwise update), so the pooled
    summary costs no pass of its own; rows that are all the same give deviations of exactly 0.
    """

    rows: int
    mean: np.ndarray
    deviation: np.ndarray
    residual: float

    @classmethod
    def of(cls, x: np.ndarray, reconstruction: np.ndarray) -> ErrorMoments:
        """The moments of x [N, d] (N ≥ 1) and x̂ [N, d], a chunk of rows at a time."""
        if x.shape != reconstruction.shape or x.ndim != 2 or len(x) == 0:
            raise ValueError(f"x {x.shape} and x̂ {reconstruction.shape}: need equal [N ≥ 1, d]")
        mean = x.sum(axis=0, dtype=np.float64) / len(x)
        deviation = np.zeros(x.shape[1])
        residual = 0.0
        for start in range(0, len(x), CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            centred = np.subtract(x[rows], mean, dtype=np.float64)
            deviation += np.einsum("nd,nd->d", centred, centred)
            error = np.subtract(x[rows], reconstruction[rows])
            residual += float(np.einsum("nd,nd->", error, error, dtype=np.float64))
        return cls(len(x), mean, deviation, residual)

    def __add__(self, other: ErrorMoments) -> ErrorMoments:
        rows = self.rows + other.rows
        shift = other.mean - self.mean
        return ErrorMoments(
            rows,
            self.mean + shift * (other.rows / rows),
            self.deviation + other.deviation + shift**2 * (self.rows * other.rows / rows),
            self.residual + other.residual,
        )

    @property
    def size(self) -> int:
        return self.rows * len(self.mean)

    def mse(self) -> float:
        return self.residual / self.size

    def mse_sum(self) -> float:
        return self.residual / self.rows

    def r2(self) -> float:
        total = float(self.deviation.sum())
        if total == 0:
            raise ValueError("R² is undefined: every row of x is the same")
        return 1.0 - self.residual / total

    def r2_overall(self) -> float:
        # Σ (x − m)² around the one mean m of all entries: each dimension's deviations plus
        # N (μ_d − m)², an identity with no cancellation.
        overall = self.mean.mean()
        total = float(self.deviation.sum() + self.rows * np.sum((self.mean - overall) ** 2))
        if total == 0:
            raise ValueError("R² is undefined: every entry of x is the same")
        return 1.0 - self.residual / total


def mean_squared_error(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean over rows and dimensions of (x − x̂)², x and x̂ [N, d]."""
    return ErrorMoments.of(x, reconstruction).mse()


def summed_squared_error(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """`mse_sum`: mean over the N rows of Σ_d (x − x̂)², x and x̂ [N, d]."""
    return ErrorMoments.of(x, reconstruction).mse_sum()


def r_squared(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """R² = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the per-dimension mean of x [N, d]."""
    return ErrorMoments.of(x, reconstruction).r2()


def r_squared_overall(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """`r2_overall` = 1 − mean (x − x̂)² / mean (x − m)², m the ONE mean of all entries of x
    [N, d] (the iso-energy authors' convention, overcomplete's `r2_score`)."""
    return ErrorMoments.of(x, reconstruction).r2_overall()


def _nonzero(codes: np.ndarray | sparse.spmatrix) -> int:
    return int(codes.count_nonzero() if sparse.issparse(codes) else np.count_nonzero(codes))


def l0(codes: np.ndarray | sparse.spmatrix) -> float:
    """Mean number of non-zero entries per code row, codes [N, p] (dense or sparse)."""
    return _nonzero(codes) / codes.shape[0]


def reconstruction_summary(
    x: np.ndarray,
    reconstruction: np.ndarray,
    codes: np.ndarray | sparse.spmatrix,
    suffix: str = "",
) -> dict[str, float]:
    """`mse`, `mse_sum`, `r2`, `r2_overall`, `l0`, each with `suffix`, of rows x [N, d]. An R²
    without variance to explain (every row, or entry, the same: a single class with one text
    row) is left out, and `<key>_undefined` says why."""
    return summary_of(ErrorMoments.of(x, reconstruction), l0(codes), suffix)


def summary_of(moments: ErrorMoments, mean_l0: float, suffix: str) -> dict[str, float | str]:
    """`reconstruction_summary` from the rows' moments and their codes' mean L0."""
    rows = f"{suffix.strip('_').replace('_', ' ')} rows".strip()
    summary: dict[str, float | str] = {
        f"mse{suffix}": moments.mse(),
        f"mse_sum{suffix}": moments.mse_sum(),
    }
    for key, r2, undefined in (
        ("r2", moments.r2, f"every {rows.removesuffix('s')} is the same"),
        ("r2_overall", moments.r2_overall, f"every entry of the {rows} is the same"),
    ):
        try:
            summary[f"{key}{suffix}"] = r2()
        except ValueError:
            summary[f"{key}{suffix}_undefined"] = undefined
    summary[f"l0{suffix}"] = mean_l0
    return summary


# What the summary reports of the training rows (context.train), to show overfitting.
TRAIN_KEYS = ("r2", "r2_overall", "l0")


def _summaries(x: dict, recon: dict, codes: dict, suffix: str = "") -> dict[str, float | str]:
    """`reconstruction_summary` pooled over both modalities (`<key><suffix>`), then of each
    (`<key>_<modality><suffix>`); one pass over each modality's rows serves both."""
    moments = {m: ErrorMoments.of(x[m], recon[m]) for m in MODALITIES}
    pooled_l0 = sum(_nonzero(codes[m]) for m in MODALITIES) / sum(len(x[m]) for m in MODALITIES)
    pooled = summary_of(moments["image"] + moments["text"], pooled_l0, "")
    summary = {f"{key}{suffix}": value for key, value in pooled.items()}
    for m in MODALITIES:
        for key, value in summary_of(moments[m], l0(codes[m]), f"_{m}").items():
            summary[f"{key}{suffix}"] = value
    return summary


@RUN_METRICS.register("reconstruction", order=1)
def summarise(context: EvalContext, settings: Settings) -> MetricResult:
    """`reconstruction_summary` of the eval rows pooled (no suffix) and of each modality
    (`_image`, `_text`); x̂ are the SAE's reconstructions, decoder bias included. With training
    rows (context.train), their TRAIN_KEYS too, suffixed `_train` (`r2_train`, `r2_image_train`)."""
    summary = _summaries(
        {"image": context.image, "text": context.text},
        {"image": context.recon_image, "text": context.recon_text},
        {"image": context.codes_image, "text": context.codes_text},
    )
    train = context.train
    if train is not None:
        measured = _summaries(
            {"image": train.image, "text": train.text},
            {"image": train.recon_image, "text": train.recon_text},
            {"image": train.codes_image, "text": train.codes_text},
            "_train",
        )
        summary.update(
            {
                key: value
                for key, value in measured.items()
                if key.removesuffix("_train").removesuffix("_image").removesuffix("_text")
                in TRAIN_KEYS
            }
        )
    return MetricResult(summary=summary)
