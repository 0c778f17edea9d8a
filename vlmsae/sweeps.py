"""Selection sweeps for the regularisers (results/sweeps/{dataset}/{model}/{variant}/).

- alignment β (iso-energy §4.1): train β ∈ {0} ∪ values; choose the largest β whose R² drop
  against β = 0 is below `max_r2_drop` (0 when none is). When that is the largest β tried, a
  larger one might pass too: the grid is extended by `extension_factor` steps, one round of
  training at a time (`sweep_round`), until the chosen β is interior or the next step would pass
  `extension_cap`; the table's `at_grid_edge` says when the choice is still the top of the grid.
- group sparsity λ (group-sparse App. A.2.1): train λ ∈ values without masking; choose the largest
  λ whose mean L0 stays at least k·(1 − l0_tolerance), i.e. that does not push codes below K
  active atoms (0 when none does).
- mask probability p (same appendix): with the chosen λ, train p ∈ {0} ∪ values; choose the
  largest p whose R² is within `r2_tolerance` of the unmasked model's (the closest when none is).
A variant marks a value to be swept with the string "sweep"; `resolve_variant` replaces it by the
chosen value once the sweep has run. Every point is scored on the store's val split
(`score_point`), never on eval, so the choice leaks nothing into the reported metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from vlmsae.training.regularisers import SWEEP

if TYPE_CHECKING:
    from vlmsae.sae.base import SparseAutoencoder
    from vlmsae.stores.embedding_store import EmbeddingStore
    from vlmsae.training.variants import Variant

PARAMETERS = ("alignment", "group_sparsity", "mask_probability")
# The store split sweep points are scored on: carved from train, disjoint from eval.
SELECTION_SPLIT = "val"
# What a sweep point's point.json gives its row of the sweep table.
POINT_COLUMNS = ("value", "split", "r2", "r2_overall", "l0", "dead_atoms")


def sweep_points(parameter: str, settings: dict) -> list[float]:
    """Values trained by a sweep; alignment and masking also train the unregularised baseline."""
    values = [float(v) for v in settings[parameter]["values"]]
    return values if parameter == "group_sparsity" else [0.0, *values]


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

    While λ is swept there is no masking (the paper sweeps λ on the GSAE, then p on top).
    """
    point = resolve_variant(variant, chosen, allow_missing=True).with_regularisers(
        **{parameter: value}
    )
    if parameter == "group_sparsity" and point.regularisers.mask_probability == SWEEP:
        point = point.with_regularisers(mask_probability=0.0)
    return point


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
    rule = settings[parameter]
    if parameter == "alignment":
        # The authors' R² (one overall mean, issue 12 item 7) is the one their rule was set on.
        baseline = float(table.loc[table["value"] == 0, "r2_overall"].iloc[0])
        table["r2_drop"] = baseline - table["r2_overall"]
        ok = table[(table["value"] > 0) & (table["r2_drop"] < rule["max_r2_drop"])]
        chosen = float(ok["value"].max()) if len(ok) else 0.0
        reason = (
            f"largest β with overall-R² drop < {rule['max_r2_drop']} against β = 0 "
            f"(R² {baseline:.4f})"
        )
    elif parameter == "group_sparsity":
        if k is None:
            raise ValueError("the group-sparsity rule needs the variant's k")
        floor = k * (1 - rule["l0_tolerance"])
        ok = table[table["l0"] >= floor]
        chosen = float(ok["value"].max()) if len(ok) else 0.0
        reason = f"largest λ with mean L0 ≥ {floor:.2f} (k = {k})"
    else:
        baseline = float(table.loc[table["value"] == 0, "r2"].iloc[0])
        table["r2_difference"] = (table["r2"] - baseline).abs()
        masked = table[table["value"] > 0]
        ok = masked[masked["r2_difference"] <= rule["r2_tolerance"]]
        best = ok if len(ok) else masked[masked["r2_difference"] == masked["r2_difference"].min()]
        chosen = float(best["value"].max())
        reason = f"largest p with |R² − R²(p = 0)| ≤ {rule['r2_tolerance']} (R² {baseline:.4f})" + (
            "" if len(ok) else "; none qualified, closest taken"
        )
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
