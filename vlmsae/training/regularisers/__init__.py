"""Regularisers on paired batches (row i of the image half pairs with row i of the text half).

Each regulariser is one module of this package that registers a `Regulariser` subclass:
- `alignment`: iso-energy alignment (Dhimoïla et al. eq. 1), β, with its option `form`;
- `group_sparsity`: L2,1 group sparsity (Kaushik et al. eq. 3), λ;
- `mask_probability`: cross-modal masking (Kaushik et al. §4), p.
A variant switches one on with a weight > 0 under the regulariser's name (`alignment: 1e-4`), sets
its options as `<name>_<option>` (`alignment_form: authors`), or asks its selection sweep
(vlmsae.sweeps) to choose the weight with 'sweep'. The config schema's keys, the trainer's loss
terms and masks, and the sweeps' selection rules all come from the registered classes, so adding
a regulariser is adding one module (docs/architecture.md, "Extending").

The loss functions import torch when called, not here: the config reads this registry to
validate a config, and a Snakemake start must not pay for torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from vlmsae.registry_base import Registry, Settings, parse_settings, settings_schema

if TYPE_CHECKING:
    import pandas as pd
    import torch

# The value of a weight that its selection sweep (vlmsae.sweeps) has still to choose.
SWEEP = "sweep"
Swept = Literal["sweep"]

REGULARISERS: Registry[type[Regulariser]] = Registry(
    "regulariser", package="vlmsae.training.regularisers"
)


class Regulariser:
    """One regulariser at a weight > 0, with its options; subclasses register with `register`.

    A subclass sets `name` (the config key of its weight) and implements `loss` (a term added to
    the training loss, logged under `term`) and/or `keep_mask` (a change to the forward pass). A
    regulariser that can be swept sets `Sweep` (its `sweeps.<name>` config section) and `select`.
    """

    name: ClassVar[str]
    term: ClassVar[str | None] = None
    """The train_log.csv column of its loss term; None for one that adds no loss term."""
    weight_schema: ClassVar[dict[str, Any]] = {"type": "number", "minimum": 0}
    """JSON schema of a fixed weight (a swept one is the string 'sweep')."""
    Options: ClassVar[type[Settings]] = Settings
    """Its options, config keys `<name>_<field>`; their defaults are filled in by the variant."""
    Sweep: ClassVar[type[Settings] | None] = None
    """Settings of its selection sweep (config `sweeps.<name>`); None: it cannot be swept."""
    sweep_baseline: ClassVar[bool] = True
    """Whether its sweep also trains the weight 0 (the unregularised baseline)."""
    sweeps_after: ClassVar[tuple[str, ...]] = ()
    """Regularisers whose sweeps must have chosen their weight before this one's sweep runs."""

    def __init__(self, weight: float, options: Settings):
        self.weight, self.options = weight, options

    def loss(self, codes_image: torch.Tensor, codes_text: torch.Tensor) -> torch.Tensor:
        """The weighted loss term on dense paired codes [b, p] each (called when `term` is set)."""
        raise NotImplementedError

    def keep_mask(
        self, n_pairs: int, n_atoms: int, generator: torch.Generator, device: torch.device
    ) -> torch.Tensor | None:
        """[2·n_pairs, p] bool: the atoms each row may use in this step's forward pass; None
        (the default) for a regulariser that leaves the forward pass alone."""
        return None

    @classmethod
    def check_sweeps(cls, key: str, weights: dict[str, float | str]) -> None:
        """ConfigError at `key` when a variant's weights (by name) combine sweeps this
        regulariser's selection rule cannot serve; called for every registered regulariser."""

    @classmethod
    def select(cls, table: pd.DataFrame, rule: Settings, k: int | None) -> tuple[float, str]:
        """The chosen weight among the sweep's points (`table`: value, r2, r2_overall, l0) and
        the rule's words, under the variant's `k` (None for a penalised variant)."""
        raise NotImplementedError


def register(cls: type[Regulariser]) -> type[Regulariser]:
    """Class decorator: register a Regulariser subclass under its `name`."""
    return REGULARISERS.register(cls.name, cls.Options, (cls.__doc__ or "").strip())(cls)


def available() -> list[str]:
    return REGULARISERS.names()


def sweep_order() -> list[str]:
    """Every regulariser that can be swept, each after those in its `sweeps_after`."""
    swept = {entry.name: entry.obj for entry in REGULARISERS if entry.obj.Sweep is not None}
    ordered: list[str] = []

    def add(name: str) -> None:
        if name not in ordered:
            for earlier in swept[name].sweeps_after:
                add(earlier)
            ordered.append(name)

    for name in swept:
        add(name)
    return ordered


def regulariser(name: str) -> type[Regulariser]:
    """The registered class of the regulariser `name`."""
    return REGULARISERS.get(name).obj


class Regularisers:
    """A variant's regulariser weights and options, by config key; every weight is 0 unless set.

    Built from a variant's config keys (`Regularisers(alignment=1e-4, alignment_form="authors")`);
    each config key reads back as an attribute (`regularisers.alignment_form`). A weight still to
    be swept (vlmsae.sweeps) is 'sweep'.
    """

    __slots__ = ("_weights", "_options")

    def __init__(self, **config: Any):
        weights: dict[str, float | str] = {}
        options: dict[str, Settings] = {}
        for entry in REGULARISERS:
            weights[entry.name] = _weight(entry.name, config.pop(entry.name, 0.0))
            if weights[entry.name] == SWEEP and entry.obj.Sweep is None:
                raise ValueError(f"{entry.name} has no selection sweep: set its weight")
            prefix = f"{entry.name}_"
            section = {
                key.removeprefix(prefix): config.pop(key)
                for key in list(config)
                if key.startswith(prefix) and key.removeprefix(prefix) in _fields(entry.settings)
            }
            options[entry.name] = parse_settings(entry.settings, section, entry.name)
        if config:
            raise ValueError(f"{next(iter(config))!r} is no regulariser weight or option")
        object.__setattr__(self, "_weights", weights)
        object.__setattr__(self, "_options", options)

    @classmethod
    def from_variant(cls, variant: dict) -> Regularisers:
        """The regularisers among a variant entry's keys (others are left alone)."""
        return cls(**{key: value for key, value in variant.items() if key in config_keys()})

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):  # a slot not yet set, while __init__ runs
            raise AttributeError(key)
        for name, options in self._options.items():
            if key == name:
                return self._weights[name]
            if key.startswith(f"{name}_") and key.removeprefix(f"{name}_") in _fields(options):
                return getattr(options, key.removeprefix(f"{name}_"))
        raise AttributeError(f"no regulariser weight or option '{key}'")

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Regularisers are frozen: use `replace`")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regularisers) and self.as_config() == other.as_config()

    def __hash__(self) -> int:
        return hash(tuple(self.as_config().items()))

    def __repr__(self) -> str:
        changed = ", ".join(f"{key}={value!r}" for key, value in self.as_config(False).items())
        return f"Regularisers({changed})"

    def replace(self, **config: Any) -> Regularisers:
        """These regularisers with the named config keys (weights or options) replaced."""
        return Regularisers(**{**self.as_config(), **config})

    def as_config(self, defaults: bool = True) -> dict[str, Any]:
        """Config keys and values: every weight (registry order), then every option; without
        `defaults`, only those that differ from their default."""
        weights = {
            name: weight for name, weight in self._weights.items() if defaults or weight != 0.0
        }
        options = {
            f"{name}_{key}": value
            for name, settings in self._options.items()
            for key, value in settings.as_dict().items()
            if defaults or value != type(settings).__dataclass_fields__[key].default
        }
        return {**weights, **options}

    @property
    def weights(self) -> dict[str, float | str]:
        """Every regulariser's weight by name (0: off; 'sweep': still to be chosen)."""
        return dict(self._weights)

    @property
    def swept(self) -> list[str]:
        """The regularisers set to 'sweep', in the order their sweeps run (vlmsae.sweeps)."""
        return [name for name in sweep_order() if self._weights[name] == SWEEP]

    @property
    def paired(self) -> bool:
        """Whether training needs aligned pairs in every batch (a swept weight will be > 0)."""
        return any(_on(weight) for weight in self._weights.values())

    def active(self) -> Iterator[Regulariser]:
        """The regularisers switched on, in registry order, each at its weight (all resolved)."""
        for name, weight in self._weights.items():
            if weight == SWEEP:
                raise ValueError(f"{name} is still 'sweep': resolve the sweep first")
            if weight > 0:
                yield regulariser(name)(weight, self._options[name])


def config_keys() -> set[str]:
    """Every variant config key the regularisers take: their weights and `<name>_<option>`s."""
    keys = set()
    for entry in REGULARISERS:
        keys.add(entry.name)
        keys.update(f"{entry.name}_{field}" for field in _fields(entry.settings))
    return keys


def variant_properties() -> dict[str, Any]:
    """The variant schema's properties of every regulariser: its weight (a number or 'sweep')
    and its options. No defaults: a preset's options must survive the schema's fill-in, and
    `Regularisers` fills in the rest."""
    properties: dict[str, Any] = {}
    for entry in REGULARISERS:
        cls = entry.obj
        swept = [{"const": SWEEP}] if cls.Sweep is not None else []
        properties[entry.name] = {
            "description": entry.description.split("\n")[0] + (", or 'sweep'" if swept else ""),
            "oneOf": [cls.weight_schema, *swept],
        }
        for field, schema in settings_schema(entry.settings)["properties"].items():
            schema = {key: value for key, value in schema.items() if key != "default"}
            properties[f"{entry.name}_{field}"] = schema
    return properties


def sweep_properties() -> dict[str, Any]:
    """The `sweeps` section's properties of every regulariser that can be swept."""
    sections = {}
    for entry in REGULARISERS:
        if entry.obj.Sweep is not None:
            description = " ".join((entry.obj.Sweep.__doc__ or "").split())
            sections[entry.name] = {**settings_schema(entry.obj.Sweep, description), "default": {}}
    return sections


def _fields(settings: type[Settings] | Settings) -> set[str]:
    return set(settings.__dataclass_fields__)


def _weight(name: str, value: float | str) -> float | str:
    if isinstance(value, str):
        if value != SWEEP:
            raise ValueError(f"{name}={value!r} is neither a weight nor '{SWEEP}'")
        return value
    return float(value)


def _on(value: float | str) -> bool:
    return value == SWEEP or value > 0
