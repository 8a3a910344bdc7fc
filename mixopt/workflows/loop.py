"""The loop workflow: optimise -> validate -> refit, ``[validate] rounds`` times (``mixopt optimize``).

One round (``[validate] rounds = R`` runs R of them)::

    runs_r   = the config's sampling runs + every run validated so far
    model_r  = fit the surrogate on runs_r               -> <output>/round_<r>/surrogate/
    search_r = run_search(config, model_r)               -> <output>/round_<r>/study.db, pareto.csv
    train the K most diverse Pareto mixtures for real    -> appended to [validate] runs (no duplicates)
    compare prediction (mean, interval) with measurement -> <output>/round_<r>/validation.csv

Every round's surrogate, study and Pareto set are kept. Pareto mixtures within L1 distance
0.05 of a mixture validated in an earlier round are skipped (while enough others remain), so
each round measures somewhere new. Run ids are ``val_r<r>_t<trial>_s<seed>``:
re-running the loop retrains nothing already in the runs file and appends nothing twice.
Each round also proposes the next *sampling* run (``[validate] propose_next``), by
``[validate] next``: ``"plan"`` (default) is ``mixopt plan``'s decision criterion (one run,
:func:`plan_next`; docs/planning.md); ``"uncertainty"`` is the Pareto mixture whose
prediction is least certain at the target (widest interval of the first objective's
quantity, relative to its mean), at the smallest model size of the runs (a heuristic).
With ``[validate] train_next = true`` the proposal is trained too (run id ``next_r<r>_s<seed>``,
appended to the runs file) and the rounds after ``r`` refit on it: the loop is then *driven*
by the rule, and the two rules can be compared on what the later rounds measure.

Every ``round_<r>/round.json`` records, besides the runs and the trained ids:

* ``validation``: each validated mixture's predicted mean and interval vs measured per
  quantity (``gap`` = measured - predicted, ``rel_error``, ``covered``), and ``gaps``: per
  quantity ``n``, median and max relative error, mean signed gap and interval coverage;
* ``decision``: the rank-1 mixture (``pick``: ratios and predicted objectives with their
  intervals) and, from round 2 on, the change from the previous round: the previous pick
  predicted before the refit (by round ``r-1``'s surrogate) and after it (by round ``r``'s),
  whether the pick changed (L1 distance of the ratios > :data:`PICK_CHANGED_L1`) and the distance;
* ``next_trained``: the trained proposal and its predicted-vs-measured rows (with ``train_next``).

``mixopt report --loop <output>`` renders these round by round (:mod:`mixopt.report`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt._files import atomic_path, write_text
from mixopt._json import jsonable
from mixopt.config import SearchConfig, TrainConfig
from mixopt.data.readers import read_runs
from mixopt.data.table import MIX_PREFIX, RunTable
from mixopt.errors import ConfigError, MixoptError
from mixopt.surrogate import load_surrogate, save_surrogate
from mixopt.train.executors import JobExecutor
from mixopt.train.ladder import BatchReport, train_jobs
from mixopt.train.spec import JobSpec
from mixopt.train.store import atomic_write_runs, merge_tables
from mixopt.train.validate import ALREADY_VALIDATED_L1, compare, pick_diverse, summarize
from mixopt.workflows.optimize import fit_surrogate, run_search
from mixopt.workflows.validate import output_paths, validate_rows

logger = logging.getLogger(__name__)

#: L1 distance between two rounds' rank-1 mixtures above which the pick counts as changed
PICK_CHANGED_L1 = ALREADY_VALIDATED_L1


@dataclass(frozen=True)
class RoundReport:
    """One round: where its files are, the search, the training batch and the comparison."""

    round: int
    folder: Path
    n_runs: int
    chosen: pl.DataFrame
    batch: BatchReport
    comparison: pl.DataFrame
    summary: pl.DataFrame
    proposal: dict[str, Any] | None
    best: dict[str, Any] | None
    decision: dict[str, Any] | None = None
    next_trained: dict[str, Any] | None = None


def _read_base_runs(cfg: SearchConfig) -> RunTable:
    d = cfg.data
    if d.runs is None:
        raise ConfigError("The loop refits on the sampling runs: set [data] runs = \"...\" (a saved [surrogate] model cannot be refitted).")
    return read_runs(d.runs, **d.read_options())


def propose_next(pareto: pl.DataFrame, quantity: str | None, runs: RunTable) -> dict[str, Any] | None:
    """The next sampling run: the least certain Pareto mixture, at the smallest run size."""
    if pareto.height == 0 or quantity is None or f"{quantity}:lower" not in pareto.columns:
        return None
    mean = pareto[quantity].to_numpy().astype(float)
    width = (pareto[f"{quantity}:upper"] - pareto[f"{quantity}:lower"]).to_numpy().astype(float)
    rel = width / np.maximum(np.abs(mean), 1e-12)
    if not np.isfinite(rel).any():
        return None
    i = int(np.nanargmax(rel))
    final = runs.final()
    small = float(np.min(final.params()))
    tokens = float(np.median(final.tokens()[final.params() == small]))
    mix = {c[len(MIX_PREFIX):]: float(pareto[c][i]) for c in pareto.columns if c.startswith(MIX_PREFIX)}
    return {"mixture": mix, "params": small, "tokens": tokens, "quantity": quantity,
            "relative_interval_width": float(rel[i]), "trial": int(pareto["trial"][i]) if "trial" in pareto.columns else None}


def run_loop(cfg: SearchConfig, tc: TrainConfig, *, progress: bool = False, executor: JobExecutor | None = None) -> list[RoundReport]:
    """Search -> train the best K -> append -> refit -> search again, ``[validate] rounds`` times."""
    v = tc.validate
    if v is None or v.rounds < 1:
        raise ConfigError("The loop needs [validate] rounds >= 1 in the config.")
    out, runs_out = output_paths(v, cfg)
    base = _read_base_runs(cfg)
    reports: list[RoundReport] = []
    prev_best: tuple[Any, Any] | None = None  # (round r-1's surrogate, its rank-1 row)
    for r in range(1, v.rounds + 1):
        folder = out / f"round_{r}"
        folder.mkdir(parents=True, exist_ok=True)
        tables = [base]
        if runs_out.exists():
            validated = read_runs(runs_out)
            keep = [x for x in validated.runs if x not in set(base.runs) and _usable_in_round(x, r)]
            if keep:
                tables.append(validated.select_runs(keep))
        runs_r = merge_tables(tables) if len(tables) > 1 else base
        same_data = _same_runs(folder / "runs.csv", runs_r)
        runs_file = folder / "runs.csv" if same_data else atomic_write_runs(runs_r, folder / "runs.csv")
        cfg_r = replace(cfg, data=replace(cfg.data, runs=runs_file, ratios=None, format="mixopt", columns={}),
                        search=replace(cfg.search, storage=str(folder / "study.db"), study_name=f"{cfg.search.study_name}_r{r}",
                                       output=folder / "pareto.csv"))
        logger.info("round %d: fitting %s on %d runs", r, cfg.surrogate.method, runs_r.n_runs)
        if same_data and (folder / "surrogate").is_dir():  # a re-run: the round's own model, so its study resumes
            surrogate = load_surrogate(folder / "surrogate")
        else:
            surrogate = fit_surrogate(cfg_r)
            save_surrogate(surrogate, folder / "surrogate")
        result = run_search(cfg_r, surrogate, progress=progress)
        result.write(folder / "pareto.csv")
        shortlist = getattr(result, "shortlist", None)
        earlier = [x for x in runs_r.runs if _VALIDATED_ID.match(x)]  # validated in rounds before this one
        avoid = runs_r.select_runs(earlier).final().mixture(result.domains) if earlier else None
        chosen = pick_diverse(result.pareto, v.top, shortlist=shortlist if isinstance(shortlist, pl.DataFrame) and shortlist.height else None,
                              avoid=avoid)
        batch, comp = validate_rows(chosen, surrogate, tc, runs_out, prefix=f"val_r{r}", executor=executor, level=result.level)
        if comp.height:
            with atomic_path(folder / "validation.csv", what="validation table") as tmp:
                comp.write_csv(tmp)
        summ = summarize(comp)
        first_q = _first_quantity(result)
        proposal = _next_run(v.next, cfg_r, surrogate, result, first_q, runs_r) if v.propose_next else None
        decision = decision_change(surrogate, result, prev_best, level=result.level)
        next_trained = None
        if v.train_next and proposal and proposal.get("mixture"):
            next_trained = _train_proposal(proposal, r, surrogate, tc, runs_out, executor=executor, level=result.level)
        best = _best(result.best)
        write_text(folder / "round.json", json.dumps(jsonable({
            "round": r, "runs": runs_r.n_runs, "trained": [j.spec.run_id for j in batch.results], "added": list(batch.added),
            "validated": [x for x in comp["run"].unique(maintain_order=True).to_list()] if comp.height else [],
            "skipped": list(batch.skipped), "failed": [{"run": j.spec.run_id, "status": j.status, "message": j.message[:2000]} for j in batch.failed],
            "summary": summ.to_dicts(), "gaps": gap_summary(comp).to_dicts(), "validation": _validation_rows(comp),
            "proposal": proposal, "next_trained": next_trained, "decision": decision, "best": best,
            "objectives": [list(o) for o in result.objectives], "level": result.level,
        }), indent=1, default=str) + "\n", what="round summary")
        reports.append(RoundReport(r, folder, runs_r.n_runs, chosen, batch, comp, summ, proposal, best, decision, next_trained))
        prev_best = (surrogate, result.best)
    return reports


def plan_next(cfg: SearchConfig, surrogate: Any, runs: RunTable) -> dict[str, Any]:
    """The next sampling run by ``mixopt plan``'s decision criterion (one run; ``[plan]`` settings when given),
    never a run already in ``runs`` (same size, mixture within ``[plan] duplicate_l1``)."""
    from mixopt.search.plan import PlanSettings, plan_runs
    from mixopt.workflows.optimize import build_problem
    from mixopt.workflows.plan import defaults_from_runs, made_runs

    st = replace(cfg.plan or PlanSettings(), runs=1, flops=None)
    sizes, tokens = defaults_from_runs(runs, st.sizes)
    problem = build_problem(cfg, surrogate)
    p = plan_runs(problem, st, sizes=sizes, tokens=tokens, existing=made_runs(runs, problem.space.domains))
    return {"rule": "plan", "mixture": {d: float(x) for d, x in zip(p.domains, p.mixture[0], strict=True)},
            "params": float(p.params[0]), "tokens": float(p.tokens[0]), "criterion": p.criterion,
            "gain": float(p.value[0]), "draws": p.draws, "decision": p.summary}


def _next_run(rule: str, cfg: SearchConfig, surrogate: Any, result: Any, quantity: str | None, runs: RunTable) -> dict[str, Any] | None:
    """``[validate] next``: ``"plan"`` (the decision criterion) or ``"uncertainty"`` (widest interval)."""
    if rule == "plan":
        try:
            return plan_next(cfg, surrogate, runs)
        except MixoptError as e:  # recorded in round.json, with the uncertainty rule's proposal beside it
            old = propose_next(result.pareto, quantity, runs)
            return {**(old or {}), "rule": "uncertainty", "plan_error": str(e)}
    old = propose_next(result.pareto, quantity, runs)
    return None if old is None else {**old, "rule": "uncertainty"}


def gap_summary(comparison: pl.DataFrame) -> pl.DataFrame:
    """Per quantity: ``n``, median and max relative error, mean signed gap (measured - predicted), coverage."""
    if comparison.height == 0:
        return pl.DataFrame()
    c = comparison.filter(pl.col("predicted").is_finite())
    return (c.group_by("quantity", maintain_order=True)
             .agg(pl.len().alias("n"), pl.col("rel_error").median().alias("median_rel_error"),
                  pl.col("rel_error").max().alias("max_rel_error"),
                  (pl.col("measured") - pl.col("predicted")).mean().alias("mean_gap"),
                  pl.col("covered").cast(pl.Float64).mean().alias("coverage")))


def _validation_rows(comp: pl.DataFrame) -> list[dict[str, Any]]:
    if comp.height == 0:
        return []
    return comp.with_columns((pl.col("measured") - pl.col("predicted")).alias("gap")).to_dicts()


def _mixture_of(row: Any) -> dict[str, float]:
    return {k[len(MIX_PREFIX):]: float(v) for k, v in dict(row).items() if k.startswith(MIX_PREFIX) and v is not None}


def _objective_names(result: Any) -> list[str]:
    return [name.strip() for name, _ in result.objectives]


def _predict_objectives(surrogate: Any, mixture: dict[str, float], params: float, tokens: float, names: list[str],
                        level: float) -> dict[str, dict[str, float]] | None:
    """``{quantity: {mean, lower, upper}}`` of ``surrogate`` at one constant mixture (None if it cannot say)."""
    from mixopt.data.table import training_flops
    from mixopt.surrogate import Targets

    domains = tuple(getattr(surrogate, "domains_", ()) or ())
    if not domains or set(domains) != set(mixture):
        return None
    x = np.array([[mixture[d] for d in domains]], dtype=float)
    n, d = np.array([params], dtype=float), np.array([tokens], dtype=float)
    pred = surrogate.predict(Targets(flops=training_flops(n, d), params=n, tokens=d, mixture=x / x.sum(), domains=domains), level=level)
    out = {}
    for q in names:
        if q in pred.names:
            j = pred.names.index(q)
            out[q] = {"mean": float(pred.mean[0, j]),
                      "lower": float(pred.lower[0, j]) if pred.lower is not None else float("nan"),
                      "upper": float(pred.upper[0, j]) if pred.upper is not None else float("nan")}
    return out


def _row_objectives(row: Any, names: list[str]) -> dict[str, dict[str, float]]:
    row = dict(row)
    return {q: {"mean": float(row[q]), "lower": float(row.get(f"{q}:lower", float("nan")) or float("nan")),
                "upper": float(row.get(f"{q}:upper", float("nan")) or float("nan"))} for q in names if row.get(q) is not None}


def decision_change(surrogate: Any, result: Any, previous: tuple[Any, Any] | None, *, level: float = 0.9) -> dict[str, Any] | None:
    """The round's rank-1 mixture and how it moved from the previous round's (see the module docstring).

    Args:
        surrogate: this round's (refitted) surrogate.
        result: this round's search result (``best`` is its rank-1 row).
        previous: ``(previous round's surrogate, its rank-1 row)``, or None in round 1.
    """
    best = result.best
    if best is None:
        return None
    names = _objective_names(result)
    pick = {"trial": best.get("trial"), "mixture": _mixture_of(best), "params": float(best["params"]), "tokens": float(best["tokens"]),
            "predicted": _row_objectives(best, names)}
    out: dict[str, Any] = {"pick": pick}
    if previous is None or previous[1] is None:
        return out
    prev = previous[1]
    pm, m = _mixture_of(prev), pick["mixture"]
    l1 = float(sum(abs(pm.get(d, 0.0) - m.get(d, 0.0)) for d in set(pm) | set(m)))
    after = _predict_objectives(surrogate, pm, float(prev["params"]), float(prev["tokens"]), names, level)
    out["previous"] = {"trial": prev.get("trial"), "mixture": pm, "before_refit": _row_objectives(prev, names), "after_refit": after}
    out["changed"] = l1 > PICK_CHANGED_L1
    out["l1"] = l1
    return out


def _train_proposal(proposal: dict[str, Any], r: int, surrogate: Any, tc: TrainConfig, runs_out: Path, *,
                    executor: JobExecutor | None, level: float) -> dict[str, Any]:
    """Train the round's proposed sampling run and compare it with this round's prediction there."""
    v = tc.validate
    assert v is not None
    mix = {d: max(0.0, float(x)) for d, x in proposal["mixture"].items()}
    total = sum(mix.values())
    job = JobSpec(run_id=f"next_r{r}_s{v.seed}", mixture={d: x / total for d, x in mix.items()}, params=float(proposal["params"]),
                  tokens=float(proposal["tokens"]), seed=v.seed, checkpoints=v.checkpoints)
    batch = train_jobs([job], tc.trainer, runs_out, executor=executor)
    out: dict[str, Any] = {"run": job.run_id, "rule": proposal.get("rule"), "mixture": job.mixture, "params": job.params,
                           "tokens": job.tokens, "added": job.run_id in batch.added,
                           "failed": [{"status": j.status, "message": j.message[:2000]} for j in batch.failed]}
    if batch.table is not None and job.run_id in set(batch.table.runs):
        out["comparison"] = _validation_rows(compare(surrogate, batch.table.select_runs([job.run_id]), level=level))
    return out


_ROUND_ID = re.compile(r"^(?:val|next)_r(\d+)_")
_VALIDATED_ID = re.compile(r"^val_r(\d+)_")


def _usable_in_round(run_id: str, r: int) -> bool:
    """Runs validated in round j feed rounds after j only (so a re-run of round r sees what it saw)."""
    m = _ROUND_ID.match(run_id)
    return m is None or int(m.group(1)) < r


def _same_runs(path: Path, runs: RunTable) -> bool:
    if not path.is_file():
        return False
    try:
        old = read_runs(path)
    except Exception:  # noqa: BLE001 - an unreadable old file is simply rewritten
        return False
    cols = sorted(old.frame.columns)
    return cols == sorted(runs.frame.columns) and old.frame.select(cols).sort(["run", "tokens"]).equals(
        runs.frame.select(cols).sort(["run", "tokens"]))


def _first_quantity(result: Any) -> str | None:
    for name, _ in result.objectives:
        q = name.strip()
        if q.startswith(("score:", "loss")) and q in result.pareto.columns:
            return q
    return None


def _best(d: Any) -> dict[str, Any] | None:
    return None if d is None else jsonable(dict(d))


__all__ = ["PICK_CHANGED_L1", "RoundReport", "decision_change", "gap_summary", "plan_next", "propose_next", "run_loop"]
