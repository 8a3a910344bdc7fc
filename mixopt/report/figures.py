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

The figures live in :mod:`mixopt.report.fit_figures`, :mod:`mixopt.report.eval_figures` and
:mod:`mixopt.report.search_figures` (shared helpers in :mod:`mixopt.report._plot`); this
module is the one place to import them from.
"""

from mixopt.report._plot import (
    PALETTE,
    SHORTLIST_ROWS,
    STYLE,
    WIDTH,
    _interval_text,
    _is_loss,
    fmt,
    style,
)
from mixopt.report.eval_figures import _coverage, _parity, _validation, coverage, parity, validation
from mixopt.report.fit_figures import (
    Target,
    _fit_curves,
    _score_maps,
    _targets,
    default_target,
    fit_curves,
    loss_quantities,
    score_maps,
)
from mixopt.report.search_figures import (
    _axis_label,
    _hv_history,
    _obj_label,
    _parallel,
    _pareto_front,
    _score_quantities,
    _shortlist,
    hypervolume_history,
    parallel_coordinates,
    pareto_front,
    shortlist,
    shortlist_rows,
)

__all__ = [
    "PALETTE",
    "SHORTLIST_ROWS",
    "STYLE",
    "WIDTH",
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
# private twins returning (figure, data), used by mixopt.report.build and the tests
_ = (_coverage, _parity, _validation, _fit_curves, _score_maps, _targets, _axis_label, _hv_history, _obj_label, _parallel,
     _pareto_front, _score_quantities, _shortlist, _interval_text, _is_loss)
