"""LAION (400M, 2B-en, COCO/aesthetics subsets...): web images with their alt-text captions.

LAION ships URLs and captions; the images come from img2dataset, as webdataset shards (default:
`root`/*.tar; the metadata .parquet files img2dataset writes beside them are not read) or as
parquet files with the image bytes (`train: "*.parquet"`; columns `image_column`, default "jpg",
and `caption_column`, default "caption"; a Hugging Face copy uses `image` and `TEXT`). See
`vlmsae.datasets.image_captions`.

Splits: LAION has none: a seeded random split (`eval_fraction`, `seed`), unless `eval` names the
eval files.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmsae.datasets.image_captions import CaptionedImageSettings, register_captioned


@dataclass(frozen=True, kw_only=True)
class LaionSettings(CaptionedImageSettings):
    """Config section `datasets.X.laion`: img2dataset's plain output (shards in `root`, no
    split), the defaults of `CaptionedImageSettings`."""


register_captioned(
    "laion",
    LaionSettings,
    "LAION-style pairs (webdataset shards or parquet with image bytes, or a tsv); no split of its "
    "own, so a seeded random split unless `eval` is given.",
)
