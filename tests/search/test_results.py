"""Pareto masks and hypervolumes on fronts with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.errors import SearchError
from mixopt.search import hypervolume, pareto_mask
from mixopt.search.results import best_row, default_reference

RTOL = 1e-12
ATOL = 1e-12


def _brute_pareto(y: np.ndarray) -> np.ndarray:
    n = y.shape[0]
    keep = np.ones(n, dtype=bool)
    for i, j in itertools.product(range(n), range(n)):
        if np.all(y[j] <= y[i]) and np.any(y[j] < y[i]):
            keep[i] = False
    return keep


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_pareto_mask_matches_brute_force(n: int, m: int, seed: int) -> None:
    y = np.round(np.random.default_rng(seed).random((n, m)), 1)  # rounding creates ties
    np.testing.assert_array_equal(pareto_mask(y), _brute_pareto(y))


def test_pareto_mask_directions() -> None:
    y = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    assert pareto_mask(y, ["maximize", "minimize"]).tolist() == [False, True, False]
    assert pareto_mask(y, ["maximize", "maximize"]).tolist() == [True, True, False]


def test_hypervolume_known_fronts() -> None:
    # 2-D staircase (minimisation): points (1,3), (2,2), (3,1), ref (4,4) -> 3 + 2 + 1 = 6
    y = np.array([[1, 3], [2, 2], [3, 1], [3.5, 3.5]], dtype=float)  # the last point is dominated
    assert hypervolume(y, [4, 4]) == pytest.approx(6.0, rel=RTOL, abs=ATOL)
    # maximisation: same shape mirrored
    assert hypervolume(-y, [-4, -4], ["maximize", "maximize"]) == pytest.approx(6.0, rel=RTOL)
    # a single point is a box
    assert hypervolume(np.array([[1.0, 2.0, 3.0]]), [2, 4, 7]) == pytest.approx(1 * 2 * 4, rel=RTOL)
    # 3-D: two boxes [0,2]x[0,1]x[0,1] and [0,1]x[0,2]x[0,1] inside ref (2,2,1), overlap 1 -> 3
    assert hypervolume(np.array([[0, 1, 0], [1, 0, 0]], dtype=float), [2, 2, 1]) == pytest.approx(3.0, rel=RTOL)
    # points not dominating the reference add nothing; empty front -> 0
    assert hypervolume(np.array([[5.0, 0.0]]), [4, 4]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0
    # 1-D
    assert hypervolume(np.array([[0.2], [0.5]]), [1.0]) == pytest.approx(0.8, rel=RTOL)


def test_hypervolume_of_a_linear_front_converges_to_the_triangle() -> None:
    # dense points on x + y = 1 in [0,1]^2, ref (1,1): dominated area -> 1/2
    t = np.linspace(0, 1, 2001)
    y = np.column_stack([t, 1 - t])
    assert hypervolume(y, [1, 1]) == pytest.approx(0.5, abs=1e-3)
    # 3-D simplex x+y+z = 1, ref (1,1,1): dominated volume -> 1 - 1/6
    g = np.array([(a, b, 1 - a - b) for a in np.linspace(0, 1, 61) for b in np.linspace(0, 1, 61) if a + b <= 1 + 1e-12])
    assert hypervolume(g, [1, 1, 1]) == pytest.approx(5 / 6, abs=0.02)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 25), m=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_hypervolume_matches_inclusion_exclusion(n: int, m: int, seed: int) -> None:
    """Against an independent exact method: the union volume on the grid of coordinates."""
    y = np.random.default_rng(seed).random((n, m))
    ref = np.ones(m) * 1.1
    grids = [np.unique(np.append(y[:, j], ref[j])) for j in range(m)]
    cells = np.stack(np.meshgrid(*[g[:-1] for g in grids], indexing="ij"), axis=-1).reshape(-1, m)
    widths = np.stack(np.meshgrid(*[np.diff(g) for g in grids], indexing="ij"), axis=-1).reshape(-1, m).prod(axis=1)
    covered = np.zeros(len(cells), dtype=bool)
    for p in y:
        covered |= np.all(p <= cells, axis=1)
    exact = float(widths[covered].sum())
    assert hypervolume(y, ref) == pytest.approx(exact, rel=1e-10, abs=1e-12)


def test_monte_carlo_for_large_fronts_is_close_and_seeded() -> None:
    rng = np.random.default_rng(0)
    y = rng.dirichlet(np.ones(4), 150)  # 150 points on the 4-D simplex
    exact = hypervolume(y, np.ones(4), max_exact_work=1e12)
    mc = hypervolume(y, np.ones(4), max_exact_work=1.0, n_samples=200_000, seed=1)
    assert mc == hypervolume(y, np.ones(4), max_exact_work=1.0, n_samples=200_000, seed=1)
    assert mc == pytest.approx(exact, rel=0.01)


def test_against_optunas_private_hypervolume() -> None:
    hv_mod = pytest.importorskip("optuna._hypervolume")
    rng = np.random.default_rng(5)
    for m in (2, 3, 4):
        y = rng.random((30, m))
        ref = np.full(m, 1.2)
        ours = hypervolume(y, ref)
        theirs = hv_mod.compute_hypervolume(y[pareto_mask(y)], ref)
        assert ours == pytest.approx(theirs, rel=1e-10)


def test_reference_and_errors() -> None:
    y = np.array([[1.0, 5.0], [3.0, 1.0]])
    ref = default_reference(y, ["maximize", "minimize"])
    np.testing.assert_allclose(ref, [1.0 - 0.2, 5.0 + 0.4])
    with pytest.raises(SearchError, match="reference point has 3 values"):
        hypervolume(y, [1, 2, 3])
    with pytest.raises(SearchError, match="direction must be"):
        pareto_mask(y, ["up", "down"])


def test_best_row_scalarisation() -> None:
    import polars as pl

    front = pl.DataFrame({"trial": [0, 1, 2], "obj:a": [0.9, 0.6, 0.1], "obj:b": [0.1, 0.6, 0.9]})
    objs = (("a", "maximize"), ("b", "maximize"))
    assert best_row(front, objs)["trial"] == 1  # balanced weights favour the knee
    assert best_row(front, objs, {"a": 1.0})["trial"] == 0
    assert best_row(front, objs, {"a": 1.0, "b": 3.0})["trial"] == 2
    with pytest.raises(SearchError, match="unknown objective"):
        best_row(front, objs, {"c": 1.0})
