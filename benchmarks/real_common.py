"""Helpers shared by the benchmarks/real_<name>.py sections (markdown tables, backtest summaries)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl


def md(frame: pl.DataFrame, digits: int = 4) -> str:
    """A polars frame as a markdown table."""
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.iter_rows():
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else f"{v:.{digits}g}")
            else:
                cells.append("" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: name of the row that runs the default FLP with ``bench_real.py --settings`` applied, beside ``default``
CANDIDATE = "candidate"


def with_candidate(methods: Mapping[str, tuple[str, Mapping[str, Any]]], candidate: Mapping[str, Any] | None, base: str = "default") -> dict[str, tuple[str, dict[str, Any]]]:
    """``methods`` with a :data:`CANDIDATE` row right after ``base``: ``base``'s settings updated by ``candidate``.

    A candidate default (``bench_real.py --settings '{"stage2_loss_x": "denoised"}'``) is measured beside the
    current one in the same run, on the same split; without ``candidate`` the methods are returned unchanged."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, (kind, settings) in methods.items():
        out[name] = (kind, dict(settings))
        if candidate and name == base:
            out[CANDIDATE] = (kind, {**settings, **candidate})
    return out


def timed_backtest(runs: Any, method: str, settings: Mapping[str, Any], **split: Any) -> tuple[Any, float]:
    from mixopt.backtest import backtest

    t0 = time.perf_counter()
    r = backtest(runs, method, settings=dict(settings), **split)
    return r, time.perf_counter() - t0


def per_target(rows: pl.DataFrame, loss: str = "loss") -> pl.DataFrame:
    """Per held-out run: loss relative error, coverage and interval half-width (relative to the predicted loss,
    the mean of both sides), average-score relative error, score coverage."""
    if rows.height == 0:
        return pl.DataFrame()
    lo = rows.filter(pl.col("quantity") == loss).select(
        "run",
        pl.col("rel_error").alias("loss_rel_err"),
        pl.col("covered").alias("loss_covered"),
        ((pl.col("upper") - pl.col("lower")) / (2 * pl.col("predicted"))).alias("loss_halfwidth"),
    )
    s = (
        rows.filter(pl.col("quantity").str.starts_with("score:"))
        .group_by("run")
        .agg(pl.col("predicted").mean().alias("avg_pred"), pl.col("actual").mean().alias("avg_true"), pl.col("covered").cast(pl.Float64).mean().alias("score_coverage"), pl.len().alias("n_scores"))
    )
    s = s.with_columns(((pl.col("avg_pred") - pl.col("avg_true")).abs() / pl.col("avg_true")).alias("avg_score_rel_err"))
    return lo.join(s, on="run", how="full", coalesce=True)


def coverage(rows: pl.DataFrame) -> float:
    return float(rows["covered"].cast(pl.Float64).mean()) if rows.height else math.nan


def med(values: Sequence[float]) -> float:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.median(v)) if v else math.nan


def section(runs: Any, methods: Mapping[str, tuple[str, Mapping[str, Any]]], holdout_min_params: float, label: str) -> dict[str, Any]:
    """Backtest every method on one split; print per-target and summary tables; return headline figures."""
    from mixopt.backtest import backtest, make_split

    split = make_split(runs, holdout_min_params=holdout_min_params)
    out_rows = []
    head: dict[str, Any] = {}
    for name, (kind, settings) in methods.items():
        t0 = time.perf_counter()
        try:
            r = backtest(runs, kind, settings=dict(settings), split=split)
        except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not stop
            print(f"  {label}/{name}: failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
            continue
        dt = time.perf_counter() - t0
        pt = per_target(r.rows)
        sc = r.rows.filter(pl.col("quantity").str.starts_with("score:"))
        for row in pt.iter_rows(named=True):
            out_rows.append({"data": label, "method": name, **row})
        head[name] = {
            "median_loss_err": float(pt["loss_rel_err"].median()) if "loss_rel_err" in pt.columns and pt["loss_rel_err"].null_count() < pt.height else None,
            "median_score_err": float(sc["rel_error"].median()) if sc.height else None,
            "median_abs_score_err": float((sc["predicted"] - sc["actual"]).abs().median()) if sc.height else None,
            "median_avg_score_err": float(pt["avg_score_rel_err"].median()) if "avg_score_rel_err" in pt.columns and pt["avg_score_rel_err"].null_count() < pt.height else None,
            "coverage90": r.coverage,
            "loss_halfwidth_median": float(pt["loss_halfwidth"].median()) if "loss_halfwidth" in pt.columns and pt["loss_halfwidth"].null_count() < pt.height else None,
            "backtest_s": dt,
        }
    if out_rows:
        print(f"{label}: {split.description}; per held-out model:\n")
        print(md(pl.DataFrame(out_rows)))
    print(f"\n{label}: summary (score errors over every held-out benchmark score)\n")
    print(md(pl.DataFrame([{"method": k, **v} for k, v in head.items()])))
    return head
