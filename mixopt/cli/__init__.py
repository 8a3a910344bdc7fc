"""The ``mixopt`` command line: the only place in the tree that uses ``argparse``.

Layout: :mod:`~mixopt.cli.main` (the parser, exit codes), :mod:`~mixopt.cli._output` (JSON and
table output, option parsers), :mod:`~mixopt.cli.data_args` (the run-table options), and one
module per group of commands (``data``: simulate, inspect; ``models``: fit, predict, backtest;
``optimize``; ``train``: corpus, ladder, validate; ``report``; ``serve``). Each command parses
its options, calls the library or a workflow, and prints; a command imports its workflow when it
runs, so ``mixopt --help`` loads neither optuna, Ray nor torch.

Package rule: ``mixopt.cli`` may import every other mixopt package; nothing imports it (the
``mixopt`` script and ``python -m mixopt`` call :func:`main`).
"""

from mixopt.cli._output import EXIT_BAD_INPUT, EXIT_FIT_FAILED
from mixopt.cli.main import build_parser, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_FIT_FAILED", "build_parser", "main"]
