"""What every command shares: exit codes, the usage error, JSON and table output, option parsers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mixopt._json import jsonable
from mixopt._terminal import print_table
from mixopt.errors import MixoptError

EXIT_BAD_INPUT = 2
EXIT_FIT_FAILED = 3
#: Exit code of a training command with failed jobs (the others were kept).
EXIT_JOBS_FAILED = 4
#: Exit code of a search that found no feasible mixture (the headed, empty result files are written).
EXIT_INFEASIBLE = 5


class UsageError(MixoptError, ValueError):
    """A command-line option is malformed."""


def emit_json(obj: Any) -> None:
    """Write ``obj`` as JSON on stdout (:func:`mixopt._json.jsonable` rules)."""
    sys.stdout.write(json.dumps(jsonable(obj), indent=1) + "\n")


def print_frame(frame: Any, title: str | None = None) -> None:
    """Print a polars frame as a person reads it (:func:`mixopt._terminal.format_table`)."""
    print_table(frame, title)


def floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be a number or comma-separated numbers (e.g. 1e9 or 1e9,7e9), got {text!r}.") from None
    if not vals:
        raise UsageError(f"{what} is empty; give a number like 1e9.")
    return vals


def pairs(text: str | None, what: str) -> dict[str, float]:
    """Parse ``a=0.5,b=0.5`` into a dict."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise UsageError(f"{what} must look like name=value,name=value (e.g. web=0.6,code=0.4); got {part!r} in {text!r}.")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise UsageError(f"{what}: value of {k.strip()!r} must be a number, got {v!r}.") from None
    return out


def mapping(text: str | None, what: str) -> dict[str, str]:
    """Parse ``a=b,c=d`` into ``{"a": "b", "c": "d"}`` (values are text)."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise UsageError(f"{what} must look like old=new,old=new (e.g. model_size=params,weight_{{d}}=mix:{{d}}); got {part!r} in {text!r}.")
        k, v = part.split("=", 1)
        if not k.strip() or not v.strip():
            raise UsageError(f"{what}: both sides of {part!r} must be non-empty.")
        out[k.strip()] = v.strip()
    return out


def nonnegative_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [v.strip() for v in text.split(",") if v.strip()]
    return names or None


def settings_json(text: str, what: str) -> dict[str, Any]:
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} must be a JSON object like '{{\"stage1\": \"pure_power\"}}', got {text!r} ({e}).") from None
    if not isinstance(v, dict):
        raise UsageError(f"{what} must be a JSON object, got {type(v).__name__}: {text!r}.")
    return v


def command_line(args: argparse.Namespace) -> list[str]:
    """The command and its options, for the report's provenance."""
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(vars(args).items())
            if k not in ("func", "command", "json") and v not in (None, False)]
    return ["mixopt", str(args.command), *opts]


def common(sp: argparse.ArgumentParser) -> None:
    """Options accepted both before and after the command (``mixopt --json simulate`` and
    ``mixopt simulate --json``): SUPPRESS keeps a subcommand from resetting what was given before it."""
    sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output on stdout")
    sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress (INFO)")
