"""The ``mixopt`` command line: the parser, and how a command's outcome becomes an exit code.

Exit codes: 0 success; 2 bad input (data, config, model file, options); 3 a fit that
cannot succeed on the data given; 4 a training command with failed jobs; 1 anything
unexpected (a bug: please report it); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
Every command takes ``--json`` for machine-readable output on stdout.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

from mixopt.cli import data, models, optimize, report, serve, train
from mixopt.cli._output import EXIT_BAD_INPUT, EXIT_FIT_FAILED
from mixopt.errors import FitError, MixoptError

#: A negative number (possibly a comma-separated list), e.g. -6e10 or -1,2: argparse would read it as an option.
_NEGATIVE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--tokens -6e10`` -> ``--tokens=-6e10`` so the value reaches the command's own check
    (a clear "must be > 0" error) instead of argparse's "expected one argument"."""
    out: list[str] = []
    argv = list(argv)
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--") and "=" not in tok and i + 1 < len(argv) and _NEGATIVE.match(argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixopt", description="Data-mixture optimisation for LLM pre-training (FLP / FLP-M + Optuna/Ray search).")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout (before or after the command)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in (data, models, optimize, report, serve, train):  # in the order of `mixopt --help`
        module.register(sub)
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` runs (batches written, Ray shut down)."""


def _terminate_as_interrupt() -> Any:
    """Install the SIGTERM handler; returns the previous one (restored by :func:`main`)."""
    def handler(signum: int, _frame: Any) -> None:
        raise _Terminated(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    previous = _terminate_as_interrupt()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FitError as e:
        print(f"mixopt {args.command}: fit failed: {e}", file=sys.stderr)
        return EXIT_FIT_FAILED
    except MixoptError as e:
        print(f"mixopt {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, _Terminated) else "interrupted"
        print(f"mixopt {args.command}: {what}; finished batches are saved in the study (resume by running it again)",
              file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


__all__ = ["build_parser", "main"]
