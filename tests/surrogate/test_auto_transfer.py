"""FLP-M auto judged at the target's distance: fold kinds, the transfer fold, no free residual on in-range evidence."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.data.table import RunTable
from mixopt.surrogate import Targets
from mixopt.surrogate.decision import spearman
from mixopt.surrogate.flpm import FLPM
from mixopt.surrogate.flpm_auto import _score_stage1, make_folds
from mixopt.surrogate.select import compute_scales, transfer_fold
from mixopt.testing import mixture_world
from mixopt.testing.transfer import artefact_truth, small_scale_artefact

#: fast fixed settings: the tests are about the family choice, not stage 2
KW = dict(n_bootstrap=0, n_starts=2, stage1="flpm", stage2="logistic", stage2_inputs="fitted", intervals="raw", seed=0,
          )
PROXY, BIG = 2e7, 6e8


@pytest.fixture(scope="module")
def artefact():
    """36 proxies carrying a fading mixture bump, 8 runs at 30x the compute, 30 large mixtures to judge on."""
    world = mixture_world(n_domains=3, n_benchmarks=1, seed=0)
    proxy = world.sample_runs([PROXY], world.random_mixtures(36, seed=1), n_checkpoints=2, loss_noise=0.002, seed=2)
    bigmix = world.random_mixtures(30, seed=3)
    big = world.sample_runs([BIG], bigmix[:8], n_checkpoints=2, loss_noise=0.002, seed=4)
    big = RunTable(big.frame.with_columns(pl.col("run") + "_big"), big.benchmarks)
    both = small_scale_artefact(world, RunTable(pl.concat([proxy.frame, big.frame]), proxy.benchmarks), strength=0.2, seed=0)
    flops = np.full(30, float(big.final().flops()[0]))
    return {"world": world, "proxy": small_scale_artefact(world, proxy, strength=0.2, seed=0), "both": both,
            "bigmix": bigmix, "flops": flops, "truth": artefact_truth(world, flops, bigmix)}


def _rho_at_big(model, a) -> float:
    p = model.predict(Targets(flops=a["flops"], mixture=a["bigmix"], domains=a["world"].domains), intervals=False)
    return float(np.mean([spearman(p.get("loss:" + d), a["truth"][:, j]) for j, d in enumerate(a["world"].domains)]))


def test_fold_kinds_and_the_transfer_fold(artefact):
    proxy, both = artefact["proxy"], artefact["both"]
    assert {f.kind for f in make_folds(proxy)} == {"mixture"}
    assert transfer_fold(proxy) is None
    folds = make_folds(both)
    assert [f.kind for f in folds] == ["transfer", "mixture"]
    tf = folds[0]
    assert tf.test.n_runs == 8 and tf.test.flops().min() > 10 * tf.train.final().flops().max()
    assert not set(tf.train.run_ids().tolist()) & set(tf.test.run_ids().tolist())
    assert tf.out_of_range and not folds[1].out_of_range
    assert compute_scales(np.array([1e16, 1.1e16, 6e17, 5e17])).tolist() == [0, 0, 1, 1]


def test_auto_picks_the_out_of_range_right_family_where_in_range_picks_the_residual(artefact):
    proxy, both = artefact["proxy"], artefact["both"]

    def make(s):
        return FLPM(**{**KW, **s})

    # in range (mixtures left out at the proxy scale) the free residual wins ...
    table: list = []
    assert _score_stage1(make, make_folds(proxy), ("flpm",), ("law", "hybrid"), table, explicit_family=True)[1] == "hybrid"
    # ... and ranks the large mixtures worse than the law alone
    law = FLPM(**{**KW, "family": "law"}).fit(both)
    hybrid = FLPM(**{**KW, "family": "hybrid"}).fit(both)
    assert _rho_at_big(law, artefact) > _rho_at_big(hybrid, artefact) + 0.1
    # auto judges the family on the transfer fold (the 8 larger runs) and picks the law
    auto = FLPM(**{k: v for k, v in KW.items() if k != "intervals"}, intervals="raw").fit(both)
    assert auto.config_["family"] == "law", auto.selection_
    chosen = auto.selection_.filter(pl.col("status") == "chosen").row(0, named=True)
    assert chosen["reason"].startswith("judged out of range")


def test_in_range_evidence_never_picks_the_free_residual_but_averages_it(artefact):
    proxy = artefact["proxy"]
    m = FLPM(**KW).fit(proxy)
    # in range the residual helps, but that evidence cannot show transfer: the law and the hybrid are averaged
    assert m.config_["family"] == "average"
    t = m.selection_
    ex = t.filter(pl.col("status") == "excluded")
    assert ex["candidate"].to_list() == ["family=hybrid"] and ex["reason"][0].startswith("every internal fold is at the fitted")
    assert set(t.filter(pl.col("step") == "folds")["candidate"].to_list()) == {"mixture"}
    # given explicitly, the hybrid is kept
    hybrid = FLPM(**{**KW, "family": "hybrid"}).fit(proxy)
    law = FLPM(**{**KW, "family": "law"}).fit(proxy)
    assert hybrid.config_["family"] == "hybrid"
    # the average is the geometric mean of the two, and its interval covers both
    tg = Targets(flops=np.full(30, float(proxy.final().flops()[0])), mixture=artefact["bigmix"], domains=artefact["world"].domains)
    pa, ph, pl_ = (x.predict(tg, level=0.5) for x in (m, hybrid, law))
    for d in artefact["world"].domains:
        q = "loss:" + d
        np.testing.assert_allclose(pa.get(q), np.sqrt(ph.get(q) * pl_.get(q)), rtol=1e-6)  # separate fits: optimiser tolerance
        lo, hi = pa.interval(q)
        both = np.column_stack([ph.get(q), pl_.get(q)])
        assert np.all(lo <= both.min(axis=1) * (1 + 1e-6)) and np.all(hi >= both.max(axis=1) * (1 - 1e-6))
        assert np.any(np.abs(np.log(ph.get(q) / pl_.get(q))) > 0.02)  # they do disagree


def test_mixopt_fit_prints_the_folds_and_why_each_choice(artefact, tmp_path, capsys):
    from mixopt.cli import main
    from mixopt.data.readers import write_runs

    path = write_runs(artefact["both"], tmp_path / "runs.csv")
    settings = '{"n_bootstrap": 0, "n_starts": 2, "stage1": "flpm", "stage2": "logistic", "stage2_inputs": "fitted"}'
    assert main(["fit", "--runs", str(path), "--method", "flpm", "--settings", settings, "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "folds: transfer: transfer fold: fit on 36 runs" in out
    assert "chosen: stage1=flpm, family=law (judged out of range: mean 1-rho" in out


def test_in_range_folds_do_not_choose_the_law_form(artefact):
    table: list = []
    form, family, alt = _score_stage1(lambda s: FLPM(**{**KW, **s}), make_folds(artefact["proxy"]), ("flpm", "dml"),
                                       ("law", "hybrid", "average"), table, explicit_family=False)
    assert form == "flpm" and family in ("law", "average") and alt is None  # forms are averaged on out-of-range evidence only
    excluded = {r["candidate"] for r in table if r["status"] == "excluded"}
    assert excluded == {"stage1=dml", "family=hybrid"}


def test_a_hybrid_beyond_its_checked_reach_predicts_as_the_average(artefact):
    import copy

    both, dom = artefact["both"], artefact["world"].domains
    hybrid = FLPM(**{**KW, "family": "hybrid"}).fit(both)
    reached = copy.deepcopy(hybrid)
    reached.config_["residual_reach"] = "2.0"
    avg = copy.deepcopy(hybrid)
    avg.config_["family"] = "average"
    top = float(hybrid.train_max_flops_)
    for ratio, like in ((1.0, hybrid), (1.9, hybrid), (3.0, avg)):
        tg = Targets(flops=np.full(30, ratio * top), mixture=artefact["bigmix"], domains=dom)
        pr, pw = reached.predict(tg, level=0.9), like.predict(tg, level=0.9)
        for d in dom:
            np.testing.assert_allclose(pr.get("loss:" + d), pw.get("loss:" + d), rtol=1e-12)
            np.testing.assert_allclose(pr.interval("loss:" + d), pw.interval("loss:" + d), rtol=1e-12)
    # beyond the reach the prediction differs from the hybrid's, and the interval holds the law and the hybrid
    tg = Targets(flops=np.full(30, 3.0 * top), mixture=artefact["bigmix"], domains=dom)
    law = copy.deepcopy(hybrid)
    law.config_["family"] = "law"
    pr, ph, pl_ = (m.predict(tg, level=0.5) for m in (reached, hybrid, law))
    q = "loss:" + dom[0]
    assert np.any(np.abs(np.log(pr.get(q) / ph.get(q))) > 1e-3)
    lo, hi = pr.interval(q)
    pair = np.column_stack([ph.get(q), pl_.get(q)])
    assert np.all(lo <= pair.min(axis=1) * (1 + 1e-9)) and np.all(hi >= pair.max(axis=1) * (1 - 1e-9))
