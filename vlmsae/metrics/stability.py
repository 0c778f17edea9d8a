"""Stability of a learned dictionary across runs (linear-structure §4, eq. 4; DESIGN §5 Stability).

Both dictionaries are unit-normalised, C = D̂ D̂'ᵀ, and the permutation P* maximising Σ C over
matched rows is the optimal assignment (Hungarian matching: `recovery.matched_cosines`, exact,
certified against the dense problem); stability is the mean matched cosine. Cosines are signed:
an atom and its negation match at −1, since for non-negative codes they are different concepts.
Row scale does not matter. Restricted to each run's m most energetic atoms, the two top-m subsets
are matched to each other (linear-structure §4.1: the high-energy atoms are the stable ones).
With dictionaries of different sizes every atom of the smaller one gets a partner and the mean is
over those min(p, p') pairs.

Per atom (linear-structure §4.1, energy against stability per concept): an atom's stability is
its matched cosine in another seed of the same variant and mixture, averaged over those seeds.
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
    matched: pd.DataFrame | None = None,
) -> dict[str, float]:
    """`stability` (eq. 4 over all atoms) and `stability_top{m}` for each m in top_m.

    dictionary_a [p, d] and dictionary_b [p', d] are decoder rows of two runs; energy_a [p] and
    energy_b [p'] their atoms' energies, which pick each run's top-m atoms. `matched`: the
    matching of all atoms (`matched_atoms(dictionary_a, dictionary_b)`) when already computed.
    """
    if matched is None:
        matched = matched_atoms(dictionary_a, dictionary_b)
    result = {"stability": float(matched["cosine"].mean())}
    for m in top_m:
        top = matched_atoms(
            dictionary_a, dictionary_b, top_atoms(energy_a, m), top_atoms(energy_b, m)
        )
        result[f"stability_top{m}"] = float(top["cosine"].mean())
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


ATOM_COLUMNS = [*RUN_KEYS, "mixture", "seed", "atom", "energy", "stability", "partners"]


def stability_tables(
    runs: Sequence[dict], top_m: Sequence[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairs, atoms) of the runs of one or more (dataset, model, variant).

    Each run is a dict with keys dataset, model, variant, mixture, seed, dictionary [p, d] and
    energy [p]. `pairs`: one row per unordered pair of runs of one (dataset, model, variant) that
    differ in one factor: kind 'seed' (same mixture) or 'mixture' (same seed), run a before run
    b in `runs`; columns dataset, model, variant, kind, mixture_a, mixture_b, seed_a, seed_b,
    stability, stability_top{m} for each m. `atoms`: one row per atom of each run that has
    another seed of its variant and mixture; `stability` is the atom's matched cosine averaged
    over those seeds (`partners` of them), `energy` the run's; columns ATOM_COLUMNS.
    """
    pair_columns = [
        *RUN_KEYS,
        "kind",
        "mixture_a",
        "mixture_b",
        "seed_a",
        "seed_b",
        "stability",
        *(f"stability_top{m}" for m in top_m),
    ]
    pairs = []
    cosine_sums = [np.zeros(len(run["dictionary"])) for run in runs]
    partners = [np.zeros(len(run["dictionary"]), dtype=int) for run in runs]
    for (a, run_a), (b, run_b) in combinations(enumerate(runs), 2):
        kind = _pair_kind(run_a, run_b)
        if kind is None or any(run_a[key] != run_b[key] for key in RUN_KEYS):
            continue
        matched = matched_atoms(run_a["dictionary"], run_b["dictionary"])
        pairs.append(
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
                    matched,
                ),
            }
        )
        if kind == "seed":
            cosine = matched["cosine"].to_numpy()
            for run, atom in ((a, matched["atom_a"]), (b, matched["atom_b"])):
                cosine_sums[run][atom.to_numpy()] += cosine
                partners[run][atom.to_numpy()] += 1
    atoms = [
        pd.DataFrame(
            {
                **{key: run[key] for key in (*RUN_KEYS, "mixture", "seed")},
                "atom": np.flatnonzero(count),
                "energy": np.asarray(run["energy"], dtype=float)[count > 0],
                "stability": sums[count > 0] / count[count > 0],
                "partners": count[count > 0],
            }
        )
        for run, sums, count in zip(runs, cosine_sums, partners, strict=True)
        if count.any()
    ]
    atoms = pd.concat(atoms, ignore_index=True) if atoms else pd.DataFrame(columns=ATOM_COLUMNS)
    return pd.DataFrame(pairs, columns=pair_columns), atoms[ATOM_COLUMNS]
