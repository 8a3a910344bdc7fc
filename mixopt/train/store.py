"""Run tables on disk for training jobs: append without duplicates, write then rename.

A crashed or killed job (or ``mixopt ladder``) never leaves a half-written table: every
write goes to a temporary file in the same folder that is then renamed over the target
(``os.replace`` is atomic on POSIX). Appending the same run twice is a no-op: runs whose id
is already in the file are skipped (and reported), so re-running a ladder or a validation
round adds only what is new.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from mixopt.data.readers import read_runs, sidecar_path, write_runs
from mixopt.data.table import LOSS, LOSS_PREFIX, RUN, Benchmark, RunTable

logger = logging.getLogger(__name__)


def merge_tables(tables: Sequence[RunTable]) -> RunTable:
    """One table from several (columns unioned; a column a table lacks is null there).

    Raises:
        SchemaError: the same run id in two tables, or an invalid result.
    """
    if not tables:
        raise ValueError("merge_tables needs at least one table")
    bench: dict[str, Benchmark] = {}
    seen: set[str] = set()
    for t in tables:
        dup = seen & set(t.runs)
        if dup:
            from mixopt.errors import SchemaError

            raise SchemaError(f"Run id(s) {sorted(dup)[:5]} appear in two tables; give new runs new ids.")
        seen |= set(t.runs)
        for b in t.benchmarks:
            bench.setdefault(b.name, b)
    tables = _same_phases(tables)
    # a loss column is required at every checkpoint: one that some tables lack is dropped
    partial = sorted({c for t in tables for c in t.frame.columns if c == LOSS or c.startswith(LOSS_PREFIX)}
                     - set.intersection(*(set(t.frame.columns) for t in tables)))
    if partial:
        logger.warning("Loss column(s) %s are missing from some of the merged tables: dropped", partial)
    frame = pl.concat([t.frame.drop([c for c in partial if c in t.frame.columns]) for t in tables], how="diagonal_relaxed")
    return RunTable(frame, list(bench.values()))


def _same_phases(tables: Sequence[RunTable]) -> list[RunTable]:
    """The tables in one schedule layout: when some hold schedules of ``K`` phases, runs with fewer
    phases (constant mixtures among them) are written in ``K`` phases by repeating their last phase
    (its added boundaries split what is left of the run evenly; they change nothing), as
    :mod:`mixopt.data.phases` reads a one-phase run in a ``K``-phase table."""
    from mixopt.data.phases import is_phase_column, schedule_columns

    K = max(t.n_phases for t in tables)
    if K == 1:
        return list(tables)
    out = []
    for t in tables:
        if t.n_phases == K:
            out.append(t)
            continue
        P, E = t.phases(), t.phase_end()
        n, k0 = len(t), t.n_phases
        last = E[:, -1:] if E.shape[1] else np.zeros((n, 1))
        extra = last + (1.0 - last) * np.arange(1, K - k0 + 1)[None, :] / (K - k0 + 1)
        P = np.concatenate([P, np.repeat(P[:, -1:, :], K - k0, axis=1)], axis=1)
        E = np.concatenate([E, extra], axis=1)
        cols = schedule_columns(P, E, t.domains)
        frame = t.frame.drop([c for c in t.frame.columns if is_phase_column(c) or c in cols])
        out.append(RunTable(frame.with_columns([pl.Series(c, v) for c, v in cols.items()]), t.benchmarks))
    return out


def atomic_write_runs(table: RunTable, path: str | Path) -> Path:
    """Write a run table (and its benchmarks sidecar) via temporary files and renames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write_runs(table, tmp)
        tmp_side = sidecar_path(tmp)
        if tmp_side.exists():
            os.replace(tmp_side, sidecar_path(path))
        os.replace(tmp, path)
    finally:
        for p in (tmp, sidecar_path(tmp)):
            if p.exists():
                p.unlink()
    return path


def existing_runs(path: str | Path) -> set[str]:
    """Run ids already in the table file (empty when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return set()
    return set(read_runs(path).runs)


def append_runs(path: str | Path, new: RunTable) -> tuple[RunTable, list[str]]:
    """Append ``new``'s runs to the table file; runs already there are skipped.

    Returns:
        ``(the whole table as written, run ids added)``.
    """
    path = Path(path)
    if path.exists():
        old = read_runs(path)
        skip = set(old.runs) & set(new.runs)
        if skip:
            logger.info("%d run(s) already in %s, not appended again: %s", len(skip), path, sorted(skip)[:5])
        add = [r for r in new.runs if r not in skip]
        if not add:
            return old, []
        merged = merge_tables([old, new.filter(pl.col(RUN).is_in(add))])
    else:
        add = list(new.runs)
        merged = new
    atomic_write_runs(merged, path)
    return merged, add


__all__ = ["append_runs", "atomic_write_runs", "existing_runs", "merge_tables"]
