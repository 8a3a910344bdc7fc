"""Fit figures: compute -> loss per domain and loss -> score per benchmark, to a target."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.data.table import FLOPS_PER_PARAM_TOKEN, LOSS, LOSS_PREFIX, SCORE_PREFIX, RunTable
from mixopt.errors import MixoptError, SchemaError
from mixopt.report._plot import (
    FIT_COLOR,
    MAX_MIXTURE_CURVES,
    MUTED,
    PALETTE,
    TARGET_COLOR,
    _errorbar,
    _figure,
    _interval_text,
    _legend,
    _list,
    _note,
    style,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mixopt.surrogate.base import Prediction, Surrogate


# -- targets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """The model the report extrapolates to.

    Attributes:
        flops: training compute, FLOPs.
        mixture: ``{domain: ratio}`` (mixture-aware surrogates), or None.
        params: parameter count N, or None (then N, D follow ``tokens_per_param``).
        tokens: training tokens D, or None.
        label: how the report names it.
    """

    flops: float
    mixture: Mapping[str, float] | None = None
    params: float | None = None
    tokens: float | None = None
    label: str = "target"

    def __post_init__(self) -> None:
        if not (isinstance(self.flops, (int, float)) and math.isfinite(self.flops) and self.flops > 0):
            raise SchemaError(f"The target's compute must be a positive number of FLOPs, got {self.flops!r}.")

    @property
    def tokens_per_param(self) -> float:
        if self.params and self.tokens:
            return float(self.tokens) / float(self.params)
        return 20.0

    def describe(self) -> str:
        parts = [f"{self.flops:.3g} FLOPs"]
        if self.params and self.tokens:
            parts.append(f"N={self.params:.3g}, D={self.tokens:.3g}")
        if self.mixture:
            parts.append(", ".join(f"{d}={r:.3f}" for d, r in self.mixture.items()))
        return "; ".join(parts)


def default_target(model: Surrogate, runs: RunTable) -> Target:
    """10x the compute of the largest sampling run, at the mean sampling mixture."""
    final = runs.final()
    flops = float(final.flops().max()) * 10.0
    mix = None
    domains = tuple(getattr(model, "domains_", ()) or ())
    if model.uses_mixture and domains:
        m = final.mixture(domains) if all(d in runs.domains for d in domains) else np.full((1, len(domains)), 1 / len(domains))
        uniq = np.unique(np.round(m, 6), axis=0)
        row = uniq.mean(axis=0)
        row = row / row.sum()
        mix = {d: float(r) for d, r in zip(domains, row, strict=True)}
    return Target(flops=flops, mixture=mix, label="10x the largest sampling run" + (", mean sampling mixture" if mix else ""))


def _targets(model: Surrogate, flops: np.ndarray, target: Target, mixtures: np.ndarray | None = None):
    """Targets on a compute grid at the target mixture (or at each of ``mixtures``, mixture-major)."""
    from mixopt.surrogate.base import Targets

    flops = np.asarray(flops, dtype=np.float64)
    domains = tuple(getattr(model, "domains_", ()) or ())
    if mixtures is not None:
        t = Targets.grid(mixtures, flops, domains)
        flops = t.flops
        mix = t.mixture
    elif model.uses_mixture and domains:
        row = Targets.from_mapping(dict(target.mixture or {}), domains)
        if abs(row.sum() - 1) > 1e-6:
            raise SchemaError(f"The target mixture must sum to 1 over {list(domains)}, got {target.mixture} (sum {row.sum():.4g}).")
        mix = np.tile(row, (flops.shape[0], 1))
    else:
        mix, domains = None, ()
    rho = target.tokens_per_param
    params = np.sqrt(flops / (FLOPS_PER_PARAM_TOKEN * rho))
    return Targets(flops=flops, params=params, tokens=rho * params, mixture=mix, domains=domains if mix is not None else ())


def _predict(model: Surrogate, targets: Any, *, intervals: bool = True, level: float = 0.9) -> Prediction | None:
    try:
        return model.predict(targets, intervals=intervals, level=level)
    except MixoptError:
        return None


def _compute_grid(runs: RunTable, target: Target, n: int = 80) -> tuple[np.ndarray, float]:
    f = runs.final().flops()
    lo = float(f.min())
    hi_data = float(f.max())
    hi = max(hi_data, float(target.flops)) * 1.05
    lo = min(lo, float(target.flops)) / 1.05
    return np.geomspace(lo, hi, n), hi_data


def _series(pred: Prediction | None, q: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
    if pred is None or q not in pred.names:
        return None
    j = pred.names.index(q)
    mean = pred.mean[:, j]
    if not np.any(np.isfinite(mean)):
        return None
    lo = pred.lower[:, j] if pred.lower is not None else None
    hi = pred.upper[:, j] if pred.upper is not None else None
    return mean, lo, hi


def _draw_path(ax: Axes, x: np.ndarray, mean: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None,
               inside: np.ndarray, gid: str, label: str, level: float) -> None:
    """A fitted curve: solid where ``inside`` (sampling range), dashed beyond, with its band."""
    if lo is not None and hi is not None and np.any(np.isfinite(lo)):
        ax.fill_between(x, lo, hi, color=FIT_COLOR, alpha=0.15, lw=0, label=f"{level:.0%} interval", gid=f"{gid}/band")
    xin = np.where(inside, x, np.nan)
    ax.plot(xin, np.where(inside, mean, np.nan), color=FIT_COLOR, lw=1.8, label=label, gid=f"{gid}/fit")
    out = ~inside
    if out.any():
        # start the dashed part at the last inside point so the line is continuous
        k = np.flatnonzero(out)
        k = np.concatenate([[k[0] - 1], k]) if k[0] > 0 else k
        ax.plot(x[k], mean[k], color=FIT_COLOR, lw=1.8, ls="--", label="extrapolation", gid=f"{gid}/extrapolation")


def _draw_target(ax: Axes, x: float, mean: float, lo: float | None, hi: float | None, gid: str, text: str | None = None) -> None:
    if not math.isfinite(mean):
        return
    yerr = None
    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
        yerr = [[max(mean - lo, 0.0)], [max(hi - mean, 0.0)]]
    _errorbar(ax, [x], [mean], gid, yerr=yerr, fmt="D", color=TARGET_COLOR, ms=6, capsize=4, lw=1.5, zorder=5,
              label="target prediction")
    if text:
        ax.annotate(text, (x, mean), xytext=(-6, 10), textcoords="offset points", ha="right", fontsize=7.5,
                    color=TARGET_COLOR, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})


# -- fits: compute -> loss -----------------------------------------------------------------------
def loss_quantities(model: Surrogate) -> list[str]:
    """The loss quantities a model predicts (``loss``, ``loss:<d>``)."""
    return [q for q in model.outputs_ if q == LOSS or q.startswith(LOSS_PREFIX)]


def _fit_curves(model: Surrogate, runs: RunTable, target: Target | None = None, *, level: float = 0.9,
                key: str = "fit") -> tuple[Figure, dict[str, Any]] | None:
    quantities = [q for q in loss_quantities(model) if q in runs.frame.columns]
    if not quantities:
        return None
    target = target or default_target(model, runs)
    final = runs.final()
    grid, hi_data = _compute_grid(runs, target)
    inside = grid <= hi_data * 1.0001
    pred = _predict(model, _targets(model, grid, target), level=level)
    tpred = _predict(model, _targets(model, np.array([target.flops]), target), level=level)
    domains = tuple(getattr(model, "domains_", ()) or ())
    mixture_curves = None
    mixes = None
    if model.uses_mixture and domains and all(d in runs.domains for d in domains):
        mixes = np.unique(np.round(final.mixture(domains), 6), axis=0)
        mixes = mixes / mixes.sum(axis=1, keepdims=True)
        if 1 < len(mixes) <= MAX_MIXTURE_CURVES:
            sgrid = np.geomspace(float(final.flops().min()), hi_data, 40)
            mp = _predict(model, _targets(model, sgrid, target, mixtures=mixes), intervals=False)
            if mp is not None:
                mixture_curves = (sgrid, mp)
    with style():
        fig, axes = _figure(len(quantities))
        data: dict[str, Any] = {"kind": "fit_curves", "level": level, "target": _target_json(target), "panels": []}
        for ax, q in zip(axes, quantities, strict=True):
            g = f"{key}/{q}"
            ax.scatter(runs.flops(), runs.column(q), s=5, color="#cfcfcf", lw=0, label="earlier checkpoints (not fitted)",
                       gid=f"{g}/checkpoints", zorder=1)
            xf, yf = final.flops(), final.column(q)
            dom = q[len(LOSS_PREFIX):] if q.startswith(LOSS_PREFIX) else None
            share = None
            if mixes is not None and dom in domains:
                share = final.mixture(domains)[:, domains.index(dom)]
            panel: dict[str, Any] = {"quantity": q, "runs": {"run": [str(r) for r in final.run_ids()], "flops": _list(xf),
                                                               "loss": _list(yf)}}
            if share is not None:
                sc = ax.scatter(xf, yf, c=share, cmap="viridis", vmin=0, vmax=1, s=24, edgecolors="k", linewidths=0.3,
                                label="sampling runs (final checkpoints)", gid=f"{g}/runs", zorder=3)
                fig.colorbar(sc, ax=ax, label=f"share of {dom} in the mixture", shrink=0.85, pad=0.01)
                panel["runs"]["share"] = _list(share)
                if mixture_curves is not None:
                    sgrid, mp = mixture_curves
                    s = _series(mp, q)
                    if s is not None:
                        import matplotlib as mpl

                        cmap = mpl.colormaps["viridis"]
                        m = s[0].reshape(len(mixes), len(sgrid))
                        jd = domains.index(dom)
                        for i in range(len(mixes)):
                            ax.plot(sgrid, m[i], color=cmap(float(mixes[i, jd])), lw=0.7, alpha=0.8, zorder=2,
                                    label="fit at each sampling mixture" if i == 0 else "_", gid=f"{g}/mixture{i}")
            else:
                ax.scatter(xf, yf, s=24, color=PALETTE[0], edgecolors="k", linewidths=0.3,
                           label="sampling runs (final checkpoints)", gid=f"{g}/runs", zorder=3)
            s = _series(pred, q)
            if s is not None:
                _draw_path(ax, grid, s[0], s[1], s[2], inside, g, "fitted law" + (" (target mixture)" if model.uses_mixture else ""), level)
                panel["curve"] = {"flops": _list(grid), "mean": _list(s[0]), "lower": _list(s[1]) if s[1] is not None else None,
                                  "upper": _list(s[2]) if s[2] is not None else None}
            t = _series(tpred, q)
            if t is not None:
                lo = float(t[1][0]) if t[1] is not None else None
                hi = float(t[2][0]) if t[2] is not None else None
                _draw_target(ax, target.flops, float(t[0][0]), lo, hi, f"{g}/target", _interval_text(float(t[0][0]), lo, hi))
                panel["target"] = {"flops": target.flops, "mean": float(t[0][0]), "lower": lo, "upper": hi}
            elif s is None:
                why = model.unpredictable_.get(q, "the model cannot predict this quantity at the target")
                _note(ax, why, gid=f"{g}/note")
                panel["note"] = why
            ax.set_xscale("log")
            ax.set_xlabel("training compute C (FLOPs)")
            ax.set_ylabel(f"{q} (nats/token)")
            ax.set_title(q)
            data["panels"].append(panel)
        _legend(fig, axes)
    return fig, data


def fit_curves(model: Surrogate, runs: RunTable, target: Target | None = None, *, level: float = 0.9) -> Figure:
    """Compute -> loss per loss quantity: the sampling runs and the fitted law to the target.

    Args:
        model: a fitted surrogate that predicts ``loss`` or ``loss:<d>``.
        runs: the sampling runs (final checkpoints are the fitted points).
        target: where to extrapolate (default: 10x the largest run, mean sampling mixture).
        level: interval coverage of the band.

    Raises:
        SchemaError: the model predicts no loss the run table has.
    """
    out = _fit_curves(model, runs, target, level=level)
    if out is None:
        raise SchemaError(f"This {model.kind} model predicts no loss column of the run table (outputs {list(model.outputs_)}); "
                          "there is no compute -> loss fit to draw.")
    return out[0]


# -- fits: loss -> score ---------------------------------------------------------------------------
def _x_axis(model: Surrogate, runs: RunTable) -> tuple[str, list[str]]:
    """What the loss axis of the score maps is: ("loss", [col]) / ("mean_loss", cols) / ("flops", [])."""
    losses = [q for q in loss_quantities(model) if q in runs.frame.columns]
    name = getattr(model, "loss_name_", None)
    if not model.uses_mixture and name in losses:
        return "loss", [name]
    domain_losses = [q for q in losses if q.startswith(LOSS_PREFIX)]
    if model.uses_mixture and domain_losses:
        return "mean_loss", domain_losses
    if losses:
        return "loss", [losses[0]]
    return "flops", []


def _draw_score_curve(ax: Any, xc: np.ndarray, sc: tuple[Any, Any, Any], xe: np.ndarray, grid: np.ndarray,
                      inside: np.ndarray, axis: str, g: str, label: str, level: float) -> dict[str, Any]:
    """One score map's fitted curve, only where it was fitted (emerged ``xe``) and beyond, towards the target."""
    ok = np.isfinite(xc)
    if xe.size:
        ok &= (xc >= xe.min() * (1 - 1e-9)) if axis == "flops" else (xc <= xe.max() * (1 + 1e-9))
    _draw_path(ax, xc[ok], sc[0][ok], None if sc[1] is None else sc[1][ok], None if sc[2] is None else sc[2][ok],
               inside[ok], g, label, level)
    return {"flops": _list(grid[ok]), "x": _list(xc[ok]), "mean": _list(sc[0][ok]),
            "lower": None if sc[1] is None else _list(sc[1][ok]),
            "upper": None if sc[2] is None else _list(sc[2][ok])}


def _draw_score_target(ax: Any, x: float, st: tuple[Any, Any, Any], g: str) -> dict[str, Any]:
    """One score map's target prediction with its interval."""
    lo = float(st[1][0]) if st[1] is not None else None
    hi = float(st[2][0]) if st[2] is not None else None
    _draw_target(ax, x, float(st[0][0]), lo, hi, f"{g}/target", _interval_text(float(st[0][0]), lo, hi))
    return {"x": x, "mean": float(st[0][0]), "lower": lo, "upper": hi}


def _score_maps(model: Surrogate, runs: RunTable, target: Target | None = None, *, level: float = 0.9,
                key: str = "scores") -> tuple[Figure, dict[str, Any]] | None:
    from mixopt.surrogate.flp import emerged_mask

    benches = [b for b in (getattr(model, "benchmarks_", ()) or runs.benchmarks) if SCORE_PREFIX + b.name in runs.frame.columns]
    if not benches:
        return None
    target = target or default_target(model, runs)
    axis, cols = _x_axis(model, runs)
    if axis == "flops":
        x_all = runs.flops()
        xlabel = "training compute C (FLOPs)"
    else:
        x_all = np.mean(np.column_stack([runs.column(c) for c in cols]), axis=1)
        xlabel = f"{cols[0]}, nats/token" if axis == "loss" else "mean domain loss, nats/token"
    grid, hi_data = _compute_grid(runs, target)
    inside = grid <= hi_data * 1.0001
    pred = _predict(model, _targets(model, grid, target), level=level)
    tpred = _predict(model, _targets(model, np.array([target.flops]), target), level=level)

    def x_of(p: Prediction | None) -> np.ndarray | None:
        if p is None:
            return None
        if axis == "flops":
            return grid if len(p) == len(grid) else np.array([target.flops])
        try:
            return np.mean(np.column_stack([p.get(c) for c in cols]), axis=1)
        except MixoptError:
            return None

    xc, xt = x_of(pred), x_of(tpred)
    margin = float(getattr(model, "emergence_margin", 0.05) or 0.0)
    mode = getattr(model, "emergence", "checkpoint")
    mode = mode if mode in ("checkpoint", "first_crossing") else "checkpoint"
    with style():
        fig, axes = _figure(len(benches))
        data: dict[str, Any] = {"kind": "score_maps", "axis": axis, "axis_columns": cols, "level": level,
                                "emergence_margin": margin, "target": _target_json(target), "panels": []}
        for ax, b in zip(axes, benches, strict=True):
            q = SCORE_PREFIX + b.name
            g = f"{key}/{q}"
            s = runs.column(q)
            em = emerged_mask(s, b, margin, run_ids=runs.run_ids(), mode=mode)
            ev = np.isfinite(s) & np.isfinite(x_all)
            ne = ev & ~em
            ax.scatter(x_all[ne], s[ne], s=12, facecolors="none", edgecolors=MUTED, lw=0.8, label="not emerged", gid=f"{g}/not_emerged")
            ax.scatter(x_all[em & ev], s[em & ev], s=12, color=PALETTE[2], lw=0, label="emerged", gid=f"{g}/emerged")
            panel: dict[str, Any] = {"quantity": q, "chance": b.chance, "higher_is_better": b.higher_is_better,
                                     "emerged": {"x": _list(x_all[em & ev]), "score": _list(s[em & ev])},
                                     "not_emerged": {"x": _list(x_all[ne]), "score": _list(s[ne])}}
            if b.chance is not None:
                ax.axhline(b.chance, color="#555555", lw=1, ls="--", label="chance", gid=f"{g}/chance")
                thr = b.chance + margin if b.higher_is_better else b.chance - margin
                if margin > 0:
                    ax.axhline(thr, color="#555555", lw=0.8, ls=":", label="emergence threshold", gid=f"{g}/threshold")
            reason = model.unpredictable_.get(q)
            sc = _series(pred, q) if reason is None else None
            if sc is not None and xc is not None:
                label = "fitted map (along compute" + (", target mixture)" if model.uses_mixture else ")")
                panel["curve"] = _draw_score_curve(ax, xc, sc, x_all[em & ev], grid, inside, axis, g, label, level)
            st = _series(tpred, q) if reason is None else None
            if st is not None and xt is not None:
                panel["target"] = _draw_score_target(ax, float(xt[0]), st, g)
            if reason is not None:
                _note(ax, reason, gid=f"{g}/not_predictable")
                panel["not_predictable"] = reason
                ax.set_title(f"{q} (not predictable)", color="#a0522d")
            else:
                ax.set_title(q)
            if axis == "flops":
                ax.set_xscale("log")
            else:
                ax.invert_xaxis()  # lower loss (more compute) to the right
            ax.set_xlabel(xlabel + ("" if axis == "flops" else " (lower →)"))
            ax.set_ylabel("score")
            data["panels"].append(panel)
        _legend(fig, axes)
    return fig, data


def score_maps(model: Surrogate, runs: RunTable, target: Target | None = None, *, level: float = 0.9) -> Figure:
    """Loss -> score per benchmark: checkpoints (emerged / not), chance, fitted map, target.

    The loss axis is the model's loss (FLP), the mean of the domain losses (mixture
    models) or compute (FP, which has no loss). The fitted map is drawn along the compute
    path of the target (at the target mixture), dashed beyond the largest sampling run.
    Benchmarks the model cannot predict show their reason instead of a curve.

    Raises:
        SchemaError: neither the model nor the runs have a benchmark.
    """
    out = _score_maps(model, runs, target, level=level)
    if out is None:
        raise SchemaError("No benchmark score columns to draw: the model and the run table share no score:<benchmark>.")
    return out[0]


def _target_json(t: Target) -> dict[str, Any]:
    return {"flops": t.flops, "mixture": dict(t.mixture) if t.mixture else None, "params": t.params, "tokens": t.tokens,
            "label": t.label}


__all__ = ["Target", "default_target", "fit_curves", "loss_quantities", "score_maps"]
