"""Intermediate checkpoints as stage-1 evidence where the data show they lie on the finals' compute law.

Worlds where the rule matters: the single-source world (every checkpoint on the compute law; seed 3's
stage 1 from the 6 final checkpoints alone is 1.9 % off at 3e9) and the same world with a cosine-like
schedule bump (the unfinished checkpoints sit above the law by an amount that falls with the fraction
of training: the test must reject them, and FLP must keep to the final checkpoints)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.backtest import make_split
from mixopt.data.table import RunTable
from mixopt.surrogate import Targets
from mixopt.surrogate.flp import FLP, loss_noise_sd
from mixopt.surrogate.onlaw import checkpoints_on_law
from mixopt.testing import single_domain_world

SIZES = [2e7, 5e7, 1e8, 2e8, 4e8, 7e8, 1e9, 3e9]


def _split(seed: int, bump: float = 0.0):
    """The benchmark's single-source world (``bench_worlds.build``), optionally with a schedule bump
    ``log L += bump · (1 − f)`` (``f`` the checkpoint's fraction of its run's tokens)."""
    w = single_domain_world(seed=seed)
    runs = w.sample_runs(SIZES, None, tokens_per_param=20.0, n_checkpoints=10, loss_noise=0.005, score_noise=0.005, seed=seed)
    if bump:
        f = runs.frame
        frac = pl.col("tokens") / pl.col("tokens").max().over("run")
        runs = RunTable(f.with_columns(pl.col("loss") * (bump * (1.0 - frac)).exp()), runs.benchmarks)
    return w, make_split(runs, holdout_min_params=1e9)


def _test(runs: RunTable):
    loss = runs.column("loss")
    return checkpoints_on_law(runs.run_ids(), runs.tokens(), runs.flops(), loss, loss_noise_sd(runs.run_ids(), runs.tokens(), loss))


@pytest.mark.parametrize("seed", [3, 11, 24])
def test_world_checkpoints_pass_and_a_schedule_bump_fails(seed: int) -> None:
    _, sp = _split(seed)
    ok = _test(sp.train)
    assert ok.passed and ok.n_points >= 20, ok.describe()
    # a bump of 4x the noise sd at the start of training, fading to 0 at the end: rejected
    _, bumped = _split(seed, bump=0.02)
    bad = _test(bumped.train)
    assert not bad.passed and bad.trend_p < 1e-3, bad.describe()


def test_no_noise_estimate_or_too_few_runs_fails_with_the_reason() -> None:
    _, sp = _split(3)
    fin = sp.train.final()  # one checkpoint per run: no noise estimate
    out = checkpoints_on_law(fin.run_ids(), fin.tokens(), fin.flops(), fin.column("loss"), float("nan"))
    assert not out.passed and "noise" in out.describe()
    few = sp.train.select_runs(sp.train.final().run_ids().astype(str)[:3].tolist())
    out = _test(few)
    assert not out.passed and ">= 4 runs" in out.describe()


def test_flp_uses_the_checkpoints_only_where_they_lie_on_the_law() -> None:
    w, sp = _split(3)
    fin = sp.test.final()
    truth = w.true_losses(fin.flops(), None) @ w.overall_weights
    m = FLP(seed=0, n_bootstrap=20).fit(sp.train)
    row = m.selection_.filter(pl.col("candidate") == "checkpoints")
    assert row.height == 1 and "used as compute-law evidence" in row["reason"][0]
    assert m.checkpoints_ == "usable" and m.stage1_ in ("power_offset", "pure_power")
    # no (N, D) form is offered the checkpoints: the test showed a compute law, not a parameter-token trade-off
    cands = m.selection_.filter(pl.col("stage") == "stage1")["candidate"].to_list()
    assert not any(c.startswith("chinchilla") and c.endswith("+usable") for c in cands), cands
    pred = m.predict(Targets.from_runs(fin)).mean[:, 0]
    err = np.abs(pred - truth) / truth
    # the final checkpoints alone give 0.64 % / 1.86 % at 1e9 / 3e9 (the oracle on all 60: 0.25 % / 0.44 %)
    assert err.max() < 0.01, err
    # the same world with a schedule bump: the checkpoints are rejected, stage 1 keeps to the finals
    _, bumped = _split(3, bump=0.02)
    mb = FLP(seed=0, n_bootstrap=0, calibrate=False).fit(bumped.train)
    assert mb.checkpoints_ == "final"
    assert "final checkpoints only" in mb.selection_.filter(pl.col("candidate") == "checkpoints")["reason"][0]


def test_a_declared_schedule_or_the_paper_preset_skips_the_test() -> None:
    _, sp = _split(3)
    m = FLP(seed=0, n_bootstrap=0, calibrate=False, schedule="cosine").fit(sp.train)
    assert m.checkpoints_ == "final" and m.selection_.filter(pl.col("candidate") == "checkpoints").height == 0
    p = FLP(preset="paper", n_bootstrap=0).fit(sp.train)
    assert p.checkpoints_ == "final" and p.selection_.filter(pl.col("candidate") == "checkpoints").height == 0
