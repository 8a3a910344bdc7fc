"""Evaluation figures: backtests (parity, coverage) and validation runs (predicted vs measured)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mixopt.errors import SchemaError
from mixopt.report._plot import PALETTE, WIDTH, _bar_gids, _errorbar, _figure, _is_loss, _list, style

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mixopt.report.inputs import BacktestData


def _parity_panel(ax: Axes, rows: pl.DataFrame, id_col: str, meas: str, g: str) -> list[dict[str, Any]]:
    series = []
    pts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for i, q in enumerate(dict.fromkeys(rows["quantity"].to_list())):
        r = rows.filter(pl.col("quantity") == q)
        x = r[meas].to_numpy().astype(float)
        y = r["predicted"].to_numpy().astype(float)
        lo = r["lower"].to_numpy().astype(float) if "lower" in r.columns else np.full_like(y, np.nan)
        hi = r["upper"].to_numpy().astype(float) if "upper" in r.columns else np.full_like(y, np.nan)
        has = np.isfinite(lo) & np.isfinite(hi)
        yerr = np.vstack([np.where(has, np.maximum(y - lo, 0), 0), np.where(has, np.maximum(hi - y, 0), 0)])
        _errorbar(ax, x, y, f"{g}/{q}", yerr=yerr, fmt="o", ms=4, lw=0.8, capsize=2, alpha=0.85, color=PALETTE[i % len(PALETTE)],
                  label=q)
        series.append({"quantity": q, "id": [str(v) for v in r[id_col].to_list()], "actual": _list(x), "predicted": _list(y),
                       "lower": _list(lo), "upper": _list(hi)})
        pts += [x, y]
        ends += [lo, hi]
    p = np.concatenate(pts) if pts else np.zeros(1)
    p = p[np.isfinite(p)]
    if p.size:
        # equal axes over the points; intervals widen them by at most the points' own span
        # (a wild interval, e.g. FP far out, would otherwise squash every point into a corner)
        a, b = float(p.min()), float(p.max())
        span = b - a or abs(a) or 1.0
        e = np.concatenate(ends) if ends else np.zeros(0)
        e = e[np.isfinite(e)]
        if e.size:
            a, b = max(min(a, float(e.min())), a - span), min(max(b, float(e.max())), b + span)
        pad = 0.05 * (b - a or span)
        lim = (a - pad, b + pad)
        ax.plot(lim, lim, color="#555555", lw=0.8, ls="--", label="predicted = actual", gid=f"{g}/diagonal")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal", adjustable="box")
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    return series


def _parity(data: BacktestData, key: str = "parity") -> tuple[Figure, dict[str, Any]] | None:
    rows = data.rows
    if rows.height == 0:
        return None
    panels = []
    for m in data.methods:
        r = rows.filter(pl.col("method") == m)
        for kind, sel in (("losses", r.filter(pl.col("quantity").map_elements(_is_loss, return_dtype=pl.Boolean))),
                          ("scores", r.filter(~pl.col("quantity").map_elements(_is_loss, return_dtype=pl.Boolean)))):
            if sel.height:
                panels.append((m, kind, sel))
    if not panels:
        return None
    with style():
        fig, axes = _figure(len(panels), ncols=2, height=3.4)
        out: dict[str, Any] = {"kind": "parity", "level": data.level, "panels": []}
        for ax, (m, kind, sel) in zip(axes, panels, strict=True):
            series = _parity_panel(ax, sel, "run", "actual", f"{key}/{m}/{kind}")
            med = float(np.nanmedian(sel["rel_error"].to_numpy().astype(float))) if sel.height else math.nan
            ax.set_title(f"{m}: {kind} (median error {med:.1%})")
            ax.set_xlabel("actual")
            ax.set_ylabel(f"predicted ({data.level:.0%} interval)")
            out["panels"].append({"method": m, "group": kind, "series": series})
    return fig, out


def parity(data: BacktestData) -> Figure:
    """Backtest: predicted (with interval) vs actual, one panel per method and losses/scores."""
    out = _parity(data)
    if out is None:
        raise SchemaError("The backtest results have no rows to plot (no held-out quantity was predicted).")
    return out[0]


def _coverage(data: BacktestData, key: str = "coverage") -> tuple[Figure, dict[str, Any]] | None:
    s = data.summary()
    if s.height == 0 or s["coverage"].null_count() == s.height:
        return None
    quantities = list(dict.fromkeys(s["quantity"].to_list()))
    methods = list(data.methods)
    with style():
        fig, axes = _figure(1, ncols=1, height=3.2, width=max(4.5, min(WIDTH, 1.5 + 0.8 * len(quantities) * max(1, len(methods)) ** 0.5)))
        ax = axes[0]
        w = min(0.8 / max(len(methods), 1), 0.3)  # a lone bar stays a bar, not a wall
        out: dict[str, Any] = {"kind": "coverage", "level": data.level, "quantities": quantities, "methods": {}}
        for i, m in enumerate(methods):
            sm = s.filter(pl.col("method") == m)
            cov = {q: c for q, c in zip(sm["quantity"].to_list(), sm["coverage"].to_list(), strict=True)}
            vals = [cov.get(q) for q in quantities]
            xs = np.arange(len(quantities)) + (i - (len(methods) - 1) / 2) * w
            bars = ax.bar(xs, [np.nan if v is None else v for v in vals], width=w, color=PALETTE[i % len(PALETTE)], label=m)
            _bar_gids(bars, f"{key}/{m}")
            out["methods"][m] = _list([np.nan if v is None else v for v in vals])
        ax.axhline(data.level, color="#333333", lw=1, ls="--", label=f"nominal {data.level:.0%}", gid=f"{key}/nominal")
        ax.set_xticks(np.arange(len(quantities)), quantities, rotation=25, ha="right")
        ax.set_xlim(-0.6, len(quantities) - 0.4)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of held-out runs\ninside the interval")
        ax.set_title("interval coverage", pad=18)
        ax.legend(fontsize=7, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(len(methods) + 1, 5))
    return fig, out


def coverage(data: BacktestData) -> Figure:
    """Backtest: share of held-out actual values inside the predicted interval, per quantity and method."""
    out = _coverage(data)
    if out is None:
        raise SchemaError("The backtest results carry no interval coverage (no lower/upper columns).")
    return out[0]


def _validation(table: pl.DataFrame, key: str = "validation") -> tuple[Figure, dict[str, Any]] | None:
    if table.height == 0:
        return None
    groups = [(k, table.filter(pl.col("quantity").map_elements(f, return_dtype=pl.Boolean)))
              for k, f in (("losses", _is_loss), ("scores", lambda q: not _is_loss(q)))]
    groups = [(k, t) for k, t in groups if t.height]
    with style():
        fig, axes = _figure(len(groups), ncols=2, height=3.4, width=WIDTH if len(groups) > 1 else 5.5)
        out: dict[str, Any] = {"kind": "validation", "panels": []}
        for ax, (k, t) in zip(axes, groups, strict=True):
            series = _parity_panel(ax, t, "id", "measured", f"{key}/{k}")
            ax.set_xlabel("measured (trained model)")
            ax.set_ylabel("predicted (interval)")
            ax.set_title(f"validation runs: {k}")
            out["panels"].append({"group": k, "series": series})
    return fig, out


def validation(table: pl.DataFrame) -> Figure:
    """Predicted vs measured quantities of trained (validation) mixtures."""
    from mixopt.report.inputs import normalise_validation

    out = _validation(normalise_validation(table))
    if out is None:
        raise SchemaError("The validation table is empty.")
    return out[0]



__all__ = ["coverage", "parity", "validation"]
