"""Selection sweeps for the regularisers (results/sweeps/{dataset}/{model}/{variant}/).

A variant marks a regulariser's weight to be swept with the string "sweep". Each regulariser that
can be swept (vlmsae.training.regularisers) brings its grid and selection rule: β (iso-energy
§4.1), λ and then p (group-sparse App. A.2.1). A sweep trains one SAE per value of its grid (plus
the unregularised baseline where the rule compares against it), applies the rule, and, when the
choice is the top of a grid with an extension (β), adds one value per round (`sweep_round`) until
it is interior or the next step would pass `extension_cap`; the table's `at_grid_edge` says when
the choice is still the top of the grid. `resolve_variant` replaces "sweep" by the chosen value.
Every point is scored on the store's val split (`score_point`), never on eval, so the choice leaks
nothing into the reported metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from vlmsae.registry_base import parse_settings
from vlmsae.training.regularisers import regulariser, sweep_order

# pandas is imported inside the functions: the Snakefile imports this module at every start.
if TYPE_CHECKING:
    import pandas as pd

    from vlmsae.sae.base import SparseAutoencoder
    from vlmsae.stores.embedding_store import EmbeddingStore
    from vlmsae.training.variants import Variant

# The regularisers a sweep can choose, each after the ones its rule builds on.
PARAMETERS = tuple(sweep_order())
# The store split sweep points are scored on: carved from train, disjoint from eval.
SELECTION_SPLIT = "val"
# What a sweep point's point.json gives its row of the sweep table.
POINT_COLUMNS = ("value", "split", "r2", "r2_overall", "l0", "dead_atoms")


def sweep_points(parameter: str, settings: dict) -> list[float]:
    """Values trained by a sweep: its grid, after 0 when its rule compares against the
    unregularised baseline."""
    values = [float(v) for v in settings[parameter]["values"]]
    return [0.0, *values] if regulariser(parameter).sweep_baseline else values


def round_values(parameter: str, settings: dict, previous: dict | None) -> list[float]:
    """Values trained by a sweep round: the grid in round 0, then each round adds the extension
    the previous round (its `sweep_round` result) asked for."""
    if previous is None:
        return sweep_points(parameter, settings)
    return [*previous["values"], previous["extend_to"]]


def point_variant(
    variant: Variant, parameter: str, value: float, chosen: dict[str, float]
) -> Variant:
    """The variant trained at one sweep point: `parameter` = value, earlier sweeps resolved.

    A regulariser whose sweep comes later is off while this one is swept (the paper sweeps λ on
    the GSAE, then p on top).
    """
    point = resolve_variant(variant, chosen, allow_missing=True).with_regularisers(
        **{parameter: value}
    )
    later = PARAMETERS[PARAMETERS.index(parameter) + 1 :]
    return point.with_regularisers(**{name: 0.0 for name in later if name in point.swept})


def resolve_variant(
    variant: Variant, chosen: dict[str, float], allow_missing: bool = False
) -> Variant:
    """The variant with every 'sweep' replaced by its chosen value."""
    missing = [name for name in variant.swept if name not in chosen]
    if missing and not allow_missing:
        raise KeyError(f"no chosen value for '{missing[0]}': its sweep has not run")
    return variant.with_regularisers(
        **{name: chosen[name] for name in variant.swept if name in chosen}
    )


def score_point(model: SparseAutoencoder, store: EmbeddingStore, evaluation: dict) -> dict:
    """What the selection rules read of a sweep point's SAE, measured on the val split under the
    config `evaluation` settings: split, r2, l0, dead_atoms."""
    # Imported here: the Snakefile imports this module, and the metrics pull in torch.
    from vlmsae.metrics.evaluate import EvalSettings, evaluate

    _, summary = evaluate(model, store, EvalSettings(**{**evaluation, "split": SELECTION_SPLIT}))
    scored = ("r2", "r2_overall", "l0", "dead_atoms")
    return {"split": SELECTION_SPLIT, **{key: summary[key] for key in scored}}


def read_chosen(paths: list[str | Path]) -> dict[str, float]:
    """{parameter: chosen value} from the sweeps' `<parameter>.json` files."""
    chosen = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        chosen[record["parameter"]] = record["chosen"]
    return chosen


def select(parameter: str, table: pd.DataFrame, settings: dict, k: int | None) -> dict:
    """Apply the parameter's selection rule to `table` (columns value, r2, l0)."""
    table = table.sort_values("value").reset_index(drop=True)
    swept = regulariser(parameter)
    rule = parse_settings(swept.Sweep, settings[parameter], f"sweeps.{parameter}")
    chosen, reason = swept.select(table, rule, k)
    table["chosen"] = table["value"] == chosen
    # The largest value tried was chosen: had a larger one been tried, it might have passed too.
    at_edge = bool(chosen == table["value"].max())
    table["at_grid_edge"] = at_edge
    return {
        "parameter": parameter,
        "chosen": chosen,
        "rule": reason,
        "at_grid_edge": at_edge,
        "table": table.to_dict(orient="records"),
    }


def extension(parameter: str, result: dict, settings: dict) -> float | None:
    """The value to train next when `result` (of `select`) chose the top of the grid: chosen ×
    extension_factor while it stays ≤ extension_cap; None when the choice is interior or the
    parameter has no extension settings (only β: λ's rule reads L0 against k, p is below 1)."""
    rule = settings[parameter]
    if not result["at_grid_edge"] or "extension_factor" not in rule:
        return None
    # Written as the point's path writes it (`:g`), so the value read back is the same float.
    value = float(f"{result['chosen'] * rule['extension_factor']:g}")
    return value if value <= rule["extension_cap"] else None


def sweep_round(
    parameter: str, points: list[dict], previous: dict | None, settings: dict, k: int | None
) -> dict:
    """One round of a sweep: the rule over every point trained so far (point.json records).

    The result is `select`'s, its table with a `round` column (the round that added each value),
    plus this round's number, the values trained and `extend_to`, the value the next round adds
    (None: the sweep is done).
    """
    number = 0 if previous is None else previous["round"] + 1
    import pandas as pd

    first = {} if previous is None else {row["value"]: row["round"] for row in previous["table"]}
    table = pd.DataFrame([{key: point[key] for key in POINT_COLUMNS} for point in points])
    table["round"] = [first.get(value, number) for value in table["value"]]
    result = select(parameter, table, settings, k)
    return {
        **result,
        "round": number,
        "values": sorted(float(v) for v in table["value"]),
        "extend_to": extension(parameter, result, settings),
    }
