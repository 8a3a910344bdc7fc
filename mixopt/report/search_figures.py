"""Search figures: Pareto front, parallel coordinates, shortlist, hypervolume history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mixopt.data.table import SCORE_PREFIX
from mixopt.errors import SchemaError
from mixopt.report._plot import (
    PALETTE,
    SHORTLIST_ROWS,
    TARGET_COLOR,
    WIDTH,
    _bar_gids,
    _errorbar,
    _figure,
    _is_loss,
    _legend,
    _list,
    fmt,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from mixopt.report.inputs import SearchData


# -- searches ------------------------------------------------------------------------------------
def _obj_label(name: str, direction: str) -> str:
    return f"{name} ({'higher' if direction == 'maximize' else 'lower'} is better)"


def _is_compute(name: str) -> bool:
    return name in ("compute", "flops")


def _obj_values(frame: Any, name: str) -> np.ndarray:
    """Values of objective ``name`` to plot; the compute objective (log10 FLOPs) is shown in FLOPs."""
    if _is_compute(name):
        if isinstance(frame, Mapping):
            if frame.get("flops") is not None:
                return np.asarray([float(frame["flops"])])
            return 10.0 ** np.asarray([float(frame[f"obj:{name}"])])
        if "flops" in frame.columns:
            return frame["flops"].to_numpy().astype(float)
        return 10.0 ** frame[f"obj:{name}"].to_numpy().astype(float)
    if isinstance(frame, Mapping):
        return np.asarray([float(frame[f"obj:{name}"])])
    return frame[f"obj:{name}"].to_numpy().astype(float)


def _axis_label(name: str, direction: str) -> str:
    if _is_compute(name):
        return "training compute, FLOPs (lower is better)"
    return _obj_label(name, direction)


def shortlist_rows(search: SearchData, k: int = SHORTLIST_ROWS) -> pl.DataFrame:
    """The rows to recommend: the search's own shortlist when it wrote one, else picked here.

    Picked here: the search's ``best`` (its shortlist rank 1) when the front holds it, the best
    row for the search's weights, the best row of each objective, then the next best rows by
    the same weighted score (objectives scaled to [0, 1] over the front,
    1 = best), up to ``k`` distinct rows.
    """
    p = search.pareto
    if p.height == 0:
        return p
    own = getattr(search, "shortlist", None)
    if own is not None and own.height:
        return (own.sort("rank") if "rank" in own.columns else own).head(k)
    for col in ("shortlist_rank", "rank", "shortlist"):
        if col in p.columns:
            c = p[col]
            if c.dtype == pl.Boolean:
                sel = p.filter(c)
            else:
                sel = p.filter(c.is_not_null() & (c.cast(pl.Float64, strict=False) > 0 if col == "shortlist" else c.is_not_null())).sort(col)
            if sel.height:
                return sel.head(k)
    names = [n for n, _ in search.objectives if f"obj:{n}" in p.columns]
    if not names:
        return p.head(k)
    vals = p.select([f"obj:{n}" for n in names]).to_numpy().astype(float)
    sign = np.array([1.0 if d == "maximize" else -1.0 for n, d in search.objectives if n in names])
    up = vals * sign
    lo, hi = np.nanmin(up, axis=0), np.nanmax(up, axis=0)
    scaled = np.where(hi > lo, (up - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    weights = search.summary.get("weights") or {}
    w = np.array([float(weights.get(n, 1.0)) if weights else 1.0 for n in names])
    score = scaled @ w
    order: list[int] = []
    best = search.best
    if best is not None and best.get("trial") is not None and "trial" in p.columns:  # the search's rank 1 comes first
        order += [int(i) for i in np.flatnonzero(p["trial"].to_numpy() == best["trial"])[:1]]
    order += [int(np.argmax(score))]
    order += [int(np.argmax(scaled[:, j])) for j in range(len(names))]
    order += [int(i) for i in np.argsort(-score, kind="stable")]
    picked = list(dict.fromkeys(order))[:k]
    return p[picked]


def _pareto_front(search: SearchData, key: str = "pareto") -> tuple[Figure, dict[str, Any]] | None:
    p = search.pareto
    objs = [(n, d) for n, d in search.objectives if f"obj:{n}" in p.columns]
    if p.height == 0 or len(objs) < 2:
        return None
    pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))]
    trials = search.trials
    best = search.best
    short = shortlist_rows(search)
    short_ids = short["trial"].to_list() if "trial" in short.columns else []
    with style():
        fig, axes = _figure(len(pairs), ncols=min(3, len(pairs)), height=3.4, width=WIDTH if len(pairs) >= 3 else 6.5 * len(pairs))
        out: dict[str, Any] = {"kind": "pareto_front", "objectives": [list(o) for o in objs], "panels": []}
        for ax, (i, j) in zip(axes, pairs, strict=True):
            (ni, di), (nj, dj) = objs[i], objs[j]
            g = f"{key}/{ni}~{nj}"
            if trials is not None and f"obj:{ni}" in trials.columns and f"obj:{nj}" in trials.columns:
                t = trials
                if "feasible" in t.columns:
                    t = t.filter(pl.col("feasible").cast(pl.Boolean, strict=False).fill_null(False))
                ax.scatter(_obj_values(t, ni), _obj_values(t, nj), s=4, color="#d0d0d0", lw=0,
                           label="feasible trials", gid=f"{g}/trials", zorder=1)
            x = _obj_values(p, ni)
            y = _obj_values(p, nj)
            ax.scatter(x, y, s=16, color=PALETTE[0], edgecolors="white", linewidths=0.3, label="Pareto set", gid=f"{g}/front", zorder=3)
            if short_ids and "trial" in p.columns:
                ax.scatter(_obj_values(short, ni), _obj_values(short, nj), s=46, facecolors="none", edgecolors=PALETTE[1],
                           linewidths=1.2, label="shortlist", gid=f"{g}/shortlist", zorder=4)
            if best is not None and f"obj:{ni}" in best and f"obj:{nj}" in best:
                ax.scatter(_obj_values(best, ni), _obj_values(best, nj), marker="*", s=160, color=TARGET_COLOR, edgecolors="k",
                           linewidths=0.5, label="rank 1 (best)", gid=f"{g}/best", zorder=5)
            if _is_compute(ni):
                ax.set_xscale("log")
            if _is_compute(nj):
                ax.set_yscale("log")
            ax.set_xlabel(_axis_label(ni, di))
            ax.set_ylabel(_axis_label(nj, dj))
            ax.set_title(f"{'compute' if _is_compute(nj) else nj} vs {'compute' if _is_compute(ni) else ni}")
            out["panels"].append({"x": ni, "y": nj, "front": {"x": _list(x), "y": _list(y)},
                                  "trial": [int(v) for v in p["trial"].to_list()] if "trial" in p.columns else None})
        _legend(fig, axes)
    return fig, out


def pareto_front(search: SearchData) -> Figure:
    """The Pareto front as 2-D projections (one panel per pair of objectives)."""
    out = _pareto_front(search)
    if out is None:
        raise SchemaError("The search has no Pareto front with at least two objectives to draw.")
    return out[0]


def _parallel(search: SearchData, key: str = "parallel") -> tuple[Figure, dict[str, Any]] | None:
    p = search.pareto
    objs = [(n, d) for n, d in search.objectives if f"obj:{n}" in p.columns]
    if p.height == 0 or len(objs) < 3:
        return None
    vals = np.column_stack([_obj_values(p, n) for n, _ in objs])
    t = vals.copy()
    for j, (n, _) in enumerate(objs):
        if _is_compute(n):
            t[:, j] = np.log10(np.maximum(t[:, j], 1e-300))  # compute axis in decades
    lo, hi = np.nanmin(t, axis=0), np.nanmax(t, axis=0)
    norm = np.where(hi > lo, (t - lo) / np.where(hi > lo, hi - lo, 1.0), 0.5)
    for j, (_, d) in enumerate(objs):
        if d == "minimize":
            norm[:, j] = 1 - norm[:, j]  # up = better on every axis
    short = shortlist_rows(search)
    short_trials = set(short["trial"].to_list()) if "trial" in short.columns else set()
    best_trial = search.best.get("trial") if search.best else None
    with style():
        import matplotlib as mpl

        fig, axes = _figure(1, ncols=1, height=3.6, width=min(WIDTH, 2.5 + 1.9 * len(objs)))
        ax = axes[0]
        xs = np.arange(len(objs))
        cmap = mpl.colormaps["viridis"]
        trials_col = p["trial"].to_list() if "trial" in p.columns else [None] * p.height
        for r in range(p.height):
            tr = trials_col[r]
            hl = tr == best_trial and tr is not None
            sl = tr in short_trials
            ax.plot(xs, norm[r], color=TARGET_COLOR if hl else (PALETTE[1] if sl else cmap(float(norm[r, 0]))),
                    lw=2.2 if hl else (1.3 if sl else 0.6), alpha=1.0 if (hl or sl) else 0.45, zorder=3 if hl else (2 if sl else 1),
                    label="rank 1 (best)" if hl else ("shortlist" if sl else "_"), gid=f"{key}/row{r}")
        for j, (n, d) in enumerate(objs):
            ax.axvline(j, color="#444444", lw=0.8)
            top, bottom = (hi[j], lo[j]) if d == "maximize" else (lo[j], hi[j])
            conv = (lambda v: 10**v) if _is_compute(n) else (lambda v: v)
            ax.annotate(fmt(conv(top), 3), (j, 1.0), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7)
            ax.annotate(fmt(conv(bottom), 3), (j, 0.0), xytext=(0, -11), textcoords="offset points", ha="center", fontsize=7)
        ax.set_xticks(xs, [_axis_label(n, d).replace(" (", "\n(").replace(", FLOPs", "\nFLOPs") for n, d in objs])
        ax.set_yticks([])
        ax.set_ylim(-0.08, 1.08)
        ax.grid(False)
        ax.set_title("Pareto set: one line per mixture (up = better on every axis)")
        h, lab = ax.get_legend_handles_labels()
        if h:
            seen = dict(zip(lab, h, strict=True))
            ax.legend(list(seen.values()), list(seen), fontsize=7, frameon=False, loc="upper right", bbox_to_anchor=(1, -0.18), ncols=2)
        out = {"kind": "parallel_coordinates", "objectives": [list(o) for o in objs], "values": [_list(v) for v in vals]}
    return fig, out


def parallel_coordinates(search: SearchData) -> Figure:
    """The Pareto set in parallel coordinates (three or more objectives)."""
    out = _parallel(search)
    if out is None:
        raise SchemaError("Parallel coordinates need a Pareto front with at least three objectives.")
    return out[0]


def _score_quantities(search: SearchData) -> list[str]:
    """Predicted quantities with an interval in the Pareto table, objectives first."""
    p = search.pareto
    qs = [q for q in p.columns if (q.startswith(SCORE_PREFIX) or _is_loss(q)) and ":" in q and not q.endswith((":lower", ":upper"))
          and f"{q}:lower" in p.columns]
    objs = [n for n, _ in search.objectives if n in qs]
    return objs + [q for q in qs if q not in objs and q.startswith(SCORE_PREFIX)]


def _shortlist(search: SearchData, key: str = "shortlist") -> tuple[Figure, dict[str, Any]] | None:
    rows = shortlist_rows(search)
    domains = [d for d in search.domains if f"mix:{d}" in rows.columns]
    if rows.height == 0 or not domains:
        return None
    qs = _score_quantities(search)
    n = rows.height
    labels = []
    for r, row in enumerate(rows.iter_rows(named=True)):
        lab = f"#{r + 1}"
        if row.get("trial") is not None:
            lab += f" trial {row['trial']}"
        if row.get("flops") is not None:
            lab += f"\n{float(row['flops']):.2g} FLOPs"
        labels.append(lab)
    with style():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        ncols = 1 + (1 if qs else 0)
        fig = Figure(figsize=(WIDTH, 1.0 + 0.42 * n + 0.4), layout="constrained")
        FigureCanvasAgg(fig)
        gs = fig.add_gridspec(1, ncols, width_ratios=[1.0, 1.3][:ncols])
        ax = fig.add_subplot(gs[0, 0])
        y = np.arange(n)[::-1]
        left = np.zeros(n)
        out: dict[str, Any] = {"kind": "shortlist", "trial": [int(t) for t in rows["trial"].to_list()] if "trial" in rows.columns else None,
                               "mixture": {}, "predictions": {}}
        for i, d in enumerate(domains):
            v = rows[f"mix:{d}"].to_numpy().astype(float)
            bars = ax.barh(y, v, left=left, color=PALETTE[i % len(PALETTE)], edgecolor="white", lw=0.5, label=d)
            _bar_gids(bars, f"{key}/mix/{d}")
            ax.bar_label(bars, labels=[f"{x:.2f}" if x >= 0.08 else "" for x in v], label_type="center", fontsize=7, color="white")
            left += v
            out["mixture"][d] = _list(v)
        ax.set_yticks(y, labels, fontsize=7.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of the training mixture")
        ax.set_title("shortlisted mixtures")
        ax.grid(False)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.1 * 8 / max(n, 1) / 2), ncols=len(domains))
        if qs:
            ax2 = fig.add_subplot(gs[0, 1], sharey=ax)
            k = len(qs)
            off = (np.arange(k) - (k - 1) / 2) * (0.7 / max(k, 1))
            for j, q in enumerate(qs):
                m = rows[q].to_numpy().astype(float)
                lo = rows[f"{q}:lower"].to_numpy().astype(float)
                hi = rows[f"{q}:upper"].to_numpy().astype(float)
                _errorbar(ax2, m, y + off[j], f"{key}/pred/{q}", xerr=[np.maximum(m - lo, 0), np.maximum(hi - m, 0)], fmt="o",
                          ms=4, capsize=2, lw=1, color=PALETTE[(j + len(domains)) % len(PALETTE)], label=q)
                out["predictions"][q] = {"mean": _list(m), "lower": _list(lo), "upper": _list(hi)}
            ax2.tick_params(labelleft=False)
            ax2.set_xlabel(f"predicted value ({search.level:.0%} interval)")
            ax2.set_title("predicted scores")
            ax2.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.1 * 8 / max(n, 1) / 2),
                       ncols=min(k, 3))
    return fig, out


def shortlist(search: SearchData) -> Figure:
    """Shortlisted mixtures as stacked bars, next to their predicted scores and intervals."""
    out = _shortlist(search)
    if out is None:
        raise SchemaError("The search's Pareto table has no mixture columns (mix:<domain>) to draw.")
    return out[0]


def _hv_history(search: SearchData, key: str = "hypervolume") -> tuple[Figure, dict[str, Any]] | None:
    h = search.history
    if h is None or h.height == 0:
        return None
    x = h["trials"].to_numpy().astype(float)
    v = h["hypervolume"].to_numpy().astype(float)
    with style():
        fig, axes = _figure(1, ncols=1, height=2.8, width=6.5)
        ax = axes[0]
        ax.plot(x, v, color=PALETTE[0], lw=1.6, marker="o", ms=2.5, gid=f"{key}/history")
        if np.isfinite(v).any():
            ax.annotate(f"{fmt(v[-1])}", (x[-1], v[-1]), xytext=(-4, -12), textcoords="offset points", ha="right", fontsize=7.5)
        ax.set_xlabel("finished trials")
        ax.set_ylabel("hypervolume")
        ax.set_title("optimisation history")
    return fig, {"kind": "hypervolume_history", "trials": _list(x), "hypervolume": _list(v)}


def hypervolume_history(search: SearchData) -> Figure:
    """Hypervolume of the feasible front vs finished trials."""
    out = _hv_history(search)
    if out is None:
        raise SchemaError("The search has no history: write the trials table or rerun `mixopt optimize --report FILE`.")
    return out[0]


__all__ = ["hypervolume_history", "parallel_coordinates", "pareto_front", "shortlist", "shortlist_rows"]
