"""Conceptual Captions 3M (CC3M): about 3.3 million web images with one caption each.

Google ships URLs only; the images come from a download, in one of the formats of
`vlmsae.datasets.image_captions` (default: img2dataset's webdataset shards, train/*.tar and
val/*.tar; or open_clip-style tsv files, e.g. `train: cc3m_train.tsv, eval: cc3m_val.tsv`, with
columns filepath and title).

Splits: the release's own training and validation sets, `train` → train and `eval` → eval.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmsae.datasets.image_captions import (
    CaptionedImageSettings,
    eval_files,
    register_captioned,
    train_files,
)


@dataclass(frozen=True, kw_only=True)
class CC3MSettings(CaptionedImageSettings):
    """Config section `datasets.X.cc3m`: img2dataset's train/ and val/ shard folders by default."""

    train: str = train_files("train/*.tar")
    eval: str | None = eval_files("val/*.tar")


register_captioned(
    "cc3m",
    CC3MSettings,
    "Image–caption pairs as img2dataset webdataset shards, open_clip-style tsv, or parquet with "
    "image bytes.",
)
