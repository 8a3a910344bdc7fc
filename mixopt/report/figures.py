"""Report figures: matplotlib ``Figure`` objects, one function per picture.

Every public function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
global figure registry, no ``matplotlib.use``): the figure gets its own Agg canvas and is
drawn inside :func:`style` (an ``rc_context``), so nothing process-wide changes. matplotlib
is imported when a function is called, never when :mod:`mixopt` is imported.

Each function has a private twin returning ``(figure, data)`` where ``data`` holds the
plotted series as plain lists (the HTML report embeds it as JSON, the tests compare it with
the inputs). Plotted artists carry SVG ids (``gid``) named ``<figure>/<panel>/<series>``.

Figures:

* :func:`fit_curves` -- per loss quantity: compute -> loss of the sampling runs and the
  fitted law extrapolated to the target, with its interval band;
* :func:`score_maps` -- per benchmark: loss -> score of every checkpoint (emerged or not),
  chance, the fitted map along the target's compute path and the target prediction;
* :func:`parity` / :func:`coverage` -- backtests: predicted vs actual per method, interval
  coverage per quantity and method;
* :func:`pareto_front`, :func:`parallel_coordinates`, :func:`shortlist`,
  :func:`hypervolume_history` -- searches;
* :func:`validation` -- predicted vs measured for trained mixtures.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mixopt.data.table import LOSS, LOSS_PREFIX, SCORE_PREFIX, RunTable
from mixopt.errors import MixoptError, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mixopt.report.inputs import BacktestData, SearchData
    from mixopt.surrogate.base import Prediction, Surrogate

#: Okabe-Ito colour-blind-safe palette (yellow swapped for grey: too faint on white)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999")
TARGET_COLOR = "#D55E00"
FIT_COLOR = "#0072B2"
MUTED = "#9a9a9a"
#: rcParams applied (temporarily, via rc_context) while building and saving figures
STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.prop_cycle": None,  # filled in by style()
    "svg.fonttype": "none",  # keep text as text: smaller, searchable, copyable
    "figure.dpi": 100,
    "savefig.dpi": 150,
}
#: figure width in inches (fits an A4 page / a 16:9 slide)
WIDTH = 10.0
#: most sampling mixtures drawn as individual curves
MAX_MIXTURE_CURVES = 16
#: most rows in the shortlist figure
SHORTLIST_ROWS = 8


@contextmanager
def style() -> Iterator[None]:
    """The report's matplotlib style, active only inside the block."""
    import matplotlib
    from cycler import cycler

    rc = dict(STYLE)
    rc["axes.prop_cycle"] = cycler(color=list(PALETTE))
    with matplotlib.rc_context(rc):
        yield


def _figure(n_panels: int, ncols: int = 3, height: float = 3.1, width: float | None = None) -> tuple[Figure, list[Axes]]:
    """A figure with ``n_panels`` axes in a grid, on its own Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(n_panels, 1)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    if width is None:
        width = WIDTH if ncols >= 3 else 1.0 + 3.4 * ncols
    fig = Figure(figsize=(width, height * nrows + 0.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def _list(a: Any) -> list[Any]:
    """Floats as a JSON-able list (NaN/inf -> None)."""
    arr = np.asarray(a, dtype=np.float64).ravel()
    return [float(v) if math.isfinite(v) else None for v in arr]


def _wrap(text: str, width: int = 48) -> str:
    return "\n".join(textwrap.wrap(text, width)) if text else ""


def fmt(v: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (``-`` for missing)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "-" if v is None else str(v)
    if not math.isfinite(x):
        return "-"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}g}"


def _note(ax: Axes, text: str, gid: str | None = None) -> None:
    ax.text(0.5, 0.5, _wrap(text, 44), transform=ax.transAxes, ha="center", va="center", fontsize=8, color="#444444",
            bbox={"boxstyle": "round,pad=0.5", "fc": "#fff6e5", "ec": "#e0a030", "lw": 0.8}, gid=gid)


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
    params = np.sqrt(flops / (6.0 * rho))
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


def _errorbar(ax: Axes, x: Any, y: Any, gid: str, **kw: Any) -> Any:
    """``ax.errorbar`` with the SVG id on the markers only (its bars and caps get derived ids, none repeated)."""
    eb = ax.errorbar(x, y, **kw)
    eb.lines[0].set_gid(gid)
    for i, c in enumerate(eb.lines[1]):
        c.set_gid(f"{gid}/cap{i}")
    for i, b in enumerate(eb.lines[2]):
        b.set_gid(f"{gid}/bar{i}")
    return eb


def _bar_gids(bars: Any, gid: str) -> None:
    """SVG ids ``<gid>/<i>`` for the bars of one series (one id per bar: ids must not repeat)."""
    for i, patch in enumerate(bars):
        patch.set_gid(f"{gid}/{i}")


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


def _interval_text(mean: float, lo: float | None, hi: float | None, digits: int = 4) -> str:
    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
        return f"{fmt(mean, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"
    return fmt(mean, digits)


def _legend(fig: Figure, axes: Sequence[Axes]) -> None:
    """One legend for the figure, below the panels (labels from every panel, deduplicated)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab and not lab.startswith("_") and lab not in seen:
                seen[lab] = h
    if seen:
        per_row = max(2, int(fig.get_figwidth() / 2.0))  # about 2 inches per legend entry
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(len(seen), per_row, 5), frameon=False)


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
                # draw the map only where it was fitted (emerged region) and beyond, towards the target
                ok = np.isfinite(xc)
                xe = x_all[em & ev]
                if xe.size:
                    ok &= (xc >= xe.min() * (1 - 1e-9)) if axis == "flops" else (xc <= xe.max() * (1 + 1e-9))
                _draw_path(ax, xc[ok], sc[0][ok], None if sc[1] is None else sc[1][ok], None if sc[2] is None else sc[2][ok],
                           inside[ok], g, "fitted map (along compute" + (", target mixture)" if model.uses_mixture else ")"), level)
                panel["curve"] = {"flops": _list(grid[ok]), "x": _list(xc[ok]), "mean": _list(sc[0][ok]),
                                  "lower": None if sc[1] is None else _list(sc[1][ok]),
                                  "upper": None if sc[2] is None else _list(sc[2][ok])}
            st = _series(tpred, q) if reason is None else None
            if st is not None and xt is not None:
                lo = float(st[1][0]) if st[1] is not None else None
                hi = float(st[2][0]) if st[2] is not None else None
                _draw_target(ax, float(xt[0]), float(st[0][0]), lo, hi, f"{g}/target", _interval_text(float(st[0][0]), lo, hi))
                panel["target"] = {"x": float(xt[0]), "mean": float(st[0][0]), "lower": lo, "upper": hi}
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


# -- backtests -----------------------------------------------------------------------------------
def _is_loss(q: str) -> bool:
    return q == LOSS or q.startswith(LOSS_PREFIX)


def _parity_panel(ax: Axes, rows: pl.DataFrame, id_col: str, meas: str, g: str) -> list[dict[str, Any]]:
    series = []
    lo_all: list[np.ndarray] = []
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
        lo_all += [x, y, lo, hi]
    v = np.concatenate(lo_all) if lo_all else np.zeros(1)
    v = v[np.isfinite(v)]
    if v.size:
        a, b = float(v.min()), float(v.max())
        pad = 0.05 * (b - a or abs(a) or 1.0)
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
        fig, axes = _figure(1, ncols=1, height=3.2, width=max(6.0, min(WIDTH, 1.2 + 0.75 * len(quantities) * max(1, len(methods)) ** 0.5)))
        ax = axes[0]
        w = 0.8 / max(len(methods), 1)
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
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of held-out runs inside the interval")
        ax.set_title("interval coverage")
        ax.legend(fontsize=7, frameon=False, loc="lower right", ncols=min(len(methods) + 1, 4))
    return fig, out


def coverage(data: BacktestData) -> Figure:
    """Backtest: share of held-out actual values inside the predicted interval, per quantity and method."""
    out = _coverage(data)
    if out is None:
        raise SchemaError("The backtest results carry no interval coverage (no lower/upper columns).")
    return out[0]


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

    Picked here: the best row for the search's weights, the best row of each objective, then
    the next best rows by the same weighted score (objectives scaled to [0, 1] over the front,
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
    order: list[int] = [int(np.argmax(score))]
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
                           linewidths=0.5, label="best (weighted)", gid=f"{g}/best", zorder=5)
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
                    label="best (weighted)" if hl else ("shortlist" if sl else "_"), gid=f"{key}/row{r}")
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


__all__ = [
    "PALETTE",
    "STYLE",
    "Target",
    "coverage",
    "default_target",
    "fit_curves",
    "fmt",
    "hypervolume_history",
    "loss_quantities",
    "parallel_coordinates",
    "pareto_front",
    "parity",
    "score_maps",
    "shortlist",
    "shortlist_rows",
    "style",
    "validation",
]
