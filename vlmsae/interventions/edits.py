"""Edited stores: a run's dictionary applied to every row of a store (iso-energy §5, Fig. 4).

Each edit writes a derived store with the schema of every other store (same pairs, splits,
labels and ground truth), so every store-level metric (retrieval, zero-shot, the gap measures,
cones) runs on it unchanged (rule `edited_store_metrics`):
- `bimodal`: Ã = (Z ⊙ δ)D, δ keeping the atoms whose modality score lies within
  [ε, 1 − ε] (bimodal kind), the others (unimodal) dropped;
- `reconstruction`: Â = ZD, every atom kept. Neither adds the decoder bias: the paper's Â and Ã
  are ZD and (Z ⊙ δ)D, and leaving the bias out of both makes them differ by δ alone;
- `mean-shift`: Liang et al.'s baseline I − μ_I + (μ_I + μ_T)/2 (and the same for text), the
  means fitted on the store's train pairs (`gap.train_half_gap`, the estimate of stores.csv's
  `gap_*_mean_shift` too), on the dense rows (no SAE involved: it is written once per store,
  `STORE_EDITS`, and each run's table row shows it beside the run's edits).
Class prompts are text: they get the text edit, so zero-shot on an edited store is zero-shot in
the edited space. Edited rows are not unit-norm (attrs["normalised"] false); metrics normalise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vlmsae.errors import InputFileError
from vlmsae.interventions import INTERVENTIONS, InterventionSettings
from vlmsae.registry_base import setting
from vlmsae.stores.embedding_store import MODALITIES, EmbeddingStore, write_store

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from scipy import sparse

    from vlmsae.sae.base import SparseAutoencoder

EDITS = ("bimodal", "reconstruction", "mean-shift")
# Edits of the dense rows alone: written once per store (rule mean_shift_store), not per run.
STORE_EDITS = ("mean-shift",)
# Arrays of the source store copied as they are; everything else is rebuilt or left out.
_COPIED = ("label", "attributes", "text_caption", "image_source", "triplets", "text_group")


@dataclass(frozen=True, kw_only=True)
class GapClosingSettings(InterventionSettings):
    enabled: bool = setting(True, "write the edited stores and measure them (gap_closing.csv)")
    edits: list[str] = setting(
        list(EDITS), "edits to write, besides the dense store", items={"enum": list(EDITS)}
    )
    modality_epsilon: float = setting(
        0.05,
        "an atom is unimodal (dropped by `bimodal`) when its modality score is below ε or above "
        "1 − ε",
        exclusiveMinimum=0,
        exclusiveMaximum=0.5,
    )
    moment: Literal["second", "first"] = setting(
        "second", "energy moment of the modality score: second (iso-energy) or first"
    )
    batch_size: int = setting(4096, "rows encoded at a time", minimum=1)


@INTERVENTIONS.register("gap_closing", GapClosingSettings)
def applies(spec: dict, settings: GapClosingSettings) -> bool:
    """Every store has an image and a text side (one-modality stores fail at the edit)."""
    return True


def kept_atoms(atoms: pd.DataFrame, settings: GapClosingSettings) -> np.ndarray:
    """[p] bool δ: the atoms of bimodal kind by the configured moment and ε (dead ones dropped)."""
    import numpy as np

    from vlmsae.metrics import modality

    column = "modality_score_sq" if settings.moment == "second" else "modality_score"
    score = atoms.sort_values("atom")[column].to_numpy(dtype=np.float64)
    return modality.atom_kind(score, settings.modality_epsilon) == "bimodal"


def store_codes(
    model: SparseAutoencoder, store: EmbeddingStore, batch_size: int
) -> dict[str, sparse.csr_matrix]:
    """{image, text, class_prompts (when the store has them)}: the SAE's codes of every row,
    computed once for every SAE edit of the store."""
    import numpy as np

    from vlmsae.metrics.evaluate import encode

    rows = {m: store.rows(m) for m in MODALITIES}
    prompts = store.optional("class_prompts")
    if prompts is not None:
        rows["class_prompts"] = prompts.reshape(-1, prompts.shape[-1])
    return {
        name: encode(
            model, np.ascontiguousarray(x, dtype=np.float32), batch_size, int(name != "image")
        )[0]
        for name, x in rows.items()
    }


def _decoded(
    codes: sparse.csr_matrix, model: SparseAutoencoder, keep: np.ndarray | None
) -> np.ndarray:
    """(Z ⊙ δ)D (δ = keep, or every atom when None), float32."""
    import numpy as np

    from vlmsae.metrics.gap import bimodal_only

    dictionary = model.W_dec.detach().float().cpu().numpy()
    mask = np.ones(model.n_atoms) if keep is None else keep.astype(np.float64)
    return bimodal_only(codes, dictionary, mask).astype(np.float32)


def _mean_shifted(store: EmbeddingStore) -> dict[str, np.ndarray]:
    """{image, text, shift}: every row shifted, the means fitted on the train pairs' rows (the
    rows the SAE was trained on) by `train_half_gap`, as stores.csv's `gap_*_mean_shift`."""
    from vlmsae.metrics.gap import mean_shift, train_half_gap

    shift = train_half_gap(store)
    if shift is None:
        raise InputFileError(
            str(store.path),
            "the store has no train pairs to fit the mean shift on",
            "rebuild it with a train split",
        )
    image, text = mean_shift(store.rows("image"), store.rows("text"), shift)
    return {"image": image, "text": text, "shift": shift}


def edited_arrays(
    store: EmbeddingStore,
    edit: str,
    model: SparseAutoencoder | None,
    keep: np.ndarray | None,
    batch_size: int,
    codes: dict[str, sparse.csr_matrix] | None = None,
) -> dict[str, np.ndarray]:
    """{image, text, class_prompts (when the store has them)}: the store's rows under `edit`.

    codes: `store_codes` of the model, when already computed (several edits of one store).
    """
    prompts = store.optional("class_prompts")
    if edit == "mean-shift":
        shifted = _mean_shifted(store)
        out = {m: shifted[m] for m in MODALITIES}
        if prompts is not None:
            out["class_prompts"] = prompts + shifted["shift"]
        return out
    mask = keep if edit == "bimodal" else None
    codes = codes if codes is not None else store_codes(model, store, batch_size)
    out = {name: _decoded(z, model, mask) for name, z in codes.items()}
    if prompts is not None:
        out["class_prompts"] = out["class_prompts"].reshape(prompts.shape)
    return out


def write_edited_store(
    store: EmbeddingStore,
    path: str | Path,
    edit: str,
    model: SparseAutoencoder | None,
    atoms: pd.DataFrame | None,
    settings: GapClosingSettings,
    run: str,
    codes: dict[str, sparse.csr_matrix] | None = None,
) -> Path:
    """Write `store` under `edit` at `path` (a complete store, built beside and renamed in);
    codes: the model's `store_codes`, when already computed."""
    if edit not in EDITS:
        raise ValueError(f"unknown edit '{edit}'; use one of {', '.join(EDITS)}")
    for m in MODALITIES:
        if store.array(m).shape[0] == 0:
            raise InputFileError(
                str(store.path),
                f"the store has no {store._name(m)} rows, and closing the gap needs both sides",
                "disable interventions.gap_closing for this dataset",
            )
    keep = kept_atoms(atoms, settings) if edit == "bimodal" else None
    arrays = edited_arrays(store, edit, model, keep, settings.batch_size, codes)
    attrs = {
        key: value
        for key, value in store.attrs.items()
        # An audio store's first modality is written as `image` here: the name `modalities`
        # would give it is not the array's.
        if key not in ("complete", "dim", "splits", "package_versions", "modalities")
    }
    attrs.update(
        normalised=False,
        edit=edit,
        edited_from=str(store.path),
        edit_run=run,
        kept_atoms=None if keep is None else int(keep.sum()),
        modality_epsilon=settings.modality_epsilon,
        modality_moment=settings.moment,
    )
    extra = {name: store.optional(name) for name in _COPIED}
    return write_store(
        path,
        image=arrays["image"],
        text=arrays["text"],
        pairs=store.pairs,
        image_split=store.root[f"{store._name('image')}_split"][...],
        text_split=store.root["text_split"][...],
        attrs=attrs,
        class_prompts=arrays.get("class_prompts"),
        truth=store.truth(),
        extra={name: data for name, data in extra.items() if data is not None},
        val=None,
    )
