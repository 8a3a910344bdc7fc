"""FLP-M and DML on metric-only tables (task metrics, no per-domain losses), and the
advice when a stage-1 law has more parameters than runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mixopt.cli import main
from mixopt.errors import ConfigError, FitError, NotPredictableError
from mixopt.surrogate import Targets, load_surrogate, make_surrogate, save_surrogate
from mixopt.testing import mixture_world
from mixopt.testing.metric_worlds import olmix_like_runs
from tests.conftest import needs_data

#: tolerances, named
RTOL_HELD_OUT = 0.03  # mean held-out relative error on 1 %-noise Olmix-like metrics
RTOL_ROUND_TRIP = 1e-12

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def swarm():
    runs, _ = olmix_like_runs(12, 100, 8, seed=0)
    ids = list(runs.runs)
    return runs.select_runs(ids[:80]), runs.select_runs(ids[80:])


@pytest.mark.parametrize("kind", ["flpm", "dml"])
def test_metric_only_fit_predicts_held_out_runs(swarm, kind):
    train, test = swarm
    model = make_surrogate(kind, seed=0).fit(train)
    assert model.outputs_ == tuple(f"score:task{m}" for m in range(8))
    assert model.loss_domains_ == () and model.unpredictable_ == {}
    pred = model.predict(Targets.from_runs(test), level=0.9)
    Y = test.scores()
    assert np.mean(np.abs(pred.mean - Y) / Y) < RTOL_HELD_OUT
    assert np.all(pred.lower < pred.mean) and np.all(pred.mean < pred.upper)
    coverage = np.mean((pred.lower <= Y) & (Y <= pred.upper))
    assert 0.6 < coverage <= 1.0, coverage
    # beats predicting each metric's training mean
    naive = np.mean(np.abs(train.scores().mean(axis=0) - Y) / Y)
    assert np.mean(np.abs(pred.mean - Y) / Y) < 0.7 * naive


@pytest.mark.parametrize("kind", ["flpm", "dml"])
def test_metric_only_model_file_round_trip(swarm, kind, tmp_path):
    train, test = swarm
    model = make_surrogate(kind, seed=0).fit(train)
    back = load_surrogate(save_surrogate(model, tmp_path / kind))
    t = Targets.from_runs(test)
    a, b = model.predict(t), back.predict(t)
    np.testing.assert_allclose(a.mean, b.mean, rtol=RTOL_ROUND_TRIP)
    np.testing.assert_allclose(a.upper, b.upper, rtol=RTOL_ROUND_TRIP)


def test_metric_only_refuses_other_compute_and_other_stage1(swarm):
    train, test = swarm
    model = make_surrogate("flpm", seed=0).fit(train)
    final = test.final()
    far = Targets(flops=final.flops() * 10, mixture=final.mixture(), domains=final.domains)
    with pytest.raises(NotPredictableError, match="not extrapolable in compute"):
        model.predict(far)
    with pytest.raises(ConfigError, match="metric-only table"):
        make_surrogate("flpm", stage1="flpm_additive").fit(train)


def test_64_domain_metric_only_swarm_fits_with_few_runs():
    runs, _ = olmix_like_runs(64, 64, 10, seed=5)
    model = make_surrogate("flpm", seed=0).fit(runs)
    pred = model.predict(Targets.from_runs(runs), intervals=False)
    assert np.all(np.isfinite(pred.mean))


def test_64_domain_advice_names_what_each_law_needs():
    runs, _ = olmix_like_runs(64, 66, 3, seed=6, with_losses=True)
    with pytest.raises(FitError) as e:
        make_surrogate("flpm", seed=0).fit(runs)
    msg = str(e.value)
    assert "needs at least 67 runs" in msg and "dml >= 65" in msg and "use stage1='dml'" in msg
    runs, _ = olmix_like_runs(64, 64, 3, seed=6, with_losses=True)
    with pytest.raises(FitError) as e:
        make_surrogate("dml", seed=0).fit(runs)
    msg = str(e.value)
    assert "needs at least 65 runs" in msg and "No other stage-1 form needs fewer runs" in msg
    assert "--method regmix" in msg and "use stage1='dml'" not in msg


@needs_data(DATA / "olmix")
def test_backtest_olmix_swarm_with_every_mixture_method(capsys):
    d = DATA / "olmix"
    args = ["backtest", "--runs", str(d / "full_reuse_update_5_seed_0_metrics.csv"), "--ratios",
            str(d / "full_reuse_update_5_seed_0_ratios.csv"), "--format", "olmix", "--params-default", "30e6",
            "--tokens-default", "3e9", "--method", "flpm,dml,regmix", "--holdout-mixtures", "13", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    methods = {r["method"] for r in out["results"]}
    assert methods == {"flpm", "dml", "regmix"}
    for r in out["results"]:
        errs = [s["median_rel_error"] for s in r["summary"]]
        assert len(errs) == 110 and np.median(errs) < 0.05


def test_scale_path_thins_long_runs_reduced_size(caplog, monkeypatch):
    """The million-row path at reduced size: 60 runs x 400 checkpoints fit on thinned rows
    (threshold lowered from 100,000 to 10,000 rows so the path runs at this size)."""
    import mixopt.data.thinning as thinning

    monkeypatch.setattr(thinning, "THIN_ABOVE_ROWS", 10_000)
    w = mixture_world(3, 2, seed=0)
    runs = w.sample_runs([5e7, 1e8, 2e8], w.random_mixtures(20, seed=1), n_checkpoints=400, seed=2)
    with caplog.at_level(logging.INFO, logger="mixopt.data.thinning"):
        model = make_surrogate("flp", seed=0).fit(runs)
    assert any("thinned 24000 checkpoints" in r.getMessage() for r in caplog.records)
    pred = model.predict(Targets.from_params_tokens(1e9, 2e10), intervals=False)
    assert np.all(np.isfinite(pred.get("loss")))
