"""The embedding store: one zarr v3 group per (dataset, model), schema in DESIGN §2.

Arrays (rows L2-normalised unless attrs say otherwise):
  image [N_img, d], text [N_txt, d]     float32 (audio stores: `audio` instead of `image`)
  pairs [N_pairs, 2]                    int64, (image row, text row)
  image_split [N_img], text_split [N_txt]  int8, index into attrs["splits"] (train, eval, val)
  label [N_img]                         int64, optional
  class_prompts [C, T, d]               float32, optional: text embeddings of T prompts per class
  text_group [N_txt]                    int64, optional: interchangeable texts for retrieval
  truth/ (synthetic data only)          see `TrueStructure`
Stores embedded from raw datasets (`vlmsae.embedding`) also hold
  text_caption [N_txt], image_source [N_img]   strings: each caption, where each item came from
  attributes [N_img, A]                 int8, optional (CelebA; names in attrs["attribute_names"])
  triplets [n, 3]                       int64, optional (FashionIQ: reference, text, target rows)
and attrs["modalities"] (["audio", "text"] for CLAP) and attrs["skipped"] (items left out, by
reason). The code names the first modality "image" whatever it is: `EmbeddingStore` maps that role
to the store's own array names.
Splits: "eval" (the dataset's own held-out split, or a seeded share) is where final metrics are
reported; "val" is a seeded share of the train items (`ValSplit`, attrs["val_fraction"] and
attrs["val_seed"]) on which the selection sweeps score, so selection never sees eval. Captions
follow their image into val.
A store is complete only when attrs["complete"] is true; `write_store` builds it in a sibling
folder, reads it back against its manifest (attrs["manifest"], vlmsae.stores.manifest) and renames
it into place, so an interrupted write never leaves a store that looks whole. It refuses rows that
are not finite real [N, d] numbers (zero rows too, where attrs["normalised"] is true), pairs
past the rows and, in a store built from a source, a train or eval split of fewer than
MIN_SPLIT_PAIRS pairs.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.errors import InputFileError
from vlmsae.faults import fault
from vlmsae.stores.manifest import (
    MIN_ROW_NORM,
    array_record,
    data_checksums,
    open_group,
    store_manifest,
    verify_store,
)

# Heavy imports stay inside functions: the registries the Snakefile reads at every start
# import this module.
if TYPE_CHECKING:
    import numpy as np
    import zarr
    from scipy import sparse

MODALITIES = ("image", "text")
# Codes index this tuple; "val" comes last so the train and eval codes of stores written before
# val existed keep their meaning.
SPLITS = ("train", "eval", "val")
# Fewest pairs a train or eval split may hold: training samples batches of pairs, and R²,
# retrieval and every classifier compare rows (one pair would make them undefined, not wrong).
MIN_SPLIT_PAIRS = 2
TRAIN, EVAL, VAL = range(len(SPLITS))
VAL_FRACTION = 0.1
# The val draw has a random stream of its own: seeded with the dataset's seed alone it would
# share the eval draw's stream.
_VAL_STREAM = 1
ATOM_KINDS = ("bimodal", "image", "text")
ROW_CHUNK = 8192
DISCARDED_SUFFIX = ".discarded"  # a folder being deleted: never read again


@dataclass(frozen=True)
class SparseCodes:
    """Row-sparse codes, L non-zeros per row: x_n = Σ_j values[n, j] · D[indices[n, j]]."""

    indices: np.ndarray  # [N, L] int32
    values: np.ndarray  # [N, L] float32

    def to_csr(self, n_atoms: int) -> sparse.csr_matrix:
        """[N, n_atoms] sparse codes."""
        import numpy as np
        from scipy import sparse

        n_rows, n_active = self.indices.shape
        indptr = np.arange(0, n_rows * n_active + 1, n_active)
        return sparse.csr_matrix(
            (self.values.ravel(), self.indices.ravel(), indptr), shape=(n_rows, n_atoms)
        )


@dataclass(frozen=True)
class TrueStructure:
    """Ground truth of synthetic data.

    dictionary [K, d]: every distinct true direction (a bimodal concept with τ1 < 1 has one row per
    modality, both carrying the same `atom_concept`); atom_kind [K] in ATOM_KINDS.
    """

    dictionary: np.ndarray
    atom_kind: np.ndarray
    atom_concept: np.ndarray
    codes: dict[str, SparseCodes]


@dataclass(frozen=True)
class ValSplit:
    """How a store's val split is carved: a seeded `fraction` of its train items.

    Items are images (or audio clips): their captions follow them. The same (fraction, seed) and
    the same items give the same val rows, so a rebuilt store keeps them.
    """

    fraction: float = VAL_FRACTION
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {self.fraction}")

    @classmethod
    def of_dataset(cls, spec: dict) -> ValSplit:
        """From a config dataset entry: its `val_fraction` and the seed of its source section
        (`split_seed` for precomputed, `seed` elsewhere, 0 for sources without one)."""
        section = spec.get(spec["source"]) or {}
        seed = section.get("split_seed", section.get("seed", 0))
        return cls(float(spec.get("val_fraction", VAL_FRACTION)), int(seed))

    def carve(self, item_split: np.ndarray) -> np.ndarray:
        """A copy of `item_split` [N_items] with a seeded `fraction` of its train items in val
        (at least one, and one left in train, when there are two or more)."""
        import numpy as np

        split = np.array(item_split, dtype=np.int8)
        train = np.flatnonzero(split == TRAIN)
        if len(train) < 2:
            return split
        n_val = min(len(train) - 1, max(1, round(self.fraction * len(train))))
        chosen = np.random.default_rng([self.seed, _VAL_STREAM]).permutation(len(train))[:n_val]
        split[train[chosen]] = VAL
        return split

    def attrs(self) -> dict:
        return {"val_fraction": self.fraction, "val_seed": self.seed}


# The val split of a dataset entry that sets neither `val_fraction` nor a seed.
DEFAULT_VAL = ValSplit()


def follow_items(pairs: np.ndarray, item_split: np.ndarray, text_split: np.ndarray) -> np.ndarray:
    """A copy of `text_split` with each train caption of a val item moved to val."""
    import numpy as np

    split = np.array(text_split, dtype=np.int8)
    moved = pairs[item_split[pairs[:, 0]] == VAL, 1]
    split[moved[split[moved] == TRAIN]] = VAL
    return split


def package_versions() -> dict[str, str]:
    names = ("vlmsae", "numpy", "zarr", "torch")
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_embedding_array(where: str, name: str, rows: np.ndarray) -> None:
    """InputFileError (naming `where`) unless `rows` is a floating-point [N, d] array with
    N ≥ 1, d ≥ 2."""
    import numpy as np

    if isinstance(rows, np.ndarray) and rows.dtype.kind in "iub":
        # Integers are no embeddings (a wrong file, or quantised codes): refused, not cast.
        raise InputFileError(
            where,
            f"{name} rows are {rows.dtype}; embeddings are floating-point numbers",
            "save them as float32 (the embeddings themselves, not indices or quantised codes)",
        )
    if not isinstance(rows, np.ndarray) or rows.dtype.kind != "f":
        kind = "complex" if getattr(rows, "dtype", np.dtype(object)).kind == "c" else "non-real"
        got = getattr(rows, "dtype", type(rows).__name__)
        raise InputFileError(
            where,
            f"{name} rows are {kind} ({got}); embeddings must be real numbers",
            "save the real-valued float32 embeddings",
        )
    if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] < 2:
        raise InputFileError(
            where,
            f"{name} has shape {list(rows.shape)}; expected [N, d] with N ≥ 1 rows and d ≥ 2",
            "give one embedding per row",
        )


def invalid_rows(rows: np.ndarray) -> np.ndarray:
    """[N] bool: rows holding NaN or Inf, or of (near) zero norm, which cannot be normalised."""
    import numpy as np

    finite = np.isfinite(rows).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], rows, 0.0), axis=1)
    return ~finite | (norms < MIN_ROW_NORM)


def _check_store_arrays(
    where: str, image, text, pairs, image_split, nonzero: bool, splits: bool
) -> None:
    """The last guard before a store is written: finite rows (non-zero ones too with `nonzero`),
    pairs in range, and with `splits` a train and an eval split of MIN_SPLIT_PAIRS pairs or more.
    Messages name `where` (the source's files, or the store)."""
    import numpy as np

    for name, rows in (("image", image), ("text", text)):
        check_embedding_array(where, name, rows)
        bad = np.flatnonzero(invalid_rows(rows) if nonzero else ~np.isfinite(rows).all(axis=1))
        if len(bad):
            raise InputFileError(
                where,
                f"{len(bad)} {name} rows hold NaN/Inf or are zero (first: row {bad[0]})",
                "fix the source's rows, or drop them (precomputed: drop_bad_pairs: true)",
            )
    if image.shape[1] != text.shape[1]:
        raise InputFileError(
            where,
            f"image and text dimensions differ: {image.shape[1]} vs {text.shape[1]}",
            "embed both modalities with one model",
        )
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not len(pairs):
        raise InputFileError(where, f"pairs has shape {list(pairs.shape)}", "give [P, 2] pairs")
    if pairs.min() < 0 or (pairs.max(axis=0) >= [len(image), len(text)]).any():
        raise InputFileError(where, "a pair points past the rows", "give pairs of existing rows")
    for split in ("train", "eval") if splits else ():
        count = int(np.sum(np.asarray(image_split)[pairs[:, 0]] == SPLITS.index(split)))
        if count < MIN_SPLIT_PAIRS:
            raise InputFileError(
                where,
                f"the '{split}' split has {count} pair{'' if count == 1 else 's'} "
                f"({len(pairs)} in all); at least {MIN_SPLIT_PAIRS} are needed",
                "give more pairs, or change eval_fraction",
            )


def write_array(
    group: zarr.Group, name: str, data: np.ndarray, chunk_rows: int = ROW_CHUNK
) -> dict:
    """Write `data` as array `name` of `group` (replacing one of that name), chunked by rows;
    return its manifest record (vlmsae.stores.manifest)."""
    chunks = (min(chunk_rows, max(1, data.shape[0])),) + data.shape[1:]
    dtype = str if data.dtype.kind in "OUT" else data.dtype  # strings: zarr's variable-length UTF-8
    array = group.create_array(name, shape=data.shape, dtype=dtype, chunks=chunks, overwrite=True)
    array[...] = data
    return array_record(array, data_checksums(data, chunks[0]))


def write_store(
    path: str | Path,
    *,
    image: np.ndarray,
    text: np.ndarray,
    pairs: np.ndarray,
    image_split: np.ndarray,
    text_split: np.ndarray,
    attrs: dict,
    label: np.ndarray | None = None,
    class_prompts: np.ndarray | None = None,
    truth: TrueStructure | None = None,
    extra: dict[str, np.ndarray] | None = None,
    val: ValSplit | None = DEFAULT_VAL,
) -> Path:
    """Write a complete store at `path` (replacing any partial one left by an interrupted write).

    `image_split` and `text_split` hold train and eval; `val` carves val from the train images,
    their captions following them. val None: the splits already hold val (a store derived from
    another, whose attrs then carry the val attrs) and are written as given.
    """
    import numpy as np
    import zarr

    path = Path(path)
    # Zero rows cannot be normalised: refused where attrs say the rows are. Splits are checked in
    # stores from a source (val given); a derived store (val None) copies checked ones.
    nonzero = attrs.get("normalised") is True
    where = str(attrs.get("files", path))
    _check_store_arrays(where, image, text, pairs, image_split, nonzero, splits=val is not None)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    root = zarr.open_group(partial, mode="w")
    if val is not None:
        image_split = val.carve(image_split)
        text_split = follow_items(np.asarray(pairs), image_split, text_split)
    arrays = {
        "image": np.ascontiguousarray(image, dtype=np.float32),
        "text": np.ascontiguousarray(text, dtype=np.float32),
        "pairs": np.asarray(pairs, dtype=np.int64),
        "image_split": np.asarray(image_split, dtype=np.int8),
        "text_split": np.asarray(text_split, dtype=np.int8),
        **({} if label is None else {"label": np.asarray(label, dtype=np.int64)}),
        **(
            {}
            if class_prompts is None
            else {"class_prompts": np.asarray(class_prompts, dtype=np.float32)}
        ),
        **(extra or {}),
    }
    if truth is not None:
        root.create_group("truth").attrs["atom_kinds"] = list(ATOM_KINDS)
        kind_codes = np.array([ATOM_KINDS.index(k) for k in truth.atom_kind], dtype=np.int8)
        arrays["truth/dictionary"] = truth.dictionary.astype(np.float32)
        arrays["truth/atom_kind"] = kind_codes
        arrays["truth/atom_concept"] = truth.atom_concept.astype(np.int64)
        for modality, codes in truth.codes.items():
            arrays[f"truth/codes_{modality}_indices"] = codes.indices.astype(np.int32)
            arrays[f"truth/codes_{modality}_values"] = codes.values.astype(np.float32)
    records = {name: write_array(root, name, data) for name, data in arrays.items()}
    root.attrs.update(
        {
            **attrs,
            **(val.attrs() if val is not None else {}),
            "dim": int(image.shape[1]),
            "splits": list(SPLITS),
            "package_versions": package_versions(),
            "manifest": store_manifest(records),
            "complete": True,
        }
    )
    verify_store(partial)  # what is published has been read back whole
    publish(partial, path)
    return path


def remove_folder(folder: Path) -> None:
    """Delete `folder`: first renamed aside (one atomic step), so that a kill halfway through
    never leaves a half-deleted folder under a name that is read."""
    aside = folder.with_name(folder.name + DISCARDED_SUFFIX)
    shutil.rmtree(aside, ignore_errors=True)
    folder.rename(aside)
    fault("remove:moved-aside")
    for number, child in enumerate(sorted(aside.iterdir())):
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
        if number == 0:
            fault("remove:half-deleted")
    aside.rmdir()


def publish(staging: Path, path: Path) -> None:
    """Move the finished folder `staging` to `path` with one rename (an older one at `path` is
    moved aside first, and deleted after). Fault points: vlmsae.embedding.FINALISE_POINTS."""
    aside = path.with_name(path.name + ".replaced")
    if path.exists():
        if aside.exists():
            remove_folder(aside)
        path.rename(aside)
        fault("publish:old-moved-aside")
    staging.rename(path)
    fault("publish:renamed")
    if aside.exists():
        remove_folder(aside)


def read_rows(array: zarr.Array, index: np.ndarray) -> np.ndarray:
    """array[index] for any row order: each needed row is read once, in storage order, then laid
    out as asked."""
    import numpy as np

    index = np.asarray(index)
    unique, inverse = np.unique(index, return_inverse=True)
    rows = array.oindex[unique]
    # Rows asked once each in storage order (an eval split's pairs): already laid out as asked,
    # without a second copy of the [n, d] rows (0.7 s at 100k rows, d = 768).
    return rows if np.array_equal(unique, index) else rows[inverse]


class EmbeddingStore:
    """Read access to a complete store; arrays are read lazily from zarr."""

    def __init__(self, path: str | Path, verify: bool = False):
        """`verify`: read every chunk and check it against the manifest first (the workflow's
        rules do), raising DamagedOutputError naming the damaged array."""
        self.path = Path(path)
        if not self.path.exists():
            raise InputFileError(
                str(self.path), "embedding store not found", "build it with `snakemake <path>`"
            )
        self.root = open_group(self.path)
        if not self.root.attrs.get("complete", False):
            raise InputFileError(
                str(self.path),
                "embedding store is incomplete (an interrupted write?)",
                "delete it and re-run snakemake",
            )
        self.attrs = dict(self.root.attrs)
        if verify:
            self.verify()
        # The store's own names of the two modalities, e.g. ("audio", "text").
        self.modalities = tuple(self.attrs.get("modalities", MODALITIES))

    def verify(self) -> None:
        """Read every chunk and check it against the store's manifest (vlmsae.stores.manifest);
        raise DamagedOutputError naming the damaged array and the rule that rebuilds it."""
        verify_store(self.path)

    @property
    def dim(self) -> int:
        return int(self.attrs["dim"])

    def _name(self, modality: str) -> str:
        """The store's array name for a modality role ("image" = the first modality)."""
        return self.modalities[MODALITIES.index(modality)] if modality in MODALITIES else modality

    def array(self, modality: str) -> zarr.Array:
        """The [N, d] zarr array of one modality."""
        return self.root[self._name(modality)]

    def rows(self, modality: str, index: np.ndarray | None = None) -> np.ndarray:
        """[n, d] float32 rows in the order of `index` (all rows when `index` is None)."""
        array = self.array(modality)
        return array[...] if index is None else read_rows(array, index)

    @property
    def pairs(self) -> np.ndarray:
        return self.root["pairs"][...]

    def split_code(self, split: str) -> int:
        """The code of `split` in this store's split arrays (from its own attrs["splits"])."""
        splits = list(self.attrs["splits"])
        if split not in splits:
            raise InputFileError(
                str(self.path),
                f"the store has no '{split}' split (it holds {', '.join(splits)})",
                "it was built before that split existed: delete it and re-run snakemake",
            )
        return splits.index(split)

    def split_rows(self, modality: str, split: str) -> np.ndarray:
        """Row indices of `modality` that belong to `split`."""
        import numpy as np

        codes = self.root[f"{self._name(modality)}_split"][...]
        return np.flatnonzero(codes == self.split_code(split))

    def split_pairs(self, split: str) -> np.ndarray:
        """[n, 2] pairs whose image row lies in `split` (captions follow their image)."""
        pairs = self.pairs
        image_in_split = self.root[f"{self.modalities[0]}_split"][...] == self.split_code(split)
        return pairs[image_in_split[pairs[:, 0]]]

    def optional(self, name: str) -> np.ndarray | None:
        """An optional array (label, class_prompts) or None when the store has none."""
        return self.root[name][...] if name in self.root else None

    def truth(self) -> TrueStructure | None:
        import numpy as np

        if "truth" not in self.root:
            return None
        group = self.root["truth"]
        kinds = np.array(group.attrs["atom_kinds"])[group["atom_kind"][...]]
        codes = {
            m: SparseCodes(group[f"codes_{m}_indices"][...], group[f"codes_{m}_values"][...])
            for m in MODALITIES
            if f"codes_{m}_indices" in group
        }
        return TrueStructure(
            dictionary=group["dictionary"][...],
            atom_kind=kinds,
            atom_concept=group["atom_concept"][...],
            codes=codes,
        )


def assign_pair_splits(n_pairs: int, eval_fraction: float, seed: int) -> np.ndarray:
    """[n_pairs] int8 split codes: a seeded random `eval_fraction` of the pairs go to "eval", the
    rest to "train" (`ValSplit` carves val from it when the store is written)."""
    import numpy as np

    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must lie in (0, 1), got {eval_fraction}")
    rng = np.random.default_rng(seed)
    n_eval = max(1, int(round(eval_fraction * n_pairs)))
    split = np.zeros(n_pairs, dtype=np.int8)
    split[rng.permutation(n_pairs)[:n_eval]] = EVAL
    return split
