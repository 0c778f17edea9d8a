"""What metric groups see: a store's eval rows, and one run's SAE applied to them.

`evaluate` builds one StoreContext per store (dense rows only) and one EvalContext per run and
hands them to the groups registered in vlmsae.metrics; a group returns per-atom columns
(atoms.parquet), scalars (summary.json or the store's row of stores.csv) and tables, named as
docs/results.md documents them. Groups never re-encode: everything they need is here, computed
once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from vlmsae.stores.embedding_store import TrueStructure
from vlmsae.stores.vocabulary import Vocabulary


@dataclass(kw_only=True)
class StoreContext:
    image: np.ndarray  # [N, d] float32 eval image rows, unit norm; row i pairs with text row i
    text: np.ndarray  # [N, d] float32 the N captions
    seed: int  # every random choice of a metric derives from it
    # [N, 2] the store rows (image, text) of each eval pair: an image with several captions, or
    # a text paired with several images, appears in several pairs (retrieval counts them right).
    pairs: np.ndarray | None = None
    # [N] an explicit group of each eval pair's text (the store's `text_group`, precomputed
    # `groups_path`): equal ids are interchangeable captions in retrieval. None: no such array.
    text_groups: np.ndarray | None = None
    # A second view of the same rows for MMS: another encoder's embeddings of the same items, or
    # the true codes for synthetic data (kept sparse). [N, r] each, or None when there is none.
    reference_image: np.ndarray | sparse.csr_matrix | None = None
    reference_text: np.ndarray | sparse.csr_matrix | None = None
    labels: np.ndarray | None = None  # [N] class of each image row, for zero-shot
    class_prompts: np.ndarray | None = None  # [classes, templates, d] prompt embeddings
    # Synthetic stores: the ground truth, and the true codes [N, q] of the eval rows.
    truth: TrueStructure | None = None
    true_codes_image: sparse.csr_matrix | None = None
    true_codes_text: sparse.csr_matrix | None = None
    # Words embedded in the store's space, to name atoms (interventions.naming), or None.
    vocabulary: Vocabulary | None = None
    # [d] (μ_I − μ_T)/2 of the store's TRAIN pairs, the mean-shift baseline's one estimate
    # (gap.train_half_gap), or None when it has none; set for the store-level groups only.
    train_half_gap: np.ndarray | None = None


@dataclass(kw_only=True)
class TrainRows:
    """A sample of the run's training rows, to show overfitting beside the eval numbers."""

    image: np.ndarray  # [n, d]
    text: np.ndarray
    recon_image: np.ndarray
    recon_text: np.ndarray
    codes_image: sparse.csr_matrix
    codes_text: sparse.csr_matrix


@dataclass(kw_only=True)
class EvalContext(StoreContext):
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
    # The per-atom table every group starts from: activity, frequencies, energies per modality
    # (both moments), modality scores and kinds (docs/results.md, atoms.parquet).
    atoms: pd.DataFrame
    # Encodes text rows [n, d] into codes [n, p] (zero-shot encodes class prompts).
    encode_text: Callable[[np.ndarray], sparse.csr_matrix] | None = None
    train: TrainRows | None = None
    _bimodal_only: tuple[np.ndarray, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _bimodal_only_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @property
    def n_atoms(self) -> int:
        return self.dictionary.shape[0]

    def bimodal_only_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(image [N, d], text [N, d]) rows Ã = (Z ⊙ δ)D, δ keeping the atoms of second-moment
        kind 'bimodal' (`gap.bimodal_only`).

        Gap and retrieval both read them: the first group to ask computes them (two sparse
        products and 600 MB at N = 100k, d = 768), a group asking meanwhile waits for them, and
        they are kept for the rest.
        """
        from vlmsae.metrics.gap import bimodal_only  # gap reads this module

        with self._bimodal_only_lock:
            if self._bimodal_only is None:
                keep = self.atom_kind_sq == "bimodal"
                self._bimodal_only = (
                    bimodal_only(self.codes_image, self.dictionary, keep),
                    bimodal_only(self.codes_text, self.dictionary, keep),
                )
            return self._bimodal_only


@dataclass
class MetricResult:
    atom_columns: dict[str, np.ndarray] = field(default_factory=dict)  # each [p]
    summary: dict[str, float | int] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # written as <name>.parquet
