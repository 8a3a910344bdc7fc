"""The ``mixopt`` command line: the parser, and how a command's outcome becomes an exit code.

Exit codes: 0 success; 2 bad input (data, config, model file, options, an output that cannot
be written); 3 a fit that cannot succeed on the data given; 4 a training command with failed
jobs; 5 a search with no feasible mixture; 1 anything unexpected (a bug: please report it);
130 interrupted (Ctrl-C); 143 terminated (SIGTERM); 141 stdout closed early (``| head``). Every command takes ``--json`` for
machine-readable output on stdout; a failed command with ``--json`` writes one JSON object
there, ``{"error", "message", "exit_code", "command"}``, and exits with the same code
(docs/errors.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

from mixopt.cli import data, models, optimize, plan, report, serve, train
from mixopt.cli._output import EXIT_BAD_INPUT, EXIT_FIT_FAILED, emit_json
from mixopt.errors import FitError, MixoptError

#: Exit code when stdout is closed before the output is written (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141

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


class _Parser(argparse.ArgumentParser):
    """argparse with its usage error kept (for the ``--json`` error object), then argparse's exit 2."""

    usage_error: str | None = None

    def error(self, message: str) -> Any:  # type: ignore[override]
        _Parser.usage_error = f"{self.prog}: {message}"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mixopt", description="Data-mixture optimisation for LLM pre-training (FLP / FLP-M + Optuna/Ray search).")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout (before or after the command)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in (data, models, optimize, plan, report, serve, train):  # in the order of `mixopt --help`
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


#: What an interrupted command has kept, per command (the rest write their files whole, at the end).
_KEPT = {
    "optimize": "finished batches are saved in the study when it has a storage file or database "
                "(resume by running the command again)",
    "ladder": "the runs finished so far are in the run table; running the command again trains only the rest",
    "validate": "the runs finished so far are in the run table; running the command again trains only the rest",
    "serve": "the server stopped; unfinished jobs are marked interrupted and can be resumed",
}
_KEPT_DEFAULT = "nothing was written (output files are written whole, at the end)"


def _fail(args: argparse.Namespace | None, code: int, kind: str, label: str, message: str) -> int:
    """Say why a command failed: on stderr, and with ``--json`` also as a JSON object on stdout."""
    command = getattr(args, "command", None) or "mixopt"
    if args is not None and getattr(args, "json", False):
        emit_json({"error": kind, "message": message, "exit_code": code, "command": command})
    print(f"mixopt {command}: {label}: {message}" if command != "mixopt" else f"mixopt: {label}: {message}", file=sys.stderr)
    return code


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; a usage error with ``--json`` also prints the JSON error object (exit 2 either way)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None) and "--json" in argv:
            emit_json({"error": "UsageError", "message": _Parser.usage_error or "invalid command line",
                       "exit_code": EXIT_BAD_INPUT, "command": next((a for a in argv if not a.startswith("-")), "mixopt")})
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, _join_negative_values(sys.argv[1:] if argv is None else argv))
    previous = _terminate_as_interrupt()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FitError as e:
        return _fail(args, EXIT_FIT_FAILED, type(e).__name__, "fit failed", str(e))
    except MixoptError as e:
        return _fail(args, EXIT_BAD_INPUT, type(e).__name__, "error", str(e))
    except KeyboardInterrupt as e:
        terminated = isinstance(e, _Terminated)
        what = "terminated" if terminated else "interrupted"
        return _fail(args, 143 if terminated else 130, "Terminated" if terminated else "Interrupted", what,
                     _KEPT.get(args.command, _KEPT_DEFAULT))
    except BrokenPipeError:  # stdout closed early (`mixopt inspect ... | head`): stop quietly, as a piped tool does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return EXIT_BROKEN_PIPE
    except Exception as e:
        if args.json:  # a bug: the traceback follows on stderr (exit 1)
            emit_json({"error": type(e).__name__, "message": f"unexpected error (a bug; please report it): {e}",
                       "exit_code": 1, "command": args.command})
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


__all__ = ["build_parser", "main"]
