"""The search space: the cube -> simplex bijection (properties), compute rules, data limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mixopt.errors import SearchError
from mixopt.search import ComputeSpace, DataBudget, MixtureSpace, SearchSpace

SUM_ATOL = 1e-9  # rows sum to 1 within this
BOUND_ATOL = 1e-12  # ratios stay within [floor, cap] within this
ROUNDTRIP_ATOL = 1e-8  # mixture -> cube -> mixture
UNIT_ATOL = 1e-6  # cube -> mixture -> cube, where identifiable
UNIT_RTOL = 0.0


@st.composite
def bounded_spaces(draw):
    """A random feasible MixtureSpace: k domains, some floors, caps and pins."""
    k = draw(st.integers(1, 7))
    names = [f"d{i}" for i in range(k)]
    floors, caps, pins = {}, {}, {}
    budget = 1.0
    for d in names:
        kind = draw(st.sampled_from(["free", "free", "floor", "cap", "both", "pin"]))
        if kind == "pin":
            v = draw(st.floats(0.0, min(budget, 0.5)))
            pins[d] = v
            budget -= v
        if kind in ("floor", "both"):
            v = draw(st.floats(0.0, min(budget, 0.4)))
            floors[d] = v
            budget -= v
        if kind in ("cap", "both"):
            lo = floors.get(d, 0.0)
            caps[d] = draw(st.floats(lo, 1.0))
    lo = sum(floors.values()) + sum(pins.values())
    hi = sum(caps.get(d, 1.0) if d not in pins else pins[d] for d in names)
    assume(lo <= 1.0 and hi >= 1.0)
    return MixtureSpace(names, floors=floors, caps=caps, pins=pins)


@settings(max_examples=150, deadline=None)
@given(space=bounded_spaces(), seed=st.integers(0, 2**31 - 1))
def test_map_lands_on_the_simplex_within_bounds(space: MixtureSpace, seed: int) -> None:
    u = np.random.default_rng(seed).random((64, space.dim))
    # include the cube's corners and faces
    u[:4] = np.array([0.0, 1.0, 0.5, 1.0 - 1e-15])[:, None]
    r = space.to_mixture(u)
    assert r.shape == (64, space.k)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=0, atol=SUM_ATOL)
    assert np.all(r >= space.floor - BOUND_ATOL)
    assert np.all(r <= space.cap + BOUND_ATOL)
    assert space.contains(r).all()


@settings(max_examples=150, deadline=None)
@given(space=bounded_spaces(), seed=st.integers(0, 2**31 - 1))
def test_mixture_roundtrips_through_the_cube(space: MixtureSpace, seed: int) -> None:
    r = space.to_mixture(np.random.default_rng(seed).random((32, space.dim)))
    u = space.to_unit(r)
    assert u.shape == (32, space.dim)
    assert np.all((u >= 0) & (u <= 1))
    np.testing.assert_allclose(space.to_mixture(u), r, rtol=0, atol=ROUNDTRIP_ATOL)


@settings(max_examples=100, deadline=None)
@given(k=st.integers(2, 8), seed=st.integers(0, 2**31 - 1))
def test_cube_roundtrips_without_bounds(k: int, seed: int) -> None:
    space = MixtureSpace([f"d{i}" for i in range(k)])
    u = np.random.default_rng(seed).uniform(0.001, 0.999, (32, space.dim))
    np.testing.assert_allclose(space.to_unit(space.to_mixture(u)), u, rtol=UNIT_RTOL, atol=UNIT_ATOL)


def test_uniform_cube_gives_uniform_simplex() -> None:
    """Without bounds, uniform cube points are Dirichlet(1): each ratio's mean is 1/k, P(r_d < x) = 1-(1-x)^(k-1)."""
    k = 4
    space = MixtureSpace([f"d{i}" for i in range(k)])
    r = space.to_mixture(np.random.default_rng(0).random((200_000, space.dim)))
    np.testing.assert_allclose(r.mean(axis=0), 1 / k, atol=3e-3)
    for d in range(k):
        np.testing.assert_allclose(np.mean(r[:, d] < 0.2), 1 - 0.8 ** (k - 1), atol=5e-3)


def test_pins_and_exclusions_take_no_dimension() -> None:
    s = MixtureSpace(["web", "code", "math", "books"], pins={"math": 0.1}, caps={"books": 0.0})
    assert s.dim == 1 and s.free == (0, 1)
    r = s.to_mixture(np.array([[0.0], [1.0]]))
    np.testing.assert_allclose(r[:, 2], 0.1)
    np.testing.assert_allclose(r[:, 3], 0.0)
    np.testing.assert_allclose(r[:, :2].sum(axis=1), 0.9)


def test_floors_summing_to_one_give_a_single_point() -> None:
    s = MixtureSpace(["a", "b"], floors={"a": 0.6, "b": 0.4})
    r = s.to_mixture(np.random.default_rng(0).random((5, s.dim)))
    np.testing.assert_allclose(r, [[0.6, 0.4]] * 5, atol=BOUND_ATOL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"floors": {"a": 0.7, "b": 0.5}}, r"sum\(floors and pins\) <= 1 must hold, but got 1\.2"),
        ({"caps": {"a": 0.3, "b": 0.3, "c": 0.3}}, r"sum\(caps\) >= 1 must hold.*0\.9"),
        ({"floors": {"a": 0.5}, "caps": {"a": 0.4}}, r"floor > cap for a \(floor 0\.5 > cap 0\.4\)"),
        ({"floors": {"zz": 0.1}}, r"unknown domain\(s\) \['zz'\]"),
        ({"pins": {"a": 0.5}, "floors": {"a": 0.1}}, r"pinned and also have a floor"),
        ({"caps": {"a": 1.5}}, r"cap of 'a' must be a ratio in \[0, 1\]"),
    ],
)
def test_infeasible_bounds_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(SearchError, match=match):
        MixtureSpace(["a", "b", "c"], **kwargs)


def test_to_unit_rejects_outside_mixture() -> None:
    s = MixtureSpace(["a", "b"], caps={"a": 0.5})
    with pytest.raises(SearchError, match="outside the search space"):
        s.to_unit(np.array([[0.8, 0.2]]))


# -- compute ----------------------------------------------------------------------------------
def test_flops_mode_derives_chinchilla_tokens() -> None:
    c = ComputeSpace(flops=(1e20, 1e22), tokens_per_param=20)
    assert c.dim == 1 and c.coordinate_names == ("u:log_flops",)
    flops, params, tokens = c.decode(np.array([[0.0], [0.5], [1.0]]))
    np.testing.assert_allclose(flops, [1e20, 1e21, 1e22], rtol=1e-12)
    np.testing.assert_allclose(tokens, np.sqrt(20 * flops / 6), rtol=1e-12)
    np.testing.assert_allclose(tokens / params, 20, rtol=1e-12)
    np.testing.assert_allclose(6 * params * tokens, flops, rtol=1e-12)
    np.testing.assert_allclose(c.encode(flops), [[0.0], [0.5], [1.0]], atol=1e-12)


def test_params_tokens_mode_and_fixed_compute() -> None:
    c = ComputeSpace(params=(1e8, 1e9), tokens=(2e9, 2e9))
    assert c.dim == 1
    flops, params, tokens = c.decode(np.array([[1.0]]))
    np.testing.assert_allclose([flops[0], params[0], tokens[0]], [6 * 1e9 * 2e9, 1e9, 2e9], rtol=1e-12)
    assert ComputeSpace(flops=1e21).dim == 0
    with pytest.raises(SearchError, match="not both"):
        ComputeSpace(flops=1e21, params=(1e8, 1e9), tokens=(1e9, 1e9))
    with pytest.raises(SearchError, match="0 < low <= high"):
        ComputeSpace(flops=(1e22, 1e21))


# -- data limits --------------------------------------------------------------------------------
def test_data_constraint_value_is_the_worst_relative_overuse() -> None:
    mix = MixtureSpace(["web", "code"])
    d = DataBudget(available={"code": 1e10}, max_epochs=2)  # supply 2e10 code tokens
    space = SearchSpace(mix, ComputeSpace(flops=6 * 1e9 * 1e11, tokens_per_param=100), d)  # D = 1e11
    pts = space.decode(np.array([[1 - 0.9 ** 1], [1.0]]))  # code ratio by stick-breaking: u -> ...
    r_code = pts.mixture[:, 1]
    expected = r_code * pts.tokens / 2e10 - 1
    np.testing.assert_allclose(space.data_violation(pts), expected, rtol=1e-12)
    np.testing.assert_allclose(space.epochs(pts)[:, 1], r_code * pts.tokens / 1e10, rtol=1e-12)
    assert space.epochs(pts)[:, 0].max() == 0.0  # unlimited domain


def test_impossible_token_budget_is_found_analytically() -> None:
    mix = MixtureSpace(["web", "code"], floors={"code": 0.3})
    # D = sqrt(20 * 1e22 / 6) ~ 1.8e11 tokens; code may supply 4 * 1e9 = 4e9 < 0.3 D
    with pytest.raises(SearchError, match=r"(?s)impossible for every mixture.*'code' has floor 0\.3"):
        SearchSpace(mix, ComputeSpace(flops=(1e22, 1e23)), DataBudget(available={"code": 1e9}))
    with pytest.raises(SearchError, match="all domains together can supply at most"):
        SearchSpace(MixtureSpace(["web", "code"]), ComputeSpace(flops=1e22),
                    DataBudget(available={"web": 1e10, "code": 1e10}, max_epochs=1))
    with pytest.raises(SearchError, match=r"unknown domain\(s\) \['mathh'\]"):
        SearchSpace(MixtureSpace(["web", "math"]), ComputeSpace(flops=1e22), DataBudget(available={"mathh": 1e12}))


def test_max_feasible_tokens_matches_the_closed_form() -> None:
    # web unlimited but capped at 0.5, code supplies 4e10: feasible iff 0.5 + 4e10/D >= 1 -> D <= 8e10
    mix = MixtureSpace(["web", "code"], caps={"web": 0.5})
    space = SearchSpace(mix, ComputeSpace(flops=(1e18, 1e24)), DataBudget(available={"code": 1e10}, max_epochs=4))
    assert math.isclose(space.max_feasible_tokens(), 8e10, rel_tol=1e-8)  # BOUNDS_ATOL slack
