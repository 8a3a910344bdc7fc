"""Prediction speed of FLP-M in CPU-seconds, beside a baseline checkout measured in the same run.

What is measured (one fitted FLP-M: 5 mixture domains, 5 benchmarks, default settings,
``mixture_world(n_domains=5, n_benchmarks=5, seed=0)`` sampled at 4 sizes x 16 mixtures):

* means: ``predict(..., intervals=False)`` on a batch of ``--rows`` mixtures, rows per CPU-second;
* intervals: ``predict(..., intervals=True)`` on ``--interval-rows`` mixtures, rows per CPU-second;
* 100-mixture batch with intervals: CPU milliseconds per call (median of ``--calls`` calls),
  what the search and the HTTP API pay per request;
* joint draws (``predict_draws``, 256 draws of 100 mixtures): CPU milliseconds per call
  (absent in a checkout without ``predict_draws``).

The baseline is the same measurement run by the package of another commit
(``--baseline-ref``, default the last commit before the numpy-speed work): the commit is
exported with ``git archive`` into a temporary folder and this script's ``--measure``
mode runs in a subprocess with that folder first on ``PYTHONPATH``, on the *same* saved
model (the model-file format is shared), so both columns come from the same machine at the
same time. CPU-seconds (``time.process_time``) with BLAS limited to ``--threads`` threads
(default 1; an idle BLAS thread that spins counts as CPU time), best of ``--repeats``.

    python benchmarks/bench_predict.py                 # full figures
    python benchmarks/bench_predict.py --quick         # smaller batches, fewer repeats
    python benchmarks/bench_predict.py --baseline-ref HEAD~3
    python benchmarks/bench_predict.py --quick --family average   # another FLP-M family (or --method dml)
    python benchmarks/bench_predict.py | grep BATCH100   # the 100-mixture call's line alone

Targets (issue 21): means >= 1,000,000 rows/CPU-s, intervals >= 300,000 rows/CPU-s,
100-mixture batch with intervals <= 0.5 ms CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the last commit before the numpy-speed work (sqdist, vectorised logistic map, calibrated path)
DEFAULT_BASELINE = "33bebf4"


def _fit_model(out: Path, method: str = "flpm", family: str | None = None, stage1: str | None = None) -> float:
    from mixopt.surrogate import make_surrogate, save_surrogate
    from mixopt.testing import mixture_world

    w = mixture_world(n_domains=5, n_benchmarks=5, seed=0)
    runs = w.sample_runs([1e8, 3e8, 1e9, 2e9], w.random_mixtures(16, seed=1), seed=2)
    t0 = time.process_time()
    pinned = {k: v for k, v in (("family", family), ("stage1", stage1)) if v is not None}
    model = make_surrogate(method, seed=0, **pinned).fit(runs)
    cpu = time.process_time() - t0
    save_surrogate(model, out)
    return cpu


def _best_cpu(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def measure(model_dir: str, rows: int, interval_rows: int, calls: int, repeats: int) -> dict[str, float | None]:
    """CPU figures of the package on ``sys.path`` for the model saved in ``model_dir``."""
    import numpy as np

    from mixopt.surrogate import Targets, load_surrogate
    from mixopt.testing import mixture_world

    model = load_surrogate(model_dir)
    w = mixture_world(n_domains=5, n_benchmarks=5, seed=0)
    mix = w.random_mixtures(max(rows, interval_rows, 100), seed=3)
    c = 1e21

    def tg(n: int) -> Targets:
        return Targets(flops=np.full(n, c), mixture=mix[:n], domains=w.domains)

    t_big, t_int, t100 = tg(rows), tg(interval_rows), tg(100)
    model.predict(t100)  # warm-up
    means = _best_cpu(lambda: model.predict(t_big, intervals=False), repeats)
    ints = _best_cpu(lambda: model.predict(t_int, intervals=True), repeats)
    per_call = []
    for _ in range(calls):
        t0 = time.process_time()
        model.predict(t100, intervals=True)
        per_call.append(time.process_time() - t0)
    out: dict[str, float | None] = {
        "means_rows_per_cpu_s": rows / means,
        "interval_rows_per_cpu_s": interval_rows / ints,
        "batch100_interval_ms": 1e3 * float(np.median(per_call)),
        "draws256x100_ms": None,
    }
    if hasattr(model, "predict_draws"):
        model.predict_draws(t100, n_draws=256, seed=0)
        out["draws256x100_ms"] = 1e3 * _best_cpu(lambda: model.predict_draws(t100, n_draws=256, seed=0), repeats)
    return out


def _baseline(ref: str, model_dir: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, float | None] | str:
    with tempfile.TemporaryDirectory(prefix="mixopt-baseline-") as tmp:
        try:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "mixopt"], check=True, capture_output=True).stdout
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            return f"baseline {ref!r} not available ({getattr(e, 'stderr', b'').decode().strip() or e})"
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", str(model_dir), "--rows", str(args.rows),
               "--interval-rows", str(args.interval_rows), "--calls", str(args.calls), "--repeats", str(args.repeats)]
        res = subprocess.run(cmd, env={**env, "PYTHONPATH": tmp}, capture_output=True, text=True)
        if res.returncode != 0:
            return f"baseline {ref!r} failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}"
        return json.loads(res.stdout.strip().splitlines()[-1])


def _fmt(x: float | None) -> str:
    return "-" if x is None else (f"{x:,.0f}" if x > 100 else f"{x:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller batches and fewer repeats (figures say --quick)")
    ap.add_argument("--baseline-ref", default=DEFAULT_BASELINE, help="git commit of the baseline package (default %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads in both measurements (default 1)")
    ap.add_argument("--rows", type=int, default=None, help="rows of the means batch (default 1,000,000; --quick 200,000)")
    ap.add_argument("--interval-rows", type=int, default=None, help="rows of the interval batch (default 100,000; --quick 20,000)")
    ap.add_argument("--calls", type=int, default=None, help="100-mixture calls timed (default 400; --quick 100)")
    ap.add_argument("--repeats", type=int, default=None, help="best of this many (default 5; --quick 3)")
    ap.add_argument("--method", default="flpm", choices=("flpm", "dml"), help="surrogate measured (default %(default)s)")
    ap.add_argument("--family", default=None, choices=("law", "hybrid", "average"), help="FLP-M family (default: auto's choice)")
    ap.add_argument("--stage1", default=None, help="stage-1 law form, e.g. flpm (default: auto's choice, which may average two forms)")
    ap.add_argument("--measure", metavar="MODEL_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.interval_rows = args.interval_rows or (20_000 if args.quick else 100_000)
    args.calls = args.calls or (100 if args.quick else 400)
    args.repeats = args.repeats or (3 if args.quick else 5)
    if args.measure:
        print(json.dumps(measure(args.measure, args.rows, args.interval_rows, args.calls, args.repeats)))
        return 0
    threads = str(args.threads)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if os.environ.get("OPENBLAS_NUM_THREADS") != threads:  # BLAS reads the variable at import: re-run under it
        return subprocess.run([sys.executable, *sys.argv], env=env).returncode
    import logging

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="mixopt-bench-predict-") as tmp:
        model_dir = Path(tmp) / "flpm"
        fit_cpu = _fit_model(model_dir, args.method, args.family, args.stage1)
        now = measure(str(model_dir), args.rows, args.interval_rows, args.calls, args.repeats)
        base = _baseline(args.baseline_ref, model_dir, args, env)
    mode = " (--quick)" if args.quick else ""
    what = (args.method.upper().replace("FLPM", "FLP-M") + ("" if args.family is None else f" ({args.family} family)")
            + ("" if args.stage1 is None else f" (stage 1 {args.stage1})"))
    print(f"{what} prediction, CPU-seconds, {threads} BLAS thread(s){mode}; model fitted in {fit_cpu:.1f} CPU-s")
    print(f"means batch {args.rows:,} rows, interval batch {args.interval_rows:,} rows, "
          f"{args.calls} calls of 100 mixtures; baseline = commit {args.baseline_ref}\n")
    targets = {"means_rows_per_cpu_s": (1e6, ">="), "interval_rows_per_cpu_s": (3e5, ">="),
               "batch100_interval_ms": (0.5, "<="), "draws256x100_ms": (None, "")}
    print("| figure | baseline | now | now / baseline | target | met |")
    print("|---|---|---|---|---|---|")
    for key, (target, op) in targets.items():
        b = base.get(key) if isinstance(base, dict) else None
        v = now[key]
        ratio = f"{v / b:.2f}x" if (b and v) else "-"
        met = "-" if target is None or v is None else ("yes" if (v >= target if op == ">=" else v <= target) else "MISSED")
        print(f"| {key} | {_fmt(b)} | {_fmt(v)} | {ratio} | {'' if target is None else f'{op} {target:g}'} | {met} |")
    if not isinstance(base, dict):
        print(f"\n{base}")
    b100, v100 = (base.get("batch100_interval_ms") if isinstance(base, dict) else None), now["batch100_interval_ms"]
    print(f"\nBATCH100 100-mixture call with intervals: {v100:.3f} ms CPU (median of {args.calls}), baseline {args.baseline_ref} "
          f"{_fmt(b100)} ms, target <= 0.5 ms: {'met' if v100 is not None and v100 <= 0.5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
