"""Validation training jobs (GitHub issue 12): speed and what the example ladder supports.

Prints four tables:

(0) this CPU's matrix-product peak: square fp32 and bf16 products, 1 thread and all threads,
    GFLOP per CPU-second (and per wall second);
(1) reference-trainer training speed per version (``kernels`` v1 to v4; forward + backward +
    clip + AdamW, no evaluation) at the ladder's sizes, 1 thread, in CPU-seconds, best of
    ``--repeats`` passes that alternate the versions (a loaded machine slows single passes), each
    version in a fresh process as a training job runs (v4 sets the process's allocator): tokens/s,
    the FLOP rate (6N per token; and 6N + causal attention), its fraction of the best peak in (0)
    and of the peak of the precision it ran in; bf16 autocast only where (0) shows bf16 faster than
    fp32; and the shipped ladder's re-train time estimated from these per-size speeds in the
    precision the trainer picks on this CPU (target <= 8 min quiet);
(1b) roofline: the rate of the matrix products of one 600K training step at their actual shapes
    (2048 tokens x 128 -> 384 etc., forward and both backward products, the tied head and the
    attention products), measured alone in the same run: the step's 6N rate if nothing but these
    products took time, so the fraction of the square-product peak these shapes allow at all;
(2) wall time of the example ladder (configs/ladder.toml) from its recorded log
    (mixopt/examples/ladder_runs.run.json: start/end, `uptime` load at both ends, per-job
    wall times); ``--rerun-ladder`` trains it again into a temporary table instead;
(3) FLP-M fitted on the ladder's smaller models predicting the largest models' per-domain
    losses and cloze scores (final checkpoints): median / max relative error and 90 %
    interval coverage, next to DML and RegMix-style regression fitted on the same split
    (the anchors), through ``mixopt.backtest.compare``;
(4) 2 Ray workers vs 1 on the same batch of reference-trainer jobs (speed-up = wall(1) / wall(2)),
    and (4b) on jobs that only wait, which isolates Ray's concurrency from the CPU share.

Every figure is measured on the machine it runs on; on a shared, loaded machine compare the
ratios, not the absolute numbers (the `uptime` load is printed).

Run:  python benchmarks/bench_train.py [--quick] [--skip-ray] [--rerun-ladder] [--repeats 3] [--sizes 6e5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
LADDER_TABLE = ROOT / "mixopt" / "examples" / "ladder_runs.csv"
LADDER_LOG = ROOT / "mixopt" / "examples" / "ladder_runs.run.json"
LOSS_TARGET, SCORE_TARGET = 0.03, 0.10


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def matmul_peak(threads: list[int], sizes=(256, 512, 1024)) -> pl.DataFrame:
    """This CPU's matrix-product speed: best of square fp32 and bf16 products, GFLOP per CPU-second
    (1 thread: per CPU-second is per second of a quiet core) and per wall second."""
    import torch

    rows = []
    for th in threads:
        torch.set_num_threads(th)
        for dt in (torch.float32, torch.bfloat16):
            best_cpu = best_wall = 0.0
            for n in sizes:
                a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
                c0 = time.process_time()
                a @ b
                one = max(time.process_time() - c0, 1e-4)
                reps = max(2, int(0.5 * th / one))  # about half a second of each thread
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(reps):
                    a @ b
                c, w = time.process_time() - c0, time.perf_counter() - w0
                best_cpu, best_wall = max(best_cpu, 2 * n**3 * reps / c / 1e9), max(best_wall, 2 * n**3 * reps / w / 1e9)
                if best_cpu < 5:  # no units for this type (bf16 without AVX-512/AMX): larger sizes only take longer
                    break
            rows.append({"threads": th, "dtype": str(dt).removeprefix("torch."), "GF_per_cpu_s": round(best_cpu, 1),
                         "GF_per_wall_s": round(best_wall, 1)})
    torch.set_num_threads(1)
    return pl.DataFrame(rows)


def _step_flops(layers: int, width: int, context: int) -> tuple[float, float]:
    """Training FLOPs per token: 6N, and 6N + causal attention (6·layers·context·width: the score
    and value products over the T/2 earlier positions on average, forward and backward)."""
    from mixopt.train.reference import non_embedding_params

    six_n = 6.0 * non_embedding_params(layers, width)
    return six_n, six_n + 6.0 * layers * context * width


def train_step(model, opt, x, *, bf16: bool, forward=None) -> None:
    """One training step as the reference trainer takes it (forward under bf16 autocast when ``bf16``, fp32
    cross-entropy, backward, gradient clipping at 1, the optimiser's step) on the ``(B, T + 1)`` byte rows ``x``;
    ``forward``: the callable run forward (a compiled ``model``; default ``model`` itself)."""
    import torch
    from torch.nn import functional as F

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = (model if forward is None else forward)(x[:, :-1])
    loss = F.cross_entropy(logits.float().reshape(-1, 256), x[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def throughput(sizes: list[float], steps: int, bf16: bool, batch: int = 8, context: int = 256, repeats: int = 1,
               versions: tuple[str, ...] = ("v1", "v2", "v3", "v4")) -> pl.DataFrame:
    """Training steps (forward, backward, clip, AdamW; no evaluation) of the reference trainer's
    model per version (``kernels``), 1 thread, measured in CPU-seconds; the best of ``repeats``
    passes, each pass measuring every size, version and precision once (so they alternate)."""
    import torch

    from mixopt.train.reference import _model_classes, non_embedding_params, shape_for_params

    torch.set_num_threads(1)
    best: dict[tuple, dict] = {}
    gen = torch.Generator().manual_seed(0)
    for _ in range(repeats):
        for n in sizes:
            for kernels in versions:
                layers, width, heads = shape_for_params(n, kernels)
                for half in ((False, True) if bf16 else (False,)):
                    gelu, attention = {"v1": ("none", "sdpa"), "v2": ("tanh", "sdpa"), "v3": ("none", "matmul" if half else "sdpa"),
                                       "v4": ("none", "fused" if half else "sdpa")}[kernels]
                    model = _model_classes(gelu, attention)(layers, width, heads, context)
                    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **({"fused": True} if kernels != "v1" else {}))
                    x = torch.randint(0, 256, (batch, context + 1), generator=gen)
                    c0 = 0.0
                    for i in range(steps + 2):
                        if i == 2:
                            c0 = time.process_time()
                        train_step(model, opt, x, bf16=half)
                    tps = steps * batch * context / (time.process_time() - c0)
                    key = (n, kernels, half)
                    if key in best and best[key]["tokens_per_cpu_s"] >= tps:
                        continue
                    f6, fa = _step_flops(layers, width, context)
                    best[key] = {"size": n, "kernels": kernels, "shape": f"{layers}x{width}/{heads}",
                                 "params": non_embedding_params(layers, width), "precision": "bf16" if half else "fp32",
                                 "tokens_per_cpu_s": round(tps), "GF_6N": round(tps * f6 / 1e9, 1),
                                 "GF_6N_attn": round(tps * fa / 1e9, 1)}
    return pl.DataFrame(list(best.values()))


def throughput_per_process(sizes: list[float], steps: int, bf16: bool, repeats: int,
                           versions: tuple[str, ...] = ("v1", "v2", "v3", "v4")) -> pl.DataFrame:
    """:func:`throughput`, each version measured in a fresh process (as a training job runs: v4 sets the process's
    allocator, which would otherwise carry over to the versions measured after it), ``repeats`` alternating passes."""
    import sys

    best: dict[tuple, dict] = {}
    for _ in range(repeats):
        for kernels in versions:
            arg = json.dumps({"sizes": sizes, "steps": steps, "bf16": bf16, "versions": [kernels]})
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--throughput-worker", arg], capture_output=True,
                                 text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
            for row in json.loads(out.strip().splitlines()[-1]):
                key = (row["size"], row["kernels"], row["precision"])
                if key not in best or row["tokens_per_cpu_s"] > best[key]["tokens_per_cpu_s"]:
                    best[key] = row
    return pl.DataFrame(list(best.values()))


def _throughput_worker(arg: str) -> None:
    a = json.loads(arg)
    if "v4" in a["versions"]:
        from mixopt.train.reference import _keep_freed_memory

        _keep_freed_memory()  # as the trainer does for a v4 job on a CPU
    tp = throughput(a["sizes"], steps=a["steps"], bf16=a["bf16"], versions=tuple(a["versions"]))
    print(json.dumps(tp.to_dicts()))


def roofline(layers: int, width: int, heads: int, batch: int = 8, context: int = 256, repeats: int = 3) -> dict:
    """The matrix products of one training step of a ``layers`` x ``width`` model with ``heads`` heads, in bf16 (the
    trainer's precision on a CPU with bf16 units), 1 thread, each timed alone (CPU-seconds, best of ``repeats``): per
    block the four linear layers' forward, input-gradient and weight-gradient products (weights stored out x in, as
    torch's Linear), the tied head's three, and the six attention products of the full t x t scores (the causal mask
    does not skip the upper half). Returns their rate and the 6N rate of a step made of nothing else."""
    import torch

    torch.set_num_threads(1)
    m, e, bh = batch * context, width // heads, batch * heads
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(torch.bfloat16)

    prods = []  # (name, count per step, fn, flops)
    for din, dout, n in ((width, 3 * width, layers), (width, width, layers), (width, 4 * width, layers), (4 * width, width, layers), (width, 256, 1)):
        x, w, dy = r(m, din), r(dout, din), r(m, dout)
        fl = 2.0 * m * din * dout
        prods += [(f"{m}x{din} @ {din}x{dout} (forward)", n, lambda x=x, w=w: x @ w.t(), fl),
                  (f"{m}x{dout} @ {dout}x{din} (input grad)", n, lambda dy=dy, w=w: dy @ w, fl),
                  (f"{dout}x{m} @ {m}x{din} (weight grad)", n, lambda dy=dy, x=x: dy.t() @ x, fl)]
    q, k, p, dy = r(bh, context, e), r(bh, context, e), r(bh, context, context), r(bh, context, e)
    fl = 2.0 * bh * context * context * e
    prods += [(f"{bh}x({context}x{e} @ {e}x{context}) scores", layers, lambda: torch.bmm(q, k.transpose(1, 2)), fl),
              (f"{bh}x({context}x{context} @ {context}x{e}) values", layers, lambda: torch.bmm(p, k), fl),
              ("attention backward (4 products)", layers, lambda: (torch.bmm(dy, k.transpose(1, 2)), torch.bmm(p, q),
                                                                   torch.bmm(p.transpose(1, 2), q), torch.bmm(p.transpose(1, 2), dy)), 4 * fl)]
    rows, total_s, total_fl = [], 0.0, 0.0
    for name, n, fn, flop in prods:
        fn()
        reps = 20
        best = float("inf")
        for _ in range(repeats):
            c0 = time.process_time()
            for _ in range(reps):
                fn()
            best = min(best, (time.process_time() - c0) / reps)
        rows.append({"product": name, "per_step": n, "GF_per_cpu_s": round(flop / best / 1e9, 1)})
        total_s += n * best
        total_fl += n * flop
    f6, _ = _step_flops(layers, width, context)
    return {"products": rows, "matmul_s_per_step": total_s, "matmul_GF_per_cpu_s": round(total_fl / total_s / 1e9, 1),
            "six_n_share_of_product_flops": round(f6 * m / total_fl, 3), "six_n_GF_if_only_products": round(f6 * m / total_s / 1e9, 1)}


def ladder_estimate(tp: pl.DataFrame, kernels: str) -> dict:
    """configs/ladder.toml re-trained with trainer version ``kernels``, estimated from the per-size
    speeds above (CPU-seconds, so a loaded machine inflates it less) in the precision the trainer
    picks here (``bf16 = "auto"``): training tokens plus evaluation (forward only, counted as a third
    of a training token), runs spread over ``max_parallel`` single-threaded jobs."""
    from mixopt.config import load_train_config
    from mixopt.train.ladder import ladder_jobs
    from mixopt.train.reference import ReferenceOptions, _bf16_enabled

    cfg = load_train_config(ROOT / "configs" / "ladder.toml")
    o = ReferenceOptions.from_mapping(cfg.trainer.ref().settings)
    jobs = ladder_jobs(cfg)
    precision = "bf16" if _bf16_enabled(o.bf16) and "bf16" in tp["precision"].to_list() else "fp32"
    rows = tp.filter((pl.col("kernels") == kernels) & (pl.col("precision") == precision))
    speed = dict(zip(rows["size"].to_list(), rows["tokens_per_cpu_s"].to_list(), strict=True))
    total = 0.0
    for j in jobs:
        domains = len(j.mixture)
        eval_tokens = j.checkpoints * domains * (o.eval_windows * o.context + 4 * o.cloze_items * (o.cloze_context + 24))
        total += (j.tokens + eval_tokens / 3) / speed[j.params]
    par = min(cfg.trainer.max_parallel, os.cpu_count() or 1)
    return {"kernels": kernels, "precision": precision, "runs": len(jobs), "cpu_s": round(total), "estimated_wall_min_quiet": round(total / par / 60, 1),
            "target_min": 8}


def ladder_wall(rerun: bool) -> dict:
    if rerun:
        from mixopt.config import load_train_config
        from mixopt.train.ladder import run_ladder

        before = _load()
        with tempfile.TemporaryDirectory() as tmp:
            rep = run_ladder(load_train_config(ROOT / "configs" / "ladder.toml"), output=Path(tmp) / "ladder.csv")
        return {"source": "re-run now", "wall_s": rep.wall_s, "uptime_start": before, "uptime_end": _load(),
                "failed": [r.spec.run_id for r in rep.failed]}
    if not LADDER_LOG.is_file():
        return {"source": f"missing {LADDER_LOG}"}
    d = json.loads(LADDER_LOG.read_text())
    return {"source": str(LADDER_LOG.relative_to(ROOT)), **{k: d[k] for k in ("wall_s", "started", "ended", "uptime_start", "uptime_end") if k in d}}


def ladder_backtest(methods: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    from mixopt.backtest import compare
    from mixopt.data.readers import read_runs

    runs = read_runs(LADDER_TABLE)
    largest = float(np.max(runs.params()))
    results, _ = compare(runs, methods, holdout_min_params=largest, level=0.9)
    per_q = pl.concat([r.summary() for r in results], how="vertical")
    rows = pl.concat([r.rows.with_columns(pl.lit(r.method).alias("method")) for r in results], how="diagonal_relaxed")
    kinds = (rows.with_columns(pl.col("quantity").str.split(":").list.first().alias("kind"))
             .group_by(["method", "kind"], maintain_order=True)
             .agg(pl.len().alias("n"), pl.col("rel_error").median().alias("median_rel_error"),
                  pl.col("rel_error").max().alias("max_rel_error"), pl.col("covered").cast(pl.Float64).mean().alias("coverage_90")))
    kinds = kinds.with_columns(pl.when(pl.col("kind") == "loss").then(LOSS_TARGET).otherwise(SCORE_TARGET).alias("target"))
    kinds = kinds.with_columns((pl.col("median_rel_error") <= pl.col("target")).alias("median_within_target"))
    return per_q, kinds


def ray_speedup(n_jobs: int, tokens: float) -> pl.DataFrame:
    from mixopt.train.corpus import fixture_corpus
    from mixopt.train.executors import TrainerRef
    from mixopt.train.ray_executor import RayJobExecutor
    from mixopt.train.spec import JobSpec

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = fixture_corpus(Path(tmp) / "corpus")
        ref = TrainerRef(kind="reference", settings={"corpus": str(corpus), "threads": 1, "cloze_items": 50})
        jobs = [JobSpec(run_id=f"j{i}", mixture={"prose": 0.25, "code": 0.25, "docs": 0.25, "math": 0.25}, params=4e4,
                        tokens=tokens, seed=i, checkpoints=2) for i in range(n_jobs)]
        ex = RayJobExecutor(max_parallel=1, num_cpus=2)
        try:
            ex.run(jobs[:1], ref, Path(tmp) / "warm", timeout_s=600)  # warm the Ray worker pool
            for workers in (1, 2):
                ex.max_parallel = workers
                t0 = time.perf_counter()
                res = ex.run(jobs, ref, Path(tmp) / f"w{workers}", timeout_s=600)
                rows.append({"workers": workers, "jobs": n_jobs, "wall_s": time.perf_counter() - t0,
                             "ok": sum(r.ok for r in res)})
        finally:
            ex.close()
    df = pl.DataFrame(rows)
    return df.with_columns((df["wall_s"][0] / pl.col("wall_s")).alias("speedup_vs_1"))


def ray_concurrency(n_jobs: int, sleep_s: float) -> pl.DataFrame:
    """The same 1-vs-2-worker comparison on jobs that only wait (a cluster job's queue time):
    separates Ray's concurrency from the CPU share a loaded machine leaves to training."""
    import sys

    from mixopt.train.executors import TrainerRef
    from mixopt.train.ray_executor import RayJobExecutor
    from mixopt.train.spec import JobSpec

    ref = TrainerRef(kind="command", settings={"command": f"{sys.executable} -c 'import time; time.sleep({sleep_s})'"})
    jobs = [JobSpec(run_id=f"w{i}", mixture={"a": 1.0}, params=1, tokens=1) for i in range(n_jobs)]
    rows = []
    ex = RayJobExecutor(max_parallel=1, num_cpus=2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ex.run(jobs[:1], ref, Path(tmp) / "warm", timeout_s=600)
            for workers in (1, 2):
                ex.max_parallel = workers
                t0 = time.perf_counter()
                ex.run(jobs, ref, Path(tmp) / f"w{workers}", timeout_s=600)  # they write no results: 'failed' by design
                rows.append({"workers": workers, "jobs": n_jobs, "wall_s": time.perf_counter() - t0})
    finally:
        ex.close()
    df = pl.DataFrame(rows)
    return df.with_columns((df["wall_s"][0] / pl.col("wall_s")).alias("speedup_vs_1"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and jobs")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--rerun-ladder", action="store_true", help="train the example ladder again (minutes) instead of reading its log")
    ap.add_argument("--methods", default="flpm,dml,regmix")
    ap.add_argument("--repeats", type=int, default=3, help="passes of the training-speed table (the best of them is kept)")
    ap.add_argument("--sizes", default="4e4,1.2e5,2.5e5,6e5", help="ladder sizes N of the training-speed table (the ladder estimate needs all four)")
    ap.add_argument("--throughput-worker", default=None, help=argparse.SUPPRESS)  # one version's pass, in its own process
    args = ap.parse_args()
    if args.throughput_worker:
        _throughput_worker(args.throughput_worker)
        return
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(20)
    pl.Config.set_tbl_width_chars(200)
    print(f"load at start: {_load()}")

    print("\n(0) this CPU's matrix-product peak (square fp32 / bf16 products, best size)")
    peak = matmul_peak(sorted({1, os.cpu_count() or 1}))
    print(peak)
    one = peak.filter(pl.col("threads") == 1)
    best = one.sort("GF_per_cpu_s", descending=True).row(0, named=True)
    bf16_pays = one.filter(pl.col("dtype") == "bfloat16")["GF_per_cpu_s"][0] > one.filter(pl.col("dtype") == "float32")["GF_per_cpu_s"][0]
    print(f"  peak used below: {best['GF_per_cpu_s']} GF/CPU-s ({best['dtype']}, 1 thread); bf16 autocast measured "
          f"{'as well' if bf16_pays else 'not at all: bf16 has no fast units on this CPU'}")

    sizes = [float(x) for x in args.sizes.split(",") if x.strip()]
    print(f"\n(1) reference-trainer training speed, 1 thread, batch 8 x 256 bytes (training only, CPU-seconds, best of {args.repeats} "
          "alternating passes): GF = 6N per token, and 6N + causal attention (6·layers·context·width)")
    tp = throughput_per_process(sizes, steps=6 if args.quick else 16, bf16=bf16_pays, repeats=args.repeats)
    dtype_peak = {"fp32": one.filter(pl.col("dtype") == "float32")["GF_per_cpu_s"][0],
                  "bf16": one.filter(pl.col("dtype") == "bfloat16")["GF_per_cpu_s"][0]}
    tp = tp.with_columns((pl.col("GF_6N") / best["GF_per_cpu_s"]).round(3).alias("frac_peak_6N"),
                         (pl.col("GF_6N_attn") / best["GF_per_cpu_s"]).round(3).alias("frac_peak_6N_attn"),
                         (pl.col("GF_6N") / pl.col("precision").replace_strict(dtype_peak, return_dtype=pl.Float64)).round(3)
                         .alias("frac_own_dtype_peak_6N"))
    print(tp)
    by = {k: tp.filter((pl.col("kernels") == k) & (pl.col("precision") == "fp32")) for k in ("v1", "v2", "v3", "v4")}
    for k in ("v2", "v3", "v4"):
        print(f"  {k} / v1 tokens per CPU-s by size (fp32):",
              [round(b / a, 2) for a, b in zip(by["v1"]["tokens_per_cpu_s"], by[k]["tokens_per_cpu_s"], strict=True)])
    for k in ("v1", "v2", "v3", "v4"):
        top = tp.filter((pl.col("kernels") == k) & (pl.col("size") == max(sizes))).sort("GF_6N", descending=True).row(0, named=True)
        print(f"  largest ladder size, {k} ({top['shape']}, {top['precision']}): {top['frac_peak_6N']:.0%} of the best peak (6N), "
              f"{top['frac_peak_6N_attn']:.0%} (6N + attention), {top['frac_own_dtype_peak_6N']:.0%} of the {top['precision']} peak; "
              "target >= 60 % of the best peak")
    for k in ("v1", "v2", "v3", "v4"):
        if set(tp["size"].to_list()) >= {4e4, 1.2e5, 2.5e5, 6e5}:
            print("  ladder re-train estimate:", json.dumps(ladder_estimate(tp, k)))

    from mixopt.train.reference import shape_for_params

    print(f"\n(1b) roofline at the largest size: one bf16 training step's matrix products at their own shapes, each alone "
          f"(1 thread, CPU-seconds; square-product peak {dtype_peak['bf16']} GF/CPU-s bf16)")
    for shape in sorted({shape_for_params(max(sizes), k) for k in ("v3", "v4")}):  # the same shape today
        k = "/".join(v for v in ("v3", "v4") if shape_for_params(max(sizes), v) == shape)
        layers, width, heads = shape
        rf = roofline(layers, width, heads)
        print(pl.DataFrame(rf.pop("products")))
        print(f"  {k} ({layers}x{width}/{heads}): {json.dumps(rf)}; the step's 6N rate could reach at most "
              f"{rf['six_n_GF_if_only_products'] / best['GF_per_cpu_s']:.0%} of the best peak if nothing but these products took time")

    print("\n(2) example ladder wall time (configs/ladder.toml)")
    print(json.dumps(ladder_wall(args.rerun_ladder), indent=1))

    print(f"\n(3) fit on the ladder's smaller models, predict the largest (final checkpoints): target loss <= {LOSS_TARGET:.0%}, "
          f"scores <= {SCORE_TARGET:.0%} median relative error, 90 % intervals")
    if LADDER_TABLE.is_file():
        per_q, kinds = ladder_backtest([m.strip() for m in args.methods.split(",") if m.strip()])
        print(kinds)
        print(per_q)
    else:
        print(f"  no ladder table at {LADDER_TABLE}")

    if not args.skip_ray:
        n = 4 if args.quick else 6
        print(f"\n(4) 2 Ray workers vs 1 on {n} reference-trainer jobs (40K params, fixture corpus)")
        print(ray_speedup(n, tokens=1e5 if args.quick else 2e5))
        print(f"\n(4b) the same on {4} jobs that only sleep 6 s (Ray concurrency without CPU contention)")
        print(ray_concurrency(4, 6.0))
    print(f"\nload at end: {_load()}")


if __name__ == "__main__":
    main()
