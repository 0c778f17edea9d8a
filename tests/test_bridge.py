import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.stats import ortho_group

from vlmsae.metrics import bridge, transport
from vlmsae.metrics.context import EvalContext
from vlmsae.metrics.energy import energy


def summarise(context):
    return bridge.summarise(context, bridge.BridgeSettings())


SQRT_HALF = np.sqrt(0.5)
# Atoms 0 and 1 are orthogonal, atom 2 lies halfway between them.
DICTIONARY = np.array([[1.0, 0.0], [0.0, 1.0], [SQRT_HALF, SQRT_HALF]], dtype=np.float32)
KINDS = np.array(["image", "text", "bimodal"], dtype=object)


def csr(rows: list) -> sparse.csr_matrix:
    return sparse.csr_matrix(np.array(rows, dtype=np.float32))


def context(
    codes_image: sparse.csr_matrix,
    codes_text: sparse.csr_matrix,
    dictionary: np.ndarray,
    kinds: np.ndarray,
) -> EvalContext:
    """An EvalContext around paired codes [N, p]; the bridge reads codes, dictionary and kinds."""
    n, d = codes_image.shape[0], dictionary.shape[1]
    codes = sparse.vstack([codes_image, codes_text])
    return EvalContext(
        image=np.zeros((n, d), dtype=np.float32),
        text=np.zeros((n, d), dtype=np.float32),
        codes_image=codes_image,
        codes_text=codes_text,
        recon_image=np.zeros((n, d), dtype=np.float32),
        recon_text=np.zeros((n, d), dtype=np.float32),
        dictionary=dictionary,
        energy=energy(codes, 1),
        energy_sq=energy(codes, 2),
        atom_kind=kinds,
        atom_kind_sq=kinds,
        atoms=pd.DataFrame({"atom": np.arange(len(dictionary))}),
        seed=0,
    )


def random_run(seed: int, n: int = 60, p: int = 12, d: int = 8) -> EvalContext:
    """Random non-negative codes with 3 atoms a row and a random unit dictionary."""
    rng = np.random.default_rng(seed)

    def codes() -> sparse.csr_matrix:
        dense = np.zeros((n, p), dtype=np.float32)
        for row in dense:
            row[rng.choice(p, 3, replace=False)] = rng.uniform(0.1, 1.0, 3)
        return sparse.csr_matrix(dense)

    dictionary = rng.standard_normal((p, d)).astype(np.float32)
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    kinds = np.array(["image", "text", "bimodal"] * (p // 3), dtype=object)
    return context(codes(), codes(), dictionary, kinds)


def test_coactivation_bridge_by_hand():
    # Pair 0: image fires atoms 0 (1) and 2 (2), text atoms 0 and 1 (1 each); pair 1: image atom 1
    # (1), text atom 2 (3). Z_IᵀZ_T / 2 = [[.5, .5, 0], [0, 0, 1.5], [1, 1, 0]].
    codes_image = csr([[1, 0, 2], [0, 1, 0]])
    codes_text = csr([[1, 1, 0], [0, 0, 3]])
    b = bridge.coactivation_bridge(codes_image, codes_text, bridge.cosine_matrix(DICTIONARY))
    expected = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 1.5 * SQRT_HALF], [SQRT_HALF, SQRT_HALF, 0]])
    np.testing.assert_allclose(b.values.toarray(), expected, atol=1e-6)
    np.testing.assert_allclose(
        b.coupling.toarray(), [[0.5, 0.5, 0], [0, 0, 1.5], [1, 1, 0]], atol=1e-6
    )
    # The total is the mean paired inner product of the bias-free reconstructions.
    recon_inner = np.einsum(
        "nd,nd->n", codes_image.toarray() @ DICTIONARY, codes_text.toarray() @ DICTIONARY
    )
    assert b.values.sum() == pytest.approx(recon_inner.mean(), rel=1e-6)


def test_coactivation_bridge_rejects_unpaired_codes():
    with pytest.raises(ValueError, match="one shape"):
        bridge.coactivation_bridge(csr([[1, 0]]), csr([[1, 0], [0, 1]]), np.eye(2))


def test_transport_plan_of_equal_energies_is_the_diagonal():
    # Equal energy vectors and zero cost on the diagonal only: nothing has to move.
    plan = bridge.transport_plan(np.array([1.0, 2.0, 1.0]), np.array([2.0, 4.0, 2.0]), np.eye(3))
    np.testing.assert_allclose(plan.toarray(), np.diag([0.25, 0.5, 0.25]))


def test_transport_plan_by_hand_and_dead_atoms_are_left_out():
    # Image mass (.5, .5, 0) on atoms 0, 1; text mass (0, 0, 1) on atom 2 only: everything moves
    # to atom 2 whatever the cost. Atom 3 has no energy anywhere.
    cosine = bridge.cosine_matrix(np.vstack([DICTIONARY, [[0.6, 0.8]]]).astype(np.float32))
    plan = bridge.transport_plan(np.array([1.0, 1.0, 0, 0]), np.array([0, 0, 5.0, 0]), cosine)
    expected = np.zeros((4, 4))
    expected[0, 2] = expected[1, 2] = 0.5
    np.testing.assert_allclose(plan.toarray(), expected)
    # Two by two: image (.5, .5) and text (.75, .25); the cheaper way keeps the diagonal full.
    cosine = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    plan = bridge.transport_plan(np.array([0.5, 0.5]), np.array([0.75, 0.25]), cosine)
    np.testing.assert_allclose(plan.toarray(), [[0.5, 0.0], [0.25, 0.25]])


def test_transport_plan_that_stops_short_of_the_optimum_is_an_error(monkeypatch):
    monkeypatch.setattr(transport, "EMD_MAX_ITERATIONS", 1)
    rng = np.random.default_rng(0)
    energies, cost = rng.uniform(size=(2, 20)), rng.uniform(size=(20, 20))
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="numItermax"):
        bridge.transport_plan(energies[0], energies[1], cost)


def test_transport_plan_needs_energy_in_both_modalities():
    with pytest.raises(ValueError, match="no energy"):
        bridge.transport_plan(np.zeros(2), np.ones(2), np.eye(2))


def test_transport_bridge_of_second_moments_by_hand():
    # Image energies: first moment (.5, 1.5, 0), second (.5, 4.5, 0); text all on atom 2.
    codes_image = csr([[1, 0, 0], [0, 3, 0]])
    codes_text = csr([[0, 0, 2], [0, 0, 2]])
    cosine = bridge.cosine_matrix(DICTIONARY)
    first = bridge.transport_bridge(codes_image, codes_text, cosine, 1)
    second = bridge.transport_bridge(codes_image, codes_text, cosine, 2)
    np.testing.assert_allclose(first.coupling.toarray()[:, 2], [0.25, 0.75, 0])
    np.testing.assert_allclose(second.coupling.toarray()[:, 2], [0.1, 0.9, 0])
    # A floor above √½ zeroes both cosines in B, not in the cost: the plan stays.
    floored = bridge.transport_bridge(codes_image, codes_text, cosine, 2, floor=0.8)
    np.testing.assert_allclose(floored.coupling.toarray(), second.coupling.toarray())
    assert floored.values.sum() == 0


def test_entry_percentile_is_numpys_percentile_with_the_zeros():
    rng = np.random.default_rng(0)
    for _ in range(50):
        dense = rng.standard_normal((6, 7)) * (rng.random((6, 7)) < rng.random())
        q = rng.uniform(0, 100)
        stored = sparse.csr_matrix(dense).data
        assert bridge.entry_percentile(stored, dense.size, q) == pytest.approx(
            np.percentile(dense, q), abs=1e-12
        )
    # By hand: entries (0, 0, 0, 0, .5, .5, 1, 1, 1.5); the 99.9th percentile lies at position
    # 7.992 of 8, between 1 and 1.5.
    assert bridge.entry_percentile([0.5, 0.5, 1, 1, 1.5], 9, 99.9) == pytest.approx(1.496)
    assert bridge.entry_percentile([-2.0, 1.0], 4, 50) == 0.0


def test_thresholded_coactivation_bridge_by_hand():
    codes_image = csr([[1, 0, 2], [0, 1, 0]])
    codes_text = csr([[1, 1, 0], [0, 0, 3]])
    cosine = bridge.cosine_matrix(DICTIONARY)
    # D̂D̂ᵀ entries (0, 0, √½ ×4, 1, 1, 1): the 90th percentile (position 7.2) is 1.
    assert bridge.cosine_floor(cosine) == pytest.approx(1.0)
    # Coupling [[.5, .5, 0], [0, 0, 1.5], [1, 1, 0]]: its 70th percentile is .8 (position 5.6
    # of 8 between .5 and 1), so .5 entries go; a floor of .5 keeps every cosine √½ and 1.
    b = bridge.coactivation_bridge(codes_image, codes_text, cosine, floor=0.5, percentile=70)
    expected = np.array([[0, 0, 0], [0, 0, 1.5 * SQRT_HALF], [SQRT_HALF, SQRT_HALF, 0]])
    np.testing.assert_allclose(b.values.toarray(), expected, atol=1e-6)
    # With the authors' 99.9th percentile (1.496) only the 1.5 stays, and the floor of 1 drops
    # its cosine √½: nothing is left.
    b = bridge.coactivation_bridge(
        codes_image, codes_text, cosine, floor=1.0, percentile=bridge.COACTIVATION_PERCENTILE
    )
    np.testing.assert_allclose(b.coupling.toarray(), [[0, 0, 0], [0, 0, 1.5], [0, 0, 0]])
    assert b.values.sum() == 0


def test_rho_uses_a_fixed_prior_and_a_bridge_without_mass_is_undefined():
    codes_image = csr([[1, 0, 2], [0, 1, 0]])
    codes_text = csr([[1, 1, 0], [0, 0, 3]])
    cosine = bridge.cosine_matrix(DICTIONARY)
    energy_sq = np.array([1.0, 1.0, 2.0])  # e = 1/2
    thresholded = bridge.coactivation_bridge(
        codes_image, codes_text, cosine, floor=0.5, percentile=70
    )
    # Touching the bimodal atom 2: all three entries, α = 1: undefined.
    summary = bridge.summarise_bridges({"coactivation_thresholded": thresholded}, KINDS, energy_sq)
    assert "rho" not in summary and summary["bridge_odds_undefined"] == 1
    # Atom 0 bimodal instead: B[2, 0] (√½) touches it, B[1, 2] (1.5√½) and B[2, 1] (√½) do
    # not: α = 1 / 3.5 and ρ = α / (1 − α) = 0.4 whatever the energies.
    kinds = np.array(["bimodal", "image", "text"], dtype=object)
    for energies in (energy_sq, np.array([5.0, 1.0, 1.0])):
        summary = bridge.summarise_bridges(
            {"coactivation_thresholded": thresholded}, kinds, energies
        )
        assert summary["bridge_thresholded_share_bimodal"] == pytest.approx(1 / 3.5)
        assert summary["rho"] == pytest.approx(0.4)
    empty = bridge.coactivation_bridge(codes_image, codes_text, cosine, 1.0, 99.9)
    summary = bridge.summarise_bridges({"coactivation_thresholded": empty}, kinds, energy_sq)
    assert "rho" not in summary and "bridge_thresholded_share_bimodal" not in summary
    assert summary["bridge_thresholded_total"] == 0.0
    assert summary["bridge_odds_undefined"] == 1


def test_transport_bridge_uses_first_moment_energies():
    # Image energies (1, 1, 0)/2, text (0, 0, 2)/2: the whole mass moves to atom 2 at cosine √½.
    codes_image = csr([[1, 0, 0], [0, 1, 0]])
    codes_text = csr([[0, 0, 1], [0, 0, 3]])
    b = bridge.transport_bridge(codes_image, codes_text, bridge.cosine_matrix(DICTIONARY))
    np.testing.assert_allclose(b.coupling.toarray()[:, 2], [0.5, 0.5, 0])
    assert b.values.sum() == pytest.approx(SQRT_HALF)
    # In the top pairs of a transport bridge, `coactivation` is the transported mass.
    table = bridge.top_pairs(b, KINDS, 2)
    np.testing.assert_allclose(table["coactivation"], [0.5, 0.5])
    assert table[["atom_image", "atom_text"]].to_numpy().tolist() == [[0, 2], [1, 2]]


def test_top_pairs_by_hand():
    codes_image = csr([[1, 0, 2], [0, 1, 0]])
    codes_text = csr([[1, 1, 0], [0, 0, 3]])
    b = bridge.coactivation_bridge(codes_image, codes_text, bridge.cosine_matrix(DICTIONARY))
    table = bridge.top_pairs(b, KINDS, 3)
    assert tuple(table.columns) == bridge.TOP_PAIRS_COLUMNS
    # B[1, 2] = 1.06 first; B[2, 0] = B[2, 1] = .707 tie, broken by the text atom.
    assert table[["atom_image", "atom_text"]].to_numpy().tolist() == [[1, 2], [2, 0], [2, 1]]
    np.testing.assert_allclose(table["bridge"], [1.5 * SQRT_HALF, SQRT_HALF, SQRT_HALF], rtol=1e-6)
    np.testing.assert_allclose(table["coactivation"], [1.5, 1.0, 1.0])
    np.testing.assert_allclose(table["cosine"], [SQRT_HALF, SQRT_HALF, SQRT_HALF], rtol=1e-6)
    assert list(table["kind_image"]) == ["text", "bimodal", "bimodal"]
    assert list(table["kind_text"]) == ["bimodal", "image", "text"]
    # Asking for more than there are gives every stored entry.
    assert len(bridge.top_pairs(b, KINDS, 100)) == b.values.nnz


def test_bimodal_mass_and_shares_by_hand():
    codes_image = csr([[1, 0, 2], [0, 1, 0]])
    codes_text = csr([[1, 1, 0], [0, 0, 3]])
    b = bridge.coactivation_bridge(codes_image, codes_text, bridge.cosine_matrix(DICTIONARY))
    touching, rest = bridge.bimodal_mass(b, KINDS == "bimodal")
    # Touching atom 2: B[1, 2], B[2, 0], B[2, 1]; the rest: B[0, 0] (B[0, 1] has cosine 0).
    assert touching == pytest.approx(1.5 * SQRT_HALF + 2 * SQRT_HALF, rel=1e-6)
    assert rest == pytest.approx(0.5)


def test_odds_ratio_by_hand_and_its_undefined_cases():
    assert bridge.odds_ratio(0.3, 0.3) == pytest.approx(1.0)
    assert bridge.odds_ratio(0.5, 0.2) == pytest.approx((0.5 / 0.2) * (0.8 / 0.5))
    assert bridge.odds_ratio(0.0, 0.2) == 0.0
    assert bridge.odds_ratio(1.0, 0.2) is None
    assert bridge.odds_ratio(0.5, 0.0) is None
    assert bridge.odds_ratio(0.5, 1.0) is None


def test_rho_energy_is_one_when_the_bimodal_share_of_bridge_equals_its_energy_share():
    # Orthogonal atoms: B is diagonal and B_kk = (Σ_n z_I,nk z_T,nk) / N. With z_I = z_T the
    # diagonal is the second-moment energy, so α = e and ρ_energy = 1.
    codes = csr([[1, 0, 0], [0, 2, 0], [0, 0, 1], [1, 0, 1]])
    summary = summarise(context(codes, codes, np.eye(3, dtype=np.float32), KINDS)).summary
    assert summary["bridge_share_bimodal"] == pytest.approx(summary["bridge_bimodal_energy_share"])
    assert summary["rho_energy"] == pytest.approx(1.0)
    # First-moment plan: a = b = (2, 2, 2)/6, so 1/3 of the mass stays on atom 2, while
    # e = E²_2 / ΣE² = 2 / (2 + 4 + 2) = 1/4: FDA = (1/3 ÷ 1/4) · (3/4 ÷ 2/3) = 1.5.
    assert summary["bridge_ot_share_bimodal"] == pytest.approx(1 / 3)
    assert summary["fda_first_moment"] == pytest.approx(1.5)
    # Second-moment plan: a = b = (2, 4, 2)/8, B diagonal (the floor of D̂D̂ᵀ, its 90th
    # percentile, is 1 and keeps the diagonal): α = 1/4 = e, FDA = 1.
    assert summary["bridge_cosine_floor"] == pytest.approx(1.0)
    assert summary["bridge_ot_sq_share_bimodal"] == pytest.approx(0.25)
    assert summary["fda"] == pytest.approx(1.0)
    # Thresholded co-activation: Z_IᵀZ_T/4 = [[.5, 0, .25], [0, 1, 0], [.25, 0, .5]] keeps only
    # entries ≥ its 99.9th percentile (.996): the text atom 1's diagonal, α = 0 and ρ = 0.
    assert summary["bridge_thresholded_total"] == pytest.approx(1.0)
    assert summary["rho"] == 0.0
    assert summary["bridge_odds_undefined"] == 0
    assert summary["bridge_total"] == pytest.approx((2 + 4 + 2) / 4)
    assert summary["bridge_ot_total"] == pytest.approx(1.0)


def test_summary_without_bimodal_atoms_omits_the_ratios_of_e_zero():
    codes = csr([[1, 0], [0, 2]])
    kinds = np.array(["image", "text"], dtype=object)
    summary = summarise(context(codes, codes, np.eye(2, dtype=np.float32), kinds)).summary
    assert not {"rho_energy", "fda", "fda_first_moment"} & set(summary)
    # ρ's e is fixed at 1/2: no bimodal atom gives α = 0, a value.
    assert summary["rho"] == 0.0
    assert summary["bridge_odds_undefined"] == 3
    assert summary["bridge_bimodal_energy_share"] == 0.0
    assert summary["bridge_share_bimodal"] == 0.0
    assert all(np.isfinite(value) for value in summary.values())


def test_summary_when_unimodal_atoms_bridge_nothing_omits_rho_only():
    # Kinds: 0 image, 1 text, 2 bimodal, 3 text. The only co-activation of two unimodal atoms,
    # (0, 1), has cosine 0: α = 1 and ρ is infinite. The plan (a = (1, 0, 2, 0)/3 from the
    # image codes, b = (0, 1, 1, 1)/3 from the text codes) moves 0→3 at cosine .8, 2→1 at 0 and
    # 2→2 at 1, a third each: α_OT = 1 / 1.8; e = .75 / 1.5; FDA = (α/e)·((1 − e)/(1 − α)) = 1.25.
    # Codes of 1 make the second-moment plan the same; D̂D̂ᵀ's 90th percentile is 1, so the
    # thresholded bridges keep the diagonal (2, 2) only: α = 1 for ρ and FDA.
    dictionary = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.8, 0, 0.6]], dtype=np.float32)
    kinds = np.array(["image", "text", "bimodal", "text"], dtype=object)
    codes_image = csr([[1, 0, 1, 0], [0, 0, 1, 0]])
    codes_text = csr([[0, 1, 1, 0], [0, 0, 0, 1]])
    summary = summarise(context(codes_image, codes_text, dictionary, kinds)).summary
    assert summary["bridge_share_bimodal"] == 1.0
    assert not {"rho", "rho_energy", "fda"} & set(summary)
    assert summary["bridge_ot_share_bimodal"] == pytest.approx(1 / 1.8)
    assert summary["bridge_bimodal_energy_share"] == pytest.approx(0.5)
    assert summary["fda_first_moment"] == pytest.approx(1.25)
    assert summary["bridge_thresholded_share_bimodal"] == 1.0
    assert summary["bridge_ot_sq_share_bimodal"] == 1.0
    assert summary["bridge_ot_sq_total"] == pytest.approx(1 / 3)
    assert summary["bridge_odds_undefined"] == 3
    assert summary["bridge_total"] == pytest.approx(0.5 + 0.3)


def test_permuting_atoms_permutes_the_bridge_and_keeps_every_scalar():
    run = random_run(0)
    permutation = np.random.default_rng(1).permutation(run.n_atoms)
    permuted = context(
        run.codes_image[:, permutation],
        run.codes_text[:, permutation],
        run.dictionary[permutation],
        run.atom_kind_sq[permutation],
    )
    for build, arguments in (
        (bridge.coactivation_bridge, ()),
        (bridge.coactivation_bridge, (0.3, 99.0)),
        (bridge.transport_bridge, ()),
        (bridge.transport_bridge, (2, 0.3)),
    ):
        original = build(
            run.codes_image, run.codes_text, bridge.cosine_matrix(run.dictionary), *arguments
        )
        moved = build(
            permuted.codes_image,
            permuted.codes_text,
            bridge.cosine_matrix(permuted.dictionary),
            *arguments,
        )
        np.testing.assert_allclose(
            moved.values.toarray(),
            original.values.toarray()[np.ix_(permutation, permutation)],
            atol=1e-6,
        )
    expected = summarise(run).summary
    assert summarise(permuted).summary == pytest.approx(expected)


def test_rotating_rows_and_dictionary_keeps_every_scalar():
    run = random_run(2)
    rotation = ortho_group.rvs(run.dictionary.shape[1], random_state=3).astype(np.float32)
    rotated = context(run.codes_image, run.codes_text, run.dictionary @ rotation, run.atom_kind_sq)
    expected = summarise(run).summary
    assert summarise(rotated).summary == pytest.approx(expected, rel=1e-5)
    # 12 atoms: the 99.9th percentile keeps the single largest co-activation, so ρ may be
    # undefined here; the others are not.
    assert {"rho_energy", "fda", "fda_first_moment"} <= set(expected)


def test_bridge_does_not_depend_on_the_norm_of_dictionary_rows():
    run = random_run(4)
    scaled = context(run.codes_image, run.codes_text, run.dictionary * 3.0, run.atom_kind_sq)
    assert summarise(scaled).summary == pytest.approx(summarise(run).summary)
