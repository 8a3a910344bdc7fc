"""The plan workflow (``mixopt plan``): fit the config's surrogate, plan the next runs, write them.

The CSV has one row per planned run in the columns ``mixopt ladder CONFIG --jobs`` reads
(:func:`mixopt.train.ladder.read_jobs`: ``run_id``, ``params``, ``tokens``, ``seed``,
``checkpoints``, ``mix:<domain>``) plus ``flops`` and the criterion's ``gain`` at the pick;
the JSON next to it holds the settings and the decision's summary (pick, P(best),
expected regret, draws kind).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mixopt._files import write_text
from mixopt._json import jsonable
from mixopt.config import SearchConfig
from mixopt.data.table import MIX_PREFIX, RunTable
from mixopt.search.plan import Plan, PlanSettings, plan_runs
from mixopt.search.space import Points
from mixopt.surrogate.base import Surrogate
from mixopt.train.ladder import size_label, write_jobs
from mixopt.train.spec import JobSpec
from mixopt.workflows.optimize import _read_config_runs, build_problem, fit_surrogate


def defaults_from_runs(runs: RunTable, sizes: tuple[float, ...] = ()) -> tuple[tuple[float, ...], dict[float, float]]:
    """Candidate sizes (default: the distinct sizes of the final checkpoints) and the tokens of
    each: the median tokens of the runs of that size, else the median D/N times N."""
    final = runs.final()
    n, d = final.params(), final.tokens()
    sizes = sizes or tuple(sorted({float(x) for x in n}))
    tpp = float(np.median(d / n))
    return sizes, {s: float(np.median(d[n == s])) if np.any(n == s) else tpp * s for s in sizes}


def made_runs(runs: RunTable, domains: tuple[str, ...]) -> Points:
    """The table's runs as points (final checkpoint: parameters, tokens, mixture over ``domains``, 0 for a
    domain the table lacks), the runs :func:`~mixopt.search.plan.plan_runs` must not propose again."""
    final = runs.final()
    n, d = final.params(), final.tokens()
    cols = set(final.frame.columns)
    mix = np.column_stack([np.nan_to_num(final.column(MIX_PREFIX + x)) if MIX_PREFIX + x in cols else np.zeros(len(final))
                           for x in domains]) if domains else np.ones((len(final), 0))
    return Points(mixture=mix, flops=6.0 * n * d, params=n, tokens=d)


def plan(config: SearchConfig | str | Path, settings: PlanSettings | None = None, *, surrogate: Surrogate | None = None,
         runs: RunTable | None = None) -> Plan:
    """Plan the next sampling runs for ``config``'s decision (:mod:`mixopt.search.plan`).

    Args:
        config: the search config (objectives, constraints, target compute, bounds), or its file.
        settings: budget and criterion (default ``config.plan`` or :class:`PlanSettings`).
        surrogate: a fitted surrogate (default: fit the config's on its runs).
        runs: the run table so far (default: the config's ``[data] runs``); it gives the
            candidate sizes and tokens per parameter when ``settings`` does not, and its runs are
            never proposed again (:func:`made_runs`).
    """
    if not isinstance(config, SearchConfig):
        from mixopt.config import load_config

        config = load_config(config)
    st = settings or config.plan or PlanSettings()
    if runs is None and config.data.runs is not None:
        runs = _read_config_runs(config)
    model = surrogate if surrogate is not None else fit_surrogate(config)
    sizes, tokens = defaults_from_runs(runs, st.sizes) if runs is not None else ((), None)
    problem = build_problem(config, model)
    existing = made_runs(runs, problem.space.domains) if runs is not None else None
    return plan_runs(problem, st, sizes=sizes, tokens=tokens, existing=existing)


def plan_jobs(p: Plan, *, prefix: str = "plan", seed: int = 0, checkpoints: int = 4) -> list[JobSpec]:
    """The planned runs as ladder jobs (run ids ``<prefix>_<i>_N<size>``)."""
    jobs = []
    for i in range(len(p)):
        mix = {d: float(x) for d, x in zip(p.domains, p.mixture[i], strict=True)}
        total = sum(mix.values())
        mix = {d: x / total for d, x in mix.items()}
        jobs.append(JobSpec(run_id=f"{prefix}_{i:03d}_N{size_label(float(p.params[i]))}", mixture=mix,
                            params=float(p.params[i]), tokens=float(p.tokens[i]), seed=seed, checkpoints=checkpoints))
    return jobs


def write_plan(p: Plan, path: str | Path, *, settings: PlanSettings | None = None, prefix: str = "plan",
               checkpoints: int = 4) -> tuple[Path, Path]:
    """Write the plan's CSV (ladder jobs + ``flops``, ``gain``) and its JSON summary (``<path>.json``)."""
    path = Path(path)
    jobs = plan_jobs(p, prefix=prefix, checkpoints=checkpoints)
    write_jobs(jobs, path, extra={"flops": p.flops.tolist(), "gain": p.value.tolist()})
    meta: dict[str, Any] = {"criterion": p.criterion, "draws": p.draws, "summary": p.summary,
                            "runs": [{**j.to_dict(), "flops": float(f), "gain": float(g)}
                                     for j, f, g in zip(jobs, p.flops, p.value, strict=True)]}
    if settings is not None:
        meta["settings"] = settings.__dict__
    jpath = path.with_suffix(".json")
    write_text(jpath, json.dumps(jsonable(meta), indent=1) + "\n", what="plan summary")
    return path, jpath


__all__ = ["defaults_from_runs", "made_runs", "plan", "plan_jobs", "write_plan"]
