"""Fit time and peak memory of every method vs rows and vs domains (GitHub issue 13).

Each point runs in its own subprocess (``--point``), so its peak memory is that process's
own high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the table, the fit
and the interpreter together), not a leftover of an earlier point.

Tables (synthetic, :func:`mixopt.testing.mixture_world`, 1 % noise):

(1) rows: 1,000 runs (5 sizes x 200 mixtures), 5 domains, 5 benchmarks, and 10 ... 1,000
    checkpoints per run = 1e4 ... 1e6 rows. The table is written to Parquet first and the
    point reads it, as ``mixopt fit`` does (``read_s``); ``fit_s`` is ``model.fit``.
    ``fit_s_all`` (``--baseline``) is the same fit with checkpoint thinning off
    (``max_checkpoints_per_run = None``), the speed-up baseline measured in the same run.
(2) domains: 3 ... 64 domains x 512 runs at one size, metric-only (110 BPB-like task
    metrics, no per-domain losses, as the Olmix swarms) for flpm / dml / regmix (FLP and FP
    are mixture-blind: their cost does not depend on the number of domains).
(3) ``--thinning``: held-out accuracy of FLP on 200-run x 1,000-checkpoint worlds (3 seeds)
    with the default thinning and with every checkpoint: the evidence for the default.

Run:  python benchmarks/bench_scale.py [--quick] [--baseline] [--thinning]
Figures are wall-clock on whatever machine runs them (the shared 2-core development
machine is loaded by other jobs: compare ratios, not absolute seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHODS = ("flp", "fp", "flpm", "dml", "regmix")
TARGET_S, TARGET_MB = 60.0, 2048.0


# -- one point (runs in a subprocess) ----------------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_rows_table(n_ck: int, path: str, n_runs: int = 1000, seed: int = 0) -> None:
    """1,000 runs x ``n_ck`` checkpoints, 5 domains, 5 benchmarks, written to ``path``."""
    from mixopt.data.readers import write_runs
    from mixopt.testing import mixture_world

    w = mixture_world(5, 5, seed=seed)
    sizes = [5e7, 1e8, 2e8, 5e8, 1e9]
    mix = w.random_mixtures(n_runs // len(sizes), seed=seed + 1)
    write_runs(w.sample_runs(sizes, mix, n_checkpoints=n_ck, seed=seed + 2), path)


def metric_world_table(k: int, n_runs: int, n_metrics: int, seed: int = 0, with_losses: bool = False):
    """An Olmix-like swarm (:func:`mixopt.testing.metric_worlds.olmix_like_runs`)."""
    from mixopt.testing.metric_worlds import olmix_like_runs

    return olmix_like_runs(k, n_runs, n_metrics, seed=seed, with_losses=with_losses)[0]


def run_point(spec: dict) -> dict:
    """Fit one method on one table; returns times and this process's peak memory."""
    import logging

    from mixopt.surrogate import make_surrogate

    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    if spec["kind"] == "rows":
        from mixopt.data.readers import read_runs

        runs = read_runs(spec["path"])
    else:
        runs = metric_world_table(spec["k"], spec["n_runs"], spec["n_metrics"], with_losses=spec.get("with_losses", False))
    read_s = time.perf_counter() - t0
    model = make_surrogate(spec["method"], **({"seed": 0} if spec["method"] != "regmix" else {}))
    if spec.get("all_rows"):
        model.max_checkpoints_per_run = None
    t1 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = ru0.ru_utime + ru0.ru_stime
    try:
        model.fit(runs)
        status = "ok"
    except Exception as e:  # a failed fit is a row of the table, not a crash of the benchmark
        status = f"{type(e).__name__}: {str(e)[:160]}"
    fit_s = time.perf_counter() - t1
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"rows": len(runs), "read_s": read_s, "fit_s": fit_s, "cpu_s": ru.ru_utime + ru.ru_stime - cpu0,
            "peak_mb": _rss_mb(), "status": status}


def _spawn(spec: dict, timeout: float) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        out = subprocess.run([sys.executable, __file__, "--point", json.dumps(spec)], capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"fit_s": float("nan"), "peak_mb": float("nan"), "status": f"timeout > {timeout:.0f} s"}
    line = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode != 0 or not line:
        return {"fit_s": float("nan"), "peak_mb": float("nan"), "status": f"crashed: {out.stderr.strip()[-160:]}"}
    return json.loads(line[-1])


# -- tables ------------------------------------------------------------------------------------
def _fmt(v: float, nd: int = 1) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"


def rows_table(quick: bool, baseline: bool, timeout: float) -> list[dict]:
    cks = [10, 100] if quick else [10, 100, 1000]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        print("\n### Fit time and peak memory vs rows (1,000 runs, 5 domains, 5 benchmarks)\n")
        hdr = "| rows | method | read s | fit s (wall) | fit CPU s | peak MB | " + ("fit s, every row (baseline) | peak MB, every row | " if baseline else "") + "status |"
        print(hdr)
        print("|" + "---|" * (hdr.count("|") - 1))
        for ck in cks:
            path = str(Path(tmp) / f"rows_{ck}.parquet")
            make_rows_table(ck, path)
            for m in METHODS:
                r = _spawn({"kind": "rows", "path": path, "method": m}, timeout)
                b = _spawn({"kind": "rows", "path": path, "method": m, "all_rows": True}, timeout) if baseline else None
                row = {"rows": 1000 * ck, "method": m, **r, **({"baseline": b} if b else {})}
                out.append(row)
                extra = f"{_fmt(b['fit_s'])} | {_fmt(b['peak_mb'], 0)} | " if b else ""
                print(f"| {1000 * ck:,} | {m} | {_fmt(r.get('read_s', float('nan')))} | {_fmt(r['fit_s'])} | "
                      f"{_fmt(r.get('cpu_s', float('nan')))} | {_fmt(r['peak_mb'], 0)} | "
                      f"{extra}{r['status']} |", flush=True)
    return out


def domains_table(quick: bool, timeout: float) -> list[dict]:
    ks = [3, 8, 24] if quick else [3, 8, 24, 64]
    n_runs, n_metrics = (128, 20) if quick else (512, 110)
    out = []
    print(f"\n### Fit time vs domains ({n_runs} runs at one size, {n_metrics} metric-only task metrics)\n")
    print("| domains | method | fit s (wall) | fit CPU s | peak MB | status |")
    print("|---|---|---|---|---|---|")
    for k in ks:
        for m, losses in (("flpm", False), ("dml", False), ("regmix", False)):
            r = _spawn({"kind": "domains", "k": k, "n_runs": n_runs, "n_metrics": n_metrics, "method": m,
                        "with_losses": losses}, timeout)
            name = m + ("+losses" if losses else "")
            out.append({"domains": k, "method": name, **r})
            print(f"| {k} | {name} | {_fmt(r['fit_s'])} | {_fmt(r.get('cpu_s', float('nan')))} | {_fmt(r['peak_mb'], 0)} | "
                  f"{r['status']} |", flush=True)
    return out


def thinning_table(quick: bool) -> list[dict]:
    """Held-out error with the default thinning vs every checkpoint (larger runs held out).

    FLP on 200 runs x 1,000 checkpoints (200,000 rows; thinned to ~100,000), 3 seeds.
    Every benchmark's median relative error on the held-out 1e9-parameter runs is listed,
    and benchmarks that became unpredictable are named.
    """
    import logging

    from mixopt.backtest import backtest
    from mixopt.surrogate import make_surrogate
    from mixopt.testing import mixture_world

    logging.basicConfig(level=logging.ERROR)
    seeds = [0] if quick else [0, 1, 2]
    print("\n### Checkpoint thinning: held-out error, default thinning vs every checkpoint (FLP, 200 runs x 1,000 checkpoints)\n")
    print("| seed | fitted on | median rel. error per quantity (held-out 1e9 runs) | unpredictable | fit s |")
    print("|---|---|---|---|---|")
    out = []
    for seed in seeds:
        w = mixture_world(3, 4, seed=seed)
        runs = w.sample_runs([5e7, 1e8, 2e8, 5e8, 1e9], w.random_mixtures(40, seed=seed + 1), n_checkpoints=1000, seed=seed + 2)
        for thin in (True, False):
            model = make_surrogate("flp", seed=seed)
            if not thin:
                model.max_checkpoints_per_run = None
            t0 = time.perf_counter()
            res = backtest(runs, model, holdout_min_params=1e9)
            dt = time.perf_counter() - t0
            errs = {r["quantity"]: r["median_rel_error"] for r in res.summary().to_dicts()}
            label = "thinned (default)" if thin else "every row"
            out.append({"seed": seed, "thinning": label, "errors": errs, "unpredictable": list(res.unpredictable), "fit_s": dt})
            cells = ", ".join(f"{q.removeprefix('score:')} {100 * e:.2f}%" for q, e in errs.items())
            print(f"| {seed} | {label} | {cells} | {', '.join(res.unpredictable) or '-'} | {dt:.1f} |", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--point", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="smaller tables (a smoke test)")
    ap.add_argument("--baseline", action="store_true", help="also fit every row without thinning (slow)")
    ap.add_argument("--thinning", action="store_true", help="only the thinning-accuracy table")
    ap.add_argument("--only", choices=["rows", "domains"], help="only one of the two scale tables")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per point")
    args = ap.parse_args()
    if args.point:
        print(json.dumps(run_point(json.loads(args.point))))
        return
    if args.thinning:
        thinning_table(args.quick)
        return
    print(f"targets: fit <= {TARGET_S:.0f} s and peak <= {TARGET_MB:.0f} MB at 1e6 rows; 64 domains x 512 runs x 110 metrics <= 60 s")
    if args.only in (None, "rows"):
        rows_table(args.quick, args.baseline, args.timeout)
    if args.only in (None, "domains"):
        domains_table(args.quick, args.timeout)


if __name__ == "__main__":
    main()
