"""Build one embedding store from a dataset source and a model: the stage of rule `embed`.

It sits above `datasets/` and `models/` (docs/architecture.md): an embedding source's arrays are
written as they are, and a raw source is read, then embedded by the model, which is the one step
that needs both layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vlmsae import datasets
from vlmsae.errors import ConfigError, InputFileError, check_output_folders
from vlmsae.stores.embedding_store import MIN_SPLIT_PAIRS, SPLITS, ValSplit, write_store

if TYPE_CHECKING:
    from vlmsae.datasets.raw import RawDataset


def build_store(
    dataset: str,
    model: str,
    spec: dict,
    path: str | Path,
    model_entry: dict | None = None,
    embed: dict | None = None,
) -> Path:
    """Build the store of (`dataset`, `model`) from its config `spec` and write it to `path`.

    Raw sources embed with the registry model `model` (`model_entry`: its config `models.<name>`
    overrides) under the config `embed` settings.
    """
    check_output_folders([path])
    source = spec["source"]
    settings = datasets.source_settings(source, spec[source], f"datasets.{dataset}.{source}")
    val = ValSplit.of_dataset(spec)
    if not datasets.needs_model(source):
        arrays = datasets.SOURCES.get(source).obj(settings)
        attrs = {**arrays.pop("attrs"), "dataset": dataset, "model": model}
        return write_store(path, **arrays, attrs=attrs, val=val)
    # Imported here: the model libraries are heavy and only raw sources need them.
    import torch

    from vlmsae import models
    from vlmsae.devices import resolve_device
    from vlmsae.embedding import EmbedSettings, embed_dataset

    embed_settings = EmbedSettings(**(embed or {}))
    model_spec = models.resolve(model, model_entry)
    raw = datasets.read_raw(source, settings)
    if raw.modality != model_spec.modality:
        raise ConfigError(
            f"datasets.{dataset}.models",
            f"'{model}' embeds {model_spec.modality} but {source} holds {raw.modality}",
            f"use a model of the {raw.modality} modality",
        )
    _check_split_sizes(raw, dataset, source)
    device = resolve_device(embed_settings.device, "embed.device")
    encoder = models.load(model_spec, device=device)
    # DataLoader workers decode on cores of their own; the forward pass gets the others.
    torch.set_num_threads(max(1, torch.get_num_threads() - embed_settings.num_workers))
    attrs = {"dataset": dataset, "model": model, "source": source}
    embed_dataset(raw, encoder, path, embed_settings, attrs, val=val)
    return Path(path)


def _check_split_sizes(raw: RawDataset, dataset: str, source: str) -> None:
    """Refuse, before any model loads, a dataset whose train or eval split has fewer than
    MIN_SPLIT_PAIRS pairs (COCO with only its val split read, or every train image missing),
    which write_store would refuse after hours of embedding."""
    pairs = np.asarray(raw.pairs, dtype=np.int64).reshape(-1, 2)
    pair_split = np.asarray(raw.media_split)[pairs[:, 0]]
    for split in ("train", "eval"):
        count = int(np.sum(pair_split == SPLITS.index(split)))
        if count < MIN_SPLIT_PAIRS:
            raise InputFileError(
                str(raw.attrs.get("root", f"datasets.{dataset}.{source}")),
                f"dataset '{dataset}' has {count} {split} pairs ({len(raw.pairs)} in all, "
                f"{raw.skipped.total} items skipped); at least {MIN_SPLIT_PAIRS} are needed",
                f"read a split with {split} items in datasets.{dataset}.{source} (e.g. its "
                "`splits`), or restore the missing files",
            )
