"""The text side of classification datasets (CIFAR, ImageNet; GTZAN, NSynth): class prompts.

Each image (or audio clip) gets one text row, the prompt of its class in a template drawn for it
with the setting `seed`; the templates themselves go to `RawDataset.templates` for zero-shot
classification. Setting `templates`: "simple" or "openai" (open_clip's
`SIMPLE_IMAGENET_TEMPLATES`, 7, and `OPENAI_IMAGENET_TEMPLATES`, 80), one template, or a list,
each with one "{}" for the class name. `ClassPromptSettings` declares them once for every
classification source; an audio source overrides the default with `templates_setting`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vlmsae.datasets.common import MaxItems, Seeded
from vlmsae.datasets.raw import MediaSource, RawDataset, SkipReport, limit_media
from vlmsae.registry_base import setting

# Heavy imports stay inside functions: the Snakefile reads this registry at every start.
if TYPE_CHECKING:
    import numpy as np

DEFAULT_TEMPLATES = ["a photo of a {}."]
NAMED_TEMPLATES = ("simple", "openai")


def templates_setting(default: list[str], item: str = "image") -> Any:
    """The `templates` setting with `default` (each `item` of the dataset gets one template)."""
    return setting(
        default,
        "prompt templates with one {} for the class name; simple/openai = open_clip's SIMPLE_ (7) "
        f"/ OPENAI_IMAGENET_TEMPLATES (80); each {item}'s text uses one, drawn with seed",
        anyOf=[
            {"enum": list(NAMED_TEMPLATES)},
            {"type": "string", "pattern": "\\{\\}"},
            {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "\\{\\}"}},
        ],
    )


@dataclass(frozen=True, kw_only=True)
class ClassPromptSettings(MaxItems, Seeded):
    """What every source whose text rows are class prompts takes."""

    templates: str | list[str] = templates_setting(DEFAULT_TEMPLATES)

    def check(self) -> None:
        # The schema's pattern asks for a "{}"; a second one would take the class name as well.
        # The message names its key ("templates=") for vlmsae.registry_base.parse_settings.
        if self.templates in NAMED_TEMPLATES:
            return
        templates = [self.templates] if isinstance(self.templates, str) else self.templates
        if not templates or any(t.count("{}") != 1 for t in templates):
            raise ValueError(
                f'templates={self.templates!r} needs one "{{}}" in each template; use "simple", '
                '"openai", or templates such as "a photo of a {}."'
            )


@cache
def _zero_shot_metadata() -> ModuleType:
    # The package's __init__ imports torch and every model; this module is plain data, so it is
    # loaded on its own: reading a layout must not need the model stack.
    spec = importlib.util.find_spec("open_clip")
    path = Path(next(iter(spec.submodule_search_locations))) / "zero_shot_metadata.py"
    module_spec = importlib.util.spec_from_file_location("open_clip_zero_shot_metadata", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def imagenet_class_names() -> list[str]:
    """open_clip's 1000 ImageNet class names, in class-index (sorted wnid) order."""
    return list(_zero_shot_metadata().IMAGENET_CLASSNAMES)


def templates_from(templates: str | list[str]) -> list[str]:
    """The prompt templates the setting `templates` names, as strings with one "{}"."""
    if templates in NAMED_TEMPLATES:
        # open_clip keeps them as lambdas c -> f"...{c}..."; given "{}" they write the template.
        lambdas = getattr(_zero_shot_metadata(), f"{templates.upper()}_IMAGENET_TEMPLATES")
        return [template("{}") for template in lambdas]
    return [templates] if isinstance(templates, str) else list(templates)


def class_prompt_dataset(
    media: MediaSource,
    label: np.ndarray,
    class_names: list[str],
    media_split: np.ndarray,
    settings: ClassPromptSettings,
    attrs: dict,
    skipped: SkipReport | None = None,
    modality: str = "image",
) -> RawDataset:
    """A RawDataset of labelled media (images, or audio clips with `modality="audio"`) whose text
    rows are class prompts, one per item: label [N] in 0..C−1, media_split [N].

    The template of each item is drawn before `max_items` applies, so an item keeps its prompt
    whether or not the dataset is cut.
    """
    import numpy as np

    templates = templates_from(settings.templates)
    rng = np.random.default_rng(settings.seed)
    choice = rng.integers(len(templates), size=len(label))
    texts = [templates[t].replace("{}", class_names[c]) for t, c in zip(choice, label, strict=True)]
    rows = np.arange(len(label))
    raw = RawDataset(
        modality=modality,
        media=media,
        texts=texts,
        pairs=np.stack([rows, rows], axis=1),
        media_split=media_split,
        label=np.asarray(label, dtype=np.int64),
        class_names=class_names,
        templates=templates,
        attrs={**attrs, "templates": settings.templates},
        skipped=skipped or SkipReport(),
    )
    return limit_media(raw, settings.max_items)
