"""Planned runs vs random order: RegMix and Olmix retrospective planning, synthetic worlds.

    python benchmarks/bench_plan.py --data-dir ../shared/data [--quick] [--section regmix,olmix,worlds]
        [--scales 60M,1.1B] [--seeds 0,1,2] [--criterion decision|ranking|prediction|doptimal] [--draws auto|posterior|model]
        [--coverage SHARE] [--surrogate regmix|regmix-log|regmix-iso|flpm|flpm-paper|dml] [--fit-domains all|scored]
    python benchmarks/bench_plan.py --data-dir ../shared/data --section surrogates --fit-domains scored

Sections ``olmix`` and ``worlds`` are described in their functions (:func:`_olmix`, :func:`_worlds`).

The pool is RegMix's 512 ``train_1m`` proxies (1M parameters). Both orders start from the
same 16 seeded random runs. *Random* reveals the next runs of a seeded permutation (RegMix's
recipe); *planned* reveals batches of 16 chosen by :func:`mixopt.search.plan.plan_runs`
(criterion ``decision``; candidates = the unrevealed pool, decision = which of the 60M
(or 1.1B) mixtures has the lowest Pile-CC loss) from a RegMix-style surrogate (kernel ridge,
kind ``regmix``, with joint draws) refitted on the runs revealed so far. At each budget the
surrogate fitted on the revealed runs predicts the 60M / 1.1B mixtures at the 1M compute
(RegMix's protocol) and is scored by Spearman ρ against their measured Pile-CC loss and by
the pick's regret (measured loss of the predicted best minus the best measured loss). The
row "all 512" is every proxy. Figures are means over seeds; a per-seed table follows each scale (ρ random /
planned per seed, and the paired difference planned - random: mean, standard error, seeds ahead).
The plan uses ``[plan]`` defaults (``coverage`` 0.75: three picks in four cover the decision points;
``--coverage 0``: the criterion alone). ``--quick``: 1 seed, budgets 32
and 64, 128 draws (a quick figure, say so).

``--surrogate`` (default ``regmix``) is the surrogate the RegMix section plans with and scores
with, and the Olmix section's too (:data:`SURROGATES`: ``regmix`` = the kind's default, a
shifted log per output, ``regmix-log`` = its ``transform="log"`` recipe before 2026-12-04, ``regmix-iso`` = the shifted log with
the feature scales and isotropic kernel before the partial scales / ARD kernel (2026-12-05),
``flpm`` = FLP-M ``auto``, ``flpm-paper`` = its paper preset, ``dml``; Olmix takes the regmix
ones only);
the target is stated per surrogate (planned vs that surrogate's own all-512 row). The law
surrogates need >= 20 runs (FLP-M, 17 domains; DML 18), so with them the plan starts from the
first 32 random runs (``--start``; planned = random at 32 then).
``--fit-domains scored`` fits Pile-CC's loss alone (default ``all``: the 13 loss domains; the
``regmix`` kind fits each output on its own, so its Pile-CC figures are the same either way,
and a per-domain law's are too up to ``auto``'s choices). Section ``surrogates``: each of
:data:`SURROGATES` (``--surrogates`` for a subset) fitted on the first 32 / 64 / 128 runs of
the seeded random orders and on all 512, scored at 60M and 1.1B from the same fit, no planning.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mixopt.data.public import load_regmix
from mixopt.search import ComputeSpace, MixtureSpace, Problem, SearchSpace
from mixopt.search.plan import DEFAULT_COVERAGE, PlanSettings, plan_runs
from mixopt.search.space import Points
from mixopt.surrogate import Targets, make_surrogate

sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_olmix (holdout, scores)

QUANTITY = "loss:pile_cc"
START, BATCH = 16, 16
#: ``--surrogate`` names: (surrogate kind, settings).
SURROGATES: dict[str, tuple[str, dict]] = {
    "regmix": ("regmix", {}),
    "regmix-log": ("regmix", {"transform": "log"}),
    "regmix-iso": ("regmix", {"scale": "feature", "kernel": "iso"}),
    "flpm": ("flpm", {}),
    "flpm-paper": ("flpm", {"preset": "paper"}),
    "dml": ("dml", {}),
}
_SURROGATE = ["regmix"]  # the RegMix section's surrogate (set from --surrogate in main)
_START = [START]  # the RegMix section's starting runs (set from --start in main)


def _fit(pool, idx, name: str | None = None):
    kind, settings = SURROGATES[name or _SURROGATE[0]]
    return make_surrogate(kind, seed=0, **settings).fit(pool.select_runs([pool.runs[i] for i in idx]))


def _surrogates(pool, tests, seeds, budgets, names, c1m: float) -> None:
    """Each surrogate fitted on the first ``budgets`` runs of the seeded random orders (the RegMix
    section's orders) and on all 512, no planning; ρ at each scale from the same fit."""
    rows = {(s, n): {b: [] for b in budgets} for s in tests for n in names}
    full, cpu = {}, {}
    for name in names:
        t0 = time.process_time()
        for seed in seeds:
            order = np.random.default_rng([seed, 0x626E]).permutation(pool.n_runs)
            for b in budgets:
                m = _fit(pool, order[:b], name)
                for scale, test in tests.items():
                    rows[(scale, name)][b].append(_score(m, test, c1m)[0])
        m = _fit(pool, np.arange(pool.n_runs), name)
        for scale, test in tests.items():
            full[(scale, name)] = _score(m, test, c1m)[0]
        cpu[name] = time.process_time() - t0
    for scale in tests:
        print(
            f"\n{scale}: ρ from random runs (mean ± s.e. over seeds {seeds}) and from all 512\n"
            f"| surrogate | {' | '.join(f'{b} random' for b in budgets)} | all 512 | gap 512 - {budgets[-1]} | fit CPU-s |"
        )
        print("|---|" + "---|" * (len(budgets) + 3))
        for name in names:
            r = rows[(scale, name)]
            cells = " | ".join(f"{np.mean(r[b]):.3f} ± {_se(np.array(r[b])):.3f}" for b in budgets)
            print(f"| {name} | {cells} | {full[(scale, name)]:.3f} | {full[(scale, name)] - np.mean(r[budgets[-1]]):+.3f} | {cpu[name]:.1f} |")


def _score(model, test, c1m: float) -> tuple[float, float]:
    pred = model.predict(Targets(flops=np.full(test.n_runs, c1m), mixture=test.mixture(), domains=test.domains), intervals=False).get(QUANTITY)
    act = test.column(QUANTITY)
    return float(spearmanr(pred, act)[0]), float(act[int(np.argmin(pred))] - act.min())


def _planned(pool, test, order, budgets, n1m, t1m, draws, seed, how) -> dict[int, tuple[float, float]]:
    X = pool.mixture()
    revealed = list(order[: _START[0]])
    out: dict[int, tuple[float, float]] = {}
    if len(revealed) in budgets:  # a budget at the start: planned = random there
        out[len(revealed)] = _score(_fit(pool, revealed), test, 6 * n1m * t1m)
    space = SearchSpace(MixtureSpace(pool.domains), ComputeSpace(params=n1m, tokens=t1m))
    tgt = Points(mixture=test.mixture(pool.domains), flops=np.full(test.n_runs, 6 * n1m * t1m), params=np.full(test.n_runs, n1m), tokens=np.full(test.n_runs, t1m))
    while len(revealed) < max(budgets):
        model = _fit(pool, revealed)
        rest = np.setdiff1d(np.arange(pool.n_runs), revealed)
        cand = Points(mixture=X[rest], flops=np.full(rest.size, 6 * n1m * t1m), params=np.full(rest.size, n1m), tokens=np.full(rest.size, t1m))
        st = PlanSettings(runs=BATCH, n_draws=draws, seed=seed + len(revealed), **how)
        made = Points(mixture=X[revealed], flops=np.full(len(revealed), 6 * n1m * t1m), params=np.full(len(revealed), n1m), tokens=np.full(len(revealed), t1m))
        p = plan_runs(Problem(space, model, [QUANTITY]), st, candidates=cand, targets=tgt, existing=made)
        revealed += [int(rest[i]) for i in p.index]
        if len(revealed) in budgets:
            out[len(revealed)] = _score(_fit(pool, revealed), test, 6 * n1m * t1m)
    return out


def _olmix(a, seeds, budgets, draws, how) -> None:
    """Olmix's 512-run 64-domain swarm: pool = the 410 runs outside real_olmix's fixed 20 % holdout;
    the decision = which held-out mixture has the lowest task-mean BPB; scored on the 102 held-out runs.
    Planner and scorer: ``--surrogate`` (``regmix`` or ``regmix-log``; the law surrogates need
    more runs than the 16-run start in 64 domains). The random-order columns are the
    surrogate's learning curve; "all 410" is its own target."""
    kind, settings = SURROGATES[_SURROGATE[0]]
    if kind != "regmix":
        raise SystemExit(f"--section olmix plans with a regmix-kind surrogate (regmix, regmix-log), got --surrogate {_SURROGATE[0]!r}")
    import polars as pl
    from real_olmix import holdout, scores

    from mixopt.data import RunTable
    from mixopt.data.public import load_olmix

    full = load_olmix(a.data_dir, "full_recomputation").final()
    tr, te = holdout(full.n_runs)
    names = [f"score:{b}" for b in full.benchmark_names]
    f = full.frame
    bpb = pl.DataFrame(
        {"run": f["run"], "params": f["params"], "tokens": f["tokens"], **{c: f[c] for c in f.columns if c.startswith("mix:")}, "loss:bpb_mean": np.mean(full.scores(full.benchmark_names), axis=1)}
    )
    mean_tab = RunTable(bpb)
    runs = full.run_ids()
    pool, test = full.select_runs(runs[tr]), full.select_runs(runs[te])
    pool_mean = mean_tab.select_runs(runs[tr])
    test_mean = mean_tab.select_runs(runs[te])
    n, d = float(np.median(full.params())), float(np.median(full.tokens()))
    c = 6 * n * d
    Y = test.scores(test.benchmark_names)
    ym = test_mean.column("loss:bpb_mean")

    def score(idx) -> tuple[float, float, float]:
        model = make_surrogate(kind, seed=0, **settings).fit(pool.select_runs(pool.run_ids()[np.asarray(idx)]))
        pred = model.predict(Targets(flops=np.full(test.n_runs, c), mixture=test.mixture(), domains=test.domains), intervals=False)
        P = np.column_stack([pred.get(q) for q in names])
        m = scores(P, Y)
        pm = P.mean(axis=1)
        return m["mre"], float(spearmanr(pm, ym)[0]), float(ym[int(np.argmin(pm))] - ym.min())

    space = SearchSpace(MixtureSpace(pool.domains), ComputeSpace(params=n, tokens=d))
    tgt = Points(mixture=test.mixture(pool.domains), flops=np.full(test.n_runs, c), params=np.full(test.n_runs, n), tokens=np.full(test.n_runs, d))
    X = pool.mixture()
    rows: dict[int, dict[str, list]] = {b: {"random": [], "planned": []} for b in budgets}
    for seed in seeds:
        order = np.random.default_rng([seed, 0x6F6C]).permutation(pool.n_runs)
        for b in budgets:
            rows[b]["random"].append(score(order[:b]))
        revealed = list(order[:START])
        while len(revealed) < max(budgets):
            model = make_surrogate(kind, seed=0, **settings).fit(pool_mean.select_runs(pool_mean.run_ids()[np.asarray(revealed)]))
            rest = np.setdiff1d(np.arange(pool.n_runs), revealed)
            cand = Points(mixture=X[rest], flops=np.full(rest.size, c), params=np.full(rest.size, n), tokens=np.full(rest.size, d))
            st = PlanSettings(runs=BATCH, n_draws=draws, seed=seed + len(revealed), **how)
            made = Points(mixture=X[revealed], flops=np.full(len(revealed), c), params=np.full(len(revealed), n), tokens=np.full(len(revealed), d))
            p = plan_runs(Problem(space, model, ["loss:bpb_mean"]), st, candidates=cand, targets=tgt, existing=made)
            revealed += [int(rest[i]) for i in p.index]
            if len(revealed) in budgets:
                rows[len(revealed)]["planned"].append(score(revealed))
    allp = score(np.arange(pool.n_runs))
    print(
        f"\nOlmix full_recomputation, surrogate {_SURROGATE[0]} (pool {pool.n_runs} runs x {len(pool.domains)} domains, {test.n_runs} held out, "
        f"{len(names)} tasks)\n| runs | error random | error planned | ρ(mean BPB) random | ρ planned | regret random | regret planned |"
    )
    print("|---|---|---|---|---|---|---|")
    for b in budgets:
        r, q = np.array(rows[b]["random"]), np.array(rows[b]["planned"])
        print(f"| {b} | {r[:, 0].mean():.4f} | {q[:, 0].mean():.4f} | {r[:, 1].mean():.3f} | {q[:, 1].mean():.3f} | {r[:, 2].mean():.4f} | {q[:, 2].mean():.4f} |")
    print(f"| all {pool.n_runs} | {allp[0]:.4f} | - | {allp[1]:.3f} | - | {allp[2]:.4f} | - |")
    print(f"\nOlmix, per seed (random / planned; seeds {seeds})\n| runs | error | regret | Δerror mean ± s.e. | Δregret mean ± s.e. |")
    print("|---|---|---|---|---|")
    for b in budgets:
        r, q = np.array(rows[b]["random"]), np.array(rows[b]["planned"])
        de, dr = q[:, 0] - r[:, 0], q[:, 2] - r[:, 2]
        print(
            f"| {b} | {' '.join(f'{x:.4f}/{y:.4f}' for x, y in zip(r[:, 0], q[:, 0], strict=True))} | "
            f"{' '.join(f'{x:.4f}/{y:.4f}' for x, y in zip(r[:, 2], q[:, 2], strict=True))} | {de.mean():+.4f} ± {_se(de):.4f} | "
            f"{dr.mean():+.4f} ± {_se(dr):.4f} |"
        )


#: Synthetic worlds: candidate sizes, the default design's mixtures per size, the decision's target size.
WORLD_SIZES, WORLD_MIXES, WORLD_POOL, WORLD_TARGET, WORLD_TPP = (2e7, 5e7, 1e8, 3e8), 12, 96, 1e9, 20.0


def _world_regret(world, idx, table, tgt_mix, true_t) -> float:
    from mixopt.errors import NotPredictableError

    model = make_surrogate("regmix", seed=0).fit(table.select_runs(table.run_ids()[np.asarray(idx)]))
    c = 6 * WORLD_TARGET * WORLD_TPP * WORLD_TARGET
    try:
        pred = model.predict(Targets(flops=np.full(len(tgt_mix), c), mixture=tgt_mix, domains=table.domains), intervals=False).get("loss:overall")
    except NotPredictableError:
        return float("inf")
    return float(true_t[int(np.argmin(pred))] - true_t.min())


def _worlds(seeds, draws, how) -> None:
    """Planned ladder vs the default design on synthetic worlds (truth known).

    Per seed: ``mixture_world(3 domains, seed)``; a pool of runs (every size in WORLD_SIZES x
    WORLD_POOL seeded random mixtures, D = 20 N, 0.5 % loss noise, final checkpoint). The
    decision: which of 256 seeded mixtures has the lowest overall loss at N = 1e9, D = 2e10;
    its regret is measured with the world's true loss. Default design: the fixed grid
    WORLD_SIZES x the pool's first WORLD_MIXES mixtures (48 runs); its regret is the target.
    Planned: starts from the 2 smallest sizes x 4 mixtures (in its FLOPs), then batches of 4
    runs from the pool by ``mixopt plan`` (all sizes, per FLOP) until its regret reaches the
    target (or twice the default's FLOPs are spent). Both fit the ``regmix`` surrogate.
    """
    import polars as pl

    from mixopt.data import RunTable
    from mixopt.testing import mixture_world, random_mixtures

    print(f"\nSynthetic worlds (3 domains; sizes {list(WORLD_SIZES)}; target N {WORLD_TARGET:.0e}; seeds {seeds})")
    print("| seed | default runs | default regret (target) | planned runs | planned FLOPs / default | planned regret | random runs | random FLOPs / default |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for seed in seeds:
        w = mixture_world(n_domains=3, n_benchmarks=0, seed=seed)
        mixes = random_mixtures(WORLD_POOL, 3, seed=seed + 1000)
        table = w.sample_runs(list(WORLD_SIZES), mixes, tokens_per_param=WORLD_TPP, n_checkpoints=1, loss_noise=0.005, score_noise=0.0, seed=seed).final()
        f = table.frame  # the decision's quantity: the overall loss, as one loss column regmix predicts
        table = RunTable(f.select("run", "params", "tokens", *[c for c in f.columns if c.startswith("mix:")], pl.col("loss").alias("loss:overall")))
        n = table.params()
        cost = 6 * n * table.tokens()
        mix_i = np.array([int(str(r).rsplit("_m", 1)[1]) for r in table.run_ids()])  # run ids N<size>_m<mixture>
        size_i = np.searchsorted(np.asarray(WORLD_SIZES), n)
        tgt_mix = random_mixtures(256, 3, seed=seed + 2000)
        true_t = w.true_overall_loss(np.full(256, 6 * WORLD_TARGET * WORLD_TPP * WORLD_TARGET), tgt_mix)
        default = np.flatnonzero(mix_i < WORLD_MIXES)
        f_def = float(cost[default].sum())
        target = _world_regret(w, default, table, tgt_mix, true_t)
        revealed = list(np.flatnonzero((mix_i < 4) & (size_i < 2)))
        space = SearchSpace(MixtureSpace(table.domains), ComputeSpace(params=WORLD_TARGET, tokens=WORLD_TPP * WORLD_TARGET))
        c_t = 6 * WORLD_TARGET * WORLD_TPP * WORLD_TARGET
        tgt = Points(mixture=tgt_mix, flops=np.full(256, c_t), params=np.full(256, WORLD_TARGET), tokens=np.full(256, WORLD_TPP * WORLD_TARGET))
        X = table.mixture()
        regret = _world_regret(w, revealed, table, tgt_mix, true_t)
        while regret > target + 1e-12 and cost[revealed].sum() < 2 * f_def:
            model = make_surrogate("regmix", seed=0).fit(table.select_runs(table.run_ids()[np.asarray(revealed)]))
            rest = np.setdiff1d(np.arange(table.n_runs), revealed)
            cand = Points(mixture=X[rest], flops=cost[rest], params=n[rest], tokens=table.tokens()[rest])
            st = PlanSettings(runs=4, n_draws=draws, seed=seed + len(revealed), **how)
            made = Points(mixture=X[revealed], flops=cost[revealed], params=n[revealed], tokens=table.tokens()[revealed])
            p = plan_runs(Problem(space, model, ["loss:overall"]), st, candidates=cand, targets=tgt, existing=made)
            revealed += [int(rest[i]) for i in p.index]
            regret = _world_regret(w, revealed, table, tgt_mix, true_t)
        ratio = float(cost[revealed].sum()) / f_def if regret <= target + 1e-12 else float("inf")
        # baseline in the same run: the same start, then batches of 4 random pool runs (any size)
        start = list(np.flatnonzero((mix_i < 4) & (size_i < 2)))
        rand = start + [int(i) for i in np.random.default_rng([seed, 0x7277]).permutation(np.setdiff1d(np.arange(table.n_runs), start))]
        k, r_regret = len(start), _world_regret(w, start, table, tgt_mix, true_t)
        while r_regret > target + 1e-12 and cost[rand[:k]].sum() < 2 * f_def and k < len(rand):
            k += 4
            r_regret = _world_regret(w, rand[:k], table, tgt_mix, true_t)
        r_ratio = float(cost[rand[:k]].sum()) / f_def if r_regret <= target + 1e-12 else float("inf")
        ratios.append((ratio, r_ratio))
        print(f"| {seed} | {default.size} | {target:.4f} | {len(revealed)} | {ratio:.3f} | {regret:.4f} | {k} | {r_ratio:.3f} |", flush=True)
    r = np.array(ratios)
    for j, name in enumerate(("planned", "random order")):
        print(f"{name}: median FLOPs / default {np.median(r[:, j]):.3f}; seeds at <= 0.5: {int((r[:, j] <= 0.5).sum())}/{len(r)}; not reached within 2x: {int(np.isinf(r[:, j]).sum())}")


def _se(x: np.ndarray) -> float:
    """Standard error of a mean over seeds (NaN for one seed)."""
    return float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")


def _spread(scale: str, budgets, rows, seeds) -> None:
    """Per seed: ρ random and planned (same start, so paired), and the paired difference planned - random:
    its mean, its standard error (std / sqrt(seeds)) and how many seeds planned is ahead, so a mean
    difference can be read against the seeds' own spread."""
    print(f"\n{scale}, per seed (ρ random / planned; seeds {seeds})\n| runs | per seed | Δρ mean | Δρ s.e. | planned ahead |")
    print("|---|---|---|---|---|")
    for b in budgets:
        r, p = np.array(rows[b]["random"])[:, 0], np.array(rows[b]["planned"])[:, 0]
        d = p - r
        se = _se(d)
        cells = " ".join(f"{x:.3f}/{y:.3f}" for x, y in zip(r, p, strict=True))
        print(f"| {b} | {cells} | {d.mean():+.4f} | {se:.4f} | {int((d > 0).sum())}/{d.size} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--criterion", default="decision")
    ap.add_argument("--draws", default="auto", help="plan draws: auto (posterior for regmix), posterior, model")
    ap.add_argument("--coverage", type=float, default=DEFAULT_COVERAGE, help=f"plan coverage: share of each batch picked to cover the decision points (k-median; default {DEFAULT_COVERAGE}, 0: off)")
    ap.add_argument("--fill", default="auto", choices=["auto", "off"], help="plan fill: auto (coverage picks only while the surrogate has fewer runs than linear parameters; default), off")
    ap.add_argument("--scales", default="60M,1.1B")
    ap.add_argument("--surrogate", default="regmix", choices=list(SURROGATES), help="the RegMix section's planner and scorer (default regmix)")
    ap.add_argument("--surrogates", default=",".join(SURROGATES), help="section surrogates: comma-separated subset")
    ap.add_argument("--start", type=int, default=0, help=f"RegMix: random runs the plan starts from (default {START}; 32 for the law surrogates, which need >= 20 runs in 17 domains)")
    ap.add_argument("--fit-domains", default="all", choices=["all", "scored"], help="RegMix: fit every loss domain (all) or Pile-CC alone (scored)")
    ap.add_argument("--section", default="regmix,olmix", help="comma-separated: regmix, olmix, worlds, surrogates")
    ap.add_argument("--budgets", default="", help=f"comma-separated run budgets, multiples of {BATCH} (default 32,64,128)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default 0,1,2; --quick: 0)")
    a = ap.parse_args()
    how = {"criterion": a.criterion, "draws": a.draws, "coverage": a.coverage, "fill": a.fill}
    seeds = [0] if a.quick else [0, 1, 2]
    if a.seeds:
        seeds = [int(x) for x in a.seeds.split(",")]
    budgets = [32, 64] if a.quick else [32, 64, 128]
    if a.budgets:
        budgets = sorted({int(x) for x in a.budgets.split(",")})
        if any(b < 2 * START or b % BATCH or b > 512 for b in budgets):
            ap.error(f"--budgets: each must be a multiple of {BATCH} in [{2 * START}, 512], got {a.budgets!r}")
    draws = 128 if a.quick else 256
    _SURROGATE[0] = a.surrogate
    _START[0] = a.start or (START if SURROGATES[a.surrogate][0] == "regmix" else 2 * START)
    pool = load_regmix(a.data_dir, "train_1m")
    if a.fit_domains == "scored":
        from mixopt.data import RunTable

        pool = RunTable(pool.frame.drop([c for c in pool.frame.columns if c.startswith("loss:") and c != QUANTITY]), pool.benchmarks)
    pool = pool.final()
    bad = [x for x in a.surrogates.split(",") if x not in SURROGATES]
    if bad:
        ap.error(f"--surrogates: unknown {bad}; choose from {list(SURROGATES)} (comma-separated)")
    n1m, t1m = float(np.median(pool.params())), float(np.median(pool.tokens()))
    tests = {"60M": load_regmix(a.data_dir, "test_60m").final(), "1.1B": load_regmix(a.data_dir, "test_1b").final()}
    t0 = time.process_time()
    print(f"RegMix retrospective planning, {QUANTITY}, seeds {seeds}, plan {how}, surrogate {a.surrogate}, start {_START[0]}, fit domains {a.fit_domains}{' (--quick)' if a.quick else ''}")
    tests = {k: v for k, v in tests.items() if k in a.scales.split(",")}
    if "surrogates" in a.section:
        _surrogates(pool, tests, seeds, budgets, a.surrogates.split(","), 6 * n1m * t1m)
    tests = tests if "regmix" in a.section else {}
    for scale, test in tests.items():
        rows = {b: {"random": [], "planned": []} for b in budgets}
        for seed in seeds:
            order = np.random.default_rng([seed, 0x626E]).permutation(pool.n_runs)
            for b in budgets:
                rows[b]["random"].append(_score(_fit(pool, order[:b]), test, 6 * n1m * t1m))
            for b, v in _planned(pool, test, order, budgets, n1m, t1m, draws, seed, how).items():
                rows[b]["planned"].append(v)
        full = _score(_fit(pool, np.arange(pool.n_runs)), test, 6 * n1m * t1m)
        print(f"\n{scale} ({test.n_runs} mixtures)\n| runs | ρ random | ρ planned | regret random | regret planned |")
        print("|---|---|---|---|---|")
        for b in budgets:
            r, p = np.array(rows[b]["random"]), np.array(rows[b]["planned"])
            print(f"| {b} | {r[:, 0].mean():.3f} | {p[:, 0].mean():.3f} | {r[:, 1].mean():.4f} | {p[:, 1].mean():.4f} |")
        print(f"| all 512 | {full[0]:.3f} | - | {full[1]:.4f} | - |")
        _spread(scale, budgets, rows, seeds)
    if "worlds" in a.section:
        _worlds(list(range(1, 11)) if not a.quick else [1, 2, 3], draws, how)
    if "olmix" in a.section:
        _olmix(a, seeds, budgets, draws, how)
    print(f"\nCPU {time.process_time() - t0:.1f} s")


if __name__ == "__main__":
    main()
