"""FLP vs FP: extrapolation error on synthetic worlds and on real public data; fit time.

Prints three tables:

(a) synthetic single-domain worlds (several seeds): sampling runs 2e7..1e9 params at 20
    tokens/param, 10 checkpoints each; predict a model with 10x and 30x the compute of the
    largest sampling run (compute-optimal: N and D both scaled by sqrt(k)) and compare with
    the world's true score. Relative error |pred - true| / true per benchmark.
(b) real data, Gadre et al. 2024 (``../shared/data/gadre-scaling``): per training set, fit on
    models <= 0.411B params, predict the 1.4B and 6.9B models; loss relative error and the
    relative error of the average score over the benchmarks FLP can predict.
(c) fit time of FLP vs the number of runs (50 checkpoints each), with FP as baseline.
(d) the issue-11 protocol: ``mixopt simulate --world single --sizes 2e7,5e7,1e8,2e8,4e8,7e8,1e9,3e9
    --seed S`` (10 checkpoints, 0.5% loss / 0.005 score noise), hold out 1e9 and 3e9, predict their
    final checkpoints with FLP default (auto), FLP preset="paper" and FP; median relative score error
    and 90% coverage over seeds 0..N-1 (N >= 10).

Run:  python benchmarks/bench_flp.py [--quick] [--only d] [--seeds 10] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl

from mixopt.surrogate import Targets, make_surrogate
from mixopt.testing import single_domain_world

pl.Config.set_tbl_rows(100)
pl.Config.set_tbl_width_chars(160)
pl.Config.set_float_precision(4)


SIZES = np.geomspace(2e7, 1.5e9, 12).tolist()  # 12 sampling models, as in the paper
LOSS_NOISE, SCORE_NOISE = 0.002, 0.005


def synthetic(seeds: list[int], factors=(10.0, 30.0)) -> pl.DataFrame:
    rows = []
    for seed in seeds:
        world = single_domain_world(seed=seed)
        runs = world.sample_runs(SIZES, None, tokens_per_param=20, n_checkpoints=10, loss_noise=LOSS_NOISE, score_noise=SCORE_NOISE, seed=seed)
        c_max = runs.final().flops().max()
        models = {
            "flp": make_surrogate("flp", seed=seed).fit(runs),
            "flp_sigmoid": make_surrogate("flp", stage2="sigmoid", seed=seed).fit(runs),
            "fp": make_surrogate("fp", seed=seed).fit(runs),
        }
        for k in factors:
            flops = np.array([c_max * k])
            truth = world.true_scores(flops, None)[0]
            for name, model in models.items():
                pred = model.predict(Targets(flops=flops), intervals=True)
                for j, b in enumerate(world.benchmark_names):
                    q = f"score:{b}"
                    if q in model.unpredictable_:
                        rows.append({"seed": seed, "factor": k, "method": name, "benchmark": b, "rel_error": None, "covered": None})
                        continue
                    mu = pred.get(q)[0]
                    lo, hi = pred.interval(q)
                    rows.append({
                        "seed": seed, "factor": k, "method": name, "benchmark": b,
                        "rel_error": abs(mu - truth[j]) / abs(truth[j]),
                        "covered": bool(lo[0] <= truth[j] <= hi[0]),
                    })
    return pl.DataFrame(rows)


def gadre(data_dir: Path) -> pl.DataFrame:
    from mixopt.backtest import compare
    from mixopt.data.public import load_gadre

    rows = []
    for dataset in ("c4_original", "rpj", "rw_original"):
        runs = load_gadre(data_dir, dataset=dataset)
        for stage1 in ("power_offset", "pure_power"):
            results, _ = compare(runs, ["flp", "fp"], settings={"flp": {"stage1": stage1}}, holdout_min_params=1e9)
            for r in results:
                df = r.rows
                if df.height == 0:
                    continue
                loss = df.filter(pl.col("quantity") == "loss")
                scores = df.filter(pl.col("quantity").str.starts_with("score:"))
                per_model = scores.group_by("run").agg(pl.col("predicted").mean(), pl.col("actual").mean(), pl.col("params").first())
                for m in per_model.iter_rows(named=True):
                    lrow = loss.filter(pl.col("run") == m["run"])
                    rows.append({
                        "dataset": dataset,
                        "stage1": stage1 if r.method == "flp" else "-",
                        "method": r.method,
                        "target": m["run"],
                        "params": m["params"],
                        "loss_rel_err": float(lrow["rel_error"][0]) if lrow.height else None,
                        "n_bench": scores.filter(pl.col("run") == m["run"]).height,
                        "avg_score_pred": m["predicted"],
                        "avg_score_true": m["actual"],
                        "avg_score_rel_err": abs(m["predicted"] - m["actual"]) / m["actual"],
                    })
    return pl.DataFrame(rows).unique(maintain_order=True)


def issue_protocol(seeds: list[int]) -> pl.DataFrame:
    from mixopt.backtest import compare

    rows = []
    for seed in seeds:
        world = single_domain_world(seed=seed)
        runs = world.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8, 7e8, 1e9, 3e9], None, tokens_per_param=20.0, n_checkpoints=10,
                                 loss_noise=0.005, score_noise=0.005, seed=seed)
        settings = {"flp": {}, "fp": {}}
        results, _ = compare(runs, ["flp", "fp"], settings=settings, holdout_min_params=1e9)
        from mixopt.backtest import backtest

        results.append(backtest(runs, "flp", settings={"preset": "paper"}, holdout_min_params=1e9))
        for name, r in zip(["flp_default", "fp", "flp_paper"], results, strict=True):
            sc = r.rows.filter(pl.col("quantity").str.starts_with("score:"))
            for row in sc.iter_rows(named=True):
                rows.append({"seed": seed, "method": name, "run": row["run"], "quantity": row["quantity"],
                             "rel_error": row["rel_error"], "covered": row["covered"]})
            lo = r.rows.filter(pl.col("quantity") == "loss")
            for row in lo.iter_rows(named=True):
                rows.append({"seed": seed, "method": name, "run": row["run"], "quantity": "loss",
                             "rel_error": row["rel_error"], "covered": row["covered"]})
    return pl.DataFrame(rows)


def fit_time(n_runs_list: list[int], repeats: int = 3) -> pl.DataFrame:
    rows = []
    world = single_domain_world(seed=0)
    for n_runs in n_runs_list:
        sizes = np.geomspace(2e7, 1.5e9, n_runs)  # one run per size
        runs = world.sample_runs(sizes.tolist(), None, n_checkpoints=50, seed=1)
        times = {}
        for method in ("fp", "flp"):
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                make_surrogate(method, seed=0).fit(runs)
                ts.append(time.perf_counter() - t0)
            times[method] = min(ts)
        rows.append({"runs": n_runs, "checkpoints": len(runs), "fp_fit_s": times["fp"], "flp_fit_s": times["flp"],
                     "flp/fp": times["flp"] / times["fp"]})
    return pl.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and sizes")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--only", default="abcd", help="sections to run, e.g. 'd'")
    ap.add_argument("--seeds", type=int, default=10, help="seeds of section (d)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if "d" in args.only:
        seeds_d = list(range(args.seeds))
        d = issue_protocol(seeds_d)
        print(f"(d) issue-11 protocol, seeds {seeds_d}: hold out 1e9 and 3e9 from sizes 2e7..3e9")
        per_seed = d.filter(pl.col("quantity") != "loss").group_by("method", "seed").agg(
            pl.col("rel_error").median().alias("median_score_err"))
        print(per_seed.pivot(on="method", index="seed", values="median_score_err").sort("seed"))
        print(d.group_by("method", pl.col("quantity") == "loss").agg(
            pl.col("rel_error").median().alias("median_rel_err"),
            pl.col("rel_error").quantile(0.9).alias("p90_rel_err"),
            pl.col("covered").cast(pl.Float64).mean().alias("coverage90")).sort("method"))
        print("per benchmark: median relative error over seeds and held-out models (FLP must beat FP on each):")
        print(d.filter(pl.col("quantity") != "loss").group_by("quantity", "method").agg(
            pl.col("rel_error").median()).pivot(on="method", index="quantity", values="rel_error").sort("quantity"))
        print("median over seeds of the per-seed median score error:")
        print(per_seed.group_by("method").agg(pl.col("median_score_err").median()).sort("method"))
        if args.only == "d":
            return

    seeds = [0, 1, 2] if args.quick else list(range(8))
    syn = synthetic(seeds)
    print("(a) synthetic single-domain worlds: relative error of the predicted score at k x the largest sampling compute")
    print(f"    seeds={seeds}; 12 sampling sizes 2e7..1.5e9 params, 20 tokens/param, 10 checkpoints, "
          f"loss noise {LOSS_NOISE:.1%} (relative), score noise {SCORE_NOISE} (absolute)")
    summ = (
        syn.group_by("factor", "benchmark", "method")
        .agg(pl.col("rel_error").median().alias("median_rel_err"), pl.col("covered").mean().alias("coverage90"))
        .sort("factor", "benchmark", "method")
    )
    print(summ)
    wide = summ.pivot(on="method", index=["factor", "benchmark"], values="median_rel_err")
    wide = wide.with_columns((pl.col("flp") < pl.col("fp")).alias("flp_beats_fp"),
                             (pl.col("flp_sigmoid") < pl.col("fp")).alias("flp_sigmoid_beats_fp"))
    print(wide)
    for k in sorted(syn["factor"].unique()):
        for m in ("flp", "flp_sigmoid", "fp"):
            s = syn.filter((pl.col("factor") == k) & (pl.col("method") == m))["rel_error"]
            print(f"    {m:12s} median relative error at {k:g}x over all benchmarks and seeds: {s.median():.4f}")

    data_dir = Path(args.data_dir)
    if (data_dir / "gadre-scaling").is_dir():
        print("\n(b) Gadre et al. 2024: fit on <= 0.411B params, predict 1.4B and 6.9B (final checkpoints only)")
        g = gadre(data_dir)
        print(g.sort("dataset", "target", "method", "stage1"))
        print(g.group_by("method", "stage1").agg(
            pl.col("loss_rel_err").median().alias("median_loss_rel_err"),
            pl.col("loss_rel_err").max().alias("max_loss_rel_err"),
            pl.col("avg_score_rel_err").median().alias("median_avg_score_rel_err"),
        ).sort("method", "stage1"))
    else:
        print(f"\n(b) skipped: {data_dir}/gadre-scaling not found")

    n_list = [10, 30, 100] if args.quick else [10, 30, 100, 300]
    print("\n(c) fit time (best of 3, seconds) vs number of runs x 50 checkpoints; FP is the baseline")
    print(fit_time(n_list))


if __name__ == "__main__":
    main()
