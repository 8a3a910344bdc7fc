"""Synthetic worlds: determinism, monotone truth, valid tables, vectorised == per-row."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.data import RunTable
from mixopt.errors import SchemaError
from mixopt.testing import (
    World,
    mixture_world,
    random_mixtures,
    single_domain_world,
    two_domain_code_world,
)

RTOL = 1e-12
ATOL = 1e-12

WORLDS = {
    "single": single_domain_world(seed=0),
    "two_code": two_domain_code_world(),
    "k1": mixture_world(n_domains=1, n_benchmarks=2, seed=3),
    "k3": mixture_world(n_domains=3, n_benchmarks=4, seed=0),
    "k12": mixture_world(n_domains=12, n_benchmarks=14, seed=5),
}


def _mix(world: World, n: int, seed: int) -> np.ndarray | None:
    return None if world.single_domain else world.random_mixtures(n, seed=seed)


@pytest.mark.parametrize("name", list(WORLDS))
def test_sample_runs_is_a_valid_deterministic_run_table(name: str) -> None:
    world = WORLDS[name]
    mixes = _mix(world, 4, seed=1)
    a = world.sample_runs([1e7, 1e8, 1e9], mixes, n_checkpoints=5, seed=7)
    b = world.sample_runs([1e7, 1e8, 1e9], mixes, n_checkpoints=5, seed=7)
    c = world.sample_runs([1e7, 1e8, 1e9], mixes, n_checkpoints=5, seed=8)
    assert isinstance(a, RunTable)
    q = 1 if mixes is None else 4
    assert a.n_runs == 3 * q and len(a) == 3 * q * 5
    assert a.frame.equals(b.frame)
    assert not a.frame.equals(c.frame)
    assert a.domains == world.domains
    assert a.benchmark_names == world.benchmark_names
    assert a.has_overall_loss
    if world.single_domain:
        assert a.loss_domains == ()
    else:
        assert a.loss_domains == world.loss_domains
    # checkpoints at evenly spaced fractions of the final tokens, final = 20 tokens/param
    fin = a.final()
    np.testing.assert_allclose(fin.tokens(), 20 * fin.params(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(a.flops(), 6 * a.params() * a.tokens(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", list(WORLDS))
def test_noise_free_samples_equal_the_truth(name: str) -> None:
    world = WORLDS[name]
    mixes = _mix(world, 3, seed=2)
    t = world.sample_runs([3e7, 3e8], mixes, n_checkpoints=4, loss_noise=0, score_noise=0, seed=0)
    mix = t.mixture() if not world.single_domain else None
    np.testing.assert_allclose(t.overall_loss(), world.true_overall_loss(t.flops(), mix), rtol=1e-12, atol=0)
    np.testing.assert_allclose(t.scores(), world.true_scores(t.flops(), mix), rtol=1e-9, atol=1e-12)
    if not world.single_domain:
        np.testing.assert_allclose(t.losses(), world.true_losses(t.flops(), mix), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(WORLDS))
def test_vectorised_truth_matches_per_row_calls(name: str) -> None:
    world = WORLDS[name]
    rng = np.random.default_rng(0)
    flops = 10 ** rng.uniform(15, 23, 50)
    mixes = _mix(world, 50, seed=3)
    L = world.true_losses(flops, mixes)
    S = world.true_scores(flops, mixes)
    o = world.true_overall_loss(flops, mixes)
    for i in range(50):
        mi = None if mixes is None else mixes[i]
        np.testing.assert_allclose(world.true_losses(flops[i], mi)[0], L[i], rtol=1e-13, atol=0)
        np.testing.assert_allclose(world.true_scores(flops[i], mi)[0], S[i], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(world.true_overall_loss(np.array([flops[i]]), mi)[0], o[i], rtol=1e-13, atol=0)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(list(WORLDS)),
    log_c=st.floats(14.0, 25.0),
    factor=st.floats(1.01, 1e3),
    seed=st.integers(0, 2**31 - 1),
)
def test_losses_fall_with_compute_and_scores_stay_in_range(name: str, log_c: float, factor: float, seed: int) -> None:
    world = WORLDS[name]
    mix = None if world.single_domain else random_mixtures(1, world.k, seed=seed, alpha=0.3)
    c = np.array([10**log_c])
    lo, hi = world.true_losses(c, mix), world.true_losses(c * factor, mix)
    assert np.all(hi < lo)
    assert np.all(hi > world.E)  # bounded below by the irreducible loss
    assert world.true_overall_loss(c * factor, mix)[0] < world.true_overall_loss(c, mix)[0]
    s_lo, s_hi = world.true_scores(c, mix)[0], world.true_scores(c * factor, mix)[0]
    chance = np.array([b.chance for b in world.benchmarks])
    assert np.all(s_hi >= s_lo)
    assert np.all(s_lo >= chance) and np.all(s_hi <= world.bench_ceiling)


def test_losses_are_finite_when_a_domain_gets_no_data() -> None:
    world = WORLDS["k3"]
    corners = np.eye(3)
    L = world.true_losses(np.full(3, 1e19), corners)
    assert np.all(np.isfinite(L))
    # the domain that gets all the data has its lowest loss there
    assert np.all(np.argmin(L, axis=0) == np.arange(3))


def test_benchmarks_emerge_in_the_sampling_range_and_keep_rising() -> None:
    for name in ("single", "two_code", "k3", "k12"):
        world = WORLDS[name]
        chance = np.array([b.chance for b in world.benchmarks])
        mix = None if world.single_domain else np.full(world.k, 1 / world.k)
        s = world.true_scores(np.array([1e16, 1.2e20, 1.2e22]), mix)
        assert np.all(s[0] - chance < 0.02), name  # at chance for the smallest runs
        assert np.all(s[1] - chance > 0.05), name  # emerged at the largest sampling run
        assert np.all(s[2] - s[1] > 0.05), name  # still rising 100x further


def test_two_domain_code_world_has_interior_trade_off() -> None:
    world = two_domain_code_world()
    r = np.linspace(0, 1, 2001)
    mix = np.column_stack([1 - r, r])
    s = world.true_scores(np.full(r.size, 1e21), mix)
    best = dict(zip(world.benchmark_names, r[np.argmax(s, axis=0)], strict=True))
    for name, ratio in best.items():
        assert 0.0 < ratio < 1.0, (name, ratio)
    assert best["humaneval"] > 0.4 > best["hellaswag"]


def test_benchmarks_prefer_different_mixtures() -> None:
    world = WORLDS["k3"]
    mixes = world.random_mixtures(20000, seed=0)
    s = world.true_scores(np.full(len(mixes), 1e20), mixes)
    winners = {int(i) for i in np.argmax(s, axis=0)}
    assert len(winners) >= 3  # a real trade-off: no single mixture wins everything


def test_presets_are_seeded() -> None:
    a, b, c = mixture_world(4, 3, seed=11), mixture_world(4, 3, seed=11), mixture_world(4, 3, seed=12)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert json.dumps(a.to_dict()) != json.dumps(c.to_dict())
    assert a.domains == ("web", "code", "math", "books")
    assert mixture_world(12, 1, seed=0).domains[-2:] == ("domain11", "domain12")


@pytest.mark.parametrize("name", list(WORLDS))
def test_dict_round_trip(name: str) -> None:
    world = WORLDS[name]
    again = World.from_dict(json.loads(json.dumps(world.to_dict())))
    assert again.to_dict() == world.to_dict()
    mix = _mix(world, 5, seed=0)
    np.testing.assert_array_equal(again.true_scores(np.full(5, 1e20), mix), world.true_scores(np.full(5, 1e20), mix))


def test_random_mixtures_on_simplex_and_seeded() -> None:
    m = random_mixtures(100, 5, seed=3, alpha=0.2)
    assert m.shape == (100, 5) and np.all(m >= 0)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m, random_mixtures(100, 5, seed=3, alpha=0.2))
    with pytest.raises(SchemaError):
        random_mixtures(3, 2, seed=0, alpha=-1.0)


def test_bad_inputs_raise_schema_error() -> None:
    world = WORLDS["k3"]
    with pytest.raises(SchemaError, match="mixture must be"):
        world.true_losses(np.ones(2), np.ones((2, 2)) / 2)
    with pytest.raises(SchemaError, match="needs a mixture"):
        world.true_losses(np.ones(2))
    with pytest.raises(SchemaError, match="sum to 1"):
        world.sample_runs([1e7], np.array([[0.5, 0.2, 0.2]]))
    with pytest.raises(SchemaError, match="no mixture"):
        WORLDS["single"].sample_runs([1e7], np.array([[1.0]]))
    with pytest.raises(SchemaError, match="params"):
        world.sample_runs([], None)
    with pytest.raises(SchemaError, match="Invalid World"):
        World(domains=("a",), loss_domains=("a",), benchmarks=(), E=[1.0], A=[-1.0], alpha=[0.1], transfer=[[1.0]])
