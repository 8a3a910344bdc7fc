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
from mixopt.train.ladder import BatchReport
from mixopt.train.store import atomic_write_runs, merge_tables
from mixopt.train.validate import pick_diverse, summarize
from mixopt.workflows.optimize import fit_surrogate, run_search
from mixopt.workflows.validate import output_paths, validate_rows

logger = logging.getLogger(__name__)


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
        earlier = [x for x in runs_r.runs if _ROUND_ID.match(x)]  # validated in rounds before this one
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
        write_text(folder / "round.json", json.dumps({
            "round": r, "runs": runs_r.n_runs, "trained": [j.spec.run_id for j in batch.results], "added": list(batch.added),
            "skipped": list(batch.skipped), "failed": [{"run": j.spec.run_id, "status": j.status, "message": j.message[:2000]} for j in batch.failed],
            "summary": summ.to_dicts(), "proposal": proposal, "best": _best(result.best),
        }, indent=1, default=str) + "\n", what="round summary")
        reports.append(RoundReport(r, folder, runs_r.n_runs, chosen, batch, comp, summ, proposal, _best(result.best)))
    return reports


def plan_next(cfg: SearchConfig, surrogate: Any, runs: RunTable) -> dict[str, Any]:
    """The next sampling run by ``mixopt plan``'s decision criterion (one run; ``[plan]`` settings when given)."""
    from mixopt.search.plan import PlanSettings, plan_runs
    from mixopt.workflows.optimize import build_problem
    from mixopt.workflows.plan import defaults_from_runs

    st = replace(cfg.plan or PlanSettings(), runs=1, flops=None)
    sizes, tokens = defaults_from_runs(runs, st.sizes)
    p = plan_runs(build_problem(cfg, surrogate), st, sizes=sizes, tokens=tokens)
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


_ROUND_ID = re.compile(r"^val_r(\d+)_")


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


__all__ = ["RoundReport", "plan_next", "propose_next", "run_loop"]
