"""Retrospective planning on RegMix: planned runs vs random order at equal numbers of runs.

    python benchmarks/bench_plan.py --data-dir ../shared/data [--quick]

The pool is RegMix's 512 ``train_1m`` proxies (1M parameters). Both orders start from the
same 16 seeded random runs. *Random* reveals the next runs of a seeded permutation (RegMix's
recipe); *planned* reveals batches of 16 chosen by :func:`mixopt.search.plan.plan_runs`
(criterion ``decision``; candidates = the unrevealed pool, decision = which of the 60M
(or 1.1B) mixtures has the lowest Pile-CC loss) from a RegMix-style surrogate (kernel ridge,
kind ``regmix``, with joint draws) refitted on the runs revealed so far. At each budget the
surrogate fitted on the revealed runs predicts the 60M / 1.1B mixtures at the 1M compute
(RegMix's protocol) and is scored by Spearman ρ against their measured Pile-CC loss and by
the pick's regret (measured loss of the predicted best minus the best measured loss). The
row "all 512" is every proxy. Figures are means over seeds. ``--quick``: 1 seed, budgets 32
and 64, 128 draws (a quick figure, say so).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mixopt.data.public import load_regmix
from mixopt.search import ComputeSpace, MixtureSpace, Problem, SearchSpace
from mixopt.search.plan import PlanSettings, plan_runs
from mixopt.search.space import Points
from mixopt.surrogate import Targets, make_surrogate

QUANTITY = "loss:pile_cc"
START, BATCH = 16, 16


def _fit(pool, idx):
    return make_surrogate("regmix", seed=0).fit(pool.select_runs([pool.runs[i] for i in idx]))


def _score(model, test, c1m: float) -> tuple[float, float]:
    pred = model.predict(Targets(flops=np.full(test.n_runs, c1m), mixture=test.mixture(), domains=test.domains),
                         intervals=False).get(QUANTITY)
    act = test.column(QUANTITY)
    return float(spearmanr(pred, act)[0]), float(act[int(np.argmin(pred))] - act.min())


def _planned(pool, test, order, budgets, n1m, t1m, draws, seed) -> dict[int, tuple[float, float]]:
    X = pool.mixture()
    revealed = list(order[:START])
    out: dict[int, tuple[float, float]] = {}
    space = SearchSpace(MixtureSpace(pool.domains), ComputeSpace(params=n1m, tokens=t1m))
    tgt = Points(mixture=test.mixture(pool.domains), flops=np.full(test.n_runs, 6 * n1m * t1m),
                 params=np.full(test.n_runs, n1m), tokens=np.full(test.n_runs, t1m))
    while len(revealed) < max(budgets):
        model = _fit(pool, revealed)
        rest = np.setdiff1d(np.arange(pool.n_runs), revealed)
        cand = Points(mixture=X[rest], flops=np.full(rest.size, 6 * n1m * t1m), params=np.full(rest.size, n1m),
                      tokens=np.full(rest.size, t1m))
        st = PlanSettings(runs=BATCH, n_draws=draws, seed=seed + len(revealed))
        p = plan_runs(Problem(space, model, [QUANTITY]), st, candidates=cand, targets=tgt)
        revealed += [int(rest[i]) for i in p.index]
        if len(revealed) in budgets:
            out[len(revealed)] = _score(_fit(pool, revealed), test, 6 * n1m * t1m)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    seeds = [0] if a.quick else [0, 1, 2]
    budgets = [32, 64] if a.quick else [32, 64, 128]
    draws = 128 if a.quick else 256
    pool = load_regmix(a.data_dir, "train_1m").final()
    n1m, t1m = float(np.median(pool.params())), float(np.median(pool.tokens()))
    tests = {"60M": load_regmix(a.data_dir, "test_60m").final(), "1.1B": load_regmix(a.data_dir, "test_1b").final()}
    t0 = time.process_time()
    print(f"RegMix retrospective planning, {QUANTITY}, seeds {seeds}{' (--quick)' if a.quick else ''}")
    for scale, test in tests.items():
        rows = {b: {"random": [], "planned": []} for b in budgets}
        for seed in seeds:
            order = np.random.default_rng([seed, 0x626E]).permutation(pool.n_runs)
            for b in budgets:
                rows[b]["random"].append(_score(_fit(pool, order[:b]), test, 6 * n1m * t1m))
            for b, v in _planned(pool, test, order, budgets, n1m, t1m, draws, seed).items():
                rows[b]["planned"].append(v)
        full = _score(_fit(pool, np.arange(pool.n_runs)), test, 6 * n1m * t1m)
        print(f"\n{scale} ({test.n_runs} mixtures)\n| runs | ρ random | ρ planned | regret random | regret planned |")
        print("|---|---|---|---|---|")
        for b in budgets:
            r, p = np.array(rows[b]["random"]), np.array(rows[b]["planned"])
            print(f"| {b} | {r[:, 0].mean():.3f} | {p[:, 0].mean():.3f} | {r[:, 1].mean():.4f} | {p[:, 1].mean():.4f} |")
        print(f"| all 512 | {full[0]:.3f} | - | {full[1]:.4f} | - |")
    print(f"\nCPU {time.process_time() - t0:.1f} s")


if __name__ == "__main__":
    main()
