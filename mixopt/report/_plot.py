"""Shared plotting helpers of the report figures: style, palette, grids, ids, legends."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.data.table import LOSS, LOSS_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


def _is_loss(q: str) -> bool:
    return q == LOSS or q.startswith(LOSS_PREFIX)


__all__ = ["PALETTE", "SHORTLIST_ROWS", "STYLE", "WIDTH", "fmt", "style"]
