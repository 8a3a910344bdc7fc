"""Reuse of old runs after a domain-set change vs full recomputation, in the same run.

    python benchmarks/bench_reuse.py [--quick] [--data-dir ../shared/data] [--only synthetic|olmix]

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

from mixopt.data.changes import DomainChanges, map_runs
from mixopt.data.table import RunTable
from mixopt.search.plan import PlanSettings
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
SETTINGS = {"min_rows": 3}


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


def synthetic(seeds: list[int], draws: int) -> dict:
    reg: dict[str, dict[int, list[float]]] = {m: {} for m in ("full", "frozen", "joint", "joint+plan")}
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
        # joint fit with planned new runs, batches up to each budget
        planned: RunTable | None = None
        for i, n in enumerate(NEW):
            have = 0 if planned is None else planned.n_runs
            model = joint_fit(mapped, planned, **SETTINGS)
            st = PlanSettings(runs=n - have, n_draws=draws, n_candidates=256, n_targets=256, seed=seed * 100 + i)
            p = plan_new_runs(model, doms, QUANTITY, params=PARAMS, tokens=PARAMS * TPP, settings=st)
            batch = _table(world, p.mixture, seed * 100 + 10 + i, f"plan{i}_")
            planned = batch if planned is None else planned.concat(batch)
            reg["joint+plan"].setdefault(n, []).append(regret(_pick(joint_fit(mapped, planned, **SETTINGS), pool, doms)))
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
    print(f"\n## Synthetic: a 4th domain added to a {N_OLD}-run 3-domain swarm, seeds {seeds[0]}-{seeds[-1]}")
    print(f"old runs only (4th domain at 0): mean regret {np.mean(res['old_only']):.4f} nats")
    print("\n| new runs | full | frozen | joint | joint+plan |\n|---|---|---|---|---|")
    for n in sorted(set(FULL) | set(NEW)):
        cells = [f"{np.mean(reg[m][n]):.4f}" if n in reg[m] else "-" for m in ("full", "frozen", "joint", "joint+plan")]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print("\nmean regret (nats of overall loss) of the pick; full = runs of a fresh 4-domain swarm")
    print("\n| full runs | full regret | " + " | ".join(f"{m}: runs, saved" for m in ("frozen", "joint", "joint+plan"))
          + " |\n|---|---|---|---|---|")
    rows = {m: _saved(reg, m) for m in ("frozen", "joint", "joint+plan")}
    for i, n in enumerate(FULL):
        cells = []
        for m in ("frozen", "joint", "joint+plan"):
            _, _, k, s = rows[m][i]
            cells.append("not reached" if k is None else f"{k}, {100 * s:.0f} %")
        print(f"| {n} | {rows['frozen'][i][1]:.4f} | " + " | ".join(cells) + " |")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["synthetic", "olmix"], default=None)
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
    print(f"\nCPU {time.process_time() - t0:.1f} s" if not math.isnan(t0) else "")


if __name__ == "__main__":
    main()
