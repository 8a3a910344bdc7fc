"""Train a ladder of sampling runs (sizes x mixtures x seeds) into a run table.

The mixtures are the constant ones of ``[ladder.mixtures]`` and the schedules (phased runs)
of ``[ladder.schedules]``, trained alike: a schedule's run id is built from its name.

Each finished run is appended to the output table as soon as it ends (write, then rename;
runs already in the table are neither retrained nor duplicated), so an interrupted ladder
keeps what it finished and a re-run trains only the rest. Failed and timed-out jobs are
reported and the others continue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mixopt.data.table import RunTable
from mixopt.errors import ConfigError
from mixopt.train.executors import JobExecutor, make_job_executor
from mixopt.train.spec import JobResult, JobSpec
from mixopt.train.store import append_runs, existing_runs

if TYPE_CHECKING:  # the sections are parsed by mixopt.config, which imports this package
    from mixopt.config import TrainConfig, TrainerSection

logger = logging.getLogger(__name__)


def size_label(params: float) -> str:
    """``6e5`` -> ``"600K"``, ``1.5e6`` -> ``"1.5M"`` (for run ids)."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if params >= div:
            return f"{params / div:.3g}{suffix}"
    return f"{params:.3g}"


def ladder_jobs(cfg: TrainConfig) -> list[JobSpec]:
    """The ladder's jobs, largest models first (so the longest jobs start first)."""
    L = cfg.ladder
    if L is None:
        raise ConfigError(f"{cfg.path}: no [ladder] section; add sizes, mixtures and tokens (see configs/ladder.toml).")
    _check_distinct_shapes(cfg)
    jobs = []
    for size in sorted(L.sizes, reverse=True):
        tokens = L.tokens if L.tokens is not None else float(L.tokens_per_param) * size  # type: ignore[arg-type]
        for name, mix in L.mixtures.items():
            for seed in L.seeds:
                jobs.append(JobSpec(run_id=f"N{size_label(size)}_{name}_s{seed}", mixture=mix, params=size, tokens=tokens,
                                    seed=seed, checkpoints=L.checkpoints))
        for name, phases in L.schedules.items():
            for seed in L.seeds:
                jobs.append(JobSpec(run_id=f"N{size_label(size)}_{name}_s{seed}", phases=phases, params=size, tokens=tokens,
                                    seed=seed, checkpoints=L.checkpoints))
    return jobs


def _check_distinct_shapes(cfg: TrainConfig) -> None:
    """Refuse ladder sizes the reference trainer builds as the same model (the runs would be copies of each other).

    The reference trainer picks the shape nearest each size (:func:`~mixopt.train.reference.shape_for_params`);
    at small sizes two sizes can share it (configs/phased_ladder.toml once asked for 1.5e4 and 3e4: both gave
    2 layers of width 32, 25472 parameters, and bit-identical runs).
    """
    if cfg.trainer.kind != "reference" or cfg.ladder is None:
        return
    from mixopt.train.reference import ReferenceOptions, non_embedding_params, shape_for_params

    o = ReferenceOptions.from_mapping(dict(cfg.trainer.options))
    if o.layers and o.width:
        return  # one fixed shape: the sizes only set the tokens
    by_shape: dict[tuple[int, int], list[float]] = {}
    for size in cfg.ladder.sizes:
        layers, width, _ = shape_for_params(float(size), o.kernels)
        by_shape.setdefault((o.layers or layers, o.width or width), []).append(float(size))
    dup = {k: v for k, v in by_shape.items() if len(v) > 1}
    if dup:
        what = "; ".join(f"sizes {', '.join(f'{s:.3g}' for s in v)} -> {k[0]} layers x width {k[1]} "
                         f"({non_embedding_params(*k)} parameters)" for k, v in dup.items())
        raise ConfigError(f"{cfg.path}: [ladder] sizes that the reference trainer builds as the same model ({what}); "
                          "their runs would be copies. Spread the sizes further apart (at this scale the nearest shapes are "
                          "25472, 39520, 56640, 115192 parameters) or drop the duplicates.")


#: Columns of a jobs CSV (``mixopt ladder CONFIG --jobs FILE``), besides one ``mix:<domain>`` per domain (and, for
#: phased jobs, ``phase_end@k`` and ``mix@k:<domain>`` per phase, empty in the rows of one-phase jobs).
JOB_COLUMNS = ("run_id", "params", "tokens", "seed", "checkpoints")


def write_jobs(jobs: Sequence[JobSpec], path: Path, *, extra: dict[str, list[float]] | None = None) -> Path:
    """Write jobs as a CSV :func:`read_jobs` reads (``extra``: more columns, ignored by the reader)."""
    import polars as pl

    from mixopt._files import atomic_path
    from mixopt.data.table import MIX_PREFIX

    domains = list(dict.fromkeys(d for j in jobs for d in j.mixture))
    cols: dict[str, list] = {"run_id": [j.run_id for j in jobs], "params": [float(j.params) for j in jobs],
                             "tokens": [float(j.tokens) for j in jobs], "seed": [j.seed for j in jobs],
                             "checkpoints": [j.checkpoints for j in jobs]}
    cols.update({MIX_PREFIX + d: [float(j.mixture.get(d, 0.0)) for j in jobs] for d in domains})
    phase_cols = list(dict.fromkeys(c for j in jobs for c in j.phase_columns()))
    cols.update({c: [j.phase_columns().get(c) for j in jobs] for c in phase_cols})
    cols.update(extra or {})
    with atomic_path(Path(path), what="jobs table") as tmp:
        pl.DataFrame(cols).write_csv(tmp)
    return Path(path)


def read_jobs(path: Path) -> list[JobSpec]:
    """Jobs from a CSV with ``run_id, params, tokens, seed, checkpoints, mix:<domain>...`` (``mixopt plan`` writes it)."""
    import polars as pl

    from mixopt.data.table import MIX_PREFIX

    try:
        frame = pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise ConfigError(f"Cannot read the jobs table {path}: {e}. Expected a CSV written by `mixopt plan`.") from None
    missing = [c for c in ("run_id", "params", "tokens") if c not in frame.columns]
    mix = [c for c in frame.columns if c.startswith(MIX_PREFIX)]
    if missing or not mix:
        raise ConfigError(f"The jobs table {path} lacks column(s) {missing + ([] if mix else ['mix:<domain>'])}; "
                          f"expected {list(JOB_COLUMNS)} and one mix:<domain> per domain, got {frame.columns}.")
    jobs = []
    for row in frame.iter_rows(named=True):
        phases = phases_from_row(row)
        mixture = {} if phases else {c[len(MIX_PREFIX):]: float(row[c]) for c in mix}
        jobs.append(JobSpec(run_id=str(row["run_id"]), mixture=mixture, phases=phases,
                            params=float(row["params"]), tokens=float(row["tokens"]), seed=int(row.get("seed") or 0),
                            checkpoints=int(row.get("checkpoints") or 4)))
    return jobs


def phases_from_row(row: dict) -> list[dict]:
    """The schedule of a table row with ``mix@k:<d>`` / ``phase_end@k`` cells (empty when the row has none).

    A row whose phase cells are empty is a one-phase row of a table that also holds phased
    rows; the ratios are taken as written (the job checks them).
    """
    from mixopt.data.phases import phase_end_column, phase_layout

    layout = phase_layout(list(row))
    if layout is None or all(row.get(c) is None for c in layout.mix_columns(1)):
        return []
    phases = []
    for k in range(1, layout.n_phases + 1):
        end = 1.0 if k == layout.n_phases else row.get(phase_end_column(k))
        if end is None:
            break
        phases.append({"end": float(end), "mixture": {d: float(row[c] or 0.0) for d, c in zip(layout.domains, layout.mix_columns(k), strict=True)}})
    return phases


def executor_for(t: TrainerSection) -> JobExecutor:
    return make_job_executor(t.executor, max_parallel=t.max_parallel, address=t.ray_address,
                             cpus_per_job=t.cpus_per_job, gpus_per_job=t.gpus_per_job)


@dataclass(frozen=True)
class BatchReport:
    """What a batch of jobs did: every result, the runs added, the table, the wall time."""

    results: tuple[JobResult, ...]
    added: tuple[str, ...]
    skipped: tuple[str, ...]
    table: RunTable | None
    wall_s: float

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]


def train_jobs(jobs: Sequence[JobSpec], trainer: TrainerSection, output: Path, *, executor: JobExecutor | None = None) -> BatchReport:
    """Train the jobs whose run ids are not in ``output`` yet; append each as it finishes."""
    have = existing_runs(output)
    todo = [j for j in jobs if j.run_id not in have]
    skipped = tuple(j.run_id for j in jobs if j.run_id in have)
    if skipped:
        logger.info("%d run(s) already in %s: not retrained", len(skipped), output)
    added: list[str] = []
    table_box: list[RunTable] = []

    def on_result(res: JobResult) -> None:
        if res.ok and res.table is not None:
            table, new = append_runs(output, res.table)
            added.extend(new)
            table_box[:] = [table]

    own = executor is None
    ex = executor or executor_for(trainer)
    t0 = time.perf_counter()
    try:
        results = ex.run(todo, trainer.ref(), trainer.workdir, timeout_s=trainer.timeout_s, on_result=on_result) if todo else []
    finally:
        if own:
            ex.close()
    wall = time.perf_counter() - t0
    table = table_box[0] if table_box else None
    if table is None and output.exists():
        from mixopt.data.readers import read_runs

        table = read_runs(output)
    return BatchReport(tuple(results), tuple(added), skipped, table, wall)


def run_ladder(cfg: TrainConfig, *, output: Path | None = None, executor: JobExecutor | None = None) -> BatchReport:
    """Train ``cfg``'s ladder into its output table (see the module docstring)."""
    out = output or (cfg.ladder.output if cfg.ladder else None)
    if out is None:
        raise ConfigError("No output table: set [ladder] output = \"runs.csv\" or pass --out.")
    return train_jobs(ladder_jobs(cfg), cfg.trainer, Path(out), executor=executor)


__all__ = ["JOB_COLUMNS", "BatchReport", "ladder_jobs", "phases_from_row", "read_jobs", "run_ladder", "size_label", "train_jobs", "write_jobs"]
