"""Reports: figures of fits, backtests and searches, and one offline HTML file.

``build_report(...)`` renders whatever is given (a fitted surrogate with its runs, a
backtest, a search, a validation table) into a :class:`Report`; ``Report.write_html(path)``
writes one self-contained HTML file (inline SVG, no network), ``Report.write_figures(dir,
"png")`` the same figures for slides. :mod:`mixopt.report.figures` has one function per
figure, each returning a matplotlib ``Figure``. matplotlib is imported only when a figure
is drawn.

Package rule: ``mixopt.report`` may import ``mixopt.data``, ``mixopt.laws``,
``mixopt.surrogate`` and ``mixopt.search`` (to read results); never ``mixopt.config``,
``mixopt.workflows``, ``mixopt.api`` or ``mixopt.cli`` (the report *job* is
:mod:`mixopt.workflows.report`).
"""

from mixopt.report.build import build_report, provenance, target_from_search
from mixopt.report.document import Report
from mixopt.report.figures import Target, default_target
from mixopt.report.inputs import BacktestData, SearchData, read_backtest, read_search, read_validation
from mixopt.report.loop import LoopData, read_loop

__all__ = [
    "BacktestData",
    "LoopData",
    "Report",
    "SearchData",
    "Target",
    "build_report",
    "default_target",
    "provenance",
    "read_backtest",
    "read_loop",
    "read_search",
    "read_validation",
    "target_from_search",
]
