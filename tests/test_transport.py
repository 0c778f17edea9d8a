import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vlmsae.metrics import transport


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_problem(rng: np.random.Generator, n: int, q: int, d: int = 4):
    """Cosines of random directions and skewed marginals with some empty rows and columns."""
    similarity = unit(rng.standard_normal((n, d))) @ unit(rng.standard_normal((q, d))).T
    a = rng.random(n) ** 4 * (rng.random(n) > 0.2)
    b = rng.random(q) ** 4 * (rng.random(q) > 0.2)
    a[0], b[0] = a[0] or 0.5, b[0] or 0.5  # some mass on each side
    return similarity, a / a.sum(), b / b.sum()


def cost(plan, similarity: np.ndarray) -> float:
    return float(np.sum(plan.toarray() * (1.0 - similarity)))


def test_plan_by_hand():
    # Two rows (.5, .5), two columns (.75, .25), zero cost on the diagonal only: the diagonal is
    # filled as far as it goes and the rest of row 1 crosses over.
    ((plan, certificate),) = transport.optimal_plans(
        np.eye(2), [(np.array([0.5, 0.5]), np.array([0.75, 0.25]))]
    )
    np.testing.assert_allclose(plan.toarray(), [[0.5, 0.0], [0.25, 0.25]])
    assert not certificate.dense and certificate.gap <= 1e-12


def test_matching_by_hand_with_more_columns_than_rows():
    # Row 0 prefers column 1 (0.9), row 1 also (0.8), but 0.9 + 0.1 < 0.8 + 0.7.
    similarity = np.array([[0.7, 0.9, 0.0], [0.1, 0.8, 0.0]])
    rows, columns, _ = transport.optimal_matching(similarity)
    np.testing.assert_array_equal(rows, [0, 1])
    np.testing.assert_array_equal(columns, [0, 1])
    # The same matching seen from the other side: one row per column, the spare column out.
    rows, columns, _ = transport.optimal_matching(similarity.T.copy())
    np.testing.assert_array_equal(rows, [0, 1])
    np.testing.assert_array_equal(columns, [0, 1])


def test_candidate_edges_are_each_rows_and_each_columns_best():
    similarity = np.array([[0.9, 0.1, 0.2], [0.8, 0.3, 0.1]])
    rows, columns = transport.candidate_edges(similarity, 1)
    # Rows: (0, 0), (1, 0); columns: (0, 0), (1, 1), (0, 2).
    assert set(zip(rows.tolist(), columns.tolist(), strict=True)) == {
        (0, 0),
        (1, 0),
        (1, 1),
        (0, 2),
    }


def test_north_west_corner_support_carries_a_feasible_plan():
    rows, columns = transport.north_west_corner(np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.75]))
    assert list(zip(rows.tolist(), columns.tolist(), strict=True)) == [
        (0, 0),
        (0, 1),
        (1, 1),
        (2, 1),
    ]


@pytest.mark.parametrize("seed", range(40))
def test_sparse_plans_reach_the_dense_optimum(seed, monkeypatch):
    # One candidate a row and a column: the first restricted optimum is rarely the dense one, so
    # the certificate and the rounds that enlarge the graph are what the test exercises.
    monkeypatch.setattr(transport, "CANDIDATES", 1)
    rng = np.random.default_rng(seed)
    similarity, a, b = random_problem(rng, *rng.integers(1, 25, size=2))
    uniform = (np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)))
    found = transport.optimal_plans(similarity, [(a, b), uniform])
    for (plan, certificate), (x, y) in zip(found, [(a, b), uniform], strict=True):
        reference = transport.dense_plan(x, y, similarity)
        assert cost(plan, similarity) == pytest.approx(cost(reference, similarity), abs=1e-12)
        # Weak duality: the plan is within its certified gap of the dense optimum.
        assert cost(plan, similarity) - cost(reference, similarity) <= certificate.gap + 1e-12
        np.testing.assert_allclose(plan.sum(axis=1).A1, x, atol=1e-12)
        np.testing.assert_allclose(plan.sum(axis=0).A1, y, atol=1e-12)
        assert not certificate.dense


@pytest.mark.parametrize("seed", range(40))
def test_sparse_matching_reaches_linear_sum_assignment(seed, monkeypatch):
    monkeypatch.setattr(transport, "CANDIDATES", 1)
    rng = np.random.default_rng(seed)
    n, q = rng.integers(1, 25, size=2)
    similarity = unit(rng.standard_normal((n, 3))) @ unit(rng.standard_normal((q, 3))).T
    rows, columns, certificate = transport.optimal_matching(similarity)
    reference_rows, reference_columns = linear_sum_assignment(similarity, maximize=True)
    assert similarity[rows, columns].sum() == pytest.approx(
        similarity[reference_rows, reference_columns].sum(), abs=1e-12
    )
    assert len(rows) == min(n, q) and len(set(columns.tolist())) == len(columns)
    assert (np.diff(rows) > 0).all() and not certificate.dense


def adversarial_problem(n: int = 12):
    """Row 0 holds half the mass and its most similar columns (all but the last) take almost
    none, as the other rows fill them: the optimum sends most of row 0 to the last column, which
    is row 0's least similar and more similar to row 1 (0.2 > 0): a candidate graph of one edge a
    row and a column lacks the edge."""
    similarity = np.full((n, n), 0.5)
    similarity[0, :-1] = 0.9
    similarity[0, -1] = 0.0
    similarity[1:, -1] = -0.5  # the other rows are further from the last column, but row 1
    similarity[1, -1] = 0.2
    np.fill_diagonal(similarity[1:, :-1], 0.95)
    a = np.full(n, 0.5 / (n - 1))
    a[0] = 0.5
    b = np.full(n, 0.5 / (n - 1))
    b[-1] = 0.5
    return similarity, a, b


def test_a_candidate_graph_that_misses_the_optimum_is_caught_and_enlarged(monkeypatch):
    monkeypatch.setattr(transport, "CANDIDATES", 1)
    similarity, a, b = adversarial_problem()
    rows, columns = transport.candidate_edges(similarity, 1)
    assert (0, len(b) - 1) not in set(zip(rows.tolist(), columns.tolist(), strict=True))
    ((plan, certificate),) = transport.optimal_plans(similarity, [(a, b)])
    reference = transport.dense_plan(a, b, similarity)
    assert certificate.rounds > 1
    assert cost(plan, similarity) == pytest.approx(cost(reference, similarity), abs=1e-12)


def test_without_a_certificate_the_dense_solver_decides(monkeypatch):
    # One round only: the restricted optimum of the adversarial graph is not certified, so the
    # dense solver gives the plan, and says so.
    monkeypatch.setattr(transport, "CANDIDATES", 1)
    monkeypatch.setattr(transport, "MAX_ROUNDS", 1)
    similarity, a, b = adversarial_problem()
    ((plan, certificate),) = transport.optimal_plans(similarity, [(a, b)])
    assert certificate.dense
    reference = transport.dense_plan(a, b, similarity)
    assert cost(plan, similarity) == pytest.approx(cost(reference, similarity), abs=1e-15)


def test_dense_reference_paths_are_flagged():
    rng = np.random.default_rng(0)
    similarity, a, b = random_problem(rng, 5, 7)
    ((plan, certificate),) = transport.optimal_plans(similarity, [(a, b)], dense=True)
    assert certificate.dense and certificate.gap == 0
    *_, certificate = transport.optimal_matching(similarity, dense=True)
    assert certificate.dense


def test_permuting_rows_and_columns_keeps_the_optimal_value():
    rng = np.random.default_rng(1)
    similarity, a, b = random_problem(rng, 15, 11)
    rows, columns = rng.permutation(15), rng.permutation(11)
    ((plan, _),) = transport.optimal_plans(similarity, [(a, b)])
    ((moved, _),) = transport.optimal_plans(
        similarity[np.ix_(rows, columns)], [(a[rows], b[columns])]
    )
    assert cost(moved, similarity[np.ix_(rows, columns)]) == pytest.approx(
        cost(plan, similarity), abs=1e-12
    )


def test_marginals_without_mass_are_an_error():
    with pytest.raises(ValueError, match="no mass"):
        transport.optimal_plans(np.eye(2), [(np.zeros(2), np.ones(2))])
    with pytest.raises(ValueError, match="marginals"):
        transport.optimal_plans(np.eye(2), [(np.ones(3), np.ones(2))])
