"""Decisions, not errors: is the shortlist's rank 1 the right mixture, and is P(best) calibrated?

Over seeded synthetic mixture worlds (``mixture_world(3, 4, seed)``, seeds 1..N), each:

1. sampling runs: 12 random mixtures (Dirichlet(1), seed ``100 + seed``) x sizes
   2e7, 5e7, 1e8, 3e8, 1e9 params at 20 tokens/param (largest run 1.2e20 FLOPs), 4 checkpoints;
2. the surrogate (``--method``, default ``flpm``) fitted on them;
3. a search at the target compute (default 1e21 FLOPs, 8.3x the largest run) for the
   single objective ``mean(score:*)`` (trials/batch below), the shortlist ranked on joint
   draws (:mod:`mixopt.search.decision`, 256 draws, seeded);
4. the world's truth: the true optimum of the objective at the target over 200,000 random
   mixtures, the true value of rank 1, of the old pick (the best predicted mean), and of
   every candidate the decision judged.

Printed: per world the true regret of rank 1 and of the mean-best pick (points: x100 on the
0-1 score scale), rank 1's P(best) and the kind of draws; then, pooled over worlds, the
calibration of P(best) (candidates binned by P(best): mean P(best) vs the share that is
the true best among the candidates) and of P(within epsilon) (share within epsilon of the
true best), with the expected calibration error (ECE, weighted by bin counts).
Targets (issue 19): regret of rank 1 <= 0.5 points; P(best) calibrated (ECE small, bins on
the diagonal). Every figure is seeded; nothing reads a clock except the CPU-seconds line.

Run:  python benchmarks/bench_decisions.py [--quick] [--seeds 10] [--method flpm] [--flops 1e21]
(``--quick``: 3 worlds, 600 trials.)
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from mixopt.search import ComputeSpace, MixtureSpace, Problem, SearchSpace, run_study
from mixopt.search.decision import DEFAULT_EPSILON
from mixopt.surrogate.base import make_surrogate
from mixopt.testing import mixture_world

SIZES = (2e7, 5e7, 1e8, 3e8, 1e9)
OBJECTIVE = "mean(score:*)"
BINS = (0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0 + 1e-9)


def true_objective(world, flops: float, mixtures: np.ndarray) -> np.ndarray:
    """The objective (mean of every score) at the truth."""
    return world.true_scores(np.full(len(mixtures), flops), mixtures).mean(axis=1)


def one_world(seed: int, *, method: str, flops: float, trials: int, batch: int) -> dict:
    world = mixture_world(3, 4, seed=seed)
    runs = world.sample_runs(SIZES, world.random_mixtures(12, seed=100 + seed), n_checkpoints=4, seed=200 + seed)
    t0 = time.process_time()
    surrogate = make_surrogate(method).fit(runs)
    fit_cpu = time.process_time() - t0
    space = SearchSpace(MixtureSpace(world.domains), ComputeSpace(flops=flops))
    t0 = time.process_time()
    res = run_study(Problem(space, surrogate, [OBJECTIVE]), trials=trials, batch_size=batch, seed=seed, progress=False)
    search_cpu = time.process_time() - t0
    dom = [f"mix:{d}" for d in world.domains]
    opt = float(true_objective(world, flops, world.random_mixtures(200_000, seed=7)).max())
    rank1 = true_objective(world, flops, np.array([[res.best[c] for c in dom]]))[0]
    mean_best = res.pareto.sort(f"obj:{OBJECTIVE}", descending=True).row(0, named=True)
    old = true_objective(world, flops, np.array([[mean_best[c] for c in dom]]))[0]
    c = res.candidates.filter(res.candidates["eligible"])
    truth = true_objective(world, flops, c.select(dom).to_numpy())
    best_true = truth.max()
    return {
        "seed": seed, "regret": 100 * (opt - rank1), "regret_mean_best": 100 * (opt - old),
        "p_best": res.decision["picks"][0]["p_best"], "kind": res.decision["draws"]["kind"],
        "n_candidates": c.height, "ratio": res.decision["extrapolation"]["compute_ratio"],
        "cand_p_best": c["p_best"].to_numpy(), "cand_is_best": truth == best_true,
        "cand_p_near": c["p_within_epsilon"].to_numpy(), "cand_is_near": truth >= best_true - DEFAULT_EPSILON,
        "fit_cpu": fit_cpu, "search_cpu": search_cpu,
    }


def calibration(p: np.ndarray, hit: np.ndarray) -> tuple[list[tuple[str, int, float, float]], float]:
    rows, ece = [], 0.0
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        m = (p >= lo) & (p < hi)
        if m.any():
            rows.append((f"[{lo:.2f}, {min(hi, 1):.2f}]", int(m.sum()), float(p[m].mean()), float(hit[m].mean())))
            ece += m.sum() * abs(p[m].mean() - hit[m].mean())
    return rows, ece / max(len(p), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 worlds, 600 trials")
    ap.add_argument("--seeds", type=int, default=10, help="worlds (seeds 1..N)")
    ap.add_argument("--method", default="flpm", help="surrogate method (default flpm)")
    ap.add_argument("--flops", type=float, default=1e21, help="target compute in FLOPs (default 1e21)")
    ap.add_argument("--trials", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = range(1, (3 if args.quick else args.seeds) + 1)
    trials = 600 if args.quick else args.trials
    out = []
    print(f"decisions: mixture_world(3, 4, seed), {len(seeds)} worlds, method {args.method}, target {args.flops:.3g} FLOPs, "
          f"objective {OBJECTIVE}, {trials} trials, epsilon {DEFAULT_EPSILON}" + (" (--quick)" if args.quick else ""))
    print(f"{'seed':>4} {'x run':>6} {'regret rank1':>12} {'regret mean-best':>16} {'P(best) #1':>10} {'cands':>6} {'draws':>11} "
          f"{'fit CPU-s':>9} {'search CPU-s':>12}")
    for s in seeds:
        r = one_world(s, method=args.method, flops=args.flops, trials=trials, batch=args.batch)
        out.append(r)
        print(f"{r['seed']:>4} {r['ratio'] or float('nan'):>6.3g} {r['regret']:>12.3f} {r['regret_mean_best']:>16.3f} "
              f"{r['p_best']:>10.2f} {r['n_candidates']:>6} {r['kind']:>11} {r['fit_cpu']:>9.1f} {r['search_cpu']:>12.1f}")
    reg = np.array([r["regret"] for r in out])
    old = np.array([r["regret_mean_best"] for r in out])
    print(f"true regret of rank 1 (points): median {np.median(reg):.3f}, max {reg.max():.3f}, "
          f"<= 0.5 on {int(np.sum(reg <= 0.5))}/{len(reg)} worlds (target <= 0.5); "
          f"mean-best pick: median {np.median(old):.3f}, max {old.max():.3f}")
    p1 = np.array([r["p_best"] for r in out])
    hit1 = np.array([r["cand_is_best"][np.argmax(r["cand_p_best"])] for r in out], dtype=float)
    print(f"rank 1: mean P(best) {p1.mean():.3f}, truly the best candidate in {hit1.mean():.3f} of the worlds")
    for what, pk, hk in (("P(best)", "cand_p_best", "cand_is_best"), (f"P(within {DEFAULT_EPSILON})", "cand_p_near", "cand_is_near")):
        p = np.concatenate([r[pk] for r in out])
        hit = np.concatenate([r[hk] for r in out]).astype(float)
        rows, ece = calibration(p, hit)
        print(f"calibration of {what}, pooled over {len(out)} worlds ({len(p)} candidates): ECE {ece:.3f}")
        print(f"  {'bin':>14} {'n':>6} {'mean p':>8} {'observed':>9}")
        for b, n, mp, ob in rows:
            print(f"  {b:>14} {n:>6} {mp:>8.3f} {ob:>9.3f}")


if __name__ == "__main__":
    main()
