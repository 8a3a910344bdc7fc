"""Validation training jobs (GitHub issue 12): speed and what the example ladder supports.

Prints four tables:

(1) reference-trainer throughput: training tokens/s (forward + backward + AdamW, no
    evaluation) of the ladder's model shapes, fp32 and bf16 autocast, 1 thread, as a ratio to
    the smallest model's fp32 speed measured in the same run;
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

Run:  python benchmarks/bench_train.py [--quick] [--skip-ray] [--rerun-ladder]
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


def throughput(sizes: list[float], steps: int) -> pl.DataFrame:
    import torch
    from torch.nn import functional as F

    from mixopt.train.reference import _model_classes, non_embedding_params, shape_for_params

    torch.set_num_threads(1)
    rows = []
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        layers, width, heads = shape_for_params(n)
        for bf16 in (False, True):
            model = _model_classes()(layers, width, heads, 256)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            x = torch.randint(0, 256, (8, 257), generator=gen)
            t0 = 0.0
            for i in range(steps + 2):
                if i == 2:
                    t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x[:, :-1])
                loss = F.cross_entropy(logits.float().reshape(-1, 256), x[:, 1:].reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            rows.append({"params": non_embedding_params(layers, width), "shape": f"{layers}x{width}/{heads}",
                         "precision": "bf16" if bf16 else "fp32", "tokens_per_s": steps * 8 * 256 / (time.perf_counter() - t0)})
    df = pl.DataFrame(rows)
    base = df.filter(pl.col("precision") == "fp32")["tokens_per_s"][0]
    return df.with_columns((pl.col("tokens_per_s") / base).alias("ratio_vs_smallest_fp32"))


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
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(20)
    pl.Config.set_tbl_width_chars(200)
    print(f"load at start: {_load()}")

    print("\n(1) reference-trainer throughput, 1 thread, batch 8 x 256 bytes (training only)")
    print(throughput([4e4, 1.2e5, 2.5e5, 6e5], steps=5 if args.quick else 20))

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
