"""Reuse of old runs after a domain-set change: joint fit, frozen block, plan, config."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.data import RunTable
from mixopt.data.changes import DomainChanges, combine_runs, map_runs
from mixopt.errors import SchemaError
from mixopt.search.plan import PlanSettings
from mixopt.surrogate import Targets, load_surrogate, make_surrogate, save_surrogate
from mixopt.testing import mixture_world
from mixopt.workflows.reuse import BLOCK, FrozenBlock, frozen_block, joint_fit, plan_new_runs

P = 2e7
T = 20 * P
Q = "loss:val"
ATOL = 1e-9


def _table(world, mixes: np.ndarray, seed: int, prefix: str, shift=None, noise: float = 0.005) -> RunTable:
    k = mixes.shape[1]
    full = np.zeros((len(mixes), world.k))
    full[:, :k] = mixes
    f = world.sample_runs([P], full, tokens_per_param=20, n_checkpoints=1, seed=seed, loss_noise=noise).frame
    y = f["loss"].to_numpy() + (0.0 if shift is None else shift(full))
    f = f.select(["run", "params", "tokens", *[f"mix:{d}" for d in world.domains[:k]]])
    return RunTable(f.with_columns(pl.Series(Q, y), (pl.lit(prefix) + pl.col("run")).alias("run")))


def _rmse(model, world, pool: np.ndarray) -> float:
    pred = model.predict(Targets.from_params_tokens(np.full(len(pool), P), np.full(len(pool), T), pool, world.domains),
                         intervals=False).get(Q)
    return float(np.sqrt(np.mean((pred - world.true_overall_loss(np.full(len(pool), 6 * P * T), pool)) ** 2)))


def test_old_runs_help_after_a_domain_is_added():
    """24 old 3-domain runs + few new 4-domain runs predict the new space better than the new runs alone,
    and as well as twice as many new runs alone (mean over seeds). The baselines use reuse's own
    regression recipe (``transform="log"``); ``regmix``'s default shifted logs (one compute scale)
    on the 16 new runs alone are level with the joint fit (0.0475 vs 0.0482)."""
    joint, fresh, fresh2 = [], [], []
    for seed in range(4):
        w = mixture_world(n_domains=4, n_benchmarks=0, seed=seed)
        rng = np.random.default_rng(seed)
        pool = rng.dirichlet(np.ones(4), 400)
        old = _table(w, rng.dirichlet(np.ones(3), 24), 1, "o")
        mapped = map_runs(old, DomainChanges(added=[w.domains[3]]), domains=w.domains)
        new = _table(w, rng.dirichlet(np.ones(4), 16), 2, "n")
        joint.append(_rmse(joint_fit(mapped, new.select_runs(new.runs[:8]), min_rows=3), w, pool))
        fresh.append(_rmse(make_surrogate("regmix", min_rows=3, transform="log").fit(new.select_runs(new.runs[:8])), w, pool))
        fresh2.append(_rmse(make_surrogate("regmix", min_rows=3, transform="log").fit(new), w, pool))
    assert np.mean(joint) < 0.8 * np.mean(fresh)
    assert np.mean(joint) <= np.mean(fresh2)


def test_joint_fit_learns_an_offset_for_refiltered_evidence():
    """Old runs whose refiltered domain was worse (+0.15 nats per unit share): the indicator fit beats
    ignoring the change, and keeps the old runs (they still help over the new runs alone)."""
    with_ind, ignore, alone = [], [], []
    for seed in range(4):
        w = mixture_world(n_domains=3, n_benchmarks=0, seed=seed)
        rng = np.random.default_rng(seed)
        pool = rng.dirichlet(np.ones(3), 400)
        old = _table(w, rng.dirichlet(np.ones(3), 32), 1, "o", shift=lambda m: 0.15 * m[:, 0])
        new = _table(w, rng.dirichlet(np.ones(3), 6), 2, "n")
        both = combine_runs(map_runs(old, DomainChanges(refiltered=[w.domains[0]])).runs, new)
        m = make_surrogate("reuse", min_rows=3).fit(both)
        assert m.indicators_ == ("refiltered",)
        with_ind.append(_rmse(m, w, pool))
        ignore.append(_rmse(make_surrogate("regmix", min_rows=3, transform="log").fit(both), w, pool))
        alone.append(_rmse(make_surrogate("regmix", min_rows=3, transform="log").fit(new), w, pool))
    assert np.mean(with_ind) < np.mean(ignore)
    assert np.mean(with_ind) < np.mean(alone)


def test_joint_fit_drops_harmful_assumed_evidence():
    """Old runs that describe other data (their outcome's mixture effect inverted, as after a change
    that the mapping does not capture) are left out by the cross-validation on the new runs."""
    chosen, sel, keep = [], [], []
    for seed in range(3):
        w = mixture_world(n_domains=3, n_benchmarks=0, seed=seed)
        rng = np.random.default_rng(seed)
        new = _table(w, rng.dirichlet(np.ones(3), 16), 2, "n")

        def inverted(m, w=w):
            t = w.true_overall_loss(np.full(len(m), 6 * P * T), m)
            return -2.0 * (t - t.mean())

        old = _table(w, rng.dirichlet(np.ones(3), 40), 1, "o", shift=inverted)
        both = combine_runs(map_runs(old, DomainChanges(refiltered=list(w.domains))).runs, new)
        m = make_surrogate("reuse", min_rows=3).fit(both)
        chosen.append(m.evidence_used_)
        pool = rng.dirichlet(np.ones(3), 300)
        sel.append(_rmse(m, w, pool))
        keep.append(_rmse(make_surrogate("reuse", min_rows=3, select=False).fit(both), w, pool))
    assert chosen.count("exact") >= 2
    assert np.mean(sel) < 0.75 * np.mean(keep)


def test_reuse_model_round_trips(tmp_path):
    w = mixture_world(n_domains=3, n_benchmarks=0, seed=1)
    rng = np.random.default_rng(1)
    old = _table(w, rng.dirichlet(np.ones(3), 12), 1, "o")
    new = _table(w, rng.dirichlet(np.ones(3), 6), 2, "n")
    m = joint_fit(map_runs(old, DomainChanges(refiltered=[w.domains[1]])), new, min_rows=3)
    back = load_surrogate(save_surrogate(m, tmp_path / "m"))
    pool = rng.dirichlet(np.ones(3), 20)
    tg = Targets.from_params_tokens(np.full(20, P), np.full(20, T), pool, w.domains)
    np.testing.assert_allclose(back.predict(tg).get(Q), m.predict(tg).get(Q), rtol=1e-12, atol=ATOL)
    assert back.indicators_ == m.indicators_ and back.evidence_used_ == m.evidence_used_


def test_frozen_block_expand_reduce_and_refusal():
    fb = FrozenBlock(block={"a": 0.25, "b": 0.75}, free=("c",))
    assert fb.reduced_domains == (BLOCK, "c")
    full = fb.expand(np.array([[0.8, 0.2], [0.0, 1.0]]))
    np.testing.assert_allclose(full, [[0.2, 0.6, 0.2], [0.0, 0.0, 1.0]], atol=ATOL)
    np.testing.assert_allclose(fb.reduce(full, ("a", "b", "c")), [[0.8, 0.2], [0.0, 1.0]], atol=ATOL)
    with pytest.raises(SchemaError, match="does not hold the block's domains"):
        fb.reduce(np.array([[0.4, 0.4, 0.2]]), ("a", "b", "c"))
    with pytest.raises(SchemaError, match="summing to 1"):
        FrozenBlock(block={"a": 0.5}, free=("c",))


def test_frozen_block_of_an_added_domain():
    w = mixture_world(n_domains=4, n_benchmarks=0, seed=2)
    rng = np.random.default_rng(2)
    old = _table(w, rng.dirichlet(np.ones(3), 24), 1, "o")
    fb = frozen_block(old, DomainChanges(added=[w.domains[3]]), Q, params=P, tokens=T, settings={"min_rows": 3})
    assert tuple(fb.block) == w.domains[:3] and fb.free == (w.domains[3],)
    assert sum(fb.block.values()) == pytest.approx(1.0, abs=1e-9)
    # the block is near the old space's true best (within the pick's loss tolerance)
    pool = rng.dirichlet(np.ones(3), 2000)
    full = np.column_stack([pool, np.zeros(len(pool))])
    true = w.true_overall_loss(np.full(len(pool), 6 * P * T), full)
    blk = w.true_overall_loss(np.array([6 * P * T]), np.append(list(fb.block.values()), 0.0)[None, :])[0]
    assert blk - true.min() < 0.05
    red = fb.reduce_runs(_table(w, fb.expand(np.array([[0.7, 0.3], [0.9, 0.1], [1.0, 0.0]])), 3, "b"))
    assert red.domains == (BLOCK, w.domains[3])


def test_plan_new_runs_uses_the_new_domain():
    """Planned from the mapped table alone (the new domain never seen), every planned run uses it."""
    w = mixture_world(n_domains=4, n_benchmarks=0, seed=3)
    rng = np.random.default_rng(3)
    old = _table(w, rng.dirichlet(np.ones(3), 24), 1, "o")
    mapped = map_runs(old, DomainChanges(added=[w.domains[3]]), domains=w.domains)
    model = joint_fit(mapped, None, min_rows=3)
    p = plan_new_runs(model, w.domains, Q, params=P, tokens=T,
                      settings=PlanSettings(runs=4, n_candidates=64, n_targets=64, n_draws=64, seed=0))
    assert len(p) == 4
    assert np.all(p.mixture[:, 3] > 0.01)
    np.testing.assert_allclose(p.params, P)


def test_plan_new_runs_counts_the_old_runs_as_made():
    """Given the mapped old runs as ``existing`` (all at 0 of the added domain), the coverage picks count them
    as covering the region: the old + planned runs cover the simplex better (mean L1 distance of seeded
    mixtures to the nearest run) than the same plan blind to them or the criterion alone, the batch spreads
    over the added domain's range, and no planned run repeats an old one; without coverage the old runs only
    block repeats (the criterion's picks are unchanged)."""
    w = mixture_world(n_domains=4, n_benchmarks=0, seed=3)
    rng = np.random.default_rng(3)
    old = _table(w, rng.dirichlet(np.ones(3), 24), 1, "o")
    mapped = map_runs(old, DomainChanges(added=[w.domains[3]]), domains=w.domains)
    model = joint_fit(mapped, None, min_rows=3)
    kw = dict(runs=4, n_candidates=128, n_targets=128, n_draws=64, seed=0)
    crit = plan_new_runs(model, w.domains, Q, params=P, tokens=T, settings=PlanSettings(**kw, coverage=0.0))
    blind = plan_new_runs(model, w.domains, Q, params=P, tokens=T, settings=PlanSettings(**kw))
    seen = plan_new_runs(model, w.domains, Q, params=P, tokens=T, settings=PlanSettings(**kw), existing=mapped.runs)
    assert len(seen) == 4
    assert seen.mixture[0].tolist() == crit.mixture[0].tolist()  # the first pick is the criterion's either way
    old4 = mapped.runs.mixture()
    region = np.random.default_rng(9).dirichlet(np.ones(4), 2000)

    def uncovered(plan) -> float:
        runs = np.vstack([old4, plan.mixture])
        return float(np.abs(region[:, None, :] - runs[None, :, :]).sum(axis=2).min(axis=1).mean())

    assert uncovered(seen) < uncovered(blind) < uncovered(crit)
    new = seen.mixture[:, 3]
    assert new.max() - new.min() > 0.3 and new.max() > 0.5  # the added domain's range, not only its edge
    assert np.abs(seen.mixture[:, None, :] - old4[None, :, :]).sum(axis=2).min() > 0.05
    same = plan_new_runs(model, w.domains, Q, params=P, tokens=T, settings=PlanSettings(**kw, coverage=0.0),
                         existing=mapped.runs)
    np.testing.assert_array_equal(same.mixture, crit.mixture)


def test_config_with_domains_changes_fits_on_old_and_new_runs(tmp_path):
    from mixopt.config import config_from_dict
    from mixopt.workflows.optimize import fit_surrogate

    w = mixture_world(n_domains=3, n_benchmarks=0, seed=4)
    rng = np.random.default_rng(4)
    _table(w, rng.dirichlet(np.ones(2), 10), 1, "o").frame.write_csv(tmp_path / "old.csv")
    _table(w, rng.dirichlet(np.ones(3), 6), 2, "n").frame.write_csv(tmp_path / "new.csv")
    raw = {"data": {"runs": "new.csv"}, "surrogate": {"method": "reuse", "settings": {"min_rows": 3}},
           "compute": {"params": P, "tokens": T}, "objectives": {"optimize": [Q]},
           "domains": {"changes": {"runs": "old.csv", "added": [w.domains[2]]}}}
    cfg = config_from_dict(raw, base_dir=tmp_path)
    model = fit_surrogate(cfg)
    assert model.evidence_counts_ == {"mapped:added": 10, "new": 6}
    raw["domains"]["changes"]["added"] = ["music"]
    with pytest.raises(SchemaError, match="come from no change"):
        fit_surrogate(config_from_dict(raw, base_dir=tmp_path))


def test_report_of_a_config_with_domains_changes_shows_the_mapped_evidence(tmp_path):
    """``mixopt report --config`` reads the old runs through [domains.changes]: the evidence section counts
    new and mapped rows (exact vs assumed) and lists the offsets the reuse fit learned."""
    from mixopt.config import config_from_dict
    from mixopt.workflows.report import read_config_runs, run_report

    w = mixture_world(n_domains=3, n_benchmarks=0, seed=4)
    rng = np.random.default_rng(4)
    _table(w, rng.dirichlet(np.ones(3), 10), 1, "o").frame.write_csv(tmp_path / "old.csv")
    _table(w, rng.dirichlet(np.ones(3), 6), 2, "n").frame.write_csv(tmp_path / "new.csv")
    raw = {"data": {"runs": "new.csv"}, "surrogate": {"method": "reuse", "settings": {"min_rows": 3, "offset_mapped": True,
                                                                       "select": False}},
           "compute": {"params": P, "tokens": T}, "objectives": {"optimize": [Q]},
           "search": {"storage": "memory"},
           "domains": {"changes": {"runs": "old.csv", "refiltered": [w.domains[0]]}}}
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert read_config_runs(cfg).n_runs == 16
    out = run_report(out=tmp_path / "r.html", config=cfg)
    assert "evidence" in out["sections"]
    html = (tmp_path / "r.html").read_text()
    assert "Evidence across the domain-set change" in html and "mapped, assumed" in html
    assert "10 of 16 runs are old runs mapped" in html and "Learned offsets of the mapped rows" in html
    del raw["domains"]
    plain = run_report(out=tmp_path / "p.html", config=config_from_dict(raw, base_dir=tmp_path))
    assert "evidence" not in plain["sections"]
