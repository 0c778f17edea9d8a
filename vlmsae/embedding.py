"""Run a model over a raw dataset and write its embedding store (DESIGN §2), resumably.

Media items are decoded and preprocessed in DataLoader workers; the main process runs the model
(bf16 autocast on CUDA unless told otherwise), L2-normalises and hands each finished block of
`write_rows` rows to a writer thread, so decoding, the forward pass and the zarr writes overlap.

Resume: the blocks are embedded into `<path>.partial`. After each block is written, the partial
store's `progress.json` records how many blocks are done and a CRC-32 of each; a re-run with the
same fingerprint (dataset, model and every setting that changes the numbers) first reads the done
blocks back and embeds again from the first one that is missing or differs from its checksum, then
skips the rest. Batches never straddle a block, so a resumed run feeds the model exactly the
batches an uninterrupted run does and, on the same device, writes the same values.

Finalisation never changes the partial store: when every block, the deduplicated captions and the
class prompts are done, the final store (undecodable items' rows dropped, captions expanded,
manifest, `complete: true`) is built beside it in `<path>.staging`, read back against its manifest,
and published with one rename; only then is the partial store deleted (renamed aside first, so a
half-deleted one is never read). A kill at any point leaves either the partial store, from which
the next run finishes, or the published store. `FINALISE_POINTS` name those points
(vlmsae.faults); tests/test_embedding.py kills at each.

Items that cannot be decoded are skipped and counted by reason in the store's attrs
(`skipped`), together with what the adapter skipped while reading the layout; their pairs go too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils.collate import default_collate
from tqdm import tqdm

from vlmsae.datasets.raw import RawDataset, SkipReport, text_split_of
from vlmsae.decode import UndecodableMedia, decode_audio, decode_image
from vlmsae.errors import InputFileError
from vlmsae.faults import fault
from vlmsae.models.base import Encoder
from vlmsae.stores.embedding_store import (
    DEFAULT_VAL,
    DISCARDED_SUFFIX,
    SPLITS,
    ValSplit,
    package_versions,
    publish,
    read_rows,
    remove_folder,
    write_array,
)
from vlmsae.stores.manifest import array_record, checksum, store_manifest, verify_store

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PROGRESS_FILE = "progress.json"
STAGING_SUFFIX = ".staging"  # the final store while it is built from the partial one
# Where a kill can fall while a finished partial store becomes the final store, in order.
FINALISE_POINTS = (
    "finalise:media-written",
    "finalise:text-written",
    "finalise:arrays-written",
    "finalise:attrs-written",
    "finalise:verified",
    "publish:old-moved-aside",
    "publish:renamed",
    "remove:moved-aside",
    "remove:half-deleted",
)
# Short side kept by JPEG draft decoding when the encoder does not say its input size.
DEFAULT_DECODE_SIDE = 448
LINEAR_STRUCTURE_SIDE = 256  # that preprocessing resizes the short side to 256 before cropping


@dataclass(frozen=True)
class EmbedSettings:
    """Config `embed`: how the embedding stage runs (documented in the config schema)."""

    batch_size: int = 256
    text_batch_size: int = 512
    num_workers: int = 4
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    device: str = "auto"
    write_rows: int = 8192  # rows per resumable block (and per zarr chunk)
    audio_max_seconds: float = 10.0  # centre crop: CLAP models see 10 s

    def resolved_precision(self, device: torch.device) -> str:
        if self.precision == "auto":
            return "bf16" if device.type == "cuda" else "fp32"
        if self.precision != "fp32" and device.type != "cuda":
            raise ValueError(f"embed.precision '{self.precision}' needs CUDA; use fp32 on CPU")
        return self.precision


@dataclass
class Timings:
    """Seconds the main process spent on the media stage (the part that decodes, preprocesses
    and writes), for the throughput line and `make bench`."""

    media_items: int = 0
    media_wall: float = 0.0
    media_forward: float = 0.0
    data_wait: float = 0.0
    write_wait: float = 0.0

    @property
    def overhead_share(self) -> float:
        """Share of the media stage's wall time spent outside the model's forward pass."""
        return 1.0 - self.media_forward / self.media_wall if self.media_wall else 0.0


class _DecodedMedia(Dataset):
    """Item i → (i, model input) or (i, reason) when it cannot be decoded. Runs in workers."""

    def __init__(self, raw: RawDataset, encoder: Encoder, settings: EmbedSettings):
        self.media = raw.media
        self.modality = raw.modality
        self.transform = encoder.media_transform()
        self.sample_rate = encoder.sample_rate
        self.image_side = encoder.image_size or DEFAULT_DECODE_SIDE
        if encoder.spec.preprocessing == "linear-structure":
            self.image_side = max(self.image_side, LINEAR_STRUCTURE_SIDE)
        self.max_seconds = settings.audio_max_seconds

    def __len__(self) -> int:
        return len(self.media)

    def __getitem__(self, index: int):
        try:
            data = self.media.read(index)
            if self.modality == "audio":
                decoded = decode_audio(data, self.sample_rate, self.max_seconds)
            else:
                decoded = decode_image(data, min_size=self.image_side)
        except (UndecodableMedia, OSError) as error:
            # The reason is a counting key: the error's kind, not its message (which names paths).
            unreadable = f"unreadable file ({type(error).__name__})"
            reason = str(error) if isinstance(error, UndecodableMedia) else unreadable
            return index, None, reason
        return index, self.transform(decoded), None


def _collate(items: list) -> tuple[np.ndarray, object, list[tuple[int, str]]]:
    good = [(index, value) for index, value, _ in items if value is not None]
    failed = [(index, reason) for index, value, reason in items if value is None]
    indices = np.array([index for index, _ in good], dtype=np.int64)
    inputs = default_collate([value for _, value in good]) if good else None
    return indices, inputs, failed


def _block_batches(start: int, stop: int, block: int, batch: int) -> list[list[int]]:
    """Batches of consecutive indices that never straddle a block boundary."""
    batches = []
    for block_start in range(start, stop, block):
        block_stop = min(block_start + block, stop)
        batches += [
            list(range(i, min(i + batch, block_stop)))
            for i in range(block_start, block_stop, batch)
        ]
    return batches


def _to_device(inputs, device: torch.device):
    if isinstance(inputs, dict):
        return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    return inputs.to(device, non_blocking=True)


def _normalised(embeddings: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu().numpy()


def _digest(strings) -> str:
    digest = hashlib.sha256()
    for string in strings:
        digest.update(string.encode() + b"\x1f")
    return digest.hexdigest()


def fingerprint(raw: RawDataset, encoder: Encoder, settings: EmbedSettings, precision: str) -> str:
    """What makes two builds of a store write the same numbers."""
    content = {
        "model": asdict(encoder.spec),
        "media": _digest(raw.media.describe(i) for i in range(len(raw.media))),
        "texts": _digest(raw.texts),
        "attrs": raw.attrs,
        "precision": precision,
        "batch_size": settings.batch_size,
        "text_batch_size": settings.text_batch_size,
        "write_rows": settings.write_rows,
        "audio_max_seconds": settings.audio_max_seconds,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


class _PartialStore:
    """The store under construction, with its per-block progress in `PROGRESS_FILE`.

    Progress lives in its own small file, replaced atomically, rather than in the group's attrs:
    zarr rewrites zarr.json in place, and a kill during that write would lose every block. The
    file also holds, per progress key, the arrays written under it and a CRC-32 of each block.
    """

    def __init__(self, path: Path, run_id: str):
        self.path = path
        self.progress_path = path / PROGRESS_FILE
        state = self._read_state()
        if state is not None and state.get("fingerprint") == run_id and "checksums" in state:
            self.root = zarr.open_group(path, mode="r+")
            self.state = state
            self.resumed = True
            self._rewind_to_damaged_blocks()
        else:
            if path.exists():
                log.info("discarding %s: it was started with other settings", path)
                remove_folder(path)
            self.root = zarr.open_group(path, mode="w")
            self.state = {
                "fingerprint": run_id,
                "progress": {},
                "skipped": {},
                "arrays": {},
                "checksums": {},
            }
            self._write_state()
            self.resumed = False

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.progress_path.read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self) -> None:
        temporary = self.progress_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state))
        os.replace(temporary, self.progress_path)

    def _rewind_to_damaged_blocks(self) -> None:
        """Read every done block back; embed again from the first one that is missing or
        differs from its checksum (a block read back as zeros is never trusted)."""
        for key, names in self.state["arrays"].items():
            recorded = self.state["checksums"].get(key, [])
            for number in range(self.blocks_done(key)):
                try:
                    arrays = [self.root[name] for name in names]
                    digest = _block_checksum(arrays, number)
                except Exception:  # a deleted or garbled array or chunk: zarr raises many kinds
                    digest = None
                if number >= len(recorded) or digest != recorded[number]:
                    log.warning(
                        "%s: block %d of %s is damaged; embedding again from it",
                        self.path,
                        number,
                        key,
                    )
                    self._rewind(key, number)
                    break

    def _rewind(self, key: str, block: int) -> None:
        self.state["progress"][key] = min(self.blocks_done(key), block)
        self.state["checksums"][key] = self.state["checksums"].get(key, [])[:block]
        self.state["skipped"][key] = self.state["skipped"].get(key, [])[:block]
        self._write_state()

    def array(self, name: str, shape: tuple[int, ...], dtype, chunk_rows: int, key: str):
        """Array `name`, whose blocks count under progress `key`; a missing one, or one of
        another shape, is created afresh and `key`'s blocks are embedded again."""
        names = self.state["arrays"].setdefault(key, [])
        if name not in names:
            names.append(name)
            self._write_state()
        if name in self.root:
            existing = self.root[name]
            if existing.shape == shape and existing.dtype == np.dtype(dtype):
                return existing
        self._rewind(key, 0)
        chunks = (max(1, min(chunk_rows, shape[0])),) + shape[1:]
        return self.root.create_array(name, shape=shape, dtype=dtype, chunks=chunks, overwrite=True)

    def blocks_done(self, key: str) -> int:
        return int(self.state["progress"].get(key, 0))

    def mark_block(
        self, key: str, done: int, digest: int, failures: SkipReport | None = None
    ) -> None:
        # Kept per block, so that a block embedded again replaces its own skips.
        skipped = failures.as_attrs() if failures is not None else {}
        self.state["progress"][key] = done
        self.state["checksums"][key] = self.state["checksums"].get(key, [])[: done - 1] + [digest]
        self.state["skipped"][key] = self.state["skipped"].get(key, [])[: done - 1] + [skipped]
        self._write_state()

    def skipped(self) -> SkipReport:
        report = SkipReport()
        for blocks in self.state["skipped"].values():
            for block in blocks:
                report.merge(_report_from_attrs(block))
        return report


def _block_checksum(arrays: list[zarr.Array], number: int) -> int:
    """CRC-32 of block `number` of each array (one chunk of rows each), chained."""
    digest = 0
    for array in arrays:
        rows = array.chunks[0]
        values = array[number * rows : (number + 1) * rows]
        digest = zlib.crc32(np.ascontiguousarray(values).reshape(-1).view(np.uint8), digest)
    return digest


def _report_from_attrs(skipped: dict) -> SkipReport:
    report = SkipReport()
    for reason, entry in skipped.items():
        report.counts[reason] = entry["count"]
        report.examples[reason] = list(entry["examples"])
    return report


class _BlockWriter:
    """Writes finished blocks on one background thread, in order, then records progress."""

    def __init__(self, partial: _PartialStore, name: str, timings: Timings):
        self.partial, self.name, self.timings = partial, name, timings
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None

    def submit(self, write: Callable[[], int], block: int, failures: SkipReport) -> None:
        """Run `write` (which returns the block's checksum) on the writer thread."""
        self.wait()
        self.pending = self.pool.submit(self._write, write, block, failures)

    def _write(self, write: Callable[[], int], block: int, failures: SkipReport) -> None:
        digest = write()
        self.partial.mark_block(self.name, block + 1, digest, failures)

    def wait(self) -> None:
        if self.pending is not None:
            start = time.perf_counter()
            self.pending.result()
            self.timings.write_wait += time.perf_counter() - start
            self.pending = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)


def _write_block(array: zarr.Array, ok: zarr.Array, start: int, rows: np.ndarray, valid) -> int:
    """Write one block of rows and their decoded flags; return the block's chained CRC-32."""
    array[start : start + len(rows)] = rows
    ok[start : start + len(rows)] = valid
    digest = zlib.crc32(np.ascontiguousarray(rows).reshape(-1).view(np.uint8))
    return zlib.crc32(np.ascontiguousarray(valid).view(np.uint8), digest)


def _embed_media(
    raw: RawDataset,
    encoder: Encoder,
    settings: EmbedSettings,
    partial: _PartialStore,
    autocast,
    timings: Timings,
) -> None:
    n_items, dim, block = len(raw.media), encoder.spec.dim, settings.write_rows
    name = raw.modality
    array = partial.array(name, (n_items, dim), np.float32, block, key=name)
    ok = partial.array(f"_ok_{name}", (n_items,), np.bool_, block, key=name)
    start = partial.blocks_done(name) * block
    if start >= n_items:
        return
    batches = _block_batches(start, n_items, block, settings.batch_size)
    loader = DataLoader(
        _DecodedMedia(raw, encoder, settings),
        batch_sampler=batches,
        num_workers=settings.num_workers,
        collate_fn=_collate,
        pin_memory=encoder.device.type == "cuda",
        prefetch_factor=4 if settings.num_workers else None,
        persistent_workers=False,
    )
    writer = _BlockWriter(partial, name, timings)
    rows = np.zeros((block, dim), dtype=np.float32)
    valid = np.zeros(block, dtype=bool)
    failures = SkipReport()
    current = start // block
    progress = tqdm(total=n_items, initial=start, unit=name, desc=f"embedding {name}")
    try:
        iterator = iter(loader)
        for batch in batches:
            fetch_start = time.perf_counter()
            indices, inputs, failed = next(iterator)
            timings.data_wait += time.perf_counter() - fetch_start
            for index, reason in failed:
                failures.add(reason, raw.media.describe(index))
            if len(indices):
                forward_start = time.perf_counter()
                with torch.inference_mode(), autocast:
                    embeddings = encoder.encode_media(_to_device(inputs, encoder.device))
                rows_out = _normalised(embeddings)
                timings.media_forward += time.perf_counter() - forward_start
                rows[indices - current * block] = rows_out
                valid[indices - current * block] = True
            timings.media_items += len(batch)
            progress.update(len(batch))
            block_stop = min((current + 1) * block, n_items)
            if batch[-1] + 1 == block_stop:
                size = block_stop - current * block
                payload, flags = rows[:size].copy(), valid[:size].copy()
                writer.submit(
                    lambda s=current * block, p=payload, f=flags: _write_block(array, ok, s, p, f),
                    current,
                    failures,
                )
                rows[:], valid[:], failures = 0.0, False, SkipReport()
                current += 1
    finally:
        progress.close()
        writer.close()


def _embed_texts(
    texts: list[str],
    name: str,
    encoder: Encoder,
    settings: EmbedSettings,
    partial: _PartialStore,
    autocast,
) -> zarr.Array:
    """Embed `texts` (distinct strings) into array `name`, block by block, resumably."""
    block = settings.write_rows
    array = partial.array(name, (len(texts), encoder.spec.dim), np.float32, block, key=name)
    # Timings describe the media stage: the text writer's waits are not counted.
    writer = _BlockWriter(partial, name, Timings())
    start_block = partial.blocks_done(name)
    progress = tqdm(total=len(texts), initial=start_block * block, unit="text", desc=name)
    try:
        for number in range(start_block, -(-len(texts) // block)):
            start = number * block
            chunk = texts[start : start + block]
            out = np.empty((len(chunk), encoder.spec.dim), dtype=np.float32)
            for offset in range(0, len(chunk), settings.text_batch_size):
                with torch.inference_mode(), autocast:
                    embeddings = encoder.encode_text(
                        chunk[offset : offset + settings.text_batch_size]
                    )
                out[offset : offset + len(embeddings)] = _normalised(embeddings)
                progress.update(len(embeddings))

            def write(s=start, values=out) -> int:
                array[s : s + len(values)] = values
                return zlib.crc32(values.reshape(-1).view(np.uint8))

            writer.submit(write, number, SkipReport())
    finally:
        progress.close()
        writer.close()
    return array


def _copy_rows(
    source: zarr.Array, group: zarr.Group, name: str, keep: np.ndarray, block: int
) -> dict:
    """Array `name` of `group` with row i = source[keep[i]] (keep sorted or arbitrary), written
    `block` rows at a time; return its manifest record."""
    chunk_rows = max(1, min(block, len(keep)))
    target = group.create_array(
        name,
        shape=(len(keep), source.shape[1]),
        dtype=np.float32,
        chunks=(chunk_rows,) + tuple(source.shape[1:]),
    )
    checksums = []
    for start in range(0, len(keep), chunk_rows):
        rows = read_rows(source, keep[start : start + chunk_rows])
        target[start : start + len(rows)] = rows
        checksums.append(checksum(rows))
    return array_record(target, checksums)


@dataclass
class _Layout:
    """Rows kept after dropping undecodable media, and every index remapped to them."""

    media_keep: np.ndarray
    text_keep: np.ndarray
    text_dropped: np.ndarray  # captions whose every paired item was undecodable
    pairs: np.ndarray
    triplets: np.ndarray | None


def _layout(raw: RawDataset, media_ok: np.ndarray) -> _Layout:
    media_new = np.cumsum(media_ok) - 1
    pairs = raw.pairs[media_ok[raw.pairs[:, 0]]]
    # Texts paired only with dropped media have nothing left to pair with; unpaired texts stay.
    paired_before = np.zeros(len(raw.texts), dtype=bool)
    paired_before[raw.pairs[:, 1]] = True
    paired_after = np.zeros(len(raw.texts), dtype=bool)
    paired_after[pairs[:, 1]] = True
    text_kept = paired_after | ~paired_before
    text_new = np.cumsum(text_kept) - 1
    triplets = None
    if raw.triplets is not None:
        t = raw.triplets
        alive = media_ok[t[:, 0]] & media_ok[t[:, 2]] & text_kept[t[:, 1]]
        t = t[alive]
        triplets = np.stack([media_new[t[:, 0]], text_new[t[:, 1]], media_new[t[:, 2]]], axis=1)
    return _Layout(
        media_keep=np.flatnonzero(media_ok),
        text_keep=np.flatnonzero(text_kept),
        text_dropped=np.flatnonzero(~text_kept),
        pairs=np.stack([media_new[pairs[:, 0]], text_new[pairs[:, 1]]], axis=1).reshape(-1, 2),
        triplets=triplets,
    )


def _finalise(
    raw: RawDataset,
    partial: _PartialStore,
    staging: Path,
    text_inverse: np.ndarray,
    class_prompts: np.ndarray | None,
    attrs: dict,
    block: int,
    val: ValSplit,
) -> dict:
    """Build the final store at `staging` from the finished blocks; return the skip report.

    The partial store is only read, so a kill here loses nothing: the next run builds `staging`
    again from the start.
    """
    source, name = partial.root, raw.modality
    media_ok = source[f"_ok_{name}"][...]
    skipped = SkipReport()
    skipped.merge(raw.skipped)
    skipped.merge(partial.skipped())
    layout = _layout(raw, media_ok)
    for row in layout.text_dropped:
        skipped.add(f"caption of an undecodable {name}", f"text row {row}: {raw.texts[row][:80]}")
    if not len(layout.pairs):
        _no_usable_items(raw, skipped)
    if staging.exists():
        remove_folder(staging)
    root = zarr.open_group(staging, mode="w")
    records = {name: _copy_rows(source[name], root, name, layout.media_keep, block)}
    fault("finalise:media-written")
    # Text rows from the distinct strings they repeat.
    records["text"] = _copy_rows(
        source["_text_unique"], root, "text", text_inverse[layout.text_keep], block
    )
    fault("finalise:text-written")

    # Val is carved from every item the adapter listed, before undecodable ones go, so an item's
    # split does not depend on which others failed to decode.
    media_split = val.carve(raw.media_split)[layout.media_keep]
    text_split = text_split_of(layout.pairs, media_split, len(layout.text_keep))
    arrays = {
        "pairs": layout.pairs.astype(np.int64),
        f"{name}_split": media_split,
        "text_split": text_split,
        "text_caption": np.array(raw.texts, dtype=object)[layout.text_keep],
        f"{name}_source": np.array(
            [raw.media.describe(int(i)) for i in layout.media_keep], dtype=object
        ),
    }
    if raw.label is not None:
        arrays["label"] = np.asarray(raw.label, np.int64)[layout.media_keep]
    if raw.attributes is not None:
        arrays["attributes"] = np.asarray(raw.attributes, np.int8)[layout.media_keep]
    if layout.triplets is not None:
        arrays["triplets"] = layout.triplets.astype(np.int64)
    if class_prompts is not None:
        arrays["class_prompts"] = class_prompts
    for array_name, data in arrays.items():
        records[array_name] = write_array(root, array_name, data, block)
    fault("finalise:arrays-written")

    report = skipped.as_attrs()
    final_attrs = {
        **attrs,
        **val.attrs(),
        "modalities": [name, "text"],
        "dim": int(root[name].shape[1]),
        "splits": list(SPLITS),
        "normalised": True,
        "skipped": report,
        "skipped_total": skipped.total,
        "package_versions": package_versions(),
        "manifest": store_manifest(records),
        "complete": True,
    }
    if raw.class_names is not None:
        final_attrs["class_names"] = list(raw.class_names)
        final_attrs["templates"] = list(raw.templates or [])
    if raw.attribute_names is not None:
        final_attrs["attribute_names"] = list(raw.attribute_names)
    root.attrs.put(final_attrs)
    fault("finalise:attrs-written")
    return report


def _autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _class_prompts(raw: RawDataset, encoder: Encoder, settings: EmbedSettings, autocast):
    """[C, T, d] normalised embeddings of every (class, template) prompt."""
    if raw.class_names is None or not raw.templates:
        return None
    prompts = [template.format(name) for name in raw.class_names for template in raw.templates]
    out = []
    for offset in range(0, len(prompts), settings.text_batch_size):
        with torch.inference_mode(), autocast:
            out.append(
                _normalised(
                    encoder.encode_text(prompts[offset : offset + settings.text_batch_size])
                )
            )
    return np.concatenate(out).reshape(len(raw.class_names), len(raw.templates), -1)


def _no_usable_items(raw: RawDataset, skipped: SkipReport) -> None:
    where = raw.attrs.get("root", "the dataset")
    reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.counts.items()) or "none"
    raise InputFileError(
        str(where),
        f"no usable {raw.modality}–text pairs (skipped: {reasons})",
        "check the dataset's root and files; the store's log lists examples",
    )


def _check_labels(raw: RawDataset) -> None:
    """Labels, when the dataset has them: one integer per item, in [0, classes) when the classes
    are named; checked before anything is embedded."""
    if raw.label is None:
        return
    label = np.asarray(raw.label)
    where = str(raw.attrs.get("root", "the dataset"))
    if label.shape != (len(raw.media),) or label.dtype.kind not in "iu":
        raise InputFileError(
            where,
            f"labels are {label.dtype} of shape {list(label.shape)}; expected "
            f"{len(raw.media)} integers, one per item",
            "check the dataset's label files",
        )
    n_classes = len(raw.class_names) if raw.class_names is not None else None
    outside = np.flatnonzero((label < 0) | (label >= (n_classes or np.iinfo(np.int64).max)))
    if len(outside):
        raise InputFileError(
            where,
            f"label {label[outside[0]]} of item {raw.media.describe(int(outside[0]))} is "
            f"outside 0..{(n_classes or 1) - 1}",
            "check the dataset's label files and class names",
        )


def embed_dataset(
    raw: RawDataset,
    encoder: Encoder,
    path: str | Path,
    settings: EmbedSettings,
    attrs: dict,
    val: ValSplit = DEFAULT_VAL,
) -> Timings:
    """Embed `raw` with `encoder` into the store at `path`; resume a partial build if one exists.

    `attrs` (dataset, model...) go into the store's attrs with the model's description, the
    adapter's provenance and the skip report. `val` carves the val split from the train items when
    the store is finalised. Returns where the main process spent its time.
    """
    path = Path(path)
    if not len(raw.pairs):
        _no_usable_items(raw, raw.skipped)
    _check_labels(raw)
    for folder in (path, path.with_name(path.name + ".partial")):  # left by a killed deletion
        shutil.rmtree(folder.with_name(folder.name + DISCARDED_SUFFIX), ignore_errors=True)
    device = encoder.device
    precision = settings.resolved_precision(device)
    run_id = fingerprint(raw, encoder, settings, precision)
    partial = _PartialStore(path.with_name(path.name + ".partial"), run_id)
    if partial.resumed:
        log.info("resuming %s from its completed blocks", partial.path)
    autocast = _autocast(device, precision)
    timings = Timings()
    start = time.perf_counter()
    _embed_media(raw, encoder, settings, partial, autocast, timings)
    timings.media_wall = time.perf_counter() - start
    unique_texts, text_inverse = np.unique(np.array(raw.texts, dtype=object), return_inverse=True)
    texts = [str(t) for t in unique_texts]
    _embed_texts(texts, "_text_unique", encoder, settings, partial, autocast)
    class_prompts = _class_prompts(raw, encoder, settings, autocast)
    staging = path.with_name(path.name + STAGING_SUFFIX)
    report = _finalise(
        raw,
        partial,
        staging,
        text_inverse,
        class_prompts,
        {
            **attrs,
            **encoder.spec.describe(),
            "provenance": raw.attrs,
            "precision": precision,
            "device": str(device),
        },
        settings.write_rows,
        val,
    )
    if report:
        log.warning("skipped items: %s", json.dumps(report))
    verify_store(staging)
    fault("finalise:verified")
    publish(staging, path)
    remove_folder(partial.path)
    log.info(
        "embedded %d %s items in %.1f s (%.1f items/s; forward %.0f%% of that time, waiting for "
        "data %.0f%%, for writes %.0f%%) and %d distinct texts",
        timings.media_items,
        raw.modality,
        timings.media_wall,
        timings.media_items / max(timings.media_wall, 1e-9),
        100 * timings.media_forward / max(timings.media_wall, 1e-9),
        100 * timings.data_wait / max(timings.media_wall, 1e-9),
        100 * timings.write_wait / max(timings.media_wall, 1e-9),
        len(unique_texts),
    )
    return timings
