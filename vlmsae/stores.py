"""Build one embedding store from a dataset source and a model: the stage of rule `embed`.

It sits above `datasets/` and `models/` (docs/architecture.md): an embedding source's arrays are
written as they are, and a raw source is read, then embedded by the model, which is the one step
that needs both layers.
"""

from __future__ import annotations

from pathlib import Path

from vlmsae import datasets
from vlmsae.errors import ConfigError
from vlmsae.store import ValSplit, write_store


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
    device = resolve_device(embed_settings.device, "embed.device")
    encoder = models.load(model_spec, device=device)
    # DataLoader workers decode on cores of their own; the forward pass gets the others.
    torch.set_num_threads(max(1, torch.get_num_threads() - embed_settings.num_workers))
    attrs = {"dataset": dataset, "model": model, "source": source}
    embed_dataset(raw, encoder, path, embed_settings, attrs, val=val)
    return Path(path)
