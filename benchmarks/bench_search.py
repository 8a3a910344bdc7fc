"""Mixture search: quality against a known Pareto front, runner speed, Ray overhead and scaling.

Prints four tables (every ratio is against a baseline measured in the same run):

(a) quality: synthetic worlds with 3 and 5 domains (``mixture_world(k, 3, seed=0)``), the
    world's exact truth as the surrogate (:class:`~mixopt.testing.WorldSurrogate`), compute
    fixed at 1e21 FLOPs, objectives = two benchmark scores (``--objectives 3``: three).
    The true front comes from dense enumeration of the simplex (a regular grid with step
    1/400 for 3 domains and 1/60 for 5, i.e. 80k and 636k mixtures). Hypervolume reference
    point: the true front's nadir moved outwards by 10 % of its range per objective
    (``default_reference``). Reported: hypervolume reached after 500/1000/2000/5000
    surrogate evaluations as % of the true front's (mean over seeds; a search can beat a
    grid by a hair), the wall time of the whole run, and the ratio to a pure random search
    (numpy Dirichlet(1) samples, no Optuna) at the same budget. Targets: >= 99 % (3
    domains) and >= 97 % (5 domains) at 5,000 evaluations.
    Sanity check: the paper's two-domain web + code setting (``two_domain_code_world``):
    the best code ratio per benchmark found by a single-objective search vs the truth.
(b) runner speed: trials per second for a 5-domain problem with a compute variable (5
    coordinates), by sampler, batch size and storage (memory / SQLite / Optuna journal
    file); baseline Optuna's stock NSGA-II. Also the share of time spent in the surrogate.
(c) Ray vs local with a fast surrogate (overhead), baseline local.
(d) Ray scaling with a slow surrogate (0.2 s sleep per predict call = per evaluation
    batch): local, Ray with 1 and 2 workers (one batch in flight per worker); baseline local.
(e) persist: persisted trials against in-memory, 3 and 64 domains (+ compute), NSGA-II, batch
    256, the world's truth as the surrogate: in memory (baseline), the batched journal file
    (the default storage), Optuna's stock journal file and storage (one append + fsync and one
    replay per trial) and SQLite; memory and the batched journal alternate 3 times (--quick: 2),
    best of each. Trials per wall second AND per CPU second of this process (on a loaded shared
    machine wall time mostly measures the neighbours), the ratio to in-memory, and a resume
    check (the persisted study reopened holds every trial). Targets (issue 14): >= 1,000
    persisted trials/s at 3 domains and >= 500 at 64 domains; (issue 21) the batched journal
    >= 0.9x in-memory at 64 domains (CPU).
(f) resume: configs/example.toml (real FLP-M) run once to completion in a scratch folder,
    then resumed as a fresh ``python -m mixopt optimize`` process; its wall time against the
    first run's. Target: <= 5 s on a quiet machine.

Run:  python benchmarks/bench_search.py [--quick] [--sections quality,speed,ray,persist,resume] [--seeds 3]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from mixopt.search import (
    ComputeSpace,
    MixtureSpace,
    Problem,
    RayExecutor,
    SearchSpace,
    hypervolume,
    pareto_mask,
    run_study,
)
from mixopt.search.executors import available_cpus
from mixopt.search.results import default_reference
from mixopt.testing import WorldSurrogate, mixture_world, two_domain_code_world

pl.Config.set_tbl_rows(200)
pl.Config.set_tbl_cols(30)
pl.Config.set_tbl_width_chars(200)
pl.Config.set_float_precision(3)

FLOPS = 1e21
GRID = {3: 400, 5: 60}


# -- helpers ------------------------------------------------------------------------------------
def simplex_grid(k: int, n: int) -> np.ndarray:
    """All mixtures with ratios in multiples of 1/n: ``(C(n+k-1, k-1), k)``."""
    rows = []
    for bars in itertools.combinations(range(n + k - 1), k - 1):
        rows.append(np.diff(np.concatenate([[-1], bars, [n + k - 1]])) - 1)
    return np.asarray(rows, dtype=float) / n


def big_pareto(y: np.ndarray, dirs: list[str], chunk: int = 20_000) -> np.ndarray:
    keep = np.concatenate([np.arange(s, min(s + chunk, len(y)))[pareto_mask(y[s:s + chunk], dirs)]
                           for s in range(0, len(y), chunk)])
    return keep[pareto_mask(y[keep], dirs)]


def true_front(world, objectives: list[str], grid: int) -> np.ndarray:
    mix = simplex_grid(world.k, grid)
    s = WorldSurrogate(world)
    from mixopt.surrogate import Targets

    pred = s.predict(Targets(flops=np.full(len(mix), FLOPS), mixture=mix, domains=world.domains), intervals=False)
    y = np.column_stack([pred.get(o) for o in objectives])
    return y[big_pareto(y, ["maximize"] * len(objectives))]


def prefix_hv(values: np.ndarray, ok: np.ndarray, budgets: list[int], ref: np.ndarray, dirs: list[str]) -> list[float]:
    out = []
    for n in budgets:
        v = values[:n][ok[:n]]
        out.append(hypervolume(v, ref, dirs) if len(v) else 0.0)
    return out


def problem_for(world, objectives: list[str], flops=FLOPS, delay_s: float = 0.0) -> Problem:
    space = SearchSpace(MixtureSpace(world.domains), ComputeSpace(flops=flops))
    return Problem(space, WorldSurrogate(world, delay_s=delay_s), objectives)


# -- (a) quality ----------------------------------------------------------------------------------
def quality(seeds: list[int], budgets: list[int], n_obj: int, quick: bool, with_gp: bool = False, batch: int = 128) -> None:
    samplers: list[tuple[str, dict]] = [
        ("nsga2", {}),
        ("nsga2 (sbx)", {"sampler_options": {"crossover": "sbx"}}),
        ("nsga2-optuna", {"sampler": "nsga2-optuna"}),
        ("qmc", {"sampler": "qmc"}),
        ("random (optuna)", {"sampler": "random"}),
        ("tpe", {"sampler": "tpe", "max_trials": 1000 if quick else 2000}),
    ]
    if with_gp:
        samplers.append(("gp", {"sampler": "gp", "max_trials": 100, "batch_size": 10}))
    rows = []
    for k in (3, 5):
        world = mixture_world(n_domains=k, n_benchmarks=max(3, n_obj), seed=0)
        objectives = [f"score:{b}" for b in world.benchmark_names[:n_obj]]
        dirs = ["maximize"] * n_obj
        t0 = time.perf_counter()
        grid = GRID[k] // (2 if quick else 1)
        front = true_front(world, objectives, grid)
        ref = default_reference(front, dirs)
        hv_true = hypervolume(front, ref, dirs)
        coarse = hypervolume(true_front(world, objectives, grid // 2), ref, dirs)
        print(f"\n{k} domains: true front from a 1/{grid} grid: {len(front)} points, hypervolume {hv_true:.6g} "
              f"({time.perf_counter() - t0:.1f} s; a 1/{grid // 2} grid gives {100 * coarse / hv_true:.3f} % of it)")
        prob = problem_for(world, objectives)
        # pure random search: Dirichlet(1) mixtures straight into the surrogate
        base = {}
        for seed in seeds:
            u = np.random.default_rng(seed).random((max(budgets), prob.space.dim))
            ev = prob(u)
            base[seed] = prefix_hv(ev.values, ev.ok, budgets, ref, dirs)
        base_mean = np.mean([base[s] for s in seeds], axis=0)
        rows.append({"domains": k, "sampler": "pure random (numpy)", **{f"hv%@{b}": 100 * h / hv_true for b, h in zip(budgets, base_mean, strict=True)},
                     "wall_s": float("nan"), "trials/s": float("nan"), "vs_random@max": 1.0})
        for name, opts in samplers:
            opts = dict(opts)
            cap = opts.pop("max_trials", max(budgets))
            bud = [b for b in budgets if b <= cap] or [cap]
            hvs, walls, rates = [], [], []
            for seed in seeds if name not in ("gp", "tpe") or not quick else seeds[:1]:
                kw = {"batch_size": batch} | opts
                res = run_study(prob, trials=max(bud), seed=seed, progress=False, storage=None, **kw)
                tr = res.trials.sort("trial")
                vals = tr.select([f"obj:{o}" for o in objectives]).to_numpy()
                ok = tr["feasible"].to_numpy()
                hvs.append(prefix_hv(vals, ok, bud, ref, dirs))
                walls.append(res.elapsed_s)
                rates.append(res.trials_per_s)
            hv = np.mean(hvs, axis=0)
            row = {"domains": k, "sampler": name, **{f"hv%@{b}": float("nan") for b in budgets}}
            row.update({f"hv%@{b}": 100 * h / hv_true for b, h in zip(bud, hv, strict=True)})
            j = budgets.index(bud[-1]) if bud[-1] in budgets else len(budgets) - 1
            row.update({"wall_s": float(np.mean(walls)), "trials/s": float(np.mean(rates)),
                        "vs_random@max": float(hv[-1] / base_mean[j])})
            rows.append(row)
            print(f"  {name:18s} " + "  ".join(f"{b}:{100 * h / hv_true:7.3f}%" for b, h in zip(bud, hv, strict=True))
                  + f"   wall {np.mean(walls):.2f} s", flush=True)
    print("\n(a) hypervolume reached, % of the true front's (mean over seeds "
          f"{seeds}; budgets are surrogate evaluations; batch {batch}; wall_s = whole run at its largest budget)")
    print(pl.DataFrame(rows))


def sanity_two_domain(seed: int) -> None:
    world = two_domain_code_world()
    rows = []
    r = np.linspace(0, 1, 10_001)
    truth = world.true_scores(np.full(r.size, FLOPS), np.column_stack([1 - r, r]))
    for j, b in enumerate(world.benchmark_names):
        prob = problem_for(world, [f"score:{b}"])
        res = run_study(prob, trials=256, batch_size=32, seed=seed, progress=False)
        found = res.best["mix:code"]
        rows.append({"benchmark": b, "true_best_code": float(r[truth[:, j].argmax()]), "found_code": found,
                     "abs_diff": abs(found - r[truth[:, j].argmax()]),
                     "score_gap": float(truth[:, j].max() - res.best[f"obj:score:{b}"])})
    prob = problem_for(world, ["mean(score:*)"])
    res = run_study(prob, trials=256, batch_size=32, seed=seed, progress=False)
    rows.append({"benchmark": "mean of all", "true_best_code": float(r[truth.mean(axis=1).argmax()]),
                 "found_code": res.best["mix:code"], "abs_diff": abs(res.best["mix:code"] - r[truth.mean(axis=1).argmax()]),
                 "score_gap": float(truth.mean(axis=1).max() - res.best["obj:mean(score:*)"])})
    print("\n(a') the paper's web + code case at 1e21 FLOPs: best code ratio, single-objective NSGA-II, 256 evaluations")
    print(pl.DataFrame(rows))


# -- (b) speed ---------------------------------------------------------------------------------------
def speed(quick: bool) -> None:
    world = mixture_world(n_domains=5, n_benchmarks=3, seed=0)
    objectives = [f"score:{b}" for b in world.benchmark_names[:2]]
    prob = problem_for(world, objectives, flops=(1e20, 1e22))
    n_mem = 2000 if quick else 5000
    n_sql = 500 if quick else 2000
    configs = [
        ("nsga2-optuna", 256, "memory", n_mem),
        ("nsga2", 32, "memory", n_mem),
        ("nsga2", 64, "memory", n_mem),
        ("nsga2", 128, "memory", n_mem),
        ("nsga2", 256, "memory", n_mem),
        ("nsga2", 512, "memory", n_mem),
        ("random", 256, "memory", n_mem),
        ("qmc", 256, "memory", n_mem),
        ("tpe", 256, "memory", 500 if quick else 1000),
        ("nsga2", 256, "sqlite", n_sql),
        ("nsga2-optuna", 256, "sqlite", n_sql),
        ("nsga2", 256, "journal", n_sql),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (sampler, batch, storage, n) in enumerate(configs):
            st = {"memory": None, "sqlite": str(Path(tmp) / f"s{i}.db"), "journal": f"journal:{Path(tmp) / f's{i}.log'}"}[storage]
            res = run_study(prob, trials=n, batch_size=batch, sampler=sampler, seed=0, storage=st, progress=False)
            rows.append({"sampler": sampler, "batch": batch, "storage": storage, "trials": n,
                         "wall_s": res.elapsed_s, "trials/s": res.trials_per_s})
            print(f"  {sampler:13s} batch {batch:4d} {storage:7s} {res.trials_per_s:8.0f} trials/s", flush=True)
    base = rows[0]["trials/s"]
    df = pl.DataFrame(rows).with_columns((pl.col("trials/s") / base).alias("vs_optuna_nsga2"))
    # the surrogate's share: the same number of evaluations straight through Problem
    u = np.random.default_rng(0).random((n_mem, prob.space.dim))
    t0 = time.perf_counter()
    for c in np.array_split(u, max(1, n_mem // 256)):
        prob(c)
    t_eval = time.perf_counter() - t0
    print(f"\n(b) runner speed, 5 domains + compute (5 coordinates), 2 objectives, {available_cpus()} CPUs; "
          "baseline: Optuna's stock NSGA-II (batch 256, memory)")
    print(df)
    mem = df.filter((pl.col("sampler") == "nsga2") & (pl.col("batch") == 256) & (pl.col("storage") == "memory"))
    print(f"surrogate evaluation alone: {n_mem / t_eval:.0f} evaluations/s ({100 * (t_eval / n_mem) * mem['trials/s'][0]:.1f} % "
          "of the nsga2 batch-256 run's time); the rest is Optuna's ask/tell and mixopt's bookkeeping")


# -- (c, d) Ray ---------------------------------------------------------------------------------------
def ray_bench(quick: bool) -> None:
    import ray

    world = mixture_world(n_domains=5, n_benchmarks=3, seed=0)
    objectives = [f"score:{b}" for b in world.benchmark_names[:2]]
    fast = problem_for(world, objectives, flops=(1e20, 1e22))
    n = 1000 if quick else 3000
    t0 = time.perf_counter()
    ex2 = RayExecutor(workers=2)
    t_start = time.perf_counter() - t0
    rows = []
    run_study(fast, trials=512, batch_size=256, seed=0, executor=ex2, progress=False)  # warm the workers up
    res = run_study(fast, trials=n, batch_size=256, seed=0, progress=False)
    rows.append({"executor": "local", "workers": 1, "trials/s": res.trials_per_s})
    for w in (1, 2):
        ex = RayExecutor(workers=w)
        res = run_study(fast, trials=n, batch_size=256, seed=0, executor=ex, progress=False)
        rows.append({"executor": "ray", "workers": w, "trials/s": res.trials_per_s})
    df = pl.DataFrame(rows).with_columns((pl.col("trials/s") / rows[0]["trials/s"]).alias("vs_local"))
    print(f"\n(c) Ray overhead, fast surrogate, batch 256, {n} trials (Ray started in {t_start:.1f} s, "
          f"{int(ray.cluster_resources().get('CPU', 0))} CPUs)")
    print(df)

    slow = problem_for(world, objectives, flops=(1e20, 1e22), delay_s=0.2)
    batches = 10 if quick else 20
    run_study(slow, trials=128, batch_size=64, seed=0, executor=ex2, progress=False)  # warm the workers up
    rows = []
    res = run_study(slow, trials=64 * batches, batch_size=64, seed=0, progress=False)
    rows.append({"executor": "local", "workers": 1, "batches/s": batches / res.elapsed_s, "trials/s": res.trials_per_s})
    for w in (1, 2):
        res = run_study(slow, trials=64 * batches, batch_size=64, seed=0, executor=RayExecutor(workers=w), progress=False)
        rows.append({"executor": "ray", "workers": w, "batches/s": batches / res.elapsed_s, "trials/s": res.trials_per_s})
    df = pl.DataFrame(rows).with_columns((pl.col("trials/s") / rows[0]["trials/s"]).alias("vs_local"))
    print(f"\n(d) Ray scaling, slow surrogate (0.2 s per predict call = per evaluation batch), batch 64, {batches} batches; "
          "Ray keeps one batch in flight per worker")
    print(df)
    ex2.close()


# -- (e) persisted trials ----------------------------------------------------------------------------
def persist(quick: bool) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    import mixopt.search.storage as msto

    rows = []
    reps = 2 if quick else 3
    for k in (3, 64):
        world = mixture_world(n_domains=k, n_benchmarks=3, seed=0)
        prob = problem_for(world, [f"score:{b}" for b in world.benchmark_names[:2]], flops=(1e20, 1e22))
        n = (2048 if quick else 8192) if k == 3 else (1024 if quick else 4096)
        run_study(prob, trials=256, batch_size=256, seed=0, progress=False)  # warm imports and caches
        best: dict[str, tuple[float, float, int | None, int]] = {}
        kinds = ("memory", "journal (batched, default)", "journal (Optuna stock)", "sqlite")
        # memory and the batched journal alternate `reps` times (best of each: a loaded machine's
        # neighbours inflate single runs); the slow stores run once
        order = [kd for _ in range(reps) for kd in kinds[:2]] + list(kinds[2:])
        for kind in order:
            m = n if kind != "sqlite" else max(256, n // 8)
            with tempfile.TemporaryDirectory() as tmp:
                st = {"memory": None, "sqlite": str(Path(tmp) / "s.db")}.get(kind, str(Path(tmp) / "s.log"))
                stock = kind == "journal (Optuna stock)"
                if stock:  # the same runner writing through Optuna's own journal backend and storage
                    real_be, real_st = msto.make_batched_backend, msto._journal_storage_class
                    msto.make_batched_backend = lambda path: JournalFileBackend(str(path))
                    msto._journal_storage_class = lambda: JournalStorage
                try:
                    c0, w0 = time.process_time(), time.perf_counter()
                    res = run_study(prob, trials=m, batch_size=256, seed=0, storage=st, study_name="b", progress=False)
                    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                finally:
                    if stock:
                        msto.make_batched_backend, msto._journal_storage_class = real_be, real_st
                kept = None
                if st is not None:
                    storage = (JournalStorage(JournalFileBackend(st)) if st.endswith(".log") else f"sqlite:///{st}")
                    kept = len(optuna.load_study(study_name="b", storage=storage).trials)
            old = best.get(kind)
            best[kind] = (min(cpu, old[0]) if old else cpu, min(wall, old[1]) if old else wall, kept, res.n_new)
            print(f"  {k:2d} domains {kind:28s} {res.n_new / cpu:8.0f}/s CPU {res.n_new / wall:8.0f}/s wall", flush=True)
        base_cpu, base_wall = best["memory"][3] / best["memory"][0], best["memory"][3] / best["memory"][1]
        for kind in kinds:
            cpu, wall, kept, n_new = best[kind]
            per_cpu, per_wall = n_new / cpu, n_new / wall
            m = n if kind != "sqlite" else max(256, n // 8)
            rows.append({"domains": k, "storage": kind, "trials": m, "trials/s (CPU)": round(per_cpu),
                         "trials/s (wall)": round(per_wall), "vs memory (CPU)": round(per_cpu / base_cpu, 3),
                         "vs memory (wall)": round(per_wall / base_wall, 3),
                         "resumable": "-" if kept is None else f"{kept}/{m} kept"})
    print(f"\n(e) persisted trials vs in-memory (NSGA-II, batch 256, truth surrogate, {available_cpus()} CPUs; "
          "targets >= 1,000/s at 3 domains, >= 500/s at 64, persisted; batched journal >= 0.9x memory (CPU) at 64; "
          f"memory and batched journal: best of {reps} alternating runs)")
    print(pl.DataFrame(rows))


# -- (f) resume of a finished study ------------------------------------------------------------------
def resume() -> None:
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "repo"
        shutil.copytree(repo / "configs", ws / "configs")
        shutil.copytree(repo / "mixopt" / "examples", ws / "mixopt" / "examples")
        cmd = [sys.executable, "-m", "mixopt", "optimize", "configs/example.toml", "--no-progress", "--json"]
        env = {**__import__("os").environ, "PYTHONPATH": str(repo)}
        import resource

        times, cpus = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True)
            u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            times.append(time.perf_counter() - t0)
            cpus.append(u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime)
            if r.returncode != 0:
                print(r.stderr[-2000:])
                return
        import json

        info = json.loads(r.stdout)
    print(f"\n(f) configs/example.toml (real FLP-M, 2,000 trials): first run {times[0]:.1f} s wall / {cpus[0]:.1f} s CPU; "
          f"resume of the finished study {times[1]:.1f} s and {times[2]:.1f} s wall / {cpus[1]:.1f} s and {cpus[2]:.1f} s CPU "
          f"(process start, imports, journal replay, cached-model load, tables) ({cpus[0] / min(cpus[1:]):.0f}x less CPU; "
          f"{info['n_new']} new trials, executor: {info['executor']}). Target: <= 5 s wall on a quiet machine, "
          "where wall ~ CPU.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds, budgets, trials and a coarser true front")
    ap.add_argument("--sections", default="quality,speed,ray,persist,resume",
                    help="comma-separated: quality, speed, ray, persist, resume")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per quality cell (default 3, quick 1)")
    ap.add_argument("--objectives", type=int, default=2, choices=[2, 3], help="benchmarks optimised in (a)")
    ap.add_argument("--batch", type=int, default=128, help="batch size of the searches in (a)")
    ap.add_argument("--with-gp", action="store_true", help="include the GP sampler in (a) (100 trials; minutes)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    budgets = [500, 1000, 2000, 5000] if not args.quick else [500, 2000, 5000]
    t0 = time.perf_counter()
    if "quality" in sections:
        quality(seeds, budgets, args.objectives, args.quick, args.with_gp, args.batch)
        sanity_two_domain(0)
    if "speed" in sections:
        speed(args.quick)
    if "ray" in sections:
        ray_bench(args.quick)
    if "persist" in sections:
        persist(args.quick)
    if "resume" in sections:
        resume()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
