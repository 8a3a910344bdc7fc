"""How reader options are named in messages: Python keyword or command-line flag.

The readers' error messages tell the user which option fixes the problem. A Python user
called ``read_runs(..., params=1e6)``; a command-line user typed ``--params-default 1e6``.
Messages are built with :func:`opt`, which names the Python keyword by default and the
CLI flag inside :func:`cli_option_names` (the CLI wraps its reading in it), so each user
reads the name they can actually type.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: Python keyword of :func:`~mixopt.data.readers.read_runs` -> command-line flag.
CLI_FLAGS: dict[str, str] = {
    "params": "--params-default",
    "tokens": "--tokens-default",
    "ratios": "--ratios",
    "columns": "--columns",
    "format": "--format",
    "chance": "--chance",
    "run_id": "--run-id",
    "how": "--join",
    "on": "--on",
    "tokens_per_step": "--tokens-per-step",
    "long.checkpoint_pattern": "--checkpoint-pattern",
    "long.name_pattern": "--name-pattern",
    "long.mix_domains": "--mix-domains",
    "long.columns": "--long-columns",
    "long.kind": "--long-kind",
}

_CLI_NAMES: ContextVar[bool] = ContextVar("mixopt_cli_option_names", default=False)


@contextmanager
def cli_option_names() -> Iterator[None]:
    """Inside this block, reader messages name command-line flags (``--params-default``)."""
    token = _CLI_NAMES.set(True)
    try:
        yield
    finally:
        _CLI_NAMES.reset(token)


def using_cli_names() -> bool:
    return _CLI_NAMES.get()


def opt(name: str, py: str | None = None, cli: str | None = None) -> str:
    """The option ``name`` as the user can type it, with an optional example value.

    Args:
        name: Python keyword (``"params"``; ``"long.mix_domains"`` for a field of ``long=``).
        py: example value in Python syntax (``"1e6"``, ``"{'model': 'run'}"``).
        cli: example value on the command line (``"1e6"``, ``"model=run"``); defaults to ``py``.

    Returns:
        ``"params=1e6"`` in Python, ``"--params-default 1e6"`` on the command line.
    """
    if using_cli_names():
        flag = CLI_FLAGS.get(name, "--" + name.split(".")[-1].replace("_", "-"))
        value = cli if cli is not None else py
        return flag if value is None else f"{flag} {value}"
    if name.startswith("long."):
        field = name.split(".", 1)[1]
        return f"long=LongLayout({field}=...)" if py is None else f"long=LongLayout({field}={py})"
    return f"{name}=" if py is None else f"{name}={py}"


__all__ = ["CLI_FLAGS", "cli_option_names", "opt", "using_cli_names"]
