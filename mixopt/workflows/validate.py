"""The validate workflow: train a diverse K of a Pareto set for real and compare with the prediction.

``mixopt validate CONFIG --pareto FILE`` is :func:`run_validate`; the loop of ``mixopt optimize``
and the API's validation jobs train their chosen rows with :func:`validate_rows` /
:func:`validate_each`. The pieces (choosing the K, job specs, the comparison) are library code
in :mod:`mixopt.train.validate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from mixopt.config import SearchConfig, TrainConfig, ValidateSection
from mixopt.train.executors import JobExecutor
from mixopt.train.ladder import BatchReport, train_jobs
from mixopt.train.validate import compare, jobs_from_rows, pick_diverse, read_pareto, read_shortlist
from mixopt.workflows.optimize import fit_surrogate


def output_paths(v: ValidateSection, cfg: SearchConfig) -> tuple[Path, Path]:
    """``(folder for the rounds' files, the validated runs table)`` of ``[validate]``."""
    base = cfg.path.parent if cfg.path is not None else Path.cwd()
    out = v.output or (base / ".." / "out" / "validate").resolve()
    runs = v.runs or (out / "validated_runs.csv")
    return out, runs


def validate_rows(rows: pl.DataFrame, surrogate: Any, tc: TrainConfig, runs_out: Path, *, prefix: str,
                  executor: JobExecutor | None = None, level: float = 0.9) -> tuple[BatchReport, pl.DataFrame]:
    """Train the chosen rows, append them to ``runs_out`` and compare with ``surrogate``."""
    v = tc.validate or ValidateSection()
    jobs = jobs_from_rows(rows, prefix=prefix, seed=v.seed, checkpoints=v.checkpoints)
    batch = train_jobs(jobs, tc.trainer, runs_out, executor=executor)
    ids = [j.run_id for j in jobs]
    comp = pl.DataFrame()
    if batch.table is not None:
        have = [r for r in ids if r in set(batch.table.runs)]
        if have:
            comp = compare(surrogate, batch.table.select_runs(have), level=level)
    return batch, comp


@dataclass(frozen=True)
class Validated:
    """What :func:`validate_each` trained: run ids, failures with their reasons, the comparison."""

    trained: list[str]
    failed: list[dict[str, Any]]
    comparison: pl.DataFrame


def validate_each(chosen: pl.DataFrame, surrogate: Any, tc: TrainConfig, runs_out: Path, *, prefix: str,
                  level: float = 0.9, before_each: Callable[[int], None] | None = None,
                  after_each: Callable[[int], None] | None = None) -> Validated:
    """Train ``chosen`` one row after another (a resumable job: runs already in ``runs_out`` are skipped).

    ``before_each(i)`` runs before row ``i`` is trained (it may raise to stop, e.g. on a
    cancel flag: finished runs are kept); ``after_each(i + 1)`` after it.
    """
    comps: list[pl.DataFrame] = []
    trained: list[str] = []
    failed: list[dict[str, Any]] = []
    for i in range(chosen.height):
        if before_each is not None:
            before_each(i)
        batch, comp = validate_rows(chosen[i:i + 1], surrogate, tc, runs_out, prefix=prefix, level=level)
        trained += [r.spec.run_id for r in batch.results if r.ok]
        failed += [{"run": r.spec.run_id, "status": r.status, "message": r.message[-2000:]} for r in batch.failed]
        if comp.height:
            comps.append(comp)
        if after_each is not None:
            after_each(i + 1)
    comp = pl.concat(comps, how="diagonal_relaxed") if comps else pl.DataFrame()
    return Validated(trained, failed, comp)


def run_validate(cfg: SearchConfig, tc: TrainConfig, pareto_path: str | Path, top: int, *,
                 executor: JobExecutor | None = None, level: float = 0.9) -> tuple[pl.DataFrame, BatchReport, pl.DataFrame]:
    """``mixopt validate``: train a diverse ``top`` of a Pareto file and compare with the config's surrogate.

    Returns:
        ``(chosen rows, training batch, comparison)``.
    """
    pareto = read_pareto(pareto_path)
    chosen = pick_diverse(pareto, top, shortlist=read_shortlist(pareto_path))
    surrogate = fit_surrogate(cfg)
    v = tc.validate or ValidateSection()
    _, runs_out = output_paths(v, cfg)
    batch, comp = validate_rows(chosen, surrogate, tc, runs_out, prefix=f"val_{Path(pareto_path).stem}", executor=executor, level=level)
    return chosen, batch, comp


__all__ = ["Validated", "output_paths", "run_validate", "validate_each", "validate_rows"]
