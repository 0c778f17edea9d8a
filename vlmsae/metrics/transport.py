"""Exact optimal transport and one-to-one matching on sparse candidate graphs, certified against
the dense problem (issue 27 item 1).

The problem every caller solves: a similarity S [n, q] (cosines), cost C = 1 − S (float64 of
each entry), marginals a [n] ≥ 0 and b [q] ≥ 0 of equal sum,

    min_P Σ_ij P_ij C_ij   subject to   P 1 = a,  Pᵀ 1 = b,  P ≥ 0.

A one-to-one matching maximising Σ S over min(n, q) pairs is the same problem with a = 1, b = 1
and one spare node on the smaller side that holds the |n − q| surplus units at cost 0 to every
node of the other side: the constraint matrix is totally unimodular, so the network simplex
returns a plan of zeros and ones.

Reference path (`dense=True`): POT's exact network simplex on all n·q edges for a plan, scipy's
linear_sum_assignment for a matching. Fast path, the default:

1. candidate edges: each row's CANDIDATES most similar columns, each column's CANDIDATES most
   similar rows, and the support of the north-west-corner plan, which is feasible, so the
   restricted problem always has a solution;
2. POT's network simplex on the candidate edges only: a plan P optimal among the plans on those
   edges, with dual potentials u [n], v [q]: u_i + v_j = C_ij on the edges P uses, ≤ C_ij on
   every candidate edge;
3. the certificate: reduced costs r_ij = C_ij − u_i − v_j over ALL n·q edges, in blocks. Any
   plan Q of the dense problem costs ⟨Q, C⟩ = aᵀu + bᵀv + ⟨Q, r⟩ ≥ aᵀu + bᵀv + mass·min(0, min r)
   with mass = Σ a. So P is within gap = ⟨P, C⟩ − aᵀu − bᵀv + mass·max(0, −min r) of the dense
   optimum (the first difference is rounding, by complementary slackness). With no reduced cost
   below −TOLERANCE the gap is at most mass·TOLERANCE plus rounding: P is a dense optimum;
4. otherwise each row's most negative reduced costs (up to CANDIDATES of them) join the graph
   and step 2 runs again (column generation: an edge of negative reduced cost is one the
   restricted optimum lacked, so each round strictly enlarges the graph and the loop ends at the
   dense problem at the latest). After MAX_ROUNDS rounds the dense solver decides.

Where the optimum is not unique (ties), the two paths may return different optimal plans or
matchings; the optimal value is the same. Zero entries of a or b take no part: the solver runs
on the rows and columns with mass, and the plan is zero elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

# Candidate edges per row and per column, and the most edges a row gains per round. Measured on
# the bench's run (bench/metrics_scale.py: 8192 atoms, d = 768): 48 certifies the plans and
# matchings of the suite in 1 to 3 rounds, in less time than 16 (more rounds) or 64 (more edges).
CANDIDATES = 48
# A reduced cost below −TOLERANCE is a violation, one above it rounding (costs lie in [0, 2]).
TOLERANCE = 1e-10
MAX_ROUNDS = 20
BLOCK_ENTRIES = 1 << 22  # similarity entries per block of the dense passes: 32 MB in float64
# POT's default of 100000 pivots stops short of the optimum at 8192 atoms (measured); this bound
# only guards against a solver that never ends.
EMD_MAX_ITERATIONS = 10**9

Edges = tuple[np.ndarray, np.ndarray]  # (rows [E], columns [E]) int64


@dataclass(frozen=True)
class Certificate:
    """How a plan was found and how far from the dense optimum it can be.

    gap: an upper bound on (its cost − the dense optimum), by weak duality (module docstring),
    rounding included; 0 from the dense solver. edges: edges of the last sparse problem (n·q
    for the dense solver). rounds: sparse solves. dense: whether the dense solver gave the plan.
    """

    gap: float
    edges: int
    rounds: int
    dense: bool


def _unique(rows: np.ndarray, columns: np.ndarray, q: int) -> Edges:
    """The edges (rows [E], columns [E]) of a graph with q columns, repeats removed, in order."""
    flat = np.sort(np.asarray(rows, np.int64) * q + np.asarray(columns, np.int64))
    flat = flat[np.concatenate([[True], flat[1:] != flat[:-1]])]
    return flat // q, flat % q


def _row_blocks(n: int, q: int, block_entries: int) -> list[tuple[int, int]]:
    step = max(1, block_entries // max(1, q))
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _largest(block: np.ndarray, m: int, axis: int = 1) -> np.ndarray:
    """Positions of the min(m, size) largest entries along `axis` of block [b, c], in no order:
    [b, m] columns of each row (axis 1), or [m, c] rows of each column (axis 0).

    torch's top-k selection, about twice np.argpartition's speed on a row and, reading a
    column block where it lies, without the transposed copy a row-wise selection needs.
    """
    import torch

    m = min(m, block.shape[axis])
    return torch.topk(torch.from_numpy(block), m, dim=axis, sorted=False).indices.numpy()


def candidate_edges(
    similarity: np.ndarray, m: int | None = None, block_entries: int = BLOCK_ENTRIES
) -> Edges:
    """Edges of similarity [n, q] among each row's m largest entries or each column's m largest
    (at most m (n + q), repeats removed; m = CANDIDATES when None)."""
    m = CANDIDATES if m is None else m
    n, q = similarity.shape
    rows, columns = [], []
    for start, stop in _row_blocks(n, q, block_entries):
        best = _largest(similarity[start:stop], m)
        rows.append(np.repeat(np.arange(start, stop), best.shape[1]))
        columns.append(best.ravel())
    for start, stop in _row_blocks(q, n, block_entries):
        best = _largest(similarity[:, start:stop], m, axis=0)  # [m, columns start..stop]
        columns.append(np.tile(np.arange(start, stop), best.shape[0]))
        rows.append(best.ravel())
    return _unique(np.concatenate(rows), np.concatenate(columns), q)


def north_west_corner(a: np.ndarray, b: np.ndarray) -> Edges:
    """The support of the north-west-corner plan of marginals a [n], b [q] (equal sums): a
    feasible plan on at most n + q − 1 edges."""
    cut_a, cut_b = np.cumsum(a), np.cumsum(b)
    # Each stretch of mass between two consecutive cuts goes from one row to one column.
    starts = np.unique(np.concatenate([[0.0], cut_a[:-1], cut_b[:-1]]))
    rows = np.minimum(np.searchsorted(cut_a, starts, side="right"), len(a) - 1)
    columns = np.minimum(np.searchsorted(cut_b, starts, side="right"), len(b) - 1)
    return _unique(rows, columns, len(b))


def _block(
    similarity: np.ndarray,
    rows: np.ndarray | None,
    columns: np.ndarray | None,
    start: int,
    stop: int,
) -> np.ndarray:
    """Rows start..stop of similarity[rows][:, columns] (all rows / columns where None)."""
    block = similarity[start:stop] if rows is None else similarity[rows[start:stop]]
    return block if columns is None else block[:, columns]


def _violations(
    similarity: np.ndarray,
    rows: np.ndarray | None,
    columns: np.ndarray | None,
    u: np.ndarray,
    v: np.ndarray,
    block_entries: int,
) -> tuple[float, Edges]:
    """(min reduced cost, each row's up to CANDIDATES most negative edges below −TOLERANCE) of
    the sub-problem similarity[rows][:, columns] [n, q] with dual potentials u [n], v [q]."""
    n, q = len(u), len(v)
    lowest = np.inf
    found: list[Edges] = []
    for start, stop in _row_blocks(n, q, block_entries):
        # r = (1 − u_i) − S_ij − v_j: float64 throughout, as the solver's costs are.
        reduced = (1.0 - u[start:stop, None]) - _block(similarity, rows, columns, start, stop)
        reduced -= v[None, :]
        row_minimum = reduced.min(axis=1)
        lowest = min(lowest, float(row_minimum.min()))
        violating = np.flatnonzero(row_minimum < -TOLERANCE)
        if len(violating):
            worst = _largest(-reduced[violating], CANDIDATES)
            keep = np.take_along_axis(reduced[violating], worst, axis=1) < -TOLERANCE
            found.append(
                (np.broadcast_to((violating + start)[:, None], worst.shape)[keep], worst[keep])
            )
    if not found:
        return lowest, (np.empty(0, np.int64), np.empty(0, np.int64))
    return lowest, (np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]))


def _network_simplex(
    a: np.ndarray, b: np.ndarray, cost: np.ndarray | sparse.coo_matrix
) -> tuple[sparse.coo_matrix, float, np.ndarray, np.ndarray]:
    """(plan [n, q], its cost, u [n], v [q]) of POT's exact network simplex; cost [n, q] dense,
    or sparse with the edges the plan may use."""
    # Imported here: POT loads torch and scikit-learn (2 s), which the jobs that import the
    # metrics only to match atoms (stability, the explorer) never need.
    import ot

    plan, log = ot.emd(a, b, cost, numItermax=EMD_MAX_ITERATIONS, log=True)
    if log["warning"] is not None:
        raise RuntimeError(f"exact optimal transport failed: {log['warning']}")
    return sparse.coo_matrix(plan), float(log["cost"]), np.asarray(log["u"]), np.asarray(log["v"])


def _restricted(
    a: np.ndarray,
    b: np.ndarray,
    similarity: np.ndarray,
    rows: np.ndarray | None,
    columns: np.ndarray | None,
    graph: Edges,
    block_entries: int,
) -> tuple[sparse.coo_matrix, Certificate, Edges] | None:
    """Steps 2 to 4 on the sub-problem similarity[rows][:, columns] [n, q] (all where None),
    a [n'] and b [q'] with n' ≥ n, q' ≥ q: nodes past the similarity (the matching's spare node)
    have all their edges in `graph`, at cost 0. (plan [n', q'], certificate, last graph), or
    None when MAX_ROUNDS rounds certify nothing."""
    n = similarity.shape[0] if rows is None else len(rows)
    q = similarity.shape[1] if columns is None else len(columns)
    graph = _unique(*graph, len(b))
    for round_ in range(1, MAX_ROUNDS + 1):
        inside = (graph[0] < n) & (graph[1] < q)
        at = (graph[0][inside], graph[1][inside])
        if rows is not None:
            at = (rows[at[0]], at[1])
        if columns is not None:
            at = (at[0], columns[at[1]])
        costs = np.zeros(len(graph[0]))
        costs[inside] = 1.0 - similarity[at].astype(np.float64)
        cost = sparse.coo_matrix((costs, graph), shape=(len(a), len(b)))
        plan, primal, u, v = _network_simplex(a, b, cost)
        lowest, new = _violations(similarity, rows, columns, u[:n], v[:q], block_entries)
        if len(new[0]) == 0:
            gap = primal - float(a @ u + b @ v) + a.sum() * max(0.0, -lowest)
            return plan, Certificate(max(gap, 0.0), len(graph[0]), round_, False), graph
        graph = _unique(
            np.concatenate([graph[0], new[0]]), np.concatenate([graph[1], new[1]]), len(b)
        )
    return None


def dense_plan(a: np.ndarray, b: np.ndarray, similarity: np.ndarray) -> sparse.csr_matrix:
    """The reference: [n, q] optimal plan of POT's network simplex on all edges of the rows and
    columns with mass, cost 1 − similarity [n, q]; a [n], b [q] of equal sum."""
    live_a, live_b = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
    cost = np.subtract(1.0, similarity[np.ix_(live_a, live_b)].astype(np.float64))
    plan = _network_simplex(
        np.asarray(a, np.float64)[live_a], np.asarray(b, np.float64)[live_b], cost
    )[0]
    return sparse.csr_matrix(
        (plan.data, (live_a[plan.row], live_b[plan.col])), shape=similarity.shape
    )


def optimal_plans(
    similarity: np.ndarray,
    marginals: Sequence[tuple[np.ndarray, np.ndarray]],
    dense: bool = False,
    block_entries: int = BLOCK_ENTRIES,
) -> list[tuple[sparse.csr_matrix, Certificate]]:
    """([n, q] optimal plan, certificate) under cost 1 − similarity [n, q] for each (a [n],
    b [q]) of `marginals` (equal sums, each with some mass): the sparse path of the module
    docstring, or `dense_plan` with `dense` or where the sparse path certifies nothing.

    The plans share one candidate graph, and each solve starts from the edges the previous one
    ended with (the optimum of one pair of marginals is a good guess for the next)."""
    n, q = similarity.shape
    found: list[tuple[sparse.csr_matrix, Certificate]] = []
    graph: Edges | None = None
    for a, b in marginals:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != (n,) or b.shape != (q,):
            raise ValueError(f"marginals of {a.shape} and {b.shape} for a {n} × {q} cost")
        live_a, live_b = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
        if len(live_a) == 0 or len(live_b) == 0:
            raise ValueError("optimal transport is undefined: one side has no mass at all")
        solved = None
        if not dense:
            graph = (
                candidate_edges(similarity, block_entries=block_entries) if graph is None else graph
            )
            # Re-indexed to the live rows and columns (−1: not live).
            row_at, column_at = np.full(n, -1), np.full(q, -1)
            row_at[live_a], column_at[live_b] = np.arange(len(live_a)), np.arange(len(live_b))
            keep = (row_at[graph[0]] >= 0) & (column_at[graph[1]] >= 0)
            a_live, b_live = a[live_a], b[live_b]
            corner = north_west_corner(a_live, b_live)
            sub_graph = (
                np.concatenate([row_at[graph[0][keep]], corner[0]]),
                np.concatenate([column_at[graph[1][keep]], corner[1]]),
            )
            solved = _restricted(
                a_live,
                b_live,
                similarity,
                None if len(live_a) == n else live_a,
                None if len(live_b) == q else live_b,
                sub_graph,
                block_entries,
            )
        if solved is None:
            found.append((dense_plan(a, b, similarity), Certificate(0.0, a.size * b.size, 0, True)))
            continue
        plan, certificate, last = solved
        graph = _unique(
            np.concatenate([graph[0], live_a[last[0]]]),
            np.concatenate([graph[1], live_b[last[1]]]),
            q,
        )
        found.append(
            (
                sparse.csr_matrix((plan.data, (live_a[plan.row], live_b[plan.col])), shape=(n, q)),
                certificate,
            )
        )
    return found


def optimal_matching(
    similarity: np.ndarray, dense: bool = False, block_entries: int = BLOCK_ENTRIES
) -> tuple[np.ndarray, np.ndarray, Certificate]:
    """(rows, columns, certificate) of the one-to-one matching of similarity [n, q] maximising
    Σ similarity over min(n, q) pairs, rows ascending: the sparse path with a spare node (module
    docstring), or scipy's linear_sum_assignment with `dense` or where the sparse path certifies
    nothing."""
    n, q = similarity.shape
    solved = None
    if not dense and min(n, q) > 0:
        surplus = [float(abs(n - q))] if n != q else []
        a = np.concatenate([np.ones(n), surplus if q > n else []])
        b = np.concatenate([np.ones(q), surplus if n > q else []])
        # Every edge of the spare node (row n or column q), which the dense check never sees.
        spare = (np.full(q * (q > n), n), np.arange(q * (q > n)))
        if n > q:
            spare = (np.arange(n), np.full(n, q))
        corner = north_west_corner(a, b)
        candidates = candidate_edges(similarity, block_entries=block_entries)
        graph = tuple(
            np.concatenate(parts) for parts in zip(candidates, corner, spare, strict=True)
        )
        solved = _restricted(a, b, similarity, None, None, graph, block_entries)
    if solved is None:
        from scipy.optimize import linear_sum_assignment

        rows, columns = linear_sum_assignment(similarity, maximize=True)
        return rows, columns, Certificate(0.0, n * q, 0, True)
    plan, certificate, _ = solved
    matched = (plan.data > 0.5) & (plan.row < n) & (plan.col < q)
    rows, columns = plan.row[matched], plan.col[matched]
    order = np.argsort(rows)
    return rows[order].astype(np.int64), columns[order].astype(np.int64), certificate
