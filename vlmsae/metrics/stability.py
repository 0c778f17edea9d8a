"""Stability of a learned dictionary across runs (linear-structure §4, eq. 4; DESIGN §5 Stability).

Both dictionaries are unit-normalised, C = D̂ D̂'ᵀ, and the permutation P* maximising Σ C over
matched rows is found by linear_sum_assignment (Hungarian matching); stability is the mean matched
cosine. Cosines are signed: an atom and its negation match at −1, since for non-negative codes
they are different concepts. Row scale does not matter. Restricted to each run's m most energetic
atoms, the two top-m subsets are matched to each other (linear-structure §4.1: the high-energy
atoms are the stable ones). With dictionaries of different sizes every atom of the smaller one
gets a partner and the mean is over those min(p, p') pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from vlmsae.metrics.recovery import matched_cosines

RUN_KEYS = ("dataset", "model", "variant")


def top_atoms(energy: np.ndarray, m: int) -> np.ndarray:
    """Indices of the m most energetic atoms of energy [p] (all p when m ≥ p).

    Ties (dead atoms all have energy 0) go to the lower index, so the subset is deterministic.
    """
    return np.argsort(-np.asarray(energy), kind="stable")[:m]


def matched_atoms(
    dictionary_a: np.ndarray,
    dictionary_b: np.ndarray,
    atoms_a: np.ndarray | None = None,
    atoms_b: np.ndarray | None = None,
) -> pd.DataFrame:
    """Rows (atom_a, atom_b, cosine) of the matching maximising Σ cos, sorted by atom_a.

    dictionary_a [p, d], dictionary_b [p', d]; atoms_a / atoms_b restrict the matching to those
    atoms (e.g. `top_atoms`), and the rows keep the atoms' indices in the full dictionaries.
    """
    atoms_a = np.arange(len(dictionary_a)) if atoms_a is None else np.asarray(atoms_a)
    atoms_b = np.arange(len(dictionary_b)) if atoms_b is None else np.asarray(atoms_b)
    rows, cols, cosines = matched_cosines(dictionary_a[atoms_a], dictionary_b[atoms_b])
    order = np.argsort(atoms_a[rows])
    return pd.DataFrame(
        {
            "atom_a": atoms_a[rows][order],
            "atom_b": atoms_b[cols][order],
            "cosine": cosines[order],
        }
    )


def stability(
    dictionary_a: np.ndarray,
    dictionary_b: np.ndarray,
    energy_a: np.ndarray,
    energy_b: np.ndarray,
    top_m: Sequence[int],
) -> dict[str, float]:
    """`stability` (eq. 4 over all atoms) and `stability_top{m}` for each m in top_m.

    dictionary_a [p, d] and dictionary_b [p', d] are decoder rows of two runs; energy_a [p] and
    energy_b [p'] their atoms' energies, which pick each run's top-m atoms.
    """
    result = {"stability": float(matched_atoms(dictionary_a, dictionary_b)["cosine"].mean())}
    for m in top_m:
        matched = matched_atoms(
            dictionary_a, dictionary_b, top_atoms(energy_a, m), top_atoms(energy_b, m)
        )
        result[f"stability_top{m}"] = float(matched["cosine"].mean())
    return result


def _pair_kind(run_a: dict, run_b: dict) -> str | None:
    """'seed' or 'mixture' when the runs differ in exactly that; None otherwise."""
    same_mixture = run_a["mixture"] == run_b["mixture"]
    same_seed = run_a["seed"] == run_b["seed"]
    if same_mixture and not same_seed:
        return "seed"
    if same_seed and not same_mixture:
        return "mixture"
    return None


def stability_table(runs: Sequence[dict], top_m: Sequence[int]) -> pd.DataFrame:
    """One row per unordered pair of runs of one (dataset, model, variant) differing in one factor.

    Each run is a dict with keys dataset, model, variant, mixture, seed, dictionary [p, d] and
    energy [p]. Pairs that differ in seed only have kind 'seed' (same mixture); pairs that differ
    in mixture only have kind 'mixture' (same seed); run a comes before run b in `runs`.
    Columns: dataset, model, variant, kind, mixture_a, mixture_b, seed_a, seed_b, stability,
    stability_top{m} for each m.
    """
    columns = [
        *RUN_KEYS,
        "kind",
        "mixture_a",
        "mixture_b",
        "seed_a",
        "seed_b",
        "stability",
        *(f"stability_top{m}" for m in top_m),
    ]
    rows = []
    for run_a, run_b in combinations(runs, 2):
        kind = _pair_kind(run_a, run_b)
        if kind is None or any(run_a[key] != run_b[key] for key in RUN_KEYS):
            continue
        rows.append(
            {
                **{key: run_a[key] for key in RUN_KEYS},
                "kind": kind,
                "mixture_a": run_a["mixture"],
                "mixture_b": run_b["mixture"],
                "seed_a": run_a["seed"],
                "seed_b": run_b["seed"],
                **stability(
                    run_a["dictionary"],
                    run_b["dictionary"],
                    run_a["energy"],
                    run_b["energy"],
                    top_m,
                ),
            }
        )
    return pd.DataFrame(rows, columns=columns)
