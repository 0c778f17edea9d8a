import numpy as np
import pandas as pd
import pytest

from vlmsae.metrics.stability import (
    ATOM_COLUMNS,
    matched_atoms,
    stability,
    stability_tables,
    top_atoms,
)


@pytest.fixture
def dictionary() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, 10))


def test_permutation_has_stability_one_and_is_recovered(dictionary):
    permutation = np.array([3, 0, 5, 1, 4, 2])
    energy = np.arange(6.0)
    result = stability(dictionary, dictionary[permutation], energy, energy[permutation], [2, 4])
    assert result == pytest.approx({"stability": 1.0, "stability_top2": 1.0, "stability_top4": 1.0})
    matched = matched_atoms(dictionary, dictionary[permutation])
    # Row i of b is row permutation[i] of a: atom a matches atom b = inverse permutation.
    np.testing.assert_array_equal(matched["atom_a"], np.arange(6))
    np.testing.assert_array_equal(matched["atom_b"], np.argsort(permutation))
    np.testing.assert_allclose(matched["cosine"], 1.0)


def test_row_scale_does_not_matter_but_sign_does(dictionary):
    energy = np.ones(6)
    scales = np.array([0.1, 1.0, 2.0, 5.0, 30.0, 7.0])[:, None]
    assert stability(dictionary, dictionary * scales, energy, energy, [])["stability"] == (
        pytest.approx(1.0)
    )
    # Cosines are signed: a negated atom is a different concept for non-negative codes. With
    # orthogonal atoms the negated one matches itself at −1, or takes a partner at 0 and leaves
    # that partner's own match at 0: two optima of one value, a mean of 0.5 either way, not 1.
    basis = np.eye(4)
    flipped = basis * np.array([1.0, 1.0, 1.0, -1.0])[:, None]
    assert stability(basis, flipped, np.ones(4), np.ones(4), [])["stability"] == pytest.approx(0.5)
    # Alone, a negated atom can only match itself, at −1.
    np.testing.assert_allclose(matched_atoms(basis[:1], -basis[:1])["cosine"], [-1.0])


def test_matching_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 2.0], [3.0, 0.0]])
    # cos: a0·b0 = 0, a0·b1 = 1, a1·b0 = 1/√2, a1·b1 = 1/√2: the best sum is a0↔b1, a1↔b0.
    matched = matched_atoms(a, b)
    np.testing.assert_array_equal(matched["atom_b"], [1, 0])
    np.testing.assert_allclose(matched["cosine"], [1.0, 1 / np.sqrt(2)])
    assert stability(a, b, np.ones(2), np.ones(2), [])["stability"] == pytest.approx(
        (1 + 1 / np.sqrt(2)) / 2
    )


def test_top_m_matches_the_two_top_subsets():
    a = np.eye(3)
    b = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    # Top-2 of a: atoms 2, 0; of b: atoms 0, 1. Atom 2 of a (e3) meets e2 and e1: cosine 0 with
    # both, so one top-2 pair is e1↔e1 (1) and the other e3↔e2 (0): mean 1/2.
    energy_a = np.array([5.0, 1.0, 9.0])
    energy_b = np.array([4.0, 3.0, 0.0])
    result = stability(a, b, energy_a, energy_b, [1, 2, 10])
    assert result["stability_top1"] == pytest.approx(0.0)  # e3 against e2
    assert result["stability_top2"] == pytest.approx(0.5)
    assert result["stability_top10"] == pytest.approx(result["stability"])
    assert result["stability"] == pytest.approx((1 + 1 - 1) / 3)
    matched = matched_atoms(a, b, top_atoms(energy_a, 2), top_atoms(energy_b, 2))
    assert list(zip(matched["atom_a"], matched["atom_b"], strict=True)) == [(0, 1), (2, 0)]


def test_top_atoms_breaks_ties_by_index():
    np.testing.assert_array_equal(top_atoms(np.array([0.0, 2.0, 0.0, 2.0, 1.0]), 4), [1, 3, 4, 0])


def test_different_sizes_match_the_smaller_dictionary_fully():
    a = np.eye(4)[:2]
    b = np.vstack([-np.eye(4), np.eye(4)])
    assert stability(a, b, np.ones(2), np.ones(8), [])["stability"] == pytest.approx(1.0)
    np.testing.assert_array_equal(matched_atoms(a, b)["atom_b"], [4, 5])


def _run(mixture: str, seed: int, dictionary: np.ndarray, variant: str = "topk") -> dict:
    return {
        "dataset": "tiny",
        "model": "m",
        "variant": variant,
        "mixture": mixture,
        "seed": seed,
        "dictionary": dictionary,
        "energy": np.arange(len(dictionary), dtype=float),
    }


def test_stability_table_pairs_runs_that_differ_in_one_factor(dictionary):
    other = np.random.default_rng(1).standard_normal((6, 10))
    runs = [
        _run("1-1", 0, dictionary),
        _run("1-1", 1, dictionary[::-1]),
        _run("5-1", 0, other),
        _run("5-1", 1, other),  # differs from the first in both mixture and seed: no pair
        _run("1-1", 0, other, variant="relu"),  # another variant: never paired with topk
    ]
    table, atoms = stability_tables(runs, [3])
    assert list(table.columns) == [
        "dataset",
        "model",
        "variant",
        "kind",
        "mixture_a",
        "mixture_b",
        "seed_a",
        "seed_b",
        "stability",
        "stability_top3",
    ]
    pairs = table[["kind", "mixture_a", "mixture_b", "seed_a", "seed_b"]]
    assert pairs.values.tolist() == [
        ["seed", "1-1", "1-1", 0, 1],
        ["mixture", "1-1", "5-1", 0, 0],
        ["mixture", "1-1", "5-1", 1, 1],
        ["seed", "5-1", "5-1", 0, 1],
    ]
    assert table["stability"].iloc[0] == pytest.approx(1.0)
    assert table["stability"].iloc[3] == pytest.approx(1.0)
    expected = stability(dictionary, other, np.arange(6.0), np.arange(6.0), [3])
    assert table.iloc[1][["stability", "stability_top3"]].tolist() == pytest.approx(
        list(expected.values())
    )


def test_stability_table_without_pairs_is_empty_with_columns(dictionary):
    table, atoms = stability_tables([_run("1-1", 0, dictionary)], [32])
    assert isinstance(table, pd.DataFrame) and table.empty
    assert "stability_top32" in table.columns
    assert atoms.empty and list(atoms.columns) == ATOM_COLUMNS


def test_atom_stability_is_each_atoms_matched_cosine_averaged_over_the_other_seeds():
    # Three seeds of one mixture, 2 atoms in 2-D; c = cos 30° = 0.866. Seed 1 turns seed 0's
    # atom 1 by 30° towards atom 0; seed 2 is (e2, −e2). Matchings by hand: 0–1 keeps the order
    # (1, c); 0–2 swaps (seed 0's atom 0 at 0, atom 1 at 1); 1–2 swaps (atom 0 at 0, atom 1 at c).
    c = np.cos(np.pi / 6)
    dictionaries = (np.eye(2), np.array([[1.0, 0.0], [0.5, c]]), np.array([[0, 1.0], [0, -1.0]]))
    runs = [_run("1-1", seed, d) for seed, d in enumerate(dictionaries)]
    runs.append(_run("5-1", 0, dictionaries[0]))  # another mixture: no seed partner, no rows
    _, atoms = stability_tables(runs, [])
    assert list(atoms.columns) == ATOM_COLUMNS
    assert (atoms["mixture"] == "1-1").all() and (atoms["partners"] == 2).all()
    by_run = atoms.set_index(["seed", "atom"])["stability"]
    expected = {
        (0, 0): (1 + 0) / 2,
        (0, 1): (c + 1) / 2,
        (1, 0): (1 + 0) / 2,
        (1, 1): (c + c) / 2,
        (2, 0): (1 + c) / 2,
        (2, 1): (0 + 0) / 2,
    }
    assert by_run.to_dict() == pytest.approx(expected)
    assert atoms.set_index(["seed", "atom"]).loc[(1, 1), "energy"] == 1.0


def test_atom_stability_follows_its_atom_when_a_dictionary_is_permuted():
    rng = np.random.default_rng(3)
    base, other = rng.standard_normal((2, 7, 5))
    permutation = rng.permutation(7)
    plain = stability_tables([_run("1-1", 0, base), _run("1-1", 1, other)], [])[1]
    permuted = stability_tables([_run("1-1", 0, base[permutation]), _run("1-1", 1, other)], [])[1]
    seed0 = plain[plain["seed"] == 0]["stability"].to_numpy()
    seed0_permuted = permuted[permuted["seed"] == 0]["stability"].to_numpy()
    np.testing.assert_allclose(seed0_permuted, seed0[permutation])
