"""FLP-M form averages decided per loss domain: a domain's own fold evidence and its own loss noise.

The pooled rule compared the largest domain's disagreement beyond the runs with the median
domain's loss noise, so one heteroscedastic domain (RegMix's DM Mathematics) made every domain
average ``flpm`` with ``dml``; asked per domain, a domain whose forms agree within its own noise
keeps the winner alone, and a domain whose own evidence separates the forms uses the one it prefers.
"""

from __future__ import annotations

import numpy as np
import pytest

import mixopt.surrogate.flpm_auto as fa
from mixopt.surrogate import Targets
from mixopt.surrogate.flpm import FLPM
from mixopt.surrogate.flpm_auto import Evidence, domain_verdict, domain_weights
from mixopt.testing import mixture_world

SIZES = [5e7, 1e8, 2e8, 5e8]
QUICK = dict(n_bootstrap=8, n_starts=2, seed=0, stage2="logistic", stage2_inputs="fitted", family="law", intervals="raw")


@pytest.fixture(scope="module")
def runs():
    w = mixture_world(n_domains=3, n_benchmarks=2, seed=3)
    return w, w.sample_runs(SIZES, w.random_mixtures(10, seed=7), n_checkpoints=4, loss_noise=0.005, score_noise=0.005, seed=8)


def _far(w, n=6):
    mix = w.random_mixtures(n, seed=9)
    N = 2e10
    return Targets.from_params_tokens(np.full(n, N), np.full(n, 20 * N), mix, w.domains)


def _evidence(per_domain_errs, rankings=()):
    """Evidence from ``{domain: errors}`` and ``[(domain, predicted, actual)]``."""
    e = Evidence()
    for j, errs in per_domain_errs.items():
        e.errs.extend(errs)
        e.err_domain.extend([j] * len(errs))
        e.err_sum += float(np.sum(errs))
        e.n_err += len(errs)
    for j, pred, act in rankings:
        from mixopt.surrogate.decision import spearman

        e.gaps.append(1.0 - spearman(pred, act))
        e.gap_domain.append(j)
        e.ranked.append((np.asarray(pred, float), np.asarray(act, float)))
    return e


def test_a_domain_with_clear_evidence_uses_its_form_and_thin_evidence_keeps_the_pooled_weight():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 0.03, 60)
    # domain 0: b is better on every point (clear); domain 1: a jitter of the same errors (noise)
    a = _evidence({0: base + 0.01, 1: base})
    b = _evidence({0: base, 1: base + rng.normal(0, 0.002, 60)})
    w, verdicts = domain_weights(a, b, 0.4, 2)
    assert w == [1.0, 0.4], verdicts
    assert "separates" in verdicts[0][2] and "within noise" in verdicts[1][2]


def test_rankings_of_few_mixtures_are_within_noise_unless_the_gap_is_beyond_the_bootstrap_error():
    act = np.arange(16, dtype=float)
    good = act + np.random.default_rng(1).normal(0, 0.3, 16)
    swap = good.copy()
    swap[[3, 4]] = swap[[4, 3]]  # one neighbour swap: 1 - rho ~0.01 apart
    side, why = domain_verdict(_evidence({}, [(0, good, act)]), _evidence({}, [(0, swap, act)]))
    assert side == 0, why
    scrambled = np.random.default_rng(2).permutation(act)  # no ranking at all
    side, why = domain_verdict(_evidence({}, [(0, scrambled, act)]), _evidence({}, [(0, good, act)]))
    assert side == 1, why


def test_forms_that_agree_within_a_domains_own_noise_keep_the_winner_there():
    """RegMix-like: the largest gap (0.117) exceeds the median domain noise (0.0375) but not its own
    domain's (0.178): pooled, every domain averaged; per domain, none does."""
    gaps = np.array([0.117, 0.0225, 0.0059])
    noise = np.array([0.178, 0.0375, 0.0148])
    assert gaps.max() > np.median(noise)  # what the pooled rule compared
    w, verdicts = domain_weights(Evidence(), Evidence(), 0.37, 3, gaps=gaps, noise=noise)
    assert w == [0.0, 0.0, 0.0]
    assert all("agree beyond the runs" in v[2] for v in verdicts)
    gaps[1] = 0.08  # one domain parts by more than its noise: it alone averages
    w, _ = domain_weights(Evidence(), Evidence(), 0.37, 3, gaps=gaps, noise=noise)
    assert w == [0.0, 0.37, 0.0]


def test_per_domain_weights_predict_each_domain_from_its_own_forms_and_survive_save_and_load(runs, tmp_path):
    w, r = runs
    a = FLPM(stage1="flpm", **QUICK).fit(r)
    b = FLPM(stage1="dml", **QUICK).fit(r)
    avg = FLPM(stage1="flpm", **QUICK)
    avg._stage1_alt_request = ("dml", 0.5, "0.0,1.0,0.5")
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
    with pytest.raises(ValueError, match="expected 3 weights in \\[0, 1\\]"):
        m.fit(r)


def test_auto_decides_the_form_average_per_domain(runs, monkeypatch):
    """The wiring, on a world where the pooled rule and the per-domain one differ: forms forced within
    noise; the disagreement beyond the runs exceeds the noise in one domain only. Pooled (largest gap
    against the median noise) every domain would average; per domain only that one does."""
    w, r = runs
    monkeypatch.setattr(fa, "within_noise", lambda a, b: (True, "forced tie"))
    real = fa.form_disagreement_by_domain

    def one_domain_parts(a, b, runs, reach=fa.DISAGREE_REACH):
        gaps, noise = real(a, b, runs, reach)
        gaps = np.where(np.arange(gaps.size) == 1, 3.0 * noise.max(), 0.5 * noise)
        assert gaps.max() > np.median(noise)  # the pooled rule would have averaged every domain
        return gaps, noise

    monkeypatch.setattr(fa, "form_disagreement_by_domain", one_domain_parts)
    m = FLPM(n_bootstrap=8, n_starts=2, seed=0, stage2="logistic", stage2_inputs="fitted", family="law").fit(r)
    sel = m.selection_
    per = sel.filter(sel["status"] == "per domain")
    assert per.height == 1 and "2 of 3 use one form alone" in per["reason"][0], sel.to_dicts()
    weights = [float(v) for v in m.config_["stage1_weights"].split(",")]
    w_pool = float(m.config_["stage1_weight"])
    assert weights[0] == 0.0 and weights[2] == 0.0 and weights[1] == pytest.approx(w_pool) and 0 < w_pool < 1
    assert m.stage1_alt_.per_domain
    p = m.predict(_far(w), intervals=True)
    assert np.isfinite(p.lower).any()


def test_auto_averages_nothing_when_every_domain_agrees_within_its_own_noise(runs, monkeypatch):
    _, r = runs
    monkeypatch.setattr(fa, "within_noise", lambda a, b: (True, "forced tie"))
    real = fa.form_disagreement_by_domain

    def heteroscedastic(a, b, runs, reach=fa.DISAGREE_REACH):
        gaps, noise = real(a, b, runs, reach)
        noise = np.array([0.01, 0.01, 0.2])  # one noisy domain
        return np.array([0.005, 0.005, 0.15]), noise  # its gap beats the median noise, not its own

    monkeypatch.setattr(fa, "form_disagreement_by_domain", heteroscedastic)
    m = FLPM(n_bootstrap=8, n_starts=2, seed=0, stage2="logistic", stage2_inputs="fitted", family="law").fit(r)
    sel = m.selection_
    assert not m.config_.get("stage1_alt") and m.stage1_alt_ is None, m.config_
    row = sel.filter(sel["status"] == "not needed")
    assert row.height == 1 and "within that domain's loss noise" in row["reason"][0]
