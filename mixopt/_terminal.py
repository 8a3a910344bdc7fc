"""Output written for people: tables, numbers and progress on a terminal (or a log file).

- :func:`format_table` prints a polars frame as a person reads it: a header and rows, no
  ``shape:`` line and no dtype row; numbers in engineering form (``1e22`` FLOPs, ``7.0B``
  params, ``1.8e11`` tokens, ratios to 3 decimals, other floats to 4 significant digits);
  a column with one value in every row said once above the table (``flops 1e22``); a table
  wider than the terminal split into blocks of whole columns (the key column repeated), never
  squeezed to a few characters.
- :func:`progress` is a tqdm bar on a terminal and plain lines (one per step of progress)
  when stderr is a file or a pipe, so a log never holds one endless line of ``\\r`` updates.

Used by every command that prints a table (``mixopt.cli``) and by the search summary.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

import polars as pl

#: Columns whose numbers are parameter counts (shown as 7.0B, 120M).
PARAMS_COLUMNS = ("params", "n_params", "N")
#: Columns whose numbers are token counts or compute (shown as 1.8e11, 1e22).
SCIENTIFIC_COLUMNS = ("tokens", "flops", "compute", "n_tokens", "D", "C")
#: Terminal width used when it cannot be read (a pipe, a file).
DEFAULT_WIDTH = 160
#: Columns repeated at the left of every block of a split wide table, when present.
KEY_COLUMNS = ("run", "trial", "rank", "quantity", "method", "name")


# -- numbers ------------------------------------------------------------------------------------
def sci(x: float, digits: int = 2) -> str:
    """``x`` in short scientific form: 1e22, 1.8e11, 6.3e-5 (``digits`` significant digits)."""
    if x == 0:
        return "0"
    mant, exp = f"{x:.{max(digits - 1, 0)}e}".split("e")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def params_text(x: float) -> str:
    """A parameter count as people write it: 7.0B, 1.5B, 120M, 40K."""
    a = abs(x)
    for unit, name in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= unit:
            v = x / unit
            return f"{v:.1f}{name}" if abs(v) < 10 else f"{v:.0f}{name}"
    return f"{x:g}"


def number(x: Any, column: str = "") -> str:
    """One value of ``column`` for a person to read (see the module docstring)."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        if _kind(column) == "params" and abs(x) >= 1000:
            return params_text(x)
        if _kind(column) == "sci" and abs(x) >= 1e5:
            return sci(x)
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        kind = _kind(column)
        if kind == "params":
            return params_text(x)
        if kind == "sci":
            return sci(x)
        if kind == "ratio":
            return f"{x:.3f}"
        a = abs(x)
        if a != 0 and (a >= 1e6 or a < 1e-3):
            return sci(x, 3)
        return f"{x:.4g}"
    return str(x)


def _kind(column: str) -> str:
    base = column.split(":")[-1] if column.startswith(("lower:", "upper:")) else column
    if base in PARAMS_COLUMNS or base.endswith("_params"):
        return "params"
    if base in SCIENTIFIC_COLUMNS or base.endswith(("_flops", "_tokens")):
        return "sci"
    if column.startswith("mix:"):
        return "ratio"
    return ""


def _float_column(values: Sequence[Any], column: str) -> list[str]:
    """A float column with one number of decimals for all rows (so the points line up)."""
    if _kind(column) or not values:
        return [number(v, column) for v in values]
    finite = [abs(v) for v in values if isinstance(v, float) and math.isfinite(v)]
    if not finite:
        return [number(v, column) for v in values]
    top = max(finite)
    nonzero = [v for v in finite if v > 0]
    if top >= 1e6 or (nonzero and max(nonzero) < 1e-3):
        return [number(v, column) for v in values]
    decimals = min(4, max(0, 3 - math.floor(math.log10(top)))) if top > 0 else 0
    out = []
    for v in values:
        if isinstance(v, float) and math.isfinite(v):
            out.append(f"{v:.{decimals}f}")
        else:
            out.append(number(v, column))
    return out


# -- tables -------------------------------------------------------------------------------------
def _cells(frame: pl.DataFrame) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in frame.columns:
        values = frame[c].to_list()
        if frame.schema[c].is_float():
            out[c] = _float_column(values, c)
        else:
            out[c] = [number(v, c) for v in values]
    return out


def _constants(frame: pl.DataFrame) -> tuple[list[str], list[str]]:
    """(columns that vary, ``name value`` of each column with one value in every row)."""
    if frame.height < 2:
        return list(frame.columns), []
    keep, said = [], []
    for c in frame.columns:
        s = frame[c]
        if s.null_count() == frame.height:
            continue  # nothing to say
        if s.n_unique() == 1 and c not in KEY_COLUMNS:
            said.append(f"{c} {number(s[0], c)}")
        else:
            keep.append(c)
    return keep, said


def _blocks(columns: list[str], widths: dict[str, int], width: int) -> list[list[str]]:
    """Columns in blocks that fit ``width`` (key columns repeated at the left of each)."""
    keys = [c for c in columns if c in KEY_COLUMNS][:2]
    rest = [c for c in columns if c not in keys]
    base = sum(widths[c] + 2 for c in keys)
    blocks: list[list[str]] = []
    cur: list[str] = []
    used = base
    for c in rest:
        w = widths[c] + 2
        if cur and used + w > width:
            blocks.append(keys + cur)
            cur, used = [], base
        cur.append(c)
        used += w
    if cur or not blocks:
        blocks.append(keys + cur)
    return blocks


def format_table(frame: pl.DataFrame, title: str | None = None, *, max_rows: int | None = 200,
                 width: int | None = None, constants: bool = True) -> str:
    """``frame`` as text for a person (see the module docstring).

    Args:
        frame: the table.
        title: a line printed first.
        max_rows: rows shown (then ``... N more rows``); None = all.
        width: characters per line (default: the terminal's, else :data:`DEFAULT_WIDTH`).
        constants: say a column with one value in every row once, above the table.
    """
    lines = [title] if title else []
    if frame.width == 0:
        return "\n".join([*lines, "(no columns)"])
    if frame.height == 0:
        return "\n".join([*lines, "(no rows; columns: " + ", ".join(frame.columns) + ")"])
    shown = frame if max_rows is None else frame.head(max_rows)
    columns, said = _constants(frame) if constants else (list(frame.columns), [])
    if said:
        lines.append("  " + "; ".join(said))
    if not columns:
        return "\n".join(lines)
    cells = _cells(shown.select(columns))
    widths = {c: max(len(c), *(len(v) for v in cells[c])) for c in columns}
    numeric = {c: shown.schema[c].is_numeric() for c in columns}
    width = width or shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    blocks = _blocks(columns, widths, width)
    for b, block in enumerate(blocks):
        if len(blocks) > 1:
            lines.append(f"  (columns {b + 1}/{len(blocks)})")

        def row(values: Iterable[tuple[str, str]]) -> str:
            return "  ".join(v.rjust(widths[c]) if numeric[c] else v.ljust(widths[c]) for c, v in values).rstrip()

        lines.append(row((c, c) for c in block))
        lines.append("  ".join("-" * widths[c] for c in block))
        for i in range(shown.height):
            lines.append(row((c, cells[c][i]) for c in block))
    if max_rows is not None and frame.height > max_rows:
        lines.append(f"... {frame.height - max_rows} more rows")
    return "\n".join(lines)


def print_table(frame: pl.DataFrame, title: str | None = None, *, file: IO[str] | None = None, **kw: Any) -> None:
    """Print :func:`format_table` of ``frame`` (on stdout unless ``file``)."""
    print(format_table(frame, title, **kw), file=file or sys.stdout)


# -- progress -----------------------------------------------------------------------------------
def is_terminal(stream: Any = None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgressLines:
    """Progress as plain lines (``desc: 128/2000 trial(s) [3 s]``), for a stderr that is not a terminal.

    The tqdm methods mixopt uses (``update``, ``set_description_str``, ``set_postfix_str``,
    ``refresh``, ``close``); a line is written at most every ``every`` seconds, and at the end.
    """

    def __init__(self, total: int | None = None, *, initial: int = 0, desc: str = "mixopt", unit: str = "it",
                 every: float = 5.0, stream: IO[str] | None = None) -> None:
        self.total, self.n, self.desc, self.unit, self.every = total, initial, desc, unit, every
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self._last = -math.inf
        self._postfix = ""
        self._closed = False

    def _line(self) -> str:
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        post = f", {self._postfix}" if self._postfix else ""
        return f"{self.desc}: {count} {self.unit}(s){post} [{time.monotonic() - self.t0:.0f} s]"

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            print(self._line(), file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._write(force=self.total is not None and self.n >= self.total)

    def set_description_str(self, desc: str, refresh: bool = True) -> None:
        changed = desc != self.desc
        self.desc = desc
        if changed:
            print(f"{desc} [{time.monotonic() - self.t0:.0f} s]", file=self.stream, flush=True)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = s

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self._closed and self.total is not None and self.n < self.total:
            self._write(force=True)
        self._closed = True


def progress(total: int | None = None, *, initial: int = 0, desc: str = "mixopt", unit: str = "it",
             enabled: bool = True, **tqdm_kw: Any) -> Any:
    """A progress display: tqdm on a terminal, :class:`ProgressLines` otherwise, or a silent one."""
    if enabled and is_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, **tqdm_kw)
    if enabled:
        return ProgressLines(total, initial=initial, desc=desc, unit=unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=True)


__all__ = ["ProgressLines", "format_table", "is_terminal", "number", "params_text", "print_table", "progress", "sci"]
