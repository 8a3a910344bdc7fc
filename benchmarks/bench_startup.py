"""Start-up cost: ``import mixopt`` and the main job, each next to a baseline measured in the same run.

Prints three tables (CPU-seconds of fresh child processes, from ``getrusage``; wall seconds
too, which on a loaded shared machine mostly measure the neighbours):

(a) ``import mixopt``: median over repeats, against the bare interpreter (``python -c pass``)
    and against importing what ``import mixopt`` used to import eagerly (``mixopt.data`` and
    ``mixopt.surrogate``, i.e. numpy and polars); plus which heavy packages each loaded.
(b) the main job, ``mixopt optimize configs/example.toml`` (FLP-M fitted on the shipped
    3-domain runs, then 2,000 trials), run in a scratch copy of ``configs/`` and the example
    data: CPU-s, wall, peak memory and the heavy packages it loaded (torch, scipy.stats, ray,
    fastapi). Baseline, same run: the job as it ran before -- ``scipy.stats`` imported (it was,
    for ``norm``) and the net candidate fitted by ``auto`` (``NET_MIN_RUNS = 0``: torch, and a
    candidate that then lost).
(c) resume: the same command again on the finished study (the fitted model and the finished
    study's result are stored beside the study), against the first run and against the resume
    as it ran before the stored result (``out/example_study.log.results`` removed first: the
    journal replayed, the decision's joint draws computed again, Optuna imported).
Children run with mixopt's bytecode compiled beforehand (``PYTHONDONTWRITEBYTECODE`` dropped),
as an installed package runs.
(net) the measurement behind ``mixopt.surrogate.flpm_auto.NET_MIN_RUNS``: FLP-M ``auto`` fitted
    with the net forced back into the stage-2 race, on the shipped example and on seeded worlds
    of its kind (``mixopt simulate --world mixture --domains 3 --mixtures M --seed S``, default
    sizes: 12 mixtures = 60 runs, 16 = 80); per table the held-out score error of every stage-2
    candidate and whether the net would have been chosen.

(d) with ``--baseline-ref REF``: the resume of this checkout against a clean clone of ``REF``,
    resumes alternated between the two (medians), and whether they wrote the same files.

Run:  python benchmarks/bench_startup.py [--quick] [--repeats 5] [--sections imports,job,net] [--seeds 12] [--baseline-ref REF]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mixopt.data.table import RunTable

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "polars", "scipy.stats", "torch", "optuna", "ray", "fastapi")
#: child code that runs ``body`` and prints its own CPU time and the heavy modules it loaded
_PROBE = """
import json, sys, time
_t = time.process_time()
{body}
print(json.dumps({{"cpu": time.process_time() - _t, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""
#: child code of the main job: the CLI in-process, then the loaded heavy modules to a file
_JOB = """
import json, resource, sys
{pre}
from mixopt.cli.main import main
rc = main(["optimize", "configs/example.toml", "--no-progress", "--json"])
json.dump({{"loaded": [m for m in {heavy!r} if m in sys.modules],
           "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}, open({out!r}, "w"))
sys.exit(rc)
"""


def _env(repo: Path = REPO) -> dict[str, str]:
    """The children's environment: this checkout first, bytecode caches used as an installed package uses them.

    ``PYTHONDONTWRITEBYTECODE`` (set on some machines) is dropped: without cached bytecode every
    child recompiles mixopt's sources, about 0.3 CPU-s that no installed copy pays.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _compile(repo: Path = REPO) -> None:
    """Write mixopt's bytecode caches once, before anything is timed (as installing a package does)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(repo / "mixopt")], env=_env(repo), check=True,
                   capture_output=True)


def _child(code: str, cwd: Path | None = None, repo: Path = REPO) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """``(CPU-s, wall-s, result)`` of ``python -c code`` in a fresh process."""
    u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd or repo, env=_env(repo), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"child failed ({r.returncode}):\n{r.stderr[-3000:]}")
    cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
    return cpu, wall, r


def imports(repeats: int) -> None:
    cases = [("python -c pass (interpreter)", "pass"),
             ("import mixopt.data, mixopt.surrogate (the old eager import mixopt)", "import mixopt.data, mixopt.surrogate"),
             ("import mixopt", "import mixopt")]
    print(f"\n(a) import time, median of {repeats} fresh processes (CPU-s of the whole process; in-process = the import alone)")
    print(f"{'what':<70} {'process CPU-s':>13} {'in-process CPU-s':>16}  loaded")
    for name, body in cases:
        procs, inner, loaded = [], [], []
        for _ in range(repeats):
            cpu, _, r = _child(_PROBE.format(body=body, heavy=HEAVY))
            info = json.loads(r.stdout.strip().splitlines()[-1])
            procs.append(cpu)
            inner.append(info["cpu"])
            loaded = info["loaded"]
        print(f"{name:<70} {statistics.median(procs):>13.3f} {statistics.median(inner):>16.3f}  {', '.join(loaded) or '-'}")
    print("Target: import mixopt <= 0.15 CPU-s and none of scipy.stats, torch, ray, fastapi loaded.")


def _workspace(tmp: Path, repo: Path = REPO) -> Path:
    ws = tmp / "repo"
    shutil.copytree(repo / "configs", ws / "configs")
    shutil.copytree(repo / "mixopt" / "examples", ws / "mixopt" / "examples")
    return ws


def _job(ws: Path, pre: str, repo: Path = REPO) -> tuple[float, float, float, list[str], dict]:
    out = ws / "loaded.json"
    cpu, wall, r = _child(_JOB.format(pre=pre, heavy=HEAVY, out=str(out)), cwd=ws, repo=repo)
    probe = json.loads(out.read_text())
    return cpu, wall, probe["rss_mb"], probe["loaded"], json.loads(r.stdout)


def main_job() -> None:
    rows = []
    before = "import torch, scipy.stats\nimport mixopt.surrogate.flpm_auto as auto\nauto.NET_MIN_RUNS = 0"
    for name, pre in (("baseline: as before (scipy.stats, the net in auto)", before),
                      ("mixopt optimize configs/example.toml", "")):
        with tempfile.TemporaryDirectory() as tmp:
            ws = _workspace(Path(tmp))
            first = _job(ws, pre)
            again = _job(ws, pre) if not pre else None
            replayed = None
            if not pre:
                shutil.rmtree(ws / "out" / "example_study.log.results")
                replayed = _job(ws, pre)  # and stores the result again
        rows.append((name, first, again, replayed))
    print("\n(b) main job (fresh study; FLP-M fitted on the shipped runs, then 2,000 trials) and (c) its resume")
    print(f"{'run':<50} {'CPU-s':>7} {'wall s':>7} {'peak MB':>8}  loaded")
    for name, first, again, replayed in rows:
        cpu, wall, rss, loaded, info = first
        print(f"{name:<50} {cpu:>7.2f} {wall:>7.2f} {rss:>8.0f}  {', '.join(loaded)}  ({info.get('n_new', '?')} new trials)")
        for label, run in (("  resume of the finished study", again), ("  resume without the stored result", replayed)):
            if run is not None:
                c2, w2, r2, l2, i2 = run
                print(f"{label:<50} {c2:>7.2f} {w2:>7.2f} {r2:>8.0f}  {', '.join(l2)}  ({i2.get('n_new', '?')} new trials)")
    base, new = rows[0][1][0], rows[1][1][0]
    print(f"main job CPU: {new:.2f} s vs {base:.2f} s baseline ({base / new:.2f}x less). Targets (issue 21): <= 3 CPU-s "
          "and <= 5 s wall quiet; resume <= 1 s wall.")


def resume_against(ref: str, repeats: int) -> None:
    """(d) the resume of this checkout against git ``ref`` (a clean clone), alternated, medians.

    Each checkout runs the main job once in its own scratch copy, then ``repeats`` resumes of
    each in turn (so both see the same load); the last resumes' Pareto and shortlist files are
    compared byte for byte.
    """
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "clone", "-q", str(REPO), str(base)], check=True, capture_output=True)
        subprocess.run(["git", "-C", str(base), "checkout", "-q", ref], check=True, capture_output=True)
        _compile(base)
        trees = {ref: base, "this checkout": REPO}
        ws = {name: _workspace(Path(tmp) / name.replace(" ", "_"), repo) for name, repo in trees.items()}
        for name, repo in trees.items():
            _job(ws[name], "", repo)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for _ in range(repeats):
            for name, repo in trees.items():
                cpu, wall, _, _, _ = _job(ws[name], "", repo)
                runs[name].append((cpu, wall))
        print(f"\n(d) resume of the finished study, this checkout against {ref} (clean clone), {repeats} resumes each, alternated")
        print(f"{'checkout':<20} {'median CPU-s':>12} {'median wall s':>13}")
        for name, v in runs.items():
            print(f"{name:<20} {statistics.median(c for c, _ in v):>12.3f} {statistics.median(w for _, w in v):>13.3f}")
        out = [ws[name] / "out" for name in trees]
        same = {f: (out[0] / f).read_bytes() == (out[1] / f).read_bytes() for f in ("example_pareto.csv", "example_pareto.shortlist.csv")}
        print("files identical between the two:", ", ".join(f"{f} {'yes' if v else 'NO'}" for f, v in same.items()))


def _example_kind(seed: int, n_mixtures: int) -> RunTable:
    from mixopt.testing import mixture_world, random_mixtures

    world = mixture_world(n_domains=3, n_benchmarks=4, seed=seed)
    return world.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8], random_mixtures(n_mixtures, 3, seed=seed), tokens_per_param=20.0,
                             n_checkpoints=10, loss_noise=0.005, score_noise=0.005, seed=seed)


def net_check(seeds: list[int], mixtures: list[int]) -> None:
    import polars as pl

    from mixopt.data.readers import read_runs
    from mixopt.surrogate import flpm_auto
    from mixopt.surrogate.flpm import FLPM

    gate, flpm_auto.NET_MIN_RUNS = flpm_auto.NET_MIN_RUNS, 0  # the net competes everywhere here
    tables = [("configs/example.toml data", read_runs(REPO / "mixopt" / "examples" / "runs_3domain.csv"))]
    tables += [(f"world seed {s}, {m} mixtures", _example_kind(s, m)) for m in mixtures for s in seeds]
    print(f"\n(net) FLP-M auto's stage-2 step with the net competing (held-out mean absolute score error; "
          f"NET_MIN_RUNS = {gate})")
    print(f"{'table':<30} {'runs':>5} {'logistic/fitted':>15} {'net/observed':>13} {'logistic/observed':>17}  chosen")
    wins = scored = 0
    try:
        for name, runs in tables:
            m = FLPM().fit(runs)
            sel = m.selection_.filter(pl.col("step") == "stage2")
            score = {r["candidate"].replace("stage2=", "").replace(", inputs=", "/"): r["score"] for r in sel.to_dicts()}
            fmt = {k: "-" if v is None else f"{v:.4f}" for k, v in score.items()}
            scored += score.get("net/observed") is not None
            wins += m.config_["stage2"] == "net"
            print(f"{name:<30} {runs.n_runs:>5} {fmt.get('logistic/fitted', '-'):>15} {fmt.get('net/observed', '-'):>13} "
                  f"{fmt.get('logistic/observed', '-'):>17}  {m.config_['stage2']}/{m.config_['stage2_inputs']}")
    finally:
        flpm_auto.NET_MIN_RUNS = gate
    print(f"the net was chosen on {wins} of {len(tables)} tables (scored on {scored}; '-': no held-out emerged score, "
          "the first candidate is kept).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat of each import case; (net) the example and 3 worlds of 12 mixtures")
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per import case")
    ap.add_argument("--sections", default="imports,job,net", help="comma-separated: imports, job, net")
    ap.add_argument("--seeds", type=int, default=12, help="(net) world seeds 0..N-1 per mixture count")
    ap.add_argument("--baseline-ref", metavar="REF", help="(d) also time the resume against this git ref (a clean clone)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    _compile()
    if "imports" in sections:
        imports(1 if args.quick else args.repeats)
    if "job" in sections:
        main_job()
    if args.baseline_ref:
        resume_against(args.baseline_ref, 3 if args.quick else args.repeats)
    if "net" in sections:
        net_check(list(range(3 if args.quick else args.seeds)), [12] if args.quick else [12, 16])


if __name__ == "__main__":
    main()
