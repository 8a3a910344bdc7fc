"""Schedules on real training (GitHub issue 25): the shipped phased ladder, and the search's pick trained for real.

Prints two tables:

(1) FLP-M (``method = "flpm"``: ``auto`` chooses among its stage-1 forms, the schedule laws
    ``flpm_recency`` / ``dml_recency`` among them on a table with schedules) fitted on the phased
    ladder's smaller sizes (mixopt/examples/phased_ladder_runs.csv, configs/phased_ladder.toml)
    predicting the largest size's final per-domain losses (when the smaller sizes span < 2x in
    compute, too little for a law to extrapolate a size, the largest size's schedules are held
    out and its constant mixtures fitted): median / max relative error and 90 % interval
    coverage, for the constant mixtures and the held-out schedules separately (target: median
    within 3 %);
(2) the real check: the search of configs/two_phase.toml (two-phase schedules) and the same
    search without ``[phases]`` (constant mixtures), on one fitted surrogate; both picks
    (shortlist rank 1) are trained for real at the config's target size with the ladder's
    trainer settings, one run per seed; the measured objective and constraint of each pick per
    seed, the paired difference (schedule - constant; the same seed gives the same
    initialisation and batch order) with its mean and a t interval over seeds, and what the
    surrogate predicted (90 % intervals); then the [phases] search's own schedule-vs-constant
    decision (:mod:`mixopt.search.phased`) and whether the measurement agrees with it (met: the
    schedule is recommended and measured better, or the constant mixture is recommended and the
    schedule is not measured better).

CPU-seconds of the training (``getrusage`` of the finished job processes) are printed with
the machine's `uptime` load; compare ratios, not absolute times, on a shared machine.

Run:  python benchmarks/bench_phases_real.py [--seeds 0,1,2] [--quick] [--json out.json]
      (needs the corpus: `python -m mixopt corpus build out/corpus`; --quick: one seed, table 1 only if --no-train)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "mixopt" / "examples" / "phased_ladder_runs.csv"
LADDER = ROOT / "configs" / "phased_ladder.toml"
SEARCH = ROOT / "configs" / "two_phase.toml"
LOSS_TARGET = 0.03


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _t_quantile(df: int, p: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def backtest_largest(runs) -> pl.DataFrame:
    """Table (1): fit on every size but the largest, predict the largest's final losses."""
    from mixopt.surrogate.base import Targets, make_surrogate
    from mixopt.surrogate.schedule import has_schedules

    sizes = sorted(set(runs.final().params().tolist()))
    final = runs.final()
    fl = final.flops()
    P0 = final.phases()
    sched = np.any(np.abs(P0 - P0[:, :1, :]) > 1e-9, axis=(1, 2))
    at_big = final.params() == sizes[-1]
    below = fl[~at_big]
    if below.max() / below.min() >= 2.0:  # a law needs >= 2x compute to extrapolate: hold out the whole largest size
        big = [r for r, b in zip(final.run_ids(), at_big, strict=True) if b]
        what = f"every run at {sizes[-1]:.3g}"
    else:  # the smaller sizes span < 2x: the largest size's schedules held out, its constant mixtures fitted
        big = [r for r, b, s in zip(final.run_ids(), at_big, sched, strict=True) if b and s]
        what = (f"the schedules at {sizes[-1]:.3g} (its constant mixtures fitted: the smaller sizes span only "
                f"{below.max() / below.min():.2f}x in compute, too little to extrapolate a size)")
    train = runs.drop_runs(big)
    test = runs.select_runs(big).final()
    t0 = time.process_time()
    model = make_surrogate("flpm").fit(train)
    fit_s = time.process_time() - t0
    print(f"held out: {what}; schedules in the fitted runs: {has_schedules(train)}; stage 1 chosen: "
          f"{model.config_.get('stage1')} (recency λ per domain {np.round(model.stage1_params_[:, -1], 2).tolist()})"
          if str(model.config_.get("stage1", "")).endswith("_recency") else
          f"held out: {what}; stage 1 chosen: {model.config_.get('stage1')}")
    pred = model.predict(Targets.from_runs(test), intervals=True, level=0.9)
    P = test.phases()
    phased = np.any(np.abs(P - P[:, :1, :]) > 1e-9, axis=(1, 2))
    rows = []
    for kind, mask in (("constant mixtures", ~phased), ("schedules (held out)", phased), ("all", np.ones_like(phased))):
        if not mask.any():
            continue
        errs, cover = [], []
        for d in test.loss_domains:
            j = pred.index(f"loss:{d}")
            meas = test.column(f"loss:{d}")[mask]
            mean = pred.mean[mask, j]
            errs.append(np.abs(mean - meas) / meas)
            cover.append((pred.lower[mask, j] <= meas) & (meas <= pred.upper[mask, j]))
        e, c = np.concatenate(errs), np.concatenate(cover)
        rows.append({"runs at the largest size": kind, "n": int(mask.sum()), "median_rel_error": float(np.median(e)),
                     "max_rel_error": float(np.max(e)), "coverage_90": float(np.mean(c))})
    forms = getattr(model, "stage1_forms_", None) or getattr(model, "forms_", None)
    fitted = sorted(set(train.final().params().tolist()))
    print(f"(1) FLP-M fitted on sizes {[f'{s:.3g}' for s in fitted]} ({train.n_runs} runs, {fit_s:.1f} CPU-s), "
          f"predicting the {len(big)} runs at {sizes[-1]:.3g} (final checkpoints, loss:<d>); target median <= {LOSS_TARGET:.0%}"
          + (f"; stage-1 forms {forms}" if forms else ""))
    out = pl.DataFrame(rows)
    print(out)
    return out


def _mix_text(row: dict, domains) -> str:
    return ", ".join(f"{d} {100 * row['mix:' + d]:.1f}%" for d in domains)


def _pick(result) -> dict:
    if result.best is None:
        raise SystemExit("the search found no feasible pick: " + "; ".join(result.notes))
    return dict(result.best)


def _job_for(row: dict, run_id: str, seed: int, checkpoints: int):
    from mixopt.train.ladder import phases_from_row
    from mixopt.train.spec import JobSpec

    phases = phases_from_row(row)
    mix = {} if phases else {c[4:]: float(v) for c, v in row.items() if c.startswith("mix:")}
    if phases:
        phases = [{"end": p["end"], "mixture": {d: max(0.0, v) / sum(max(0.0, x) for x in p["mixture"].values())
                                               for d, v in p["mixture"].items()}} for p in phases]
    else:
        s = sum(max(0.0, v) for v in mix.values())
        mix = {d: max(0.0, v) / s for d, v in mix.items()}
    return JobSpec(run_id=run_id, mixture=mix, phases=phases, params=float(row["params"]), tokens=float(row["tokens"]),
                   seed=seed, checkpoints=checkpoints)


def real_check(seeds: list[int], out_dir: Path, parallel: int | None = None) -> dict:
    """Table (2)."""
    from mixopt.config import load_project
    from mixopt.search.summary import schedule_text
    from mixopt.train.ladder import train_jobs
    from mixopt.workflows.optimize import search_with_surrogate

    project = load_project(SEARCH)
    cfg = project.search
    assert cfg is not None and cfg.phases is not None
    cfg = replace(cfg, search=replace(cfg.search, storage="memory", output=None))
    res_s, model = search_with_surrogate(cfg, progress=False)
    res_c, _ = search_with_surrogate(replace(cfg, phases=None), model, progress=False)
    pick_s, pick_c = _pick(res_s), _pick(res_c)
    objective = res_s.objectives[0][0]
    cons = [c for c in res_s.constraints if c != "data"]
    quantities = [objective, *[c.split()[0] for c in cons]]
    domains = res_s.domains
    print(f"\n(2) search picks at params {pick_s['params']:.3g}, tokens {pick_s['tokens']:.3g} "
          f"(objective {objective}, constraints {cons}):")
    print(f"  schedule: {_mix_text(pick_s, domains)} over the run; {schedule_text(pick_s, domains)}")
    print(f"  constant: {_mix_text(pick_c, domains)}")
    for name, pick in (("schedule", pick_s), ("constant", pick_c)):
        print(f"  predicted ({name}): " + "; ".join(
            f"{q} {pick[q]:.4f} [{pick[f'{q}:lower']:.4f}, {pick[f'{q}:upper']:.4f}]" for q in quantities if q in pick))
    svc = dict(res_s.schedule_vs_constant or {})
    print(f"  the [phases] search's decision (stage 1 {svc.get('stage1')}): {svc.get('text')}")
    trainer = replace(load_project(LADDER, search=False).train.trainer, workdir=out_dir / "jobs")  # the ladder's settings
    if parallel:
        trainer = replace(trainer, max_parallel=parallel)  # jobs side by side: the numbers do not depend on it
    jobs = []
    for seed in seeds:
        jobs.append(_job_for(pick_s, f"pick_schedule_s{seed}", seed, 4))
        jobs.append(_job_for(pick_c, f"pick_constant_s{seed}", seed, 4))
    load0, c0, w0 = _load(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    rep = train_jobs(jobs, trainer, out_dir / "runs.csv")
    c1, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - w0
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    if rep.failed:
        raise SystemExit(f"training failed: {[(r.spec.run_id, r.message) for r in rep.failed]}")
    final = rep.table.final()
    meas = {r: {q: float(final.column(q)[i]) for q in quantities} for i, r in enumerate(final.run_ids())}
    rows, diffs = [], []
    for seed in seeds:
        a, b = meas[f"pick_schedule_s{seed}"], meas[f"pick_constant_s{seed}"]
        rows.append({"seed": seed, **{f"schedule {q}": a[q] for q in quantities}, **{f"constant {q}": b[q] for q in quantities},
                     f"diff {objective}": a[objective] - b[objective]})
        diffs.append(a[objective] - b[objective])
    table = pl.DataFrame(rows)
    print(f"  trained {len(jobs)} runs in {cpu:.0f} CPU-s ({wall:.0f} s wall; load {load0.split('load average:')[-1].strip()} -> "
          f"{_load().split('load average:')[-1].strip()}):")
    print(table)
    d = np.asarray(diffs)
    mean = float(d.mean())
    half = float(_t_quantile(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    verdict = ("the schedule is better" if mean + half < 0 else "the constant mixture is better" if mean - half > 0
               else "the difference is within noise")
    print(f"  {objective}, schedule - constant (paired by seed): mean {mean:+.4f}, 90 % t interval "
          f"[{mean - half:+.4f}, {mean + half:+.4f}] over {len(d)} seed(s): {verdict}")
    pred_diff = float(pick_s[objective] - pick_c[objective])
    print(f"  predicted difference {pred_diff:+.4f}")
    rec = svc.get("recommended")
    # met: the schedule is recommended and measured better, or the constant is recommended and the schedule is not measured better
    met = (rec == "schedule" and verdict == "the schedule is better") or (rec == "constant" and verdict != "the schedule is better")
    print(f"  recommended: {rec} ({svc.get('reason')}); measured: {verdict} -> target {'met' if met else 'MISSED'}")
    return {"pick_schedule": {k: v for k, v in pick_s.items() if isinstance(v, (int, float, str, bool))},
            "pick_constant": {k: v for k, v in pick_c.items() if isinstance(v, (int, float, str, bool))},
            "measured": rows, "mean_diff": mean, "interval_90": [mean - half, mean + half], "verdict": verdict,
            "predicted_diff": pred_diff, "cpu_s": cpu, "wall_s": wall, "schedule_vs_constant": svc, "recommended": rec,
            "target_met": met}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the real check (one run per pick and seed)")
    ap.add_argument("--quick", action="store_true", help="one seed")
    ap.add_argument("--no-train", action="store_true", help="table (1) only")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--keep", help="folder for the trained runs (default: a temporary folder)")
    ap.add_argument("--table", default=str(TABLE), help="the phased ladder (default the shipped one)")
    ap.add_argument("--parallel", type=int, help="training jobs side by side (default the ladder config's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from mixopt.data.readers import read_runs

    print(f"load: {_load()}")
    runs = read_runs(args.table)
    out: dict = {"backtest": backtest_largest(runs).to_dicts()}
    if not args.no_train:
        seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
        with tempfile.TemporaryDirectory() as tmp:
            out["real_check"] = real_check(seeds, Path(args.keep) if args.keep else Path(tmp), args.parallel)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
