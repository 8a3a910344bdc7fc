"""Workflows: whole jobs, config in, results out, used by the CLI and the HTTP API alike.

- :mod:`~mixopt.workflows.optimize`: a search from a config (fit or load the surrogate, check
  every output first, run the study, write the Pareto table): :func:`run_search`,
  :func:`optimize`.
- :mod:`~mixopt.workflows.fit`: one method fitted on a run table and saved: :func:`fit_model`.
- :mod:`~mixopt.workflows.loop`: optimise -> validate -> refit, ``[validate] rounds`` times.
- :mod:`~mixopt.workflows.validate`: train a diverse K of a Pareto set; compare with predictions.
- :mod:`~mixopt.workflows.report`: the report of a model, a backtest or a search.

Package rule: ``mixopt.workflows`` may import every library package (``data``, ``laws``,
``surrogate``, ``search``, ``train``, ``report``, ``config``); only ``mixopt.api`` and
``mixopt.cli`` import it. It never parses command lines or raises HTTP errors.
"""

from mixopt.workflows.fit import fit_model, save_model
from mixopt.workflows.loop import RoundReport, run_loop
from mixopt.workflows.optimize import (
    Optimized,
    build_problem,
    build_space,
    fit_surrogate,
    optimize,
    run_search,
    write_result,
)
from mixopt.workflows.validate import run_validate, validate_rows

__all__ = [
    "Optimized",
    "RoundReport",
    "build_problem",
    "build_space",
    "fit_model",
    "fit_surrogate",
    "optimize",
    "run_loop",
    "run_search",
    "run_validate",
    "save_model",
    "validate_rows",
    "write_result",
]
