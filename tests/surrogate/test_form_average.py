"""FLP-M: two law forms that the folds cannot tell apart but that part beyond the runs are averaged."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.surrogate import Targets
from mixopt.surrogate.flpm import FLPM
from mixopt.surrogate.flpm_auto import Evidence, within_noise
from mixopt.testing import mixture_world

SIZES = [5e7, 1e8, 2e8, 5e8]
QUICK = dict(n_bootstrap=8, n_starts=2, seed=0, stage2="logistic", stage2_inputs="fitted", family="law",
             intervals="raw")


@pytest.fixture(scope="module")
def runs():
    w = mixture_world(n_domains=3, n_benchmarks=2, seed=3)
    return w, w.sample_runs(SIZES, w.random_mixtures(10, seed=7), n_checkpoints=4, loss_noise=0.005,
                            score_noise=0.005, seed=8)


def _far(w, n=6):
    mix = w.random_mixtures(n, seed=9)
    N = 2e10  # 40x the largest size in parameters: well beyond the runs
    return Targets.from_params_tokens(np.full(n, N), np.full(n, 20 * N), mix, w.domains)


def test_the_averaged_interval_contains_both_forms_and_the_draws_carry_both(runs):
    w, r = runs
    a = FLPM(stage1="flpm", **QUICK).fit(r)
    b = FLPM(stage1="dml", **QUICK).fit(r)
    avg = FLPM(stage1="flpm", **QUICK)
    avg._stage1_alt_request = ("dml", 0.5)  # what auto hands over when it averages the forms
    avg.fit(r)
    assert avg.stage1_alt_ is not None and avg.config_["stage1_alt"] == "dml"
    t = _far(w)
    pa, pb, p = a.predict(t, intervals=False), b.predict(t, intervals=False), avg.predict(t, intervals=True, level=0.9)
    names = [q for q in p.names if q.startswith("loss:")] + [q for q in p.names if q.startswith("score:") and q not in avg.unpredictable_]
    gap = max(float(np.max(np.abs(np.log(pa.get(q) / pb.get(q))))) for q in names if q.startswith("loss:"))
    assert gap > 0.01, f"the forms agree at the target (max log gap {gap:.3g}): the check would be empty"
    # each form's own losses, and the scores the averaged model's stage 2 gives each form's losses
    losses = [q for q in names if q.startswith("loss:")]
    La = np.column_stack([pa.get(q) for q in losses])
    Lb = np.column_stack([pb.get(q) for q in losses])
    Sa, Sb = avg.nets_.predict_mean(La), avg.nets_.predict_mean(Lb)
    for q in names:
        lo, hi = p.interval(q)
        if q.startswith("loss:"):
            both = (pa.get(q), pb.get(q))
        else:
            j = avg.stage2_benchmarks_.index(q.removeprefix("score:"))
            both = (Sa[:, j], Sb[:, j])
        for v in both:
            assert np.all((lo <= v + 1e-12) & (v <= hi + 1e-12)), (q, lo, v, hi)
    # the point is the weighted geometric mean of the two forms' losses
    q = names[0]
    np.testing.assert_allclose(p.get(q), np.sqrt(pa.get(q) * pb.get(q)), rtol=1e-9)
    # joint draws: both forms appear (the spread between them is in the draws, not only the interval)
    d = avg.predict_draws(t, n_draws=64, seed=1)[q]
    assert d.shape == (64, t.flops.shape[0])
    assert np.ptp(np.log(d), axis=0).min() >= 0.5 * np.abs(np.log(pa.get(q) / pb.get(q))).min()


def test_a_form_average_survives_save_and_load(runs, tmp_path):
    w, r = runs
    avg = FLPM(stage1="flpm", **QUICK)
    avg._stage1_alt_request = ("dml", 0.3)
    avg.fit(r)
    from mixopt import load_surrogate, save_surrogate

    back = load_surrogate(save_surrogate(avg, tmp_path / "flpm"))
    t = _far(w)
    p0, p1 = avg.predict(t, intervals=True), back.predict(t, intervals=True)
    np.testing.assert_allclose(p1.mean, p0.mean, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(p1.lower, p0.lower, rtol=1e-12, equal_nan=True)


def _ev(errs, gaps=()):
    e = Evidence()
    e.errs = list(errs)
    e.err_sum, e.n_err = float(np.sum(errs)), len(errs)
    e.gaps = list(gaps)
    return e


def test_within_noise_is_a_paired_test_on_the_held_out_points():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 0.03, 40)
    jitter = _ev(base + rng.normal(0, 0.002, 40))
    assert within_noise(_ev(base), jitter)[0]
    assert not within_noise(_ev(base), _ev(base + 0.01))[0]  # consistently worse on every point
    assert not within_noise(_ev(base, [0.01]), _ev(base, [0.08]))[0]  # same errors, rankings differ


def test_auto_averages_forms_it_cannot_tell_apart_and_says_why(runs, monkeypatch):
    """The wiring: when the fold evidence of two forms is within noise (forced here) and they part beyond
    the runs, auto fits both, records the average in ``selection_`` and the final fit carries both."""
    import mixopt.surrogate.flpm_auto as fa

    w, r = runs
    monkeypatch.setattr(fa, "within_noise", lambda a, b: (True, "forced tie"))
    m = FLPM(n_bootstrap=8, n_starts=2, seed=0, stage2="logistic", stage2_inputs="fitted", family="law").fit(r)
    sel = m.selection_
    chosen = sel.filter((sel["step"] == "stage1") & (sel["status"] == "chosen"))
    assert chosen.height == 1
    assert m.config_.get("stage1_alt"), (m.config_, chosen["reason"].to_list())
    assert "+" in chosen["candidate"][0] and "forced tie" in chosen["reason"][0]
    assert (sel["status"] == "averaged").sum() == 2
    assert m.stage1_alt_ is not None and m.stage1_alt_.law.name == m.config_["stage1_alt"]
    w_alt = float(m.config_["stage1_weight"])
    assert 0.0 < w_alt < 1.0
    p = m.predict(_far(w), intervals=True)
    assert np.isfinite(p.lower).any()
