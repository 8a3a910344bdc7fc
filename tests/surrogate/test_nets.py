"""Stage-2 network ensemble: determinism, accuracy, export, no global side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixopt.errors import ConfigError, NotFittedError, SchemaError
from mixopt.surrogate.nets import NetConfig, ScoreNetEnsemble

#: tolerances, named
RTOL_EXACT = 0.0
RTOL_BATCH = 1e-12
ATOL_BATCH = 1e-12

SMALL = dict(hidden=12, n_members=3, max_epochs=400, patience=60)


def _data(seed: int = 0, n_runs: int = 24, n_ck: int = 8):
    """Synthetic (losses -> two scores) data: a sigmoid and a linear benchmark, 3 domains."""
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(n_runs), n_ck).astype(str)
    base = rng.uniform(2.4, 3.4, (n_runs, 3))
    prog = np.tile(np.linspace(0.0, 0.5, n_ck), n_runs)[:, None]
    X = np.repeat(base, n_ck, axis=0) - prog
    z = 6.0 * (2.6 - X @ np.array([0.6, 0.3, 0.1]))
    s1 = 0.25 + 0.6 / (1.0 + np.exp(-z))
    s2 = 3.0 - 0.5 * X[:, 0] - 0.2 * X[:, 1]
    Y = np.column_stack([s1, s2])
    mask = np.column_stack([s1 >= 0.30, np.ones(len(s2), dtype=bool)])
    return X, Y, mask, runs


def _fit(seed: int = 0, **kw) -> ScoreNetEnsemble:
    X, Y, mask, runs = _data()
    return ScoreNetEnsemble(NetConfig(seed=seed, **{**SMALL, **kw})).fit(X, Y, mask, runs, chance=[0.25, None])


def test_fits_known_functions_in_range():
    X, Y, mask, _ = _data()
    net = _fit()
    P = net.predict_mean(X)
    err1 = np.abs(P[mask[:, 0], 0] - Y[mask[:, 0], 0])
    err2 = np.abs(P[:, 1] - Y[:, 1])
    assert np.median(err1) < 0.02
    assert np.median(err2) < 0.02
    assert net.link_.tolist() == [1, 0]  # auto: sigmoid with a chance level, linear without


def test_deterministic_given_seed_and_seed_matters():
    a, b, c = _fit(seed=3), _fit(seed=3), _fit(seed=4)
    for k, v in a.arrays().items():
        np.testing.assert_array_equal(v, b.arrays()[k], err_msg=k)
    assert not np.array_equal(a.W1_, c.W1_)


def test_no_global_rng_or_thread_side_effects():
    torch_state = torch.random.get_rng_state().clone()
    np_state = np.random.get_state()[1].copy()
    threads = torch.get_num_threads()
    _fit()
    assert torch.equal(torch_state, torch.random.get_rng_state())
    np.testing.assert_array_equal(np_state, np.random.get_state()[1])
    assert torch.get_num_threads() == threads


def test_mean_is_member_average_and_batch_equals_single():
    X, *_ = _data()
    net = _fit()
    members = net.predict_members(X[:50])
    np.testing.assert_allclose(net.predict_mean(X[:50]), members.mean(axis=0), rtol=RTOL_BATCH, atol=ATOL_BATCH)
    batch = net.predict_mean(X[:20])
    single = np.vstack([net.predict_mean(X[i : i + 1]) for i in range(20)])
    np.testing.assert_allclose(batch, single, rtol=RTOL_BATCH, atol=ATOL_BATCH)
    paired = net.predict_paired(np.stack([X[:10]] * 4))
    np.testing.assert_allclose(paired[1], members[1, :10], rtol=RTOL_BATCH, atol=ATOL_BATCH)
    np.testing.assert_allclose(paired[3], members[0, :10], rtol=RTOL_BATCH, atol=ATOL_BATCH)  # 3 mod 3 = 0


def test_export_round_trip_is_identical():
    X, *_ = _data()
    net = _fit()
    again = ScoreNetEnsemble.from_arrays(net.config, net.arrays())
    np.testing.assert_array_equal(net.predict_mean(X), again.predict_mean(X))
    np.testing.assert_array_equal(net.predict_members(X), again.predict_members(X))


def test_noise_estimate_and_linear_link_option():
    net = _fit(link="linear")
    assert net.link_.tolist() == [0, 0]
    assert np.all(np.isfinite(net.noise_sd_)) and np.all(net.noise_sd_ >= 0)


def test_errors_are_clear():
    X, Y, mask, runs = _data()
    with pytest.raises(ConfigError, match="activation"):
        NetConfig(activation="gelu")
    with pytest.raises(ConfigError, match="hidden"):
        NetConfig(hidden=0)
    with pytest.raises(NotFittedError):
        ScoreNetEnsemble().predict_mean(X)
    bad = mask.copy()
    bad[:, 0] = False
    with pytest.raises(SchemaError, match=">= 2 training rows"):
        ScoreNetEnsemble(NetConfig(**SMALL)).fit(X, Y, bad, runs)
    with pytest.raises(ConfigError, match="chance level"):
        ScoreNetEnsemble(NetConfig(link="sigmoid", **SMALL)).fit(X, Y, mask, runs, chance=[0.25, None])
    net = _fit()
    with pytest.raises(SchemaError, match=r"\(n, 3\)"):
        net.predict_mean(X[:, :2])


def test_per_member_stopping_trains_fewer_steps_and_keeps_the_same_states_before_any_stop():
    X, Y, mask, _ = _data()
    # no member can stop within max_epochs: the two rules are the same computation
    a, b = _fit(stop="member", patience=500), _fit(stop="all", patience=500)
    for k, v in a.arrays().items():
        np.testing.assert_array_equal(v, b.arrays()[k], err_msg=k)
    member, together = _fit(stop="member", patience=30), _fit(stop="all", patience=30)
    # each member with held-out runs stops `patience` steps after its kept state (or at max_epochs)
    stopped = member.steps_ < SMALL["max_epochs"]
    assert stopped.any()
    np.testing.assert_array_equal(member.steps_[stopped], member.epochs_[stopped] + 30)
    assert member.steps_.sum() < together.steps_.sum()
    assert np.all(together.steps_ == together.steps_.flat[0])  # "all": every member trains to the common stop
    # both fit the known functions
    for net in (member, together):
        P = net.predict_mean(X)
        assert np.median(np.abs(P[mask[:, 0], 0] - Y[mask[:, 0], 0])) < 0.03
    with pytest.raises(ConfigError, match="stop must be one of"):
        NetConfig(stop="early")
