"""The hybrid family (law x learned correction over the mixture) on a world where it must win.

Losses follow a pooled FLP-M law times a smooth mixture-only bump that the law's few
parameters cannot carry: ``log L = log law(C, r) + g_d(r)``. That is the structure the
hybrid's residual learns, so at held-out mixtures one size beyond the fitted runs the hybrid
must beat the plain law by a wide margin; a residual applied with the wrong sign (or not at
all) doubles (or keeps) the law's error and fails. Fast: no bootstrap, logistic stage 2.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.data.table import RunTable
from mixopt.surrogate import Targets
from mixopt.surrogate.flpm import FLPM
from mixopt.testing import mixture_world

SIZES = [5e7, 1e8, 2e8, 5e8, 1e9]
TARGET = 2e9


def _law(C, R, j):
    w = np.exp(np.array([0.0, -1.5, -3.0]) if j == 0 else np.array([-3.0, 0.0, -1.5]))
    return (1.5 + 0.3 * j) + (C / 1e18 * (np.exp(-4.0) + R @ w)) ** -(0.12 + 0.02 * j)


def _bump(R, j):
    """A mixture-only log correction of a few %: a saddle the law's source weights cannot express."""
    return 0.3 * ((R[:, 0] - 0.4) ** 2 - (R[:, 1] - 0.3 + 0.1 * j) ** 2)


def _truth(C, R):
    return {d: _law(C, R, j) * np.exp(_bump(R, j)) for j, d in enumerate(("web", "code"))}


def _runs(n_mixtures=20):
    world = mixture_world(n_domains=3, n_benchmarks=1, seed=0)
    runs = world.sample_runs(SIZES, world.random_mixtures(n_mixtures, seed=11), n_checkpoints=3, loss_noise=0.0, score_noise=0.0,
                             seed=11)
    rng = np.random.default_rng(12)
    cols = {f"loss:{d}": y * (1 + 0.002 * rng.standard_normal(y.shape)) for d, y in _truth(runs.flops(), runs.mixture()).items()}
    frame = runs.frame.drop([c for c in runs.frame.columns if c.startswith(("score:", "loss:"))] + ["loss"])
    return world, RunTable(frame.with_columns(*(pl.Series(k, v) for k, v in cols.items())), [])


@pytest.fixture(scope="module")
def world_runs():
    return _runs()


def _errors(model, world):
    mix = world.random_mixtures(40, seed=13)
    t = Targets.from_params_tokens(np.full(40, TARGET), np.full(40, 20 * TARGET), mix, world.domains)
    pred = model.predict(t, intervals=False)
    truth = _truth(t.flops, mix)
    return np.concatenate([np.abs(pred.get(f"loss:{d}") / y - 1) for d, y in truth.items()])


def test_hybrid_beats_the_plain_law_at_held_out_mixtures_beyond_the_runs(world_runs):
    world, runs = world_runs
    common = dict(stage1="flpm", n_bootstrap=0, n_starts=3, stage2="logistic", intervals="raw", seed=0)
    law = FLPM(**common, family="law").fit(runs)
    hybrid = FLPM(**common, family="hybrid").fit(runs)
    e_law, e_hyb = _errors(law, world), _errors(hybrid, world)
    # measured: law median 1.1%, hybrid 0.45% (0.41x); means 0.29x. The law misses the saddle;
    # the residual recovers most of it at unseen mixtures (a sign-flipped residual doubles the error)
    assert np.median(e_law) > 0.008, np.median(e_law)
    assert np.median(e_hyb) < 0.6 * np.median(e_law), (np.median(e_hyb), np.median(e_law))
    assert np.mean(e_hyb) < 0.5 * np.mean(e_law), (np.mean(e_hyb), np.mean(e_law))
