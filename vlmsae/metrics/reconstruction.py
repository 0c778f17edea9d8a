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

import numpy as np
from scipy import sparse

from vlmsae.metrics import RUN_METRICS
from vlmsae.metrics.context import EvalContext, MetricResult
from vlmsae.registry_base import Settings

MODALITIES = ("image", "text")


def _squared_error(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """Σ (x − x̂)² over every entry, accumulated in float64."""
    residual = np.subtract(x, reconstruction)
    return float(np.einsum("nd,nd->", residual, residual, dtype=np.float64))


def mean_squared_error(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean over rows and dimensions of (x − x̂)², x and x̂ [N, d]."""
    return _squared_error(x, reconstruction) / x.size


def summed_squared_error(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """`mse_sum`: mean over the N rows of Σ_d (x − x̂)², x and x̂ [N, d]."""
    return _squared_error(x, reconstruction) / x.shape[0]


def r_squared(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """R² = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the per-dimension mean of x [N, d]."""
    residual = _squared_error(x, reconstruction)
    total = _squared_error(x, x.mean(axis=0, dtype=np.float64, keepdims=True))
    if total == 0:
        raise ValueError("R² is undefined: every row of x is the same")
    return float(1.0 - residual / total)


def r_squared_overall(x: np.ndarray, reconstruction: np.ndarray) -> float:
    """`r2_overall` = 1 − mean (x − x̂)² / mean (x − m)², m the ONE mean of all entries of x
    [N, d] (the iso-energy authors' convention, overcomplete's `r2_score`)."""
    residual = _squared_error(x, reconstruction)
    total = _squared_error(x, np.full((1, 1), np.mean(x, dtype=np.float64)))
    if total == 0:
        raise ValueError("R² is undefined: every entry of x is the same")
    return float(1.0 - residual / total)


def l0(codes: np.ndarray | sparse.spmatrix) -> float:
    """Mean number of non-zero entries per code row, codes [N, p] (dense or sparse)."""
    if sparse.issparse(codes):
        return float(codes.count_nonzero() / codes.shape[0])
    return float(np.count_nonzero(codes, axis=1).mean())


def reconstruction_summary(
    x: np.ndarray, reconstruction: np.ndarray, codes: np.ndarray | sparse.spmatrix, suffix: str = ""
) -> dict[str, float]:
    """`mse`, `mse_sum`, `r2`, `r2_overall`, `l0`, each with `suffix`, of rows x [N, d]. An R²
    without variance to explain (every row, or entry, the same: a single class with one text
    row) is left out, and `<key>_undefined` says why."""
    rows = f"{suffix.strip('_').replace('_', ' ')} rows".strip()
    summary: dict[str, float | str] = {
        f"mse{suffix}": mean_squared_error(x, reconstruction),
        f"mse_sum{suffix}": summed_squared_error(x, reconstruction),
    }
    for key, r2, undefined in (
        ("r2", r_squared, f"every {rows.removesuffix('s')} is the same"),
        ("r2_overall", r_squared_overall, f"every entry of the {rows} is the same"),
    ):
        try:
            summary[f"{key}{suffix}"] = r2(x, reconstruction)
        except ValueError:
            summary[f"{key}{suffix}_undefined"] = undefined
    summary[f"l0{suffix}"] = l0(codes)
    return summary


# What the summary reports of the training rows (context.train), to show overfitting.
TRAIN_KEYS = ("r2", "r2_overall", "l0")


def _summaries(x: dict, recon: dict, codes: dict, suffix: str = "") -> dict[str, float | str]:
    """`reconstruction_summary` pooled over both modalities (`<key><suffix>`), then of each
    (`<key>_<modality><suffix>`)."""
    pooled = reconstruction_summary(
        np.concatenate([x["image"], x["text"]]),
        np.concatenate([recon["image"], recon["text"]]),
        sparse.vstack([codes["image"], codes["text"]], format="csr"),
    )
    summary = {f"{key}{suffix}": value for key, value in pooled.items()}
    for m in MODALITIES:
        for key, value in reconstruction_summary(x[m], recon[m], codes[m], f"_{m}").items():
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
