"""Reuse of old runs after a domain-set change vs full recomputation, in the same run.

    python benchmarks/bench_reuse.py [--quick] [--data-dir ../shared/data] [--only synthetic|olmix|real]

**Synthetic** (``mixture_world(n_domains=4, seed)``, seeds 0-9; 3 with ``--quick``): an old swarm of
``N_OLD`` runs on the first three domains (Dirichlet(1) mixtures, the fourth at 0), then the fourth
domain is added (``DomainChanges(added=[d4])``). The decision: the mixture with the lowest overall
validation loss (the world's fixed held-out set of all four domains; ``loss:val``) at the runs' own
scale (``PARAMS`` x 20 tokens/param; one size, as in Olmix's swarms), picked among ``POOL`` seeded
mixtures by the surrogate's mean. Its quality is the *regret*: the true loss of the pick minus the
true optimum (nats). Old runs are re-evaluated on the new held-out set (cheap; retraining is not).
Methods, each at a number of *new* runs (all runs cost the same, so runs are compute):

* ``full``: full recomputation, a fresh Dirichlet(1) swarm on four domains, ``regmix``.
* ``frozen``: Olmix's frozen-block reuse: the old runs' best 3-domain mixture frozen as a block,
  new runs Dirichlet(1) over (block, d4), ``regmix`` on that 2-domain space.
* ``joint``: the mapped old runs + new Dirichlet(1) runs, ``reuse`` (ReuseRegression).
* ``joint+plan``: the same with the new runs planned by ``mixopt plan`` (criterion ``decision``) on
  the new space from the surrogate of the mapped table, in batches, refitted after each.

*Compute saved at equal decision quality*: for each full-recomputation swarm size ``n``, the fewest new
runs ``m`` (of the grid) from which on (at ``m`` and every larger budget of the grid) the mean regret is at
most full's at ``n``; saved = ``1 - m / n``. The old
swarm is sunk cost (it was trained before the change), as in Olmix's accounting.

**Olmix** (``../shared/data/olmix``): ``full_recomputation_*`` (512 runs, 64 domains) and
``full_reuse_update_5_seed_0_*`` (64 runs, 22 domains: an ``existing`` block of the 43 DCLM, Stack-Edu,
peS2o, arXiv, FineMath and Wikipedia domains + the 21 S2PDF topics as ``s2pdfv1:*``; same proxy size).
Compute used: 64 vs 512 runs. Evidence across the change: the 512 full runs mapped into the reuse
space (``renamed`` s2pdf:* -> s2pdfv1:*, the topics' relative sizes are the same in both configs;
``merged`` the 43 others into ``existing``, internal mix *not* in the files, so every mapped run is
assumed evidence), then on seeded 80/20 splits of the reuse swarm: ``reuse`` fitted on k of the 51
training runs alone vs with the 512 mapped runs (joint, evidence chosen by cross-validation), scored on
the 13 held-out runs by Spearman ρ and the pick's regret (measured mean BPB over the 110 tasks of the
predicted-best held-out run minus the best's). Within each swarm the same split protocol gives each
swarm's own decision quality (the full swarm also at 64 random runs). The swarms share no held-out set:
their best runs are different mixtures of different domain sets.

**Real** (the reference trainer, ``mixopt/train``): byte-level GPTs of 25472 non-embedding parameters,
800768 bytes each, seed 0, on prose/code/docs/math. An old swarm of 12 Dirichlet(1) mixtures of
prose/code/docs (math at 0; every run is also evaluated on math's held-out text), then
``DomainChanges(added=["math"])``. Objective ``loss:mean4``, the mean loss over the four domains.
Decision quality on a held-out test set of 48 trained Dirichlet(1) 4-domain mixtures (the first 16 of the
first measurement, then 32 from a stream of their own; the first 16 alone are reported too): ρ of
predicted vs measured objective and the pick's regret (measured objective of the predicted-best test
mixture minus the best's). ``full``: ``regmix`` on the first n of a fresh 16-run 4-domain swarm (mean over
10 orders); ``joint``: the mapped old runs + the first m fresh runs (the random new runs), ``reuse``;
``joint+plan``: the new runs planned by ``mixopt plan`` in batches, coverage 0 as first measured, mean over
the sequences of ``--plan-seeds`` (batch i of seed b planned with seed b + i; 100 is the first measurement's);
``joint+plan+cov``: the default coverage share with the runs made so far (mapped old + planned) counted as
made (``plan_new_runs(existing=)``), sequences of ``--cov-seeds`` (500, 600, 700), up to 12 new runs. ± = bootstrap s.e. over
seeded resamples of the test mixtures and of the orders / sequences, every method on the same resamples,
so the differences (Δ) are paired. Saved as in the synthetic section. Trained runs are cached in
``out/bench_reuse_real/runs.csv`` keyed by mixture + seed (started from the shipped
``mixopt/examples/reuse_real_runs.csv``, so the analysis re-runs in seconds; ``--retrain`` trains all runs
again, ~2500 CPU-s; needs ``python -m mixopt corpus build out/corpus``).

Figures: CPU seconds (``time.process_time``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import minimize

from mixopt.data.changes import DomainChanges, combine_runs, map_runs
from mixopt.data.table import RunTable
from mixopt.search.plan import DEFAULT_COVERAGE, PlanSettings
from mixopt.surrogate import Targets, make_surrogate
from mixopt.testing import mixture_world
from mixopt.workflows.reuse import frozen_block, joint_fit, plan_new_runs

QUANTITY = "loss:val"
PARAMS = 2e7
TPP = 20.0
N_OLD = 24
#: relative loss noise of one run (about 0.02 nats at these losses, a proxy run's seed-to-seed spread)
LOSS_NOISE = 0.005
POOL = 4000
FULL = (8, 12, 16, 24, 32, 48, 64, 96)
NEW = (3, 4, 6, 8, 12, 16, 24, 32, 48)
#: ``transform="log"``: the recipe ``reuse`` fits with (its default), for ``regmix`` too, so full
#: recomputation and reuse are compared with one regression (``regmix``'s default since
#: 2026-12-04 fits a shifted log on one compute scale; these figures were measured before it)
SETTINGS = {"min_rows": 3, "transform": "log"}


def _table(world, mixes: np.ndarray, seed: int, prefix: str) -> RunTable:
    """Runs at PARAMS on ``mixes`` (k columns over the world's first k domains), overall loss as ``loss:val``."""
    k = world.k
    full = np.zeros((len(mixes), k))
    full[:, : mixes.shape[1]] = mixes
    f = world.sample_runs([PARAMS], full, tokens_per_param=TPP, n_checkpoints=1, seed=seed, loss_noise=LOSS_NOISE).frame
    doms = world.domains[: mixes.shape[1]]
    f = f.select(["run", "params", "tokens", *[f"mix:{d}" for d in doms], pl.col("loss").alias(QUANTITY)])
    return RunTable(f.with_columns((pl.lit(prefix) + pl.col("run")).alias("run")))


def _truth(world, mixes: np.ndarray) -> np.ndarray:
    return world.true_overall_loss(np.full(len(mixes), 6 * PARAMS * PARAMS * TPP), mixes)


def _optimum(world, pool: np.ndarray) -> float:
    """The true optimum: the best pool mixture refined on softmax logits."""
    t = _truth(world, pool)
    best = float(t.min())
    for i in np.argsort(t)[:5]:
        x0 = np.log(np.maximum(pool[i], 1e-6))

        def f(z):
            e = np.exp(z - z.max())
            return float(_truth(world, (e / e.sum())[None, :])[0])

        best = min(best, float(minimize(f, x0, method="Nelder-Mead", options={"maxiter": 800, "xatol": 1e-6}).fun))
    return best


def _pick(model, pool: np.ndarray, domains) -> np.ndarray:
    pred = model.predict(Targets.from_params_tokens(np.full(len(pool), PARAMS), np.full(len(pool), PARAMS * TPP), pool,
                                                    domains), intervals=False).get(QUANTITY)
    return pool[int(np.nanargmin(pred))]


#: the planned variants: (coverage share, mapped old runs counted as made); joint+plan as first measured
SYN_PLANS = {"joint+plan": (0.0, False), "joint+plan+cov": (DEFAULT_COVERAGE, True)}
SYN_METHODS = ("full", "frozen", "joint", *SYN_PLANS)


def synthetic(seeds: list[int], draws: int, methods=SYN_METHODS) -> dict:
    reg: dict[str, dict[int, list[float]]] = {m: {} for m in ("full", "frozen", "joint", *SYN_PLANS)}
    old_only: list[float] = []
    for seed in seeds:
        world = mixture_world(n_domains=4, n_benchmarks=0, seed=seed)
        doms = world.domains
        rng = np.random.default_rng([seed, 0x7275])
        pool = rng.dirichlet(np.ones(4), POOL)
        opt = _optimum(world, pool)

        def regret(mix, world=world, opt=opt):
            return float(_truth(world, np.atleast_2d(mix))[0] - opt)

        old = _table(world, rng.dirichlet(np.ones(3), N_OLD), seed * 100 + 1, "old")
        ch = DomainChanges(added=[doms[3]])
        mapped = map_runs(old, ch, domains=doms).runs
        old_model = make_surrogate("regmix", **SETTINGS).fit(old)
        pool3 = rng.dirichlet(np.ones(3), POOL)
        old_only.append(regret(np.append(_pick(old_model, pool3, doms[:3]), 0.0)))
        full_mixes = rng.dirichlet(np.ones(4), max(FULL))
        new_mixes = rng.dirichlet(np.ones(4), max(NEW))
        fresh = _table(world, full_mixes, seed * 100 + 2, "full")
        for n in FULL:
            m = make_surrogate("regmix", **SETTINGS).fit(fresh.select_runs(fresh.runs[:n]))
            reg["full"].setdefault(n, []).append(regret(_pick(m, pool, doms)))
        # frozen block: new runs over (block, d4)
        fb = frozen_block(old, ch, QUANTITY, params=PARAMS, tokens=PARAMS * TPP, settings=SETTINGS, seed=seed)
        t = rng.random(max(NEW))
        red = np.column_stack([1 - t, t])
        block_runs = fb.reduce_runs(_table(world, fb.expand(red), seed * 100 + 3, "blk"))
        grid = np.column_stack([1 - np.linspace(0, 1, 401), np.linspace(0, 1, 401)])
        for n in NEW:
            m = make_surrogate("regmix", **SETTINGS).fit(block_runs.select_runs(block_runs.runs[:n]))
            reg["frozen"].setdefault(n, []).append(regret(fb.expand(_pick(m, grid, fb.reduced_domains)[None, :])[0]))
        # joint fit with random new runs
        rand_runs = _table(world, new_mixes, seed * 100 + 4, "new")
        for n in NEW:
            m = joint_fit(mapped, rand_runs.select_runs(rand_runs.runs[:n]), **SETTINGS)
            reg["joint"].setdefault(n, []).append(regret(_pick(m, pool, doms)))
        # joint fit with planned new runs, batches up to each budget: as first measured (coverage 0), and with the
        # default coverage share counting the mapped old runs as made (``existing``)
        for method, (cov, counted) in SYN_PLANS.items():
            if method not in methods:
                continue
            ex = mapped if counted else None
            planned: RunTable | None = None
            for i, n in enumerate(NEW):
                have = 0 if planned is None else planned.n_runs
                model = joint_fit(mapped, planned, **SETTINGS)
                st = PlanSettings(runs=n - have, n_draws=draws, n_candidates=256, n_targets=256, seed=seed * 100 + i,
                                  coverage=cov)
                made = None if ex is None else (ex if planned is None else combine_runs(ex, planned))
                p = plan_new_runs(model, doms, QUANTITY, params=PARAMS, tokens=PARAMS * TPP, settings=st, existing=made)
                batch = _table(world, p.mixture, seed * 100 + 10 + i, f"plan{i}_")
                planned = batch if planned is None else planned.concat(batch)
                reg[method].setdefault(n, []).append(regret(_pick(joint_fit(mapped, planned, **SETTINGS), pool, doms)))
    return {"regret": reg, "old_only": old_only}


def _saved(reg: dict, method: str) -> list[tuple[int, float, int | None, float | None]]:
    out = []
    for n in FULL:
        target = float(np.mean(reg["full"][n]))
        ok = [float(np.mean(reg[method][k])) <= target for k in NEW]
        # the fewest new runs from which on the mean regret stays at or below full's
        m = next((k for i, k in enumerate(NEW) if all(ok[i:])), None)
        out.append((n, target, m, None if m is None else 1 - m / n))
    return out


def print_synthetic(res: dict, seeds: list[int]) -> None:
    reg = res["regret"]
    ms = [m for m in reg if reg[m]]
    print(f"\n## Synthetic: a 4th domain added to a {N_OLD}-run 3-domain swarm, seeds {seeds[0]}-{seeds[-1]}")
    print(f"old runs only (4th domain at 0): mean regret {np.mean(res['old_only']):.4f} nats")
    print("joint+plan: coverage 0 (as first measured); joint+plan+cov: the default coverage "
          f"{DEFAULT_COVERAGE} with the mapped old runs counted as made (existing)")
    print("\n| new runs | " + " | ".join(ms) + " |\n|---|" + "---|" * len(ms))
    for n in sorted(set(FULL) | set(NEW)):
        cells = [f"{np.mean(reg[m][n]):.4f}" if n in reg[m] else "-" for m in ms]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\nmean regret (nats of overall loss) of the pick; full = runs of a fresh 4-domain swarm")
    rest = [m for m in ms if m != "full"]
    print("\n| full runs | full regret | " + " | ".join(f"{m}: runs, saved" for m in rest)
          + " |\n|---|---|" + "---|" * len(rest))
    rows = {m: _saved(reg, m) for m in rest}
    for i, n in enumerate(FULL):
        cells = []
        for m in rest:
            _, _, k, s = rows[m][i]
            cells.append("not reached" if k is None else f"{k}, {100 * s:.0f} %")
        print(f"| {n} | {rows[rest[0]][i][1]:.4f} | " + " | ".join(cells) + " |")


# -- Olmix's own files ----------------------------------------------------------------------------
OLMIX_TRAIN = (8, 16, 32, 51)


def _mean_bpb(t: RunTable) -> RunTable:
    """The table with its 110 task BPBs replaced by their mean (``loss:mean_bpb``; lower is better)."""
    y = np.nanmean(t.scores(), axis=1)
    keep = [c for c in t.frame.columns if not c.startswith("score:")]
    return RunTable(t.frame.select(keep).with_columns(pl.Series("loss:mean_bpb", y)))


def _held_out(model, test: RunTable) -> tuple[float, float]:
    pred = model.predict(Targets.from_params_tokens(test.params(), test.tokens(), test.mixture(), test.domains),
                         intervals=False).get("loss:mean_bpb")
    act = test.column("loss:mean_bpb")
    from scipy.stats import spearmanr

    return float(spearmanr(pred, act)[0]), float(act[int(np.argmin(pred))] - act.min())


def olmix(data_dir: str, seeds: list[int]) -> None:
    from mixopt.data.public import load_olmix

    full = _mean_bpb(load_olmix(data_dir, "full_recomputation").final())
    reuse = _mean_bpb(load_olmix(data_dir, "full_reuse_update_5_seed_0").final())
    print("\n## Olmix: full_reuse_update_5_seed_0 (reuse) vs full_recomputation (full)")
    for name, t in (("full", full), ("reuse", reuse)):
        print(f"{name}: {t.n_runs} runs x {len(t.domains)} domains, same proxy size; best run's mean BPB "
              f"{t.column('loss:mean_bpb').min():.4f}")
    print(f"compute of this update: reuse {reuse.n_runs} runs vs full {full.n_runs}: "
          f"{100 * (1 - reuse.n_runs / full.n_runs):.1f} % saved")
    # the change from the full swarm's 64 domains to the reuse swarm's 22
    s2 = [d for d in full.domains if d.startswith("s2pdf:")]
    ch = DomainChanges(renamed={d: "s2pdfv1:" + d.split(":", 1)[1] for d in s2},
                       merged={"existing": [d for d in full.domains if d not in s2]})
    mapped = map_runs(full, ch, domains=reuse.domains)
    print(f"mapped the {full.n_runs} full runs into the reuse space: {mapped.summary()['evidence']} "
          "(the existing block's internal mix is not in the files, so every full run is assumed evidence)")
    print("\nDecision quality on held-out reuse-swarm runs (seeded 80/20 splits of the 64; 13 held out), "
          "mean over splits:\n")
    print("| reuse runs fitted | ρ reuse only | ρ joint (+512 mapped) | regret reuse only | regret joint | ρ full-swarm "
          "fit (mapped only) |\n|---|---|---|---|---|---|")
    rows: dict[int, list[tuple[float, float, float, float]]] = {k: [] for k in OLMIX_TRAIN}
    only_old = []
    for s in seeds:
        perm = np.random.default_rng([s, 0x6F6C]).permutation(reuse.n_runs)
        h = int(round(0.2 * reuse.n_runs))
        test = reuse.select_runs([reuse.runs[i] for i in perm[:h]])
        train_ids = [reuse.runs[i] for i in perm[h:]]
        only_old.append(_held_out(joint_fit(mapped, None, **SETTINGS), test)[0])
        for k in OLMIX_TRAIN:
            tr = reuse.select_runs(train_ids[:k])
            a = _held_out(make_surrogate("reuse", **SETTINGS).fit(tr), test)
            b = _held_out(joint_fit(mapped, tr, **SETTINGS), test)
            rows[k].append((a[0], b[0], a[1], b[1]))
    for k in OLMIX_TRAIN:
        r = np.array(rows[k])
        print(f"| {k} | {r[:, 0].mean():.3f} | {r[:, 1].mean():.3f} | {r[:, 2].mean():.4f} | {r[:, 3].mean():.4f} | "
              f"{np.mean(only_old):.3f} |")
    print("regret = measured mean BPB of the predicted-best held-out run minus the best held-out run's")
    print("\nWithin each swarm (seeded 80/20 splits), regmix on the rest:\n\n| swarm | runs fitted | ρ | regret |\n|---|---|---|---|")
    for label, t, sub in (("full", full, None), ("full, 64 random runs", full, 64), ("reuse", reuse, None)):
        res = []
        for s in seeds:
            idx = np.arange(t.n_runs) if sub is None else np.random.default_rng([s, 0x7375]).permutation(t.n_runs)[:sub]
            perm = np.random.default_rng([s, 0x6F6C]).permutation(idx)
            h = int(round(0.2 * len(perm)))
            test, train = t.select_runs([t.runs[i] for i in perm[:h]]), t.select_runs([t.runs[i] for i in perm[h:]])
            res.append(_held_out(make_surrogate("regmix", **SETTINGS).fit(train), test))
        r = np.array(res)
        print(f"| {label} | {len(idx) - int(round(0.2 * len(idx)))} | {r[:, 0].mean():.3f} | {r[:, 1].mean():.4f} |")


# -- Real: the reference trainer ------------------------------------------------------------------
REAL_DOMAINS = ("prose", "code", "docs", "math")
#: the smallest reference-trainer shape (2 layers x 32 wide: 25472 non-embedding parameters)
REAL_PARAMS = 2.5e4
REAL_TOKENS = 8e5  # training bytes of every run (391 steps of 8 x 256 bytes: 800768)
REAL_SEED = 0
REAL_OPTIONS = {"threads": 1, "eval_windows": 96, "cloze_items": 20, "kernels": "v2", "device": "cpu"}
REAL_Q = "loss:mean4"
N_OLD_REAL = 12
N_FRESH_REAL = 16
N_TEST_REAL = 16
#: test mixtures added to the first 16 (2026-12-04, second measurement): a further seeded Dirichlet(1) stream
N_TEST2_REAL = 32
REAL_FULL = (4, 6, 8, 12, 16)
REAL_NEW = (2, 4, 6, 8, 12)
REAL_PERMS = 10
#: seeds of the planned sequences (batch i of base b planned with seed b + i); 100 is the first measurement's
REAL_PLAN_BASES = (100, 200, 300, 400)
#: the coverage share of those sequences (as first measured; the synthetic section pins it too)
REAL_COVERAGE = 0.0
#: sequences planned with the default coverage, the mapped old runs counted as made (existing), and their budgets
REAL_COV_BASES = (500, 600, 700)
REAL_COV_NEW = (2, 4)
#: of those, the sequences continued to the whole new-run grid (all three; 700 was first trained to 4 new runs)
REAL_COV_LONG = (500, 600, 700)
#: bootstrap resamples (+1: row 0 is the sample itself)
REAL_BOOT = 401
#: seeded re-splits of the 64 trained 4-domain Dirichlet runs into a fresh swarm of 16 and a test set of 48
REAL_SPLITS = 50
REAL_SHIPPED = Path(__file__).resolve().parents[1] / "mixopt" / "examples" / "reuse_real_runs.csv"


def _real_mix(m: np.ndarray) -> dict[str, float]:
    """A mixture rounded to 4 decimals (the largest share takes the rounding), as ``{domain: ratio}``."""
    r = np.round(np.asarray(m, float), 4)
    r[int(np.argmax(r))] += 1.0 - r.sum()
    r = np.round(r, 6)
    return dict(zip(REAL_DOMAINS, (float(x) for x in r), strict=True))


def _real_id(mix: dict[str, float], seed: int = REAL_SEED) -> str:
    """The cache key of a run: its mixture (4 decimals) and seed."""
    import hashlib

    key = ",".join(f"{d}={mix[d]:.4f}" for d in REAL_DOMAINS)
    return f"rr_{hashlib.sha1(key.encode()).hexdigest()[:10]}_s{seed}"


def _real_design(n_test2: int = N_TEST2_REAL) -> dict[str, list[dict[str, float]]]:
    """The seeded mixtures: the old 3-domain swarm (math at 0), the fresh 4-domain swarm, the test set (``test``:
    the first 16; ``test2``: the ``n_test2`` added in the second measurement, a stream of their own)."""
    old = np.random.default_rng([0x7265, 1]).dirichlet(np.ones(3), N_OLD_REAL)
    fresh = np.random.default_rng([0x7265, 2]).dirichlet(np.ones(4), N_FRESH_REAL)
    test = np.random.default_rng([0x7265, 3]).dirichlet(np.ones(4), N_TEST_REAL)
    test2 = np.random.default_rng([0x7265, 4]).dirichlet(np.ones(4), n_test2) if n_test2 else np.zeros((0, 4))
    return {"old": [_real_mix(np.append(m, 0.0)) for m in old], "fresh": [_real_mix(m) for m in fresh],
            "test": [_real_mix(m) for m in test], "test2": [_real_mix(m) for m in test2]}


class _RealRuns:
    """The reference trainer behind a cache: a run (mixture + seed) in the CSV is never retrained."""

    def __init__(self, cache: Path, max_parallel: int) -> None:
        from mixopt.config.train import TrainerSection

        self.cache = cache
        corpus = Path(__file__).resolve().parents[1] / "out" / "corpus"
        self.trainer = TrainerSection(kind="reference", options={"corpus": str(corpus), **REAL_OPTIONS},
                                      max_parallel=max_parallel, timeout_s=1800, workdir=cache.parent / "jobs")
        self.trained: list[str] = []
        self.cpu_s = 0.0

    def ensure(self, mixes: list[dict[str, float]]) -> None:
        """Train the runs of ``mixes`` the cache lacks (side by side, ``max_parallel`` at a time)."""
        import resource

        from mixopt.train.ladder import train_jobs
        from mixopt.train.spec import JobSpec
        from mixopt.train.store import existing_runs

        ids = [_real_id(m) for m in mixes]
        have = existing_runs(self.cache) if self.cache.exists() else set()
        todo = {i: m for i, m in zip(ids, mixes, strict=True) if i not in have}
        if todo:
            if not (Path(self.trainer.options["corpus"]) / "manifest.json").exists():
                raise SystemExit(f"{len(todo)} run(s) to train but no corpus at {self.trainer.options['corpus']}: "
                                 "run `python -m mixopt corpus build out/corpus` first (or ship the runs CSV).")
            print(f"  training {len(todo)} run(s) with the reference trainer ...", flush=True)
            jobs = [JobSpec(run_id=i, mixture=m, params=REAL_PARAMS, tokens=REAL_TOKENS, seed=REAL_SEED, checkpoints=1)
                    for i, m in todo.items()]
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            rep = train_jobs(jobs, self.trainer, self.cache)
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            self.cpu_s += (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
            if rep.failed:
                raise SystemExit(f"{len(rep.failed)} training job(s) failed: {rep.failed[0].message}")
            self.trained.extend(rep.added)

    def table(self, mixes: list[dict[str, float]], *, domains=REAL_DOMAINS) -> RunTable:
        """The runs of ``mixes`` (trained when not cached), with ``loss:mean4`` and ``mix:<d>`` of ``domains``."""
        from mixopt.data.readers import read_runs

        self.ensure(mixes)
        ids = [_real_id(m) for m in mixes]
        f = read_runs(self.cache).frame.filter(pl.col("run").is_in(ids))
        f = f.with_columns(pl.mean_horizontal([pl.col(f"loss:{d}") for d in REAL_DOMAINS]).alias(REAL_Q))
        order = {i: k for k, i in enumerate(ids)}
        f = f.sort(pl.col("run").replace_strict(order, return_dtype=pl.Int64))
        return RunTable(f.select(["run", "params", "tokens", *[f"mix:{d}" for d in domains], REAL_Q]))


def _real_pred(model, test: RunTable) -> np.ndarray:
    """The model's predicted objective at the test runs' mixtures."""
    return np.asarray(model.predict(Targets.from_params_tokens(test.params(), test.tokens(), test.mixture(), test.domains),
                                    intervals=False).get(REAL_Q), dtype=np.float64)


def _quality(pred: np.ndarray, act: np.ndarray) -> tuple[float, float]:
    """ρ of ``pred`` vs ``act`` and the regret of the predicted-best (``act`` of the pick minus the best)."""
    from scipy.stats import spearmanr

    return float(spearmanr(pred, act)[0]), float(act[int(np.nanargmin(pred))] - act.min())


def real(cache: Path, *, full_grid, new_grid, perms: int, draws: int, max_parallel: int, plan_bases=REAL_PLAN_BASES,
         cov_bases=REAL_COV_BASES, cov_grid=REAL_COV_NEW, cov_long=REAL_COV_LONG, n_test2: int = N_TEST2_REAL) -> dict:
    """Train what the cache lacks and predict the test set with every method's models.

    Returns per method ``{n: [pred (n_test,), ...]}`` (one entry per order or plan sequence), the test table and
    the rest :func:`print_real` reports. ``plan_bases``: seeds of the planned sequences (batch ``i`` of base ``b``
    planned with seed ``b + i``; 100 is the sequence of the first measurement), coverage 0 as first measured;
    ``cov_bases``: sequences planned with the default coverage share and the runs made so far (mapped old + planned)
    counted as made (``existing``), up to ``cov_grid`` (those in ``cov_long``: the whole ``new_grid``).
    """
    runs = _RealRuns(cache, max_parallel)
    design = _real_design(n_test2)
    runs.ensure(design["old"] + design["fresh"] + design["test"] + design["test2"])
    old4 = runs.table(design["old"])
    fresh = runs.table(design["fresh"])
    test = runs.table(design["test"] + design["test2"])
    old = RunTable(old4.frame.drop("mix:math"))
    ch = DomainChanges(added=["math"])
    mapped = map_runs(old, ch, domains=list(REAL_DOMAINS))
    methods = ("full", "joint", "joint+plan", "joint+plan+cov")
    preds: dict[str, dict[int, list[np.ndarray]]] = {m: {} for m in methods}
    models: dict[str, dict[int, list]] = {m: {} for m in methods}
    old_only = _real_pred(joint_fit(mapped, None, **SETTINGS), test)
    for p in range(perms):
        order = np.arange(fresh.n_runs) if p == 0 else np.random.default_rng([0x7265, 9, p]).permutation(fresh.n_runs)
        ids = [fresh.runs[i] for i in order]
        for n in full_grid:
            preds["full"].setdefault(n, []).append(_real_pred(make_surrogate("regmix", **SETTINGS).fit(fresh.select_runs(ids[:n])), test))
        for n in new_grid:
            preds["joint"].setdefault(n, []).append(_real_pred(joint_fit(mapped, fresh.select_runs(ids[:n]), **SETTINGS), test))
    params, tokens = float(old4.params()[0]), float(old4.tokens()[0])
    seqs = [("joint+plan", b, new_grid, REAL_COVERAGE, False) for b in plan_bases]
    seqs += [("joint+plan+cov", b, new_grid if b in cov_long else cov_grid, DEFAULT_COVERAGE, True) for b in cov_bases]
    plan_mixes: dict[tuple[str, int], list[dict[str, float]]] = {(m, b): [] for m, b, *_ in seqs}
    for i in range(max(len(g) for _, _, g, _, _ in seqs)):
        batch: list[dict[str, float]] = []
        live = [sq for sq in seqs if i < len(sq[2])]
        for m, b, grid, cov, counted in live:  # plan batch i of every sequence, then train them together
            have = plan_mixes[(m, b)]
            model = joint_fit(mapped, runs.table(have) if have else None, **SETTINGS)
            st = PlanSettings(runs=grid[i] - len(have), n_draws=draws, n_candidates=256, n_targets=256, seed=b + i,
                              coverage=cov)
            made = None if not counted else mapped.runs if not have else combine_runs(mapped.runs, runs.table(have))
            pl_ = plan_new_runs(model, REAL_DOMAINS, REAL_Q, params=params, tokens=tokens, settings=st, existing=made)
            new = [_real_mix(x) for x in pl_.mixture]
            have.extend(new)
            batch.extend(new)
        runs.ensure(batch)
        for m, b, grid, _, _ in live:
            fit = joint_fit(mapped, runs.table(plan_mixes[(m, b)]), **SETTINGS)
            models[m].setdefault(grid[i], []).append(fit)
            preds[m].setdefault(grid[i], []).append(_real_pred(fit, test))
    best = test.runs[int(np.argmin(test.column(REAL_Q)))]
    return {"preds": preds, "old_only": old_only, "runs": runs, "design": design, "plan": plan_mixes, "test": test,
            "fresh": fresh, "old": old4, "best": best, "mapped": mapped, "bases": plan_bases, "cov_bases": cov_bases, "models": models,
            "cov_long": tuple(b for b in cov_bases if b in cov_long)}


def _boot_index(n_test: int, n_boot: int, seed: int = 0x6273) -> np.ndarray:
    """``(n_boot, n_test)`` seeded bootstrap resamples of the test mixtures (row 0: the test set itself)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_test, (n_boot, n_test))
    idx[0] = np.arange(n_test)
    return idx


def _boot_quality(preds: list[np.ndarray], act: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, 2)``: per test resample, the mean (ρ, regret) over a resample of the sequences / orders
    (row 0: over all of them, on the test set itself)."""
    out = np.empty((len(idx), 2))
    k = len(preds)
    for b, ix in enumerate(idx):
        which = np.arange(k) if b == 0 else rng.integers(0, k, k)
        out[b] = np.mean([_quality(preds[j][ix], act[ix]) for j in which], axis=0)
    return out


def real_quality(res: dict, n_boot: int = REAL_BOOT, subset: np.ndarray | None = None) -> dict:
    """Mean (ρ, regret) per method and budget on the test set (or its ``subset``), with bootstrap resamples
    of the test mixtures and of the sequences / orders (paired: every method on the same resamples)."""
    act = res["test"].column(REAL_Q)
    sel = np.arange(len(act)) if subset is None else np.asarray(subset)
    idx = sel[_boot_index(len(sel), n_boot)]
    out: dict[str, dict[int, np.ndarray]] = {}
    for m, byn in res["preds"].items():
        for n, ps in byn.items():
            rng = np.random.default_rng([0x6273, len(m), n])
            out.setdefault(m, {})[n] = _boot_quality(ps, act, idx, rng)
    return out


def real_resplit(res: dict, full_grid, new_grid, n_splits: int = REAL_SPLITS) -> dict:
    """Decision quality over seeded re-splits of the 64 trained Dirichlet(1) 4-domain runs (fresh + test) into
    a fresh swarm of 16 and a test set of 48: full (first n of that swarm) and joint (mapped old + first m of it)
    are refitted per split; the planned sequences' models (which used none of these runs) predict each split's
    test set. Returns ``{method: {n: (n_splits, 2)}}`` of (ρ, regret) per split (planned: mean over sequences)."""
    fresh, test, mapped = res["fresh"], res["test"], res["mapped"]
    pool = RunTable(pl.concat([fresh.frame, test.frame], how="diagonal_relaxed"))
    act = pool.column(REAL_Q)
    planned = {}
    for m in ("joint+plan", "joint+plan+cov"):
        for n, models in res.get("models", {}).get(m, {}).items():
            planned.setdefault(m, {})[n] = [_real_pred(x, pool) for x in models]
    out: dict[str, dict[int, list]] = {}
    n_fresh = fresh.n_runs
    for sp in range(n_splits):
        perm = np.random.default_rng([0x7265, 0x7370, sp]).permutation(pool.n_runs)
        tr, te = perm[:n_fresh], perm[n_fresh:]
        tab = pool.select_runs([pool.runs[i] for i in tr])
        ids = [pool.runs[i] for i in tr]
        te_act = act[te]
        for n in full_grid:
            pr = _real_pred(make_surrogate("regmix", **SETTINGS).fit(tab.select_runs(ids[:n])), pool)
            out.setdefault("full", {}).setdefault(n, []).append(_quality(pr[te], te_act))
        for n in new_grid:
            pr = _real_pred(joint_fit(mapped, tab.select_runs(ids[:n]), **SETTINGS), pool)
            out.setdefault("joint", {}).setdefault(n, []).append(_quality(pr[te], te_act))
        for m, byn in planned.items():
            for n, prs in byn.items():
                out.setdefault(m, {}).setdefault(n, []).append(np.mean([_quality(pr[te], te_act) for pr in prs], axis=0))
    return {m: {n: np.asarray(v) for n, v in byn.items()} for m, byn in out.items()}


def _saved_boot(bq: dict, method: str, full_grid, new_grid, k: int, higher: bool):
    """Per full budget n: the fewest new runs m from which on (every larger budget of ``new_grid``) the mean
    metric ``k`` is at least as good as full's at n, and the paired difference method(m) - full(n) with its
    bootstrap s.e. (positive = better for ρ, negative = better for regret)."""
    out = []
    for n in full_grid:
        f = bq["full"][n][:, k]
        have = [m for m in new_grid if m in bq.get(method, {})]
        ok = [(bq[method][m][0, k] >= f[0]) if higher else (bq[method][m][0, k] <= f[0]) for m in have]
        m = next((m for i, m in enumerate(have) if all(ok[i:])), None)
        top = have[-1] if have else None
        d = None if top is None else bq[method][top][:, k] - f
        out.append((n, float(f[0]), m, None if m is None else 1 - m / n,
                    None if d is None else (top, float(d[0]), float(d[1:].std(ddof=1)))))
    return out


def print_resplit(rs: dict, full_grid, new_grid, n_splits: int) -> None:
    methods = [m for m in ("full", "joint", "joint+plan", "joint+plan+cov") if m in rs]
    print(f"\nRe-split ({n_splits} seeded splits of the 64 trained 4-domain Dirichlet runs into a fresh swarm of 16 "
          "and a test set of 48; full and joint refitted per split, the planned models predict each split's test set; "
          "mean over splits, ± = sd over splits (the splits overlap: this is the spread of one realisation, not an s.e.)\n")
    print("| new runs | " + " | ".join(f"ρ {m}" for m in methods) + " | " + " | ".join(f"regret {m}" for m in methods)
          + " |\n|---|" + "---|" * (2 * len(methods)))
    for n in sorted(set(full_grid) | set(new_grid)):
        def cell(m, k, n=n):
            return f"{rs[m][n][:, k].mean():.3f} ± {rs[m][n][:, k].std(ddof=1):.3f}" if n in rs[m] else "-"
        print(f"| {n} | " + " | ".join(cell(m, 0) for m in methods) + " | " + " | ".join(cell(m, 1) for m in methods) + " |")
    for k, name, higher in ((1, "regret", False), (0, "ρ", True)):
        print(f"\nRe-split, compute saved at equal decision quality ({name}, on the mean over splits; Δ = method at "
              f"its largest budget minus full, per split: mean, and the share of splits where the method is at least "
              "as good):\n")
        ms = [m for m in methods if m != "full"]
        print(f"| full runs | full {name} | " + " | ".join(f"{m}: runs, saved, Δ" for m in ms) + " |\n|---|---|" + "---|" * len(ms))
        for n in full_grid:
            f = rs["full"][n][:, k]
            cells = []
            for m in ms:
                have = sorted(rs[m])
                ok = [(rs[m][x][:, k].mean() >= f.mean()) if higher else (rs[m][x][:, k].mean() <= f.mean()) for x in have]
                mm = next((x for i, x in enumerate(have) if all(ok[i:])), None)
                d = rs[m][have[-1]][:, k] - f
                win = np.mean(d >= 0) if higher else np.mean(d <= 0)
                c = "not reached" if mm is None else f"{mm}, {100 * (1 - mm / n):.0f} %" if mm <= n else f"{mm}, none (more runs)"
                cells.append(c + f", Δ@{have[-1]} {d.mean():+.3f} (at least as good in {100 * win:.0f} %)")
            print(f"| {n} | {f.mean():.4f} | " + " | ".join(cells) + " |")


def print_real(res: dict, full_grid, new_grid, perms: int, n_boot: int = REAL_BOOT) -> None:
    test = res["test"]
    old, fresh = res["old"], res["fresh"]
    print(f"\n## Real: math added to a {old.n_runs}-run 3-domain swarm of reference-trainer GPTs "
          f"({int(old.params()[0])} params, {int(old.tokens()[0])} bytes each, seed {REAL_SEED})")
    act = test.column(REAL_Q)
    print(f"test set: {test.n_runs} trained Dirichlet(1) 4-domain mixtures ({N_TEST_REAL} as first measured, "
          f"{test.n_runs - N_TEST_REAL} more); {REAL_Q} (mean loss over the 4 domains, nats/byte) "
          f"{act.min():.4f}-{act.max():.4f}, best {res['best']}")
    ol = old.column(REAL_Q)
    fr = fresh.column(REAL_Q)
    print(f"old swarm (math at 0) {REAL_Q}: {ol.min():.4f}-{ol.max():.4f}; fresh swarm: {fr.min():.4f}-{fr.max():.4f}")
    oo = _quality(res["old_only"], act)
    print(f"old runs only (mapped, math at 0): ρ {oo[0]:.3f}, regret {oo[1]:.4f}")
    for (m, b), mixes in res["plan"].items():
        print(f"planned new runs ({m}, seeds {b}+i): " + "; ".join("/".join(f"{x[d]:.2f}" for d in REAL_DOMAINS) for x in mixes)
              + "  (prose/code/docs/math)")
    first = {_real_id(m) for m in res["design"]["test"]}  # the table is in run-id order, not the design's
    subsets = [(f"{N_TEST_REAL} test mixtures of the first measurement", np.flatnonzero([r in first for r in test.runs]))
               ] if test.n_runs > N_TEST_REAL else []
    subsets.append((f"all {test.n_runs} test mixtures", None))
    methods = [m for m in ("full", "joint", "joint+plan", "joint+plan+cov") if res["preds"][m]]
    for label, sub in subsets:
        bq = real_quality(res, n_boot, sub)
        print(f"\nDecision quality on the {label} (full, joint: mean over {perms} orders of the fresh swarm; "
              f"joint+plan: mean over {len(res['bases'])} planned sequences (seeds {', '.join(map(str, res['bases']))}), "
              f"joint+plan+cov: over {len(res['cov_bases'])} to {max(REAL_COV_NEW)} new runs, {len(res['cov_long'])} beyond); ± = bootstrap s.e. ({n_boot - 1} resamples of the test "
              "mixtures and of the orders / sequences)\n")
        print("| new runs | " + " | ".join(f"ρ {m}" for m in methods) + " | " + " | ".join(f"regret {m}" for m in methods)
              + " |\n|---|" + "---|" * (2 * len(methods)))
        for n in sorted(set(full_grid) | set(new_grid)):
            def cell(m, k, n=n):
                if n not in bq[m]:
                    return "-"
                v = bq[m][n][:, k]
                return f"{v[0]:.3f} ± {v[1:].std(ddof=1):.3f}"
            print(f"| {n} | " + " | ".join(cell(m, 0) for m in methods) + " | " + " | ".join(cell(m, 1) for m in methods) + " |")
        print(f"regret = measured {REAL_Q} of the predicted-best test mixture minus the best test mixture's (nats/byte)")
        for k, name, higher in ((1, "regret", False), (0, "ρ", True)):
            print(f"\nCompute saved at equal decision quality ({name}; the fewest new runs from which on the mean {name} "
                  f"is at least as good as full's; Δ = method at its largest budget minus full, paired, ± bootstrap s.e.):\n")
            ms = [m for m in methods if m != "full"]
            print(f"| full runs | full {name} | " + " | ".join(f"{m}: runs, saved, Δ" for m in ms)
                  + " |\n|---|---|" + "---|" * len(ms))
            rows = {m: _saved_boot(bq, m, full_grid, new_grid, k, higher) for m in ms}
            for i, n in enumerate(full_grid):
                cells = []
                for m in ms:
                    _, _, mm, s, d = rows[m][i]
                    c = "not reached" if mm is None else f"{mm}, {100 * s:.0f} %" if s >= 0 else f"{mm}, none (more runs)"
                    if d is not None:
                        c += f", Δ@{d[0]} {d[1]:+.3f} ± {d[2]:.3f}"
                    cells.append(c)
                print(f"| {n} | {rows[ms[0]][i][1]:.4f} | " + " | ".join(cells) + " |")
    r = res["runs"]
    print(f"\ntrained in this run: {len(r.trained)} run(s), {r.cpu_s:.0f} CPU-s of training "
          f"(cache {r.cache}; runs already there are not retrained)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["synthetic", "olmix", "real"], default=None)
    ap.add_argument("--real-runs", default=None,
                    help="cache of the real section's trained runs (default out/bench_reuse_real/runs.csv, "
                         "started from mixopt/examples/reuse_real_runs.csv when absent)")
    ap.add_argument("--retrain", action="store_true", help="real: do not start the cache from the shipped runs")
    ap.add_argument("--max-parallel", type=int, default=2, help="real: training jobs side by side")
    ap.add_argument("--plan-seeds", default=",".join(map(str, REAL_PLAN_BASES)),
                    help="real: seeds of the planned sequences, comma-separated (batch i of seed b planned with b + i)")
    ap.add_argument("--cov-seeds", default=",".join(map(str, REAL_COV_BASES)),
                    help="real: seeds of the sequences planned with the added domain's range covered ('' for none)")
    ap.add_argument("--n-test2", type=int, default=N_TEST2_REAL, help="real: test mixtures added to the first 16")
    a = ap.parse_args()
    seeds = [0, 1, 2] if a.quick else list(range(10))
    draws = 128 if a.quick else 256
    t0 = time.process_time()
    print(f"bench_reuse{' (--quick)' if a.quick else ''}")
    if a.only in (None, "synthetic"):
        print_synthetic(synthetic(seeds, draws), seeds)
        print(f"\nsynthetic CPU {time.process_time() - t0:.1f} s")
    if a.only in (None, "olmix"):
        t1 = time.process_time()
        if (Path(a.data_dir) / "olmix").is_dir():
            olmix(a.data_dir, seeds)
        else:
            print(f"\nOlmix files not found under {a.data_dir}/olmix: skipped")
        print(f"\nolmix CPU {time.process_time() - t1:.1f} s")
    if a.only in (None, "real"):
        t2 = time.process_time()
        cache = Path(a.real_runs) if a.real_runs else Path(__file__).resolve().parents[1] / "out" / "bench_reuse_real" / "runs.csv"
        if not cache.exists() and not a.retrain and REAL_SHIPPED.exists():
            import shutil

            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REAL_SHIPPED, cache)
            shutil.copyfile(REAL_SHIPPED.with_suffix(".benchmarks.json"), cache.with_suffix(".benchmarks.json"))
            print(f"\nreal: started the cache {cache} from {REAL_SHIPPED}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        fg, ng = ((4, 8), (2, 4)) if a.quick else (REAL_FULL, REAL_NEW)
        perms = 3 if a.quick else REAL_PERMS
        def seeds_of(text: str) -> tuple[int, ...]:
            return tuple(int(x) for x in text.split(",") if x.strip())

        res = real(cache, full_grid=fg, new_grid=ng, perms=perms, draws=256, max_parallel=a.max_parallel,
                   plan_bases=seeds_of(a.plan_seeds), cov_bases=seeds_of(a.cov_seeds), n_test2=a.n_test2)
        print_real(res, fg, ng, perms)
        splits = 10 if a.quick else REAL_SPLITS
        print_resplit(real_resplit(res, fg, ng, splits), fg, ng, splits)
        print(f"\nreal CPU {time.process_time() - t2:.1f} s (this process; training is in the children, above)")
    print(f"\nCPU {time.process_time() - t0:.1f} s" if not math.isnan(t0) else "")


if __name__ == "__main__":
    main()
