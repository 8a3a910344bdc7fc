"""Checkpoint thinning: finals kept, log spacing, evaluated rows preferred, row caps."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import mixopt.data.thinning as thinning
from mixopt.data.table import RunTable
from mixopt.data.thinning import thin_checkpoints
from mixopt.errors import SchemaError
from mixopt.testing import mixture_world


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    """Thin tables above 100 rows here (the default threshold is 100,000 rows)."""
    monkeypatch.setattr(thinning, "THIN_ABOVE_ROWS", 100)


@pytest.fixture(scope="module")
def long_runs():
    w = mixture_world(3, 2, seed=0)
    return w.sample_runs([5e7, 1e8], w.random_mixtures(3, seed=1), n_checkpoints=400, seed=2)


def test_small_tables_are_unchanged(long_runs):
    assert thin_checkpoints(long_runs, 400) is long_runs
    assert thin_checkpoints(long_runs, None) is long_runs


def test_at_most_k_per_run_with_every_final_kept(long_runs):
    thin = thin_checkpoints(long_runs, 32)
    per_run = thin.frame.group_by("run").len()["len"]
    assert per_run.max() <= 32 and thin.n_runs == long_runs.n_runs
    a = long_runs.final().frame.sort("run")
    b = thin.final().frame.sort("run")
    assert a.equals(b)
    # even spacing by rank: the logger's linear spacing is kept (equal gaps, up to one checkpoint)
    tok = np.sort(thin.frame.filter(pl.col("run") == thin.runs[0])["tokens"].to_numpy())
    step = np.diff(np.sort(long_runs.frame.filter(pl.col("run") == thin.runs[0])["tokens"].to_numpy()))[0]
    assert np.ptp(np.diff(tok)[:-1]) <= 2 * step


def test_rows_with_more_values_are_preferred():
    n = 300
    frame = pl.DataFrame({
        "run": ["a"] * n, "params": [1e8] * n, "tokens": np.arange(1, n + 1) * 1e7,
        "loss": np.linspace(3, 2, n),
        "score:hellaswag": [0.3 if i % 10 == 0 else None for i in range(n)],
    })
    thin = thin_checkpoints(RunTable(frame), 8)
    evaluated = thin.frame["score:hellaswag"].is_not_null().sum()
    assert evaluated >= 6  # nearly every bin holds an evaluated checkpoint and picks it


def test_row_cap_keeps_finals_and_is_seeded(long_runs):
    a = thin_checkpoints(long_runs, 128, 50, seed=3)
    b = thin_checkpoints(long_runs, 128, 50, seed=3)
    assert len(a) == 50 and a.frame.equals(b.frame)
    assert a.final().frame.sort("run").equals(long_runs.final().frame.sort("run"))


@pytest.mark.parametrize("bad", [1, 0, 2.5, True])
def test_bad_limits_are_rejected(long_runs, bad):
    with pytest.raises(SchemaError, match="integer >= 2"):
        thin_checkpoints(long_runs, bad)


def test_tables_below_the_threshold_are_never_thinned(long_runs, monkeypatch):
    monkeypatch.setattr(thinning, "THIN_ABOVE_ROWS", len(long_runs))
    assert thin_checkpoints(long_runs, 8) is long_runs
    assert len(thin_checkpoints(long_runs, 8, 50)) == 50  # the row cap applies at any size
    monkeypatch.setattr(thinning, "THIN_ABOVE_ROWS", 1000)
    thin = thin_checkpoints(long_runs, 8)  # 6 runs: K is raised so that >= 1000 rows remain
    assert 1000 <= len(thin) <= 6 * 167
