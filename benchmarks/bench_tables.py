"""Reading and validating run tables at scale: time and peak memory vs rows.

    python benchmarks/bench_tables.py                 # 1e4, 1e5, 1e6 rows
    python benchmarks/bench_tables.py --rows 1e6      # one size

The table is the scale target of issue 13: runs x checkpoints with 5 domains and 5
benchmarks (1,000 runs x 1,000 checkpoints at 1e6 rows). Each case runs in its own
process so that its peak memory (max RSS) is its own. Cases:

* ``raw``: ``pl.read_parquet`` of the canonical file: the floor every reader pays.
* ``wide``: ``read_runs`` of the same file (read + validate + normalise).
* ``team``: a CSV with team column names, 2% blank loss cells and no run id, read with a
  pattern column map and ``run_id=["params", "mix"]``; ``raw csv`` is its floor.
* ``long``: the same checkpoints' losses as long format (one row per checkpoint x domain,
  5x the rows), read with ``format="long"``; ``long floor`` = ``pl.read_parquet`` of it.

Ratios are against the floor measured in the same run (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

DOMAINS = ["web", "code", "math", "books", "wiki"]
BENCH = ["arc_easy", "hellaswag", "piqa", "mmlu", "winogrande"]


def make(n_rows: int, folder: Path, seed: int = 0) -> dict[str, Path]:
    n_runs = max(1, int(round(n_rows**0.5)))
    n_ck = n_rows // n_runs
    rng = np.random.default_rng(seed)
    mix = np.round(rng.dirichlet(np.ones(len(DOMAINS)), n_runs), 4)
    mix[:, -1] = 1 - mix[:, :-1].sum(axis=1)
    params = rng.choice([2e7, 5e7, 1e8, 2e8], n_runs)
    run = np.repeat(np.arange(n_runs), n_ck)
    step = np.tile(np.arange(1, n_ck + 1), n_runs)
    tokens = params[run] * 20 * step / n_ck
    base = 2 + 10 * (params[run] * tokens) ** -0.1
    cols = {"run": np.char.add("r", run.astype(str)), "params": params[run], "tokens": tokens, "step": step}
    cols |= {f"mix:{d}": mix[run, j] for j, d in enumerate(DOMAINS)}
    cols |= {f"loss:{d}": base * (1 + 0.1 * j) * (1 - 0.1 * mix[run, j]) for j, d in enumerate(DOMAINS)}
    cols |= {f"score:{b}": 0.25 + 0.5 / (1 + np.exp(base * 3 - 9 + j)) for j, b in enumerate(BENCH)}
    f = pl.DataFrame(cols)
    paths = {"wide": folder / "wide.parquet", "team": folder / "team.csv", "long": folder / "long.parquet"}
    f.write_parquet(paths["wide"])
    team = f.drop("run", "step").rename(
        {"params": "model_size", "tokens": "n_tokens"} | {f"mix:{d}": f"weight_{d}" for d in DOMAINS}
        | {f"loss:{d}": f"{d}_loss" for d in DOMAINS} | {f"score:{b}": f"{b}_acc" for b in BENCH}
    )
    blank = rng.random((f.height, len(DOMAINS))) < 0.02
    team = team.with_columns([pl.when(pl.Series(blank[:, j])).then(None).otherwise(pl.col(f"{d}_loss")).alias(f"{d}_loss") for j, d in enumerate(DOMAINS)])
    team.write_csv(paths["team"])
    long = f.select("run", "step", "params", *[f"mix:{d}" for d in DOMAINS], *[f"loss:{d}" for d in DOMAINS]).unpivot(
        index=["run", "step", "params", *[f"mix:{d}" for d in DOMAINS]], variable_name="domain", value_name="value"
    )
    long.write_parquet(paths["long"])
    return paths


def case(kind: str, path: str) -> dict:
    from mixopt.data import read_runs

    t0 = time.perf_counter()
    if kind in ("raw", "raw_long"):
        t = pl.read_parquet(path)
    elif kind == "raw_csv":
        t = pl.read_csv(path, infer_schema_length=None)
    elif kind == "wide":
        t = read_runs(path)
    elif kind == "team":
        t = read_runs(
            path,
            columns={"weight_{d}": "mix:{d}", "{d}_loss": "loss:{d}", "{b}_acc": "score:{b}", "model_size": "params", "n_tokens": "tokens"},
            run_id=["params", "mix"],
        )
    elif kind == "long":
        t = read_runs(path, format="long", tokens_per_step=1e5)
    else:
        raise ValueError(kind)
    dt = time.perf_counter() - t0
    rows = len(t)
    return {"kind": kind, "seconds": dt, "rows": rows, "peak_gb": _peak_gb()}


def _peak_gb() -> float:
    """Peak resident memory of this process, GiB (VmHWM: unlike ru_maxrss it is not inherited from the parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1e4,1e5,1e6", help="table sizes (checkpoint rows), comma-separated")
    ap.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        print(json.dumps(case(*a.case)))
        return
    print("read + validate, seconds (peak memory GB); ratio = seconds / floor of the same file, same run")
    print(f"{'rows':>9} {'parquet floor':>15} {'wide':>15} {'ratio':>6} {'csv floor':>15} {'team csv':>15} {'ratio':>6} {'long floor':>15} {'long (5x rows)':>16} {'ratio':>6}")
    for n in [int(float(x)) for x in a.rows.split(",")]:
        with tempfile.TemporaryDirectory() as d:
            paths = make(n, Path(d))
            res = {}
            for kind, p in (("raw", "wide"), ("wide", "wide"), ("raw_csv", "team"), ("team", "team"), ("raw_long", "long"), ("long", "long")):
                out = subprocess.run([sys.executable, __file__, "--case", kind, str(paths[p])], capture_output=True, text=True, check=False)
                if out.returncode:
                    raise SystemExit(f"case {kind} failed:\n{out.stderr[-2000:]}")
                res[kind] = json.loads(out.stdout.strip().splitlines()[-1])

            def cell(k: str) -> str:
                return f"{res[k]['seconds']:7.2f} ({res[k]['peak_gb']:4.2f})"

            print(
                f"{n:>9.0e} {cell('raw'):>15} {cell('wide'):>15} {res['wide']['seconds'] / res['raw']['seconds']:6.1f} "
                f"{cell('raw_csv'):>15} {cell('team'):>15} {res['team']['seconds'] / res['raw_csv']['seconds']:6.1f} "
                f"{cell('raw_long'):>15} {cell('long'):>16} {res['long']['seconds'] / res['raw_long']['seconds']:6.1f}"
            )


if __name__ == "__main__":
    main()
