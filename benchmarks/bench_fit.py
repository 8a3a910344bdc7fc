"""CPU cost of the default fits, against a baseline commit measured in the same run (issue 21 item 1).

For every dataset the default model is fitted twice, each in its own subprocess (so CPU
time and peak memory are that process's own): once with this tree's mixopt and once with
the mixopt of ``--baseline-ref`` (a git commit, checked out in a temporary ``git
worktree``; default: the last commit before the iteration-counted least-squares solver).
Printed per dataset: CPU-seconds of ``fit`` (user + system, so machine load does not
count), the ratio, peak RSS, the configuration each chose (``config_`` for FLP-M, the
chosen rows of ``selection_`` for FLP) and the largest relative difference between their
predictions (means) at fixed targets.

Datasets:

* ``regmix``: RegMix ``train_1m`` (512 runs at 1M params, 17 sources), all 13 domains
  (``--quick``: 4), default FLP-M; predictions at the 256 ``test_1m`` mixtures.
* ``world``: a synthetic mixture world (3 domains, 4 benchmarks, 5 sizes 5e7..1e9, 12
  mixtures, 6 checkpoints), default FLP-M (stage 2 chosen by ``auto``, the net included);
  predictions at 8 held-out mixtures at 2e9 params.
* ``ladder``: a synthetic single-source ladder (6 sizes 2e7..7e8), default FLP;
  predictions at 1e9 and 3e9 params.
* ``olmix``: Olmix's ``full_recomputation`` swarm (64 domains, 110 task BPBs), the 410 runs outside
  ``real_olmix``'s fixed 20 % holdout, default ``regmix`` (shifted log, partial scales, ARD kernel);
  predictions at the 102 held-out mixtures.
* ``rows``: ``benchmarks/bench_scale.py``'s rows table, 1,000 runs x 1,000 checkpoints =
  1e6 rows, 5 domains, 5 benchmarks (``--quick``: 100 checkpoints, 1e5 rows), default
  FLP-M read from Parquet as ``mixopt fit`` does.

Run:  python benchmarks/bench_fit.py [--quick] [--data-dir ../shared/data] [--datasets regmix,world,ladder,olmix,rows]
      [--baseline-ref COMMIT] [--no-baseline] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: main before the iteration-counted solver (L-BFGS-B multi-start with a wall-time budget)
DEFAULT_BASELINE = "ca4f08c"
DATASETS = ("regmix", "world", "ladder", "olmix", "rows")
QUICK_DOMAINS = ("pile_cc", "github", "arxiv", "wikipedia_en")


# -- one fit (runs in a subprocess, with whichever mixopt is on PYTHONPATH) ---------------------
def _regmix(spec: dict):
    from mixopt.data.public import load_regmix
    from mixopt.data.table import RunTable
    from mixopt.surrogate import Targets

    train = load_regmix(spec["data_dir"], "train_1m")
    if spec["quick"]:
        drop = [c for c in train.frame.columns if c.startswith("loss:") and c[5:] not in QUICK_DOMAINS]
        train = RunTable(train.frame.drop(drop), train.benchmarks)
    test = load_regmix(spec["data_dir"], "test_1m").final()
    return "flpm", train, Targets(flops=test.flops(), mixture=test.mixture(train.domains), domains=train.domains)


def _world(spec: dict):
    from mixopt.surrogate import Targets
    from mixopt.testing import mixture_world

    w = mixture_world(n_domains=3, n_benchmarks=4, seed=0)
    runs = w.sample_runs([5e7, 1e8, 2e8, 5e8, 1e9], w.random_mixtures(12, seed=100), n_checkpoints=6, loss_noise=0.005,
                         score_noise=0.005, seed=200)
    mix = w.random_mixtures(8, seed=400)
    return "flpm", runs, Targets.from_params_tokens(np.full(8, 2e9), np.full(8, 4e10), mix, w.domains)


def _ladder(spec: dict):
    from mixopt.surrogate import Targets
    from mixopt.testing import single_domain_world

    w = single_domain_world(seed=1)
    runs = w.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8, 7e8], n_checkpoints=8, seed=2)
    return "flp", runs, Targets.from_params_tokens(np.array([1e9, 3e9]), np.array([2e10, 6e10]))


def _olmix(spec: dict):
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_olmix (the holdout)
    from real_olmix import holdout

    from mixopt.data.public import load_olmix
    from mixopt.surrogate import Targets

    full = load_olmix(spec["data_dir"], "full_recomputation").final()
    tr, te = holdout(full.n_runs)
    ids = full.run_ids()
    train, test = full.select_runs(ids[tr]), full.select_runs(ids[te])
    return "regmix", train, Targets(flops=test.flops(), mixture=test.mixture(train.domains), domains=train.domains)


def _rows(spec: dict):
    from mixopt.data.readers import read_runs
    from mixopt.surrogate import Targets
    from mixopt.testing import mixture_world

    runs = read_runs(spec["rows_path"])
    w = mixture_world(5, 5, seed=0)
    mix = w.random_mixtures(8, seed=400)
    return "flpm", runs, Targets.from_params_tokens(np.full(8, 2e9), np.full(8, 4e10), mix, w.domains)


def _choice(model) -> object:
    if getattr(model, "config_", None) is not None:
        return dict(model.config_)
    sel = getattr(model, "selection_", None)
    if sel is None:
        return None
    return sorted({f"{r['quantity']}: {r['candidate']}" for r in sel.to_dicts() if r.get("status") == "chosen"})


def run_point(spec: dict) -> dict:
    import logging

    import mixopt
    from mixopt.surrogate import make_surrogate

    logging.basicConfig(level=logging.ERROR)
    kind, runs, targets = {"regmix": _regmix, "world": _world, "ladder": _ladder, "olmix": _olmix, "rows": _rows}[spec["dataset"]](spec)
    model = make_surrogate(kind, seed=0)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    model.fit(runs)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    pred = model.predict(targets, intervals=False)
    np.savez(spec["out"], names=np.array(pred.names), mean=np.asarray(pred.mean, dtype=np.float64))
    return {"cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "rows": len(runs),
            "choice": _choice(model), "mixopt": str(Path(mixopt.__file__).resolve().parents[1])}


# -- the driver ------------------------------------------------------------------------------------
def _spawn(spec: dict, tree: Path, threads: int, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--point", json.dumps(spec)], env=env,
                             capture_output=True, text=True, timeout=timeout, cwd=str(tree))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("POINT ")]
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1][6:])


def _max_rel_diff(a_path: str, b_path: str) -> float:
    a, b = np.load(a_path), np.load(b_path)
    names = [n for n in a["names"].tolist() if n in set(b["names"].tolist())]
    ia = [a["names"].tolist().index(n) for n in names]
    ib = [b["names"].tolist().index(n) for n in names]
    x, y = a["mean"][:, ia], b["mean"][:, ib]
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return float("nan")
    return float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--point", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="RegMix on 4 domains, the rows table at 1e5 rows")
    ap.add_argument("--data-dir", default=str(DATA))
    ap.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {','.join(DATASETS)}")
    ap.add_argument("--baseline-ref", default=DEFAULT_BASELINE, help="git commit of the baseline (default %(default)s)")
    ap.add_argument("--no-baseline", action="store_true", help="measure this tree only")
    ap.add_argument("--threads", type=int, default=1, help="OMP/BLAS threads of every fit (default 1)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per fit")
    a = ap.parse_args()
    if a.point:
        print("POINT " + json.dumps(run_point(json.loads(a.point))), flush=True)
        return
    datasets = [d.strip() for d in a.datasets.split(",") if d.strip()]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        ap.error(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    with tempfile.TemporaryDirectory(prefix="bench_fit_") as tmp:
        tmp_p = Path(tmp)
        trees = {"current": ROOT}
        if not a.no_baseline:
            base = tmp_p / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.baseline_ref], check=True,
                           capture_output=True)
            trees["baseline"] = base
        try:
            rows_path = str(tmp_p / "rows.parquet")
            if "rows" in datasets:
                # in a child process: Linux keeps a process's peak RSS across fork + exec, so a
                # table built here would count in every fit's peak memory below
                code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from bench_scale import make_rows_table; "
                        f"make_rows_table({100 if a.quick else 1000}, {rows_path!r})")
                subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            print(f"### Default fits: CPU-s (user+system) at {a.threads} thread(s), this tree vs {a.baseline_ref}\n")
            print("| dataset | rows | baseline CPU-s | CPU-s | ratio | baseline peak MB | peak MB | baseline choice | choice "
                  "| max rel Δ prediction |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for d in datasets:
                res = {}
                for name, tree in trees.items():
                    spec = {"dataset": d, "quick": a.quick, "data_dir": str(Path(a.data_dir).resolve()), "rows_path": rows_path,
                            "out": str(tmp_p / f"{d}-{name}.npz")}
                    res[name] = _spawn(spec, tree, a.threads, a.timeout)
                    res[name]["out"] = spec["out"]
                cur, base = res["current"], res.get("baseline", {"error": "not run"})

                def f(r: dict, key: str, fmt: str = "{:.1f}") -> str:
                    return fmt.format(r[key]) if key in r else r.get("error", "-")

                ratio = f"{base['cpu_s'] / cur['cpu_s']:.1f}x" if "cpu_s" in base and "cpu_s" in cur else "-"
                diff = (f"{_max_rel_diff(cur['out'], base['out']):.2e}" if "cpu_s" in base and "cpu_s" in cur else "-")
                print(f"| {d} | {cur.get('rows', '-')} | {f(base, 'cpu_s')} | {f(cur, 'cpu_s')} | {ratio} | {f(base, 'peak_mb', '{:.0f}')} "
                      f"| {f(cur, 'peak_mb', '{:.0f}')} | {base.get('choice', '-')} | {cur.get('choice', '-')} | {diff} |", flush=True)
        finally:
            if "baseline" in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(trees["baseline"])],
                               capture_output=True)


if __name__ == "__main__":
    main()
