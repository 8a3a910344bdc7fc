"""FLP-M ``auto``'s stage-2 race: which candidate wins, by what margin, and what the net costs.

For every table the default FLP-M is fitted twice, each in its own subprocess (CPU-seconds
from ``getrusage``, one thread): as before (``stop="all"``: every net member trains until all
have gone ``patience`` steps without a held-out improvement at once; the net replaces the
first candidate on any fold win beyond ``TIE_MARGIN``) and as now (``stop="member"``: a
member stops at its own patience and leaves the batch; the net replaces the first candidate
only when its paired held-out errors are lower beyond ``NOISE_T`` standard errors). Printed per table: runs, the chosen stage 2, every
candidate's mean absolute score error on the internal folds (``selection_``), the net's
error relative to the best logistic candidate, the fitted model's mean absolute error
against the world's **true** scores at 10x the largest sampling compute (64 fresh mixtures,
N scaled by sqrt(10), 20 tokens/param: held out for real), and the fit's CPU-s.

Tables (the net is in the race only on tables of more than ``NET_MIN_RUNS`` runs with
benchmarks; the real tables and the shipped examples have none that qualify, so they are
listed by :func:`eligibility` without fitting):

* ``rows``: ``bench_scale.py``'s rows table (1,000 runs = 200 mixtures x 5 sizes, 5 domains,
  5 benchmarks), 100 checkpoints per run (1e5 rows; ``--checkpoints 1000`` for 1e6); the
  stage-2 fits use at most ``STAGE2_MAX_ROWS`` rows either way.
* ``world D B M S``: ``mixture_world(D, B, seed=S)``, M random mixtures x 5 sizes 5e7..1e9,
  6 checkpoints, 0.5 % loss and score noise.

Run:  python benchmarks/bench_stage2.py [--quick] [--checkpoints 100] [--data-dir ../shared/data]
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: (domains, benchmarks, mixtures, seed) of the synthetic worlds, all above NET_MIN_RUNS runs
WORLDS = ((3, 4, 32, 0), (3, 4, 32, 1), (3, 4, 32, 2), (3, 4, 32, 3), (5, 5, 20, 0), (5, 5, 20, 1), (2, 4, 24, 0), (3, 4, 64, 0))
QUICK_WORLDS = ((5, 5, 20, 0), (2, 4, 24, 0), (3, 4, 32, 0))
SIZES = (5e7, 1e8, 2e8, 5e8, 1e9)
#: fresh mixtures at which the fitted models are compared with the world's true scores
N_TRUTH_MIX = 64


def _world(spec: dict):
    from mixopt.testing import mixture_world

    d, b, _, s = spec["world"] if spec["kind"] == "world" else (5, 5, 0, 0)  # the rows table's world (bench_scale.py)
    return mixture_world(n_domains=d, n_benchmarks=b, seed=s)


def _table(spec: dict):
    if spec["kind"] == "rows":
        from mixopt.data.readers import read_runs

        return read_runs(spec["path"])
    _, _, m, s = spec["world"]
    w = _world(spec)
    return w.sample_runs(list(SIZES), w.random_mixtures(m, seed=s + 100), n_checkpoints=6, loss_noise=0.005, score_noise=0.005, seed=s + 200)


def run_point(spec: dict) -> dict:
    """One default FLP-M fit (in a child process); ``spec["stop"]`` sets the nets' early stopping."""
    import logging

    from mixopt.surrogate import make_surrogate
    from mixopt.surrogate.flpm import FLPM

    logging.basicConfig(level=logging.ERROR)
    runs = _table(spec)
    if spec["stop"] == "all":  # as before: every member trains until all have stalled; any fold win of the net counts
        from dataclasses import replace

        import mixopt.surrogate.flpm_auto as flpm_auto

        cfg = FLPM._net_config
        FLPM._net_config = lambda self: replace(cfg(self), stop="all")  # type: ignore[method-assign]
        flpm_auto._net_within_noise = lambda first, net: (False, "")
    model = make_surrogate("flpm", seed=0, **({"stage2": spec["stage2"]} if spec.get("stage2") else {}))
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    model.fit(runs)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    s2 = model.selection_.filter(model.selection_["step"] == "stage2").to_dicts()
    # held out for real: the world's true scores at 10x the largest sampling compute, fresh mixtures
    import numpy as np

    from mixopt.surrogate import Targets

    w = _world(spec)
    n_big = (10.0**0.5) * max(SIZES)
    mix = w.random_mixtures(N_TRUTH_MIX, seed=999)
    t = Targets.from_params_tokens(np.full(N_TRUTH_MIX, n_big), np.full(N_TRUTH_MIX, 20.0 * n_big), mix, w.domains)
    truth = w.true_scores(t.flops, mix)
    pred = model.predict(t, intervals=False)
    errs = [np.abs(pred.get(f"score:{b}") - truth[:, j]) for j, b in enumerate(w.benchmark_names) if f"score:{b}" in pred.names]
    errs = [e for e in errs if np.all(np.isfinite(e))]
    return {
        "cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "runs": runs.n_runs,
        "choice": f"{model.config_['stage2']}/{model.config_['stage2_inputs']}",
        "truth_mae": float(np.mean(np.concatenate(errs))) if errs else None,
        "candidates": {r["candidate"].replace("stage2=", "").replace(", inputs=", "/"): [r["status"], r["score"]] for r in s2},
    }


def eligibility(data_dir: Path) -> list[tuple[str, str]]:
    """Why the net is not in the stage-2 race on the real tables and the shipped examples (no fit)."""
    from mixopt.data.readers import read_runs
    from mixopt.surrogate.flpm_auto import NET_MIN_RUNS

    out = []
    for path in sorted((ROOT / "mixopt" / "examples").glob("*.csv")):
        runs = read_runs(path)
        why = "no benchmarks" if not runs.benchmarks else (f"{runs.n_runs} runs <= NET_MIN_RUNS {NET_MIN_RUNS}" if runs.n_runs <= NET_MIN_RUNS else "in the race")
        out.append((f"example {path.stem} ({runs.n_runs} runs)", why))
    from mixopt.data.public import OLMIX_SWARMS, load_olmix, load_regmix

    try:
        reg = load_regmix(data_dir, "train_1m")
        out.append((f"RegMix train_1m ({reg.n_runs} runs)", "no benchmarks (domain losses only): no stage 2" if not reg.benchmarks else f"{len(reg.benchmarks)} benchmarks"))
        for swarm in sorted(set(OLMIX_SWARMS) - {"reuse"}):
            o = load_olmix(data_dir, swarm)
            has_loss = any(c.startswith("loss:") for c in o.frame.columns)
            out.append((f"Olmix {swarm} ({o.n_runs} runs)", "task metrics, no domain losses: FLP-M's metric-only law, no stage 2" if not has_loss else "has domain losses"))
    except (OSError, ValueError) as e:  # the public data is optional here
        out.append(("RegMix, Olmix", f"not read: {str(e).splitlines()[0][:80]}"))
    out.append(("Gadre, Gemstones, Pythia", "single-source ladders: FLP, not FLP-M"))
    return out


def _spawn(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--point", json.dumps(spec)], env=env, capture_output=True, text=True, cwd=str(ROOT))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("POINT ")]
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1][6:])


def _cells(r: dict) -> list[str]:
    if "error" in r:
        return [r["error"], "-", "-", "-", "-"]
    c = r["candidates"]
    net = c.get("net/observed", [None, None])[1]
    logs = [v[1] for k, v in c.items() if k.startswith("logistic") and v[1] is not None]
    rel = f"{net / min(logs):.3f}" if net is not None and logs else "-"
    scores = ", ".join(f"{k} {v[1]:.4f}" if v[1] is not None else f"{k} -" for k, v in c.items())
    truth = f"{r['truth_mae']:.4f}" if r.get("truth_mae") is not None else "-"
    return [r["choice"], scores, rel, truth, f"{r['cpu_s']:.1f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--point", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help=f"{len(QUICK_WORLDS)} worlds and the rows table")
    ap.add_argument("--checkpoints", type=int, default=100, help="checkpoints per run of the rows table (default 100)")
    ap.add_argument("--data-dir", default=str(DATA))
    ap.add_argument("--forced", action="store_true", help="also fit with stage2 fixed to logistic and to net: their true errors")
    a = ap.parse_args()
    if a.point:
        print("POINT " + json.dumps(run_point(json.loads(a.point))), flush=True)
        return
    print("### Where the net is not in the stage-2 race\n\n| table | why |\n|---|---|")
    for name, why in eligibility(Path(a.data_dir)):
        print(f"| {name} | {why} |")
    with tempfile.TemporaryDirectory(prefix="bench_stage2_") as tmp:
        path = str(Path(tmp) / "rows.parquet")
        code = f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from bench_scale import make_rows_table; make_rows_table({int(a.checkpoints)}, {path!r})"
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        tables = [(f"rows (1,000 runs x {a.checkpoints} checkpoints)", {"kind": "rows", "path": path})]
        tables += [(f"world {d} domains, {b} benchmarks, {m} mixtures, seed {s}", {"kind": "world", "world": [d, b, m, s]}) for d, b, m, s in (QUICK_WORLDS if a.quick else WORLDS)]
        print("\n### Stage-2 race, default FLP-M: before (nets stopped all at once) vs now (per member; net wins beyond noise)\n")
        print(
            "| table | runs | before: chosen | before: fold score errors | before: net / best logistic | before: true error "
            "| before CPU-s | now: chosen | now: fold score errors | now: net / best logistic | now: true error | now CPU-s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, spec in tables:
            before, now = _spawn({**spec, "stop": "all"}), _spawn({**spec, "stop": "member"})
            print(f"| {name} | {now.get('runs', before.get('runs', '-'))} | " + " | ".join(_cells(before) + _cells(now)) + " |", flush=True)
        if a.forced:
            print("\n### True error at 10x compute with stage 2 fixed (nets stopped per member)\n")
            print("| table | logistic (inputs chosen) | net (observed) |\n|---|---|---|")
            for name, spec in tables:
                lg, nt = (_spawn({**spec, "stop": "member", "stage2": k}) for k in ("logistic", "net"))
                cell = lambda r: f"{r['truth_mae']:.4f}" if r.get("truth_mae") is not None else r.get("error", "-")  # noqa: E731
                print(f"| {name} | {cell(lg)} | {cell(nt)} |", flush=True)


if __name__ == "__main__":
    main()
