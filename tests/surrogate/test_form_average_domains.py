"""FLP-M form averages: "the two forms part beyond the runs" is asked of each loss domain, against its own noise.

The pooled test compared the largest domain's disagreement with the median domain's loss noise, so one
heteroscedastic domain (RegMix's DM Mathematics: gap 0.117, its own noise 0.178, the median noise
0.038) made all 13 domains average ``flpm`` with ``dml`` although no domain's forms part beyond its own
noise; on RegMix with 16 60M runs in the fit that average cost Pile-CC 0.007 of ρ and its pick.
"""

from __future__ import annotations

import numpy as np
import pytest

import mixopt.surrogate.flpm_auto as fa
from mixopt.errors import ConfigError
from mixopt.surrogate import Targets
from mixopt.surrogate.flpm import FLPM
from mixopt.surrogate.flpm_auto import form_disagreement, form_disagreement_by_domain
from mixopt.testing import mixture_world

SIZES = [5e7, 1e8, 2e8, 5e8]
QUICK = dict(n_bootstrap=8, n_starts=2, seed=0, stage2="logistic", stage2_inputs="fitted", family="law", intervals="raw")
AUTO = dict(n_bootstrap=8, n_starts=2, seed=0, stage2="logistic", stage2_inputs="fitted", family="law")


@pytest.fixture(scope="module")
def runs():
    w = mixture_world(n_domains=3, n_benchmarks=2, seed=3)
    return w, w.sample_runs(SIZES, w.random_mixtures(10, seed=7), n_checkpoints=4, loss_noise=0.005, score_noise=0.005, seed=8)


def test_the_disagreement_is_each_domains_gap_against_its_own_noise(runs):
    _, r = runs
    a = FLPM(stage1="flpm", **QUICK).fit(r)
    b = FLPM(stage1="dml", **QUICK).fit(r)
    gaps, noise = form_disagreement_by_domain(a, b, r)
    assert gaps.shape == noise.shape == (3,) and np.isfinite(gaps).all() and (noise > 0).all()
    np.testing.assert_allclose(noise, np.maximum(a.stage1_residual_, b.stage1_residual_))
    gap, n = form_disagreement(a, b, r)
    k = int(np.argmax(gaps / noise))
    assert (gap, n) == (gaps[k], noise[k])  # the domain that parts most for its own noise
    assert (gap > n) == bool((gaps > noise).any())


def _forced(monkeypatch, gaps, noise):
    monkeypatch.setattr(fa, "within_noise", lambda a, b: (True, "forced tie"))
    real = fa.form_disagreement_by_domain

    def patched(a, b, runs, reach=fa.DISAGREE_REACH):
        real(a, b, runs, reach)  # the real call still runs (shapes, errors)
        return np.asarray(gaps, dtype=float), np.asarray(noise, dtype=float)

    monkeypatch.setattr(fa, "form_disagreement_by_domain", patched)


def test_one_heteroscedastic_domain_no_longer_makes_every_domain_average(runs, monkeypatch):
    """RegMix-like: the noisy domain's gap beats the median domain's noise (what the pooled test compared)
    but not its own; no other domain parts: nothing is averaged."""
    _, r = runs
    gaps, noise = [0.005, 0.005, 0.15], [0.01, 0.01, 0.2]
    assert max(gaps) > np.median(noise)  # the pooled test would have averaged
    _forced(monkeypatch, gaps, noise)
    m = FLPM(**AUTO).fit(r)
    sel = m.selection_
    assert not m.config_.get("stage1_alt") and m.stage1_alt_ is None, m.config_
    row = sel.filter(sel["status"] == "not needed")
    assert row.height == 1 and "within that domain's own loss noise" in row["reason"][0]
    assert repr(m.loss_domains_[2]) in row["reason"][0] and "0.15" in row["reason"][0]


def test_one_domain_parting_beyond_its_own_noise_averages_every_domain(runs, monkeypatch):
    _, r = runs
    _forced(monkeypatch, [0.005, 0.03, 0.005], [0.01, 0.01, 0.2])
    m = FLPM(**AUTO).fit(r)
    sel = m.selection_
    assert m.config_.get("stage1_alt") and m.stage1_alt_ is not None, m.config_
    chosen = sel.filter((sel["step"] == "stage1") & (sel["status"] == "chosen") & sel["candidate"].str.contains("\\+"))
    assert chosen.height == 1 and repr(m.loss_domains_[1]) in chosen["reason"][0] and "0.03" in chosen["reason"][0]
    assert 0.0 < float(m.config_["stage1_weight"]) < 1.0


def _far(w, n=6):
    mix = w.random_mixtures(n, seed=9)
    N = 2e10
    return Targets.from_params_tokens(np.full(n, N), np.full(n, 20 * N), mix, w.domains)


def test_per_domain_weights_predict_each_domain_from_its_own_forms_and_survive_save_and_load(runs, tmp_path):
    w, r = runs
    a = FLPM(stage1="flpm", **QUICK).fit(r)
    b = FLPM(stage1="dml", **QUICK).fit(r)
    avg = FLPM(stage1="flpm", **QUICK)
    avg._stage1_alt_request = ("dml", 0.5, "0.0,1.0,0.5")  # the model carries per-domain weights (auto sets one)
    avg.fit(r)
    assert avg.stage1_alt_.per_domain and avg.config_["stage1_weights"] == "0.0,1.0,0.5"
    t = _far(w)
    pa, pb, p = a.predict(t, intervals=False), b.predict(t, intervals=True), avg.predict(t, intervals=True, level=0.9)
    d0, d1, d2 = (f"loss:{d}" for d in avg.loss_domains_)
    gap = np.abs(np.log(pa.get(d0) / b.predict(t, intervals=False).get(d0))).max()
    assert gap > 0.01, "the forms agree at the target: the check would be empty"
    np.testing.assert_allclose(p.get(d0), pa.get(d0), rtol=1e-12)  # weight 0: the first form alone
    np.testing.assert_allclose(p.get(d1), pb.get(d1), rtol=1e-12)  # weight 1: the second form alone
    np.testing.assert_allclose(p.get(d2), np.sqrt(pa.get(d2) * pb.get(d2)), rtol=1e-9)
    # a domain that uses one form alone has that form's interval (its draws only), not one widened to the other
    np.testing.assert_allclose(p.interval(d1)[0], pb.interval(d1)[0], rtol=1e-9)
    lo, hi = p.interval(d2)
    assert np.all((lo <= pa.get(d2) + 1e-12) & (pb.get(d2) <= hi + 1e-12) & (lo <= pb.get(d2) + 1e-12))
    draws = avg.predict_draws(t, n_draws=32, seed=1)
    assert all(np.isfinite(draws[q]).all() for q in (d0, d1, d2))
    from mixopt import load_surrogate, save_surrogate

    back = load_surrogate(save_surrogate(avg, tmp_path / "flpm"))
    q = back.predict(t, intervals=True, level=0.9)
    np.testing.assert_allclose(q.mean, p.mean, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(q.lower, p.lower, rtol=1e-12, equal_nan=True)


def test_bad_per_domain_weights_are_refused_with_what_was_expected(runs):
    _, r = runs
    m = FLPM(stage1="flpm", **QUICK)
    m._stage1_alt_request = ("dml", 0.5, "0.0,1.0")
    with pytest.raises(ConfigError, match="expected 3 weights in \\[0, 1\\]"):
        m.fit(r)
