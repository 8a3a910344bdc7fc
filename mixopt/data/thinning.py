"""Checkpoint thinning: at most ``K`` evenly spaced checkpoints per run for fitting.

Training loggers evaluate often (a table of 1,000 runs x 1,000 checkpoints has a million
rows), but neighbouring checkpoints of one run carry almost the same information (the
laws are smooth along a run and a run's noise is shared). Fitting on every row costs time
and memory in proportion to the rows and buys little accuracy. :func:`thin_checkpoints`
keeps, per run,

* the **final** checkpoint (largest ``tokens``; FLP's and FLP-M's stage 1 use it), and
* at most one checkpoint per bin of ``K - 1`` bins of equal width **in checkpoint rank**
  (every ``n/K``-th checkpoint, as MCMC thinning keeps every k-th draw) -- preferring,
  within a bin, the row with the most non-null values (a checkpoint where benchmarks were
  evaluated beats one where only losses were), then the one nearest the bin centre.

Spacing by rank keeps the logger's own distribution of checkpoints along a run (linear,
log or mixed), so a fit sees the same weighting of early vs late checkpoints as on every
row, only fewer of them. (Log spacing in tokens was tried first and rejected: it moves the
weight to early checkpoints and changed FLP's held-out error from 16 % to 28 % on the
synthetic worlds of ``benchmarks/bench_scale.py --thinning``.)

Per-run thinning is for large tables only: a table of at most :data:`THIN_ABOVE_ROWS` (100,000) rows
keeps every checkpoint, and a larger one keeps at least that many rows (``K`` is raised to
``ceil(100,000 / runs)`` when that is more). Thinning exists for scale: on small tables
emergence rules that count checkpoints (FLP's ``min_emerged``) must see every row -- with
``K = 128`` on a 40-run x 1,000-checkpoint world, a barely emerging benchmark fell below
``min_emerged`` and became unpredictable.
``max_rows`` additionally caps the total (every final checkpoint plus a seeded uniform
sample of the rest), for fits whose cost grows with rows (FLP-M's stage-2 networks); it
applies at any table size above the cap (FLP-M/DML: 4,000 rows), so a 10,000-row and a
1,000,000-row table cost FLP-M the same.
"""

from __future__ import annotations

import logging

import polars as pl

from mixopt.data.table import RUN, TOKENS, RunTable
from mixopt.errors import SchemaError

logger = logging.getLogger(__name__)

#: default most checkpoints per run used for fitting (see the module docstring)
MAX_CHECKPOINTS_PER_RUN = 128
#: tables with at most this many rows are never thinned; larger ones keep at least this many
THIN_ABOVE_ROWS = 100_000
#: most rows FLP-M / DML fit on (their stage-2 networks train full-batch, so their cost
#: grows with rows); every final checkpoint is kept, the rest is a seeded sample
STAGE2_MAX_ROWS = 4000


def thin_checkpoints(
    runs: RunTable, max_per_run: int | None = MAX_CHECKPOINTS_PER_RUN, max_rows: int | None = None, *, seed: int = 0
) -> RunTable:
    """At most ``max_per_run`` evenly spaced (by rank) checkpoints per run, always with the final one.

    Args:
        runs: the run table.
        max_per_run: most checkpoints kept per run (>= 2); ``None`` keeps every row.
        max_rows: most rows in all (for fits whose cost grows with rows, e.g. FLP-M's
            stage-2 networks): every run's final checkpoint is kept and a seeded uniform
            sample of the other (already thinned) checkpoints fills the rest. ``None``: no cap.

    Per-run thinning applies only to tables of more than :data:`THIN_ABOVE_ROWS` rows; the
    ``max_rows`` cap applies whenever the table has more rows than it.
        seed: seeds that sample.

    Returns:
        ``runs`` itself when it is small or no run has more than ``max_per_run`` checkpoints, else a
        table with the kept rows (same columns, benchmarks and row order).

    Raises:
        SchemaError: ``max_per_run`` is not None and not an integer >= 2.
    """
    for name, v in (("max_per_run", max_per_run), ("max_rows", max_rows)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
            raise SchemaError(f"{name} must be an integer >= 2 or None (no limit), got {v!r}.")
    if max_per_run is not None and len(runs) > THIN_ABOVE_ROWS:
        # keep at least THIN_ABOVE_ROWS rows: emergence rules count checkpoints, and a table
        # just above the threshold must not lose a benchmark's emerged points
        per_run = max(max_per_run, -(-THIN_ABOVE_ROWS // runs.n_runs))
        runs = _thin_per_run(runs, per_run)
    if max_rows is not None and len(runs) > max_rows:
        runs = _cap_rows(runs, max_rows, seed)
    return runs


def _cap_rows(runs: RunTable, max_rows: int, seed: int) -> RunTable:
    """Every final checkpoint plus a seeded sample of the others, ``max_rows`` in all."""
    import numpy as np

    frame = runs.frame.with_row_index("_row")
    is_final = (pl.col(TOKENS) == pl.col(TOKENS).max().over(RUN))
    finals = frame.filter(is_final)["_row"].to_numpy()
    others = frame.filter(~is_final)["_row"].to_numpy()
    room = max(max_rows - finals.size, 0)
    pick = np.random.default_rng(seed).choice(others, size=min(room, others.size), replace=False) if room else others[:0]
    keep = np.sort(np.concatenate([finals, pick]))
    logger.info(
        "capped the fit at %d rows: %d final checkpoints + %d sampled of %d others (seeded)",
        keep.size, finals.size, pick.size, others.size,
    )
    return runs._with_frame(runs.frame[keep])


def _thin_per_run(runs: RunTable, max_per_run: int) -> RunTable:
    frame = runs.frame
    counts = frame.group_by(RUN).len()
    if int(counts["len"].max()) <= max_per_run:
        return runs
    n_bins = max_per_run - 1
    data_cols = [c for c in frame.columns if c not in (RUN,)]
    t = pl.col(TOKENS)
    rank = pl.int_range(pl.len()).over(RUN)  # rows are sorted by (run, tokens)
    count = pl.len().over(RUN)
    pos = rank.cast(pl.Float64) * n_bins / (count - 1).cast(pl.Float64)
    scored = frame.with_row_index("_row").with_columns(
        pos.alias("_pos"),
        (t == t.max().over(RUN)).alias("_final"),
        pl.sum_horizontal([pl.col(c).is_not_null().cast(pl.Int32) for c in data_cols]).alias("_filled"),
    ).with_columns(
        pl.col("_pos").floor().clip(0, n_bins - 1).cast(pl.Int64).alias("_bin"),
    ).with_columns(
        (pl.col("_pos") - (pl.col("_bin") + 0.5)).abs().alias("_dist"),
    )
    picked = (
        scored.filter(~pl.col("_final"))
        .sort(["_filled", "_dist"], descending=[True, False])
        .group_by([RUN, "_bin"])
        .agg(pl.col("_row").first())
    )["_row"]
    finals = scored.filter(pl.col("_final"))["_row"]
    keep = pl.concat([picked, finals]).unique().sort()
    thinned = frame.with_row_index("_row").filter(pl.col("_row").is_in(keep.implode())).drop("_row")
    logger.info(
        "thinned %d checkpoints to %d (at most %d evenly spaced per run, final kept) for fitting",
        frame.height, thinned.height, max_per_run,
    )
    return runs._with_frame(thinned)


__all__ = ["MAX_CHECKPOINTS_PER_RUN", "STAGE2_MAX_ROWS", "THIN_ABOVE_ROWS", "thin_checkpoints"]
