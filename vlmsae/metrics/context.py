"""What every metric group sees: one run's SAE applied to the balanced eval split.

`evaluate` builds one EvalContext per run and hands it to each metric group's
`summarise(context) -> MetricResult`; a group returns per-atom columns (atoms.parquet) and scalars
(summary.json), named as docs/results.md documents them. Groups never re-encode: everything they
need is here, computed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse


@dataclass
class EvalContext:
    image: np.ndarray  # [N, d] float32 eval image rows, unit norm; row i pairs with text row i
    text: np.ndarray  # [N, d] float32 the N captions
    # Codes stay sparse: at p = 8192 and 100k pairs a dense matrix would take 3.3 GB a modality.
    codes_image: sparse.csr_matrix  # [N, p] float32
    codes_text: sparse.csr_matrix  # [N, p]
    recon_image: np.ndarray  # [N, d] SAE reconstructions x̂ (decoder bias included)
    recon_text: np.ndarray  # [N, d]
    dictionary: np.ndarray  # [p, d] float32 decoder rows (unit norm)
    energy: np.ndarray  # [p] first moment mean|z| over image and text rows together
    energy_sq: np.ndarray  # [p] second moment mean z²
    atom_kind: np.ndarray  # [p] 'image' | 'text' | 'bimodal' | 'dead' (first-moment score)
    atom_kind_sq: np.ndarray  # [p] the same from second moments (iso-energy)
    seed: int  # every random choice of a metric derives from it
    # A second view of the same rows for MMS: another encoder's embeddings of the same items, or
    # the true codes for synthetic data (kept sparse). [N, r] each, or None when there is none.
    reference_image: np.ndarray | sparse.csr_matrix | None = None
    reference_text: np.ndarray | sparse.csr_matrix | None = None
    options: dict = field(default_factory=dict)  # metric settings from config `evaluation`

    @property
    def n_atoms(self) -> int:
        return self.dictionary.shape[0]


@dataclass
class MetricResult:
    atom_columns: dict[str, np.ndarray] = field(default_factory=dict)  # each [p]
    summary: dict[str, float | int] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # written as <name>.parquet
