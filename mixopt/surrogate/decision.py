"""Decision metrics: would the mixture a model chooses be the right one?

Errors and coverage say how far a prediction is from what happened; a team acts on a
*choice* among mixtures. Given held-out rows with several mixtures at one scale, this module
measures the choice the predictions imply, per quantity and per scale:

* ``spearman`` -- rank correlation of predicted and actual values among the mixtures;
* ``chosen_run`` / ``chosen_rank`` -- the run the model would pick (lowest predicted loss,
  highest predicted score) and its actual rank among the mixtures (1 = the true best);
* ``regret`` -- how much worse the pick actually is than the true best, in the quantity's
  units (loss: ``actual(pick) - min(actual)``; score: ``max(actual) - actual(pick)``;
  never negative), and ``rel_regret`` -- the same divided by ``|best actual|``;
* ``pairwise_accuracy`` -- the share of mixture pairs whose order the predictions get right
  (DataDecide's decision accuracy, Magnusson et al. 2025); pairs tied in the actual values
  are left out, pairs tied in the predictions count one half.

Direction: a quantity named ``loss`` or ``loss:<domain>`` is lower-is-better, a score
``score:<benchmark>`` higher-is-better unless its benchmark says otherwise (BPB metrics:
``Benchmark(higher_is_better=False)``; :func:`directions` reads them off a run table).

Groups with fewer than :data:`MIN_MIXTURES` rows are left out (two mixtures give ρ = ±1,
which says nothing). Used by backtests (:mod:`mixopt.backtest`), ``auto``'s transfer folds
(:mod:`mixopt.surrogate.flpm_auto`) and the real-data benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from mixopt.errors import SchemaError

#: fewest mixtures (rows) at one scale for a decision metric
MIN_MIXTURES = 3

DECISION_SCHEMA: dict[str, Any] = {
    "quantity": pl.String,
    "scale": pl.String,
    "n_mixtures": pl.Int64,
    "spearman": pl.Float64,
    "pairwise_accuracy": pl.Float64,
    "chosen_run": pl.String,
    "chosen_rank": pl.Int64,
    "regret": pl.Float64,
    "rel_regret": pl.Float64,
    "best_run": pl.String,
}


def lower_is_better(quantity: str) -> bool:
    """True for losses (``loss``, ``loss:<domain>``), False for scores and other metrics."""
    return quantity == "loss" or quantity.startswith("loss:")


def directions(benchmarks: Sequence[Any]) -> dict[str, bool]:
    """``{"score:<name>": lower_is_better}`` for benchmarks that are lower-is-better (``higher_is_better=False``)."""
    return {"score:" + b.name: True for b in benchmarks if not getattr(b, "higher_is_better", True)}


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank (``scipy.stats.rankdata``'s default),
    in numpy: FLP-M's ``auto`` uses this on every fit, and ``scipy.stats`` costs ~0.6 s to import."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    _, inverse, counts = np.unique(x[order], return_inverse=True, return_counts=True)
    end = np.cumsum(counts)
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = ((end - counts + 1 + end) / 2.0)[inverse]
    return ranks


def spearman(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Spearman ρ (average ranks for ties); NaN when either side is constant or n < 2."""
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(a) == 0:
        return math.nan
    rp, ra = average_ranks(p), average_ranks(a)
    return float(np.corrcoef(rp, ra)[0, 1])


def pairwise_accuracy(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Share of pairs (i < j, ``actual_i != actual_j``) ordered alike by the predictions; prediction ties count 1/2."""
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    dp = np.sign(p[:, None] - p[None, :])
    da = np.sign(a[:, None] - a[None, :])
    iu = np.triu_indices(p.size, k=1)
    dp, da = dp[iu], da[iu]
    keep = da != 0
    if not keep.any():
        return math.nan
    agree = np.where(dp[keep] == 0, 0.5, (dp[keep] == da[keep]).astype(np.float64))
    return float(agree.mean())


def choice_metrics(predicted: np.ndarray, actual: np.ndarray, *, lower_better: bool) -> dict[str, Any]:
    """Metrics of one group of alternatives: ρ, pairwise accuracy, the pick's index, actual rank and regret.

    Args:
        predicted: ``(n,)`` predicted values.
        actual: ``(n,)`` actual values.
        lower_better: True for losses.

    Returns:
        ``spearman``, ``pairwise_accuracy``, ``chosen`` (index of the pick; the first on
        predicted ties), ``best`` (index of the true best), ``chosen_rank`` (1 = best; ties in
        the actual values share the best rank), ``regret`` (>= 0) and ``rel_regret``.
    """
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if p.shape != a.shape or p.ndim != 1 or p.size == 0:
        raise SchemaError(f"predicted and actual must be 1-D arrays of one length, got shapes {p.shape} and {a.shape}.")
    sign = 1.0 if lower_better else -1.0
    chosen = int(np.argmin(sign * p))
    best = int(np.argmin(sign * a))
    regret = float(sign * (a[chosen] - a[best]))
    rank = int(np.sum(sign * a < sign * a[chosen])) + 1
    return {
        "spearman": spearman(p, a),
        "pairwise_accuracy": pairwise_accuracy(p, a),
        "chosen": chosen,
        "best": best,
        "chosen_rank": rank,
        "regret": regret,
        "rel_regret": regret / abs(a[best]) if a[best] != 0 else math.nan,
    }


def _scale_label(row: dict[str, Any], by: Sequence[str]) -> str:
    parts = []
    for c in by:
        v = row[c]
        parts.append(f"{c}={v:.3g}" if isinstance(v, float) else f"{c}={v}")
    return ", ".join(parts)


def decision_metrics(rows: pl.DataFrame, *, by: Sequence[str] | None = None, run_col: str = "run",
                     min_mixtures: int = MIN_MIXTURES, lower_better: Mapping[str, bool] | None = None) -> pl.DataFrame:
    """Per quantity and scale: the decision metrics of the module docstring (:data:`DECISION_SCHEMA`).

    Args:
        rows: one row per (held-out run, quantity) with ``quantity``, ``predicted``,
            ``actual`` (a backtest's or an internal fold's rows); rows with a non-finite
            prediction or actual value are left out.
        by: the columns that make a scale (default: ``params`` and ``tokens`` where
            present, else ``flops``; none: every row of a quantity is one group).
        run_col: the run-id column (for ``chosen_run`` / ``best_run``; row numbers if absent).
        min_mixtures: fewest rows per group.
        lower_better: per quantity, whether lower is better, overriding :func:`lower_is_better`
            (e.g. :func:`directions` of the table's benchmarks).

    Returns:
        One row per (quantity, scale) with at least ``min_mixtures`` rows, in order of
        appearance. Empty (with the schema) when no group is large enough.
    """
    missing = [c for c in ("quantity", "predicted", "actual") if c not in rows.columns]
    if missing:
        raise SchemaError(f"decision_metrics needs columns quantity, predicted, actual; missing {missing} (got {rows.columns}).")
    if by is None:
        by = [c for c in ("params", "tokens") if c in rows.columns] or [c for c in ("flops",) if c in rows.columns]
    by = list(by)
    r = rows.filter(pl.col("predicted").is_finite() & pl.col("actual").is_finite())
    if run_col not in r.columns:
        r = r.with_row_index(run_col).with_columns(pl.col(run_col).cast(pl.String))
    out: list[dict[str, Any]] = []
    if r.height == 0:
        return pl.DataFrame(schema=DECISION_SCHEMA)
    keys = ["quantity", *by]
    for key, g in r.group_by(keys, maintain_order=True):
        if g.height < min_mixtures:
            continue
        q = str(key[0])
        low = (lower_better or {}).get(q, lower_is_better(q))
        m = choice_metrics(g["predicted"].to_numpy(), g["actual"].to_numpy(), lower_better=low)
        ids = g[run_col].cast(pl.String).to_list()
        out.append({
            "quantity": q, "scale": _scale_label(dict(zip(keys, key, strict=True)), by) if by else "all",
            "n_mixtures": g.height, "spearman": m["spearman"], "pairwise_accuracy": m["pairwise_accuracy"],
            "chosen_run": ids[m["chosen"]], "chosen_rank": m["chosen_rank"], "regret": m["regret"],
            "rel_regret": m["rel_regret"], "best_run": ids[m["best"]],
        })
    return pl.DataFrame(out, schema=DECISION_SCHEMA) if out else pl.DataFrame(schema=DECISION_SCHEMA)


__all__ = ["DECISION_SCHEMA", "MIN_MIXTURES", "choice_metrics", "decision_metrics", "directions", "lower_is_better",
           "pairwise_accuracy", "spearman"]
