"""Read the run tables teams already have, and write mixopt's own.

:func:`read_runs` turns a file (or a pair of files) into a validated
:class:`~mixopt.data.table.RunTable`; :func:`write_runs` writes one back so that
``read_runs(write_runs(t, p))`` gives the same table. File type comes from the
extension: ``.csv``, ``.tsv``, ``.parquet``/``.pq``, ``.jsonl``/``.ndjson``.

Layouts (``format=``)
---------------------
``"mixopt"``
    One row per checkpoint with the canonical columns (``run``, ``params``, ``tokens``,
    optional ``flops`` and ``step``, ``mix:<d>``, ``loss``, ``loss:<d>``, ``score:<b>``;
    other columns are kept). Optionally the mixture lives in a second file
    (``ratios=``) with one row per run: the key column (``on``, default ``run``) and one
    column per domain, named ``mix:<d>`` or just ``<d>``.
``"regmix"``
    The two files of RegMix (Liu et al. 2025): a loss file (``index``,
    ``metric/the_pile_<d>_val_loss`` -> ``loss:<d>``) and a mixture file (``index``,
    ``train_the_pile_<d>`` -> ``mix:<d>``), joined on ``index`` (the run id). The files
    carry no model size: pass ``params=`` and ``tokens=`` (e.g. ``1e6`` and ``1.05e9``
    for the 1M proxies; see :func:`mixopt.data.public.load_regmix`).
``"olmix"``
    The two files of an Olmix swarm: a metrics file and a ratios file, both with an
    unnamed row-number column, ``run``, ``name`` and ``index`` (the row number, ``name``
    and ``index`` are dropped), joined on ``run``. Ratio columns -> ``mix:<d>``, metric
    columns -> ``score:<task>`` with ``Benchmark(chance=None, higher_is_better=False)``
    (the metrics are bits-per-byte). Pass ``params=``/``tokens=`` (the public swarms
    are ~30M-parameter models at 5x Chinchilla: ``params=30e6, tokens=3e9``).
``"long"``
    One row per checkpoint x validation domain (or metric): ``run, step, domain, value``
    rows, or a checkpoint path parsed with a pattern (Data Mixing Laws' exports). Pivoted
    to the wide layout first, then read as ``"mixopt"``; see :mod:`mixopt.data.long`.
``"auto"`` (default)
    RegMix when columns start with ``train_the_pile_``/``metric/the_pile_``; Olmix when
    a ratios file is given, both files have ``run`` and the main file has no canonical
    loss/score columns; mixopt otherwise.

``columns={"old": "new"}`` renames columns of either file before anything else (e.g.
``{"model": "run", "N": "params", "val_loss": "loss", "hellaswag_acc": "score:hellaswag"}``);
keys may be patterns (``{"weight_{d}": "mix:{d}", "{d}_loss": "loss:{d}"}``, see
:mod:`mixopt.data.columns`). ``run_id=["params", "mix"]`` builds run ids for tables without
one; ``tokens_per_step=`` turns a ``step`` column into ``tokens``.

Empty loss/score cells are kept as missing values (the checkpoint still serves its other
columns); their count is logged. See :class:`~mixopt.data.table.RunTable` for the rules.

Option names in messages are the Python keywords (``params=``), or the command-line flags
(``--params-default``) inside :func:`mixopt.data.options.cli_option_names`.

Benchmark metadata
------------------
Merged per benchmark, later sources winning: defaults of the layout (Olmix: BPB, no
chance floor) < the sidecar ``<stem>.benchmarks.json`` next to the data file (a JSON list
of ``{"name", "chance", "higher_is_better"}``, as :func:`write_runs` writes it) <
``benchmarks=`` < ``chance={"name": 0.25}``. Benchmarks described by none of them are
looked up in :data:`~mixopt.data.table.KNOWN_BENCHMARKS` by the RunTable.

Errors
------
Every problem raises :class:`~mixopt.errors.SchemaError` naming the file, what was
expected, what was found and the fix: missing, empty or unparsable files, unknown
extensions, non-numeric cells (with row numbers), duplicate join keys, and keys without a
partner in the other file. Rows are never dropped silently: unmatched keys are an error
unless ``how="inner"`` is passed, and then their count is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import polars as pl

from mixopt._files import atomic_path, write_text
from mixopt.data.columns import build_run_ids, resolve_columns
from mixopt.data.layouts import _REGMIX_LOSS, _REGMIX_MIX, How, _is_canonical, _mixopt_frame, _olmix_frame, _regmix_frame
from mixopt.data.long import ROLE_NAMES, STEP, LongLayout, long_to_wide
from mixopt.data.options import opt
from mixopt.data.table import (
    KNOWN_BENCHMARKS,
    LOSS,
    LOSS_PREFIX,
    MIX_PREFIX,
    PARAMS,
    RUN,
    SCORE_PREFIX,
    TOKENS,
    Benchmark,
    RunTable,
)
from mixopt.errors import SchemaError

logger = logging.getLogger(__name__)

#: File extensions mixopt reads and writes, and their kind.
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",  # delimited text: tab-separated if the first line has a tab, else comma
}

#: Layouts :func:`read_runs` understands.
FORMATS: tuple[str, ...] = ("auto", "mixopt", "regmix", "olmix", "long")

#: Suffix of the benchmark-metadata sidecar: ``runs.csv`` -> ``runs.benchmarks.json``.
SIDECAR_SUFFIX = ".benchmarks.json"

Format = Literal["auto", "mixopt", "regmix", "olmix", "long"]


# -- files ------------------------------------------------------------------------------------
def sidecar_path(path: str | Path) -> Path:
    """The benchmark-metadata file belonging to a data file (``runs.csv`` -> ``runs.benchmarks.json``)."""
    path = Path(path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def _kind(path: Path) -> str:
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise SchemaError(
            f"Cannot tell the file type of {str(path)!r} from its extension {path.suffix!r}: mixopt reads "
            f"{sorted(EXTENSIONS)}. Rename the file or convert it (e.g. to .csv)."
        )
    return kind


def _first_line(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")


def _separator(path: Path, kind: str) -> str:
    if kind == "tsv":
        return "\t"
    if kind == "text":
        return "\t" if "\t" in _first_line(path) else ","
    return ","


def has_header_row(path: str | Path) -> bool:
    """Whether a CSV/TSV/TXT file starts with a header row (Parquet/JSONL: always True).

    A first line whose last field is a number is data, not a header (Data Mixing Laws'
    ``.txt`` files have no header).
    """
    path = Path(path)
    kind = _kind(path)
    if kind not in ("csv", "tsv", "text") or not path.is_file() or path.stat().st_size == 0:
        return True
    last = _first_line(path).split(_separator(path, kind))[-1].strip().strip('"')
    try:
        float(last)
    except ValueError:
        return True
    return False


def _refuse_duplicate_names(names: Sequence[str], path: Path, what: str) -> None:
    """A header that names a column twice is refused (polars would rename the second ``<name>_duplicated_0``)."""
    seen: dict[str, int] = {}
    dups = []
    for i, n in enumerate(names):
        key = n.strip()
        if key in seen:
            dups.append(f"{key!r} (columns {seen[key] + 1} and {i + 1})")
        else:
            seen[key] = i
    if dups:
        raise SchemaError(f"The {what} {str(path)!r} names a column more than once: {', '.join(dups)}. Each column "
                          "name must appear once in the header; rename or delete the repeated column.")


def read_frame(
    path: str | Path, *, string_columns: Sequence[str] = (), what: str = "run file", header: bool = True
) -> pl.DataFrame:
    """Read one table file as it is (no renaming or validation).

    Args:
        path: ``.csv``, ``.tsv``, ``.parquet``/``.pq`` or ``.jsonl``/``.ndjson`` file.
        string_columns: columns to read as text (ids such as ``run``: keeps ``"007"``
            from becoming the number 7). Ignored where absent.
        what: how to call the file in error messages.
        header: whether a CSV/TSV/TXT file has a header row (without one, columns are
            ``column_1``, ``column_2``, ...).

    Returns:
        The polars frame, one row per line/record.

    Raises:
        SchemaError: missing, empty or unreadable file, unknown extension.
    """
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"The {what} {str(path)!r} does not exist. Check the path (relative paths start at {str(Path.cwd())!r}).")
    if not path.is_file():
        raise SchemaError(f"The {what} {str(path)!r} is not a file (a directory?). Point to the table file itself.")
    kind = _kind(path)
    if path.stat().st_size == 0:
        raise SchemaError(f"The {what} {str(path)!r} is empty (0 bytes). Expected a {kind} table with a header row; regenerate the file.")
    try:
        if kind in ("csv", "tsv", "text"):
            sep = _separator(path, kind)
            names = [h.strip('"') for h in _first_line(path).split(sep)]
            if header:
                _refuse_duplicate_names(names, path, what)
            else:
                names = [f"column_{i + 1}" for i in range(len(names))]
            overrides = {c: pl.String for c in string_columns if c in names}
            frame = pl.read_csv(
                path, separator=sep, has_header=header, infer_schema_length=None, schema_overrides=overrides or None
            )
        elif kind == "parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_ndjson(path, infer_schema_length=None)
            casts = [pl.col(c).cast(pl.String) for c in string_columns if c in frame.columns and frame.schema[c] != pl.String]
            if casts:
                frame = frame.with_columns(casts)
    except SchemaError:
        raise
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SchemaError(
            f"Cannot read the {what} {str(path)!r} as {kind}: {msg}. Check that the file is a valid {kind} file "
            "(consistent number of fields per row, one JSON object per line, not truncated)."
        ) from None
    if frame.width == 0 or frame.height == 0:
        raise SchemaError(
            f"The {what} {str(path)!r} has no data rows (columns: {frame.columns[:20]}). Expected one row per "
            "checkpoint (or per run); check that the file was written completely."
        )
    return frame


def _read_sidecar(path: Path) -> list[Benchmark]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SchemaError(f"Cannot read the benchmark file {str(path)!r}: {e}. Fix or delete it.") from None
    if isinstance(raw, dict) and "benchmarks" in raw:
        raw = raw["benchmarks"]
    if not isinstance(raw, list) or not all(isinstance(x, dict) and "name" in x for x in raw):
        raise SchemaError(
            f"The benchmark file {str(path)!r} must hold a JSON list of objects with 'name', 'chance' and "
            f"'higher_is_better', got {str(raw)[:120]!r}. Rewrite it (write_runs creates it)."
        )
    try:
        return [Benchmark.from_dict(x) for x in raw]
    except (TypeError, ValueError) as e:
        raise SchemaError(f"The benchmark file {str(path)!r} has an invalid entry: {e}.") from None


# -- helpers ----------------------------------------------------------------------------------
def _has_measurements(columns: Sequence[str]) -> bool:
    return any(c == LOSS or c.startswith((LOSS_PREFIX, SCORE_PREFIX)) for c in columns)


def _rename(frame: pl.DataFrame, mapping: Mapping[str, str], path: Path) -> pl.DataFrame:
    m = {k: v for k, v in mapping.items() if k in frame.columns and k != v}
    if not m:
        return frame
    kept = [c for c in frame.columns if c not in m]
    targets = list(m.values())
    clash = sorted({t for t in targets if targets.count(t) > 1} | (set(targets) & set(kept)))
    if clash:
        raise SchemaError(
            f"Renaming columns of {str(path)!r} with {dict(m)} ({opt('columns')}) would create duplicate column(s) {clash}. "
            "Map each target name from one column only, or drop the existing column first."
        )
    return frame.rename(m)


def _check_numeric(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Cast canonical numeric columns held as text; report cells that are not numbers."""
    problems: list[str] = []
    casts = []
    for c in frame.columns:
        if c == RUN or not _is_canonical(c):
            continue
        s = frame[c]
        if s.dtype.is_numeric() or s.dtype == pl.Null:
            if s.dtype == pl.Null:
                casts.append(pl.col(c).cast(pl.Float64))
            continue
        if s.dtype == pl.Boolean:
            problems.append(f"column {c!r} holds true/false values, expected numbers")
            continue
        text = s.cast(pl.String, strict=False)
        num = text.str.strip_chars().cast(pl.Float64, strict=False)
        bad = text.is_not_null() & num.is_null() & (text.str.strip_chars() != "")
        if bad.any():
            idx = bad.arg_true().head(5).to_list()
            vals = [text[i] for i in idx]
            problems.append(
                f"column {c!r} has {int(bad.sum())} non-numeric value(s), e.g. {vals} in data row(s) {[i + 1 for i in idx]}: "
                "use plain numbers (empty cell = missing)"
            )
        else:
            casts.append(num.alias(c))
    if problems:
        raise SchemaError(f"The file {str(path)!r} has non-numeric cells in numeric columns:", problems)
    return frame.with_columns(casts) if casts else frame


def _detect(main: pl.DataFrame, ratios: pl.DataFrame | None) -> str:
    cols = list(main.columns) + (list(ratios.columns) if ratios is not None else [])
    if any(_REGMIX_MIX.match(c) or _REGMIX_LOSS.match(c) for c in cols):
        return "regmix"
    if (
        ratios is not None
        and RUN in main.columns
        and RUN in ratios.columns
        and not _has_measurements(main.columns)
        and not any(c.startswith(MIX_PREFIX) for c in ratios.columns)
    ):
        return "olmix"
    return "mixopt"


def _resolve_benchmarks(
    score_names: Sequence[str],
    layers: Sequence[Sequence[Benchmark]],
    chance: Mapping[str, float | None] | None,
) -> list[Benchmark]:
    merged: dict[str, Benchmark] = {}
    for layer in layers:
        for b in layer:
            merged[b.name] = b
    if chance:
        unknown = sorted(set(chance) - set(score_names))
        if unknown:
            raise SchemaError(
                f"{opt('chance')} names benchmark(s) {unknown} that have no score column; the table's benchmarks are "
                f"{list(score_names)[:30]}. Fix the names (without the 'score:' prefix)."
            )
        for name, ch in chance.items():
            base = merged.get(name) or KNOWN_BENCHMARKS.get(name.lower())
            hib = base.higher_is_better if base is not None else True
            merged[name] = Benchmark(name=name, chance=None if ch is None else float(ch), higher_is_better=hib)
    return list(merged.values())


def _as_benchmarks(items: Sequence[Benchmark | Mapping[str, Any]] | None) -> list[Benchmark]:
    out = []
    for x in items or ():
        if isinstance(x, Benchmark):
            out.append(x)
        elif isinstance(x, Mapping) and "name" in x:
            out.append(Benchmark.from_dict(x))
        else:
            raise SchemaError(f"benchmarks= must hold Benchmark objects or dicts with a 'name', got {x!r}.")
    return out


def _fill_scalar(frame: pl.DataFrame, col: str, value: float | None, path: Path, hint: str) -> pl.DataFrame:
    if value is None:
        if col not in frame.columns:
            raise SchemaError(f"{str(path)!r} has no {col!r} column and no {opt(col)} was given. {hint}")
        return frame
    if col in frame.columns:
        raise SchemaError(
            f"{opt(col, py=repr(value), cli=str(value))} was given but {str(path)!r} already has a {col!r} column. "
            "Pass one or the other."
        )
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SchemaError(f"{opt(col)} must be a number, got {value!r}.") from None
    return frame.with_columns(pl.lit(v, dtype=pl.Float64).alias(col))


def _tokens_from_steps(frame: pl.DataFrame, per_step: float | None, tokens: float | None, path: Path) -> pl.DataFrame:
    if per_step is None:
        return frame
    try:
        per = float(per_step)
    except (TypeError, ValueError):
        raise SchemaError(f"{opt('tokens_per_step')} must be a number of tokens, got {per_step!r}.") from None
    if not per > 0 or per == float("inf"):
        raise SchemaError(f"{opt('tokens_per_step')} must be > 0 (tokens per optimiser step = batch x sequence length), got {per!r}.")
    if tokens is not None or TOKENS in frame.columns:
        raise SchemaError(
            f"{opt('tokens_per_step')} derives {TOKENS!r} from {STEP!r}, but "
            + (f"{opt('tokens')} was given too" if tokens is not None else f"{str(path)!r} already has a {TOKENS!r} column")
            + ". Pass one or the other."
        )
    if STEP not in frame.columns:
        raise SchemaError(
            f"{opt('tokens_per_step')} needs a {STEP!r} column, but {str(path)!r} has none (columns {frame.columns[:30]}). "
            f"Rename yours with {opt('columns', py=repr({'iteration': 'step'}), cli='iteration=step')}."
        )
    return frame.insert_column(frame.columns.index(STEP) + 1, (frame[STEP].cast(pl.Float64) * per).alias(TOKENS))


def _check_columns_option(columns: Mapping[str, str] | None) -> dict[str, str]:
    columns = dict(columns or {})
    for k, v in columns.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k or not v:
            raise SchemaError(
                f"{opt('columns')} maps file column names (or patterns) to canonical names, both non-empty text; got {k!r}: {v!r}."
            )
    return columns


def _apply_columns(
    main: pl.DataFrame, rat: pl.DataFrame | None, columns: Mapping[str, str], path: Path, ratios_path: Path | None
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    if not columns:
        return main, rat
    m_ren, m_un = resolve_columns(main.columns, columns)
    r_ren, r_un = resolve_columns(rat.columns, columns) if rat is not None else ({}, list(columns))
    unmatched = [k for k in m_un if k in r_un]
    if unmatched:
        seen = list(main.columns) + (list(rat.columns) if rat is not None else [])
        raise SchemaError(
            f"{opt('columns')} renames {unmatched}, but no column of {str(path)!r}"
            + (f" or {str(ratios_path)!r}" if ratios_path else "")
            + f" matches (names and patterns must match whole column names); columns are {sorted(seen)[:30]}."
        )
    main = _rename(main, m_ren, path)
    if rat is not None and ratios_path is not None:
        rat = _rename(rat, r_ren, ratios_path)
    return main, rat


def _check_read_options(format: str, how: str, columns: Mapping[str, str] | None, run_id: Sequence[str] | None,  # noqa: A002
                        long: LongLayout | Mapping[str, Any] | None) -> tuple[dict[str, str], LongLayout | None]:
    """The options of :func:`read_runs` checked before any file is read: ``(columns, long layout)``."""
    if format not in FORMATS:
        raise SchemaError(f"{opt('format')} must be one of {list(FORMATS)}, got {format!r}.")
    if how not in ("exact", "inner"):
        raise SchemaError(f"{opt('how')} must be 'exact' or 'inner', got {how!r}.")
    columns = _check_columns_option(columns)
    if run_id is not None:
        if isinstance(run_id, str) or not all(isinstance(k, str) and k for k in run_id) or not list(run_id):
            raise SchemaError(
                f"{opt('run_id', py=repr(['params', 'mix']), cli='params,mix')} takes a list of column names, got {run_id!r}."
            )
    if long is not None and format != "long":
        raise SchemaError(f"Long-format settings were given but {opt('format', py=repr(format), cli=format)} is not 'long'.")
    return columns, (LongLayout.from_mapping(long) if format == "long" else None)


def _read_files(path: Path, ratios: str | Path | None, on: str | None, columns: Mapping[str, str],
                layout: LongLayout | None) -> tuple[pl.DataFrame, pl.DataFrame | None, Path | None]:
    """The run file (pivoted when long) and the mixture file, columns renamed: ``(main, ratios, ratios path)``."""
    key_names = {RUN, "index"} | ({on} if on else set())
    string_cols = sorted(key_names | {k for k, v in columns.items() if v in key_names})
    if layout is not None:
        header = has_header_row(path)
        run_names = [*ROLE_NAMES["run"], *((layout.columns or {}).get("run", ""),)]
        main = read_frame(path, string_columns=[c for c in run_names if c], what="long-format run file", header=header)
        main = long_to_wide(main, layout, source=repr(str(path)), header=header)
    else:
        main = read_frame(path, string_columns=string_cols, what="run file")
    rat = read_frame(ratios, string_columns=string_cols, what="mixture file") if ratios is not None else None
    ratios_path = Path(ratios) if ratios is not None else None
    main, rat = _apply_columns(main, rat, columns, path, ratios_path)
    return main, rat, ratios_path


def _complete(frame: pl.DataFrame, path: Path, hint: str, *, params: float | None, tokens: float | None,
              tokens_per_step: float | None, run_id: Sequence[str] | None) -> pl.DataFrame:
    """Numbers checked, sizes filled, run ids built; refuses a table without run ids or measurements."""
    frame = _check_numeric(frame, path)
    frame = _tokens_from_steps(frame, tokens_per_step, tokens, path)
    frame = _fill_scalar(frame, PARAMS, params, path, hint)
    frame = _fill_scalar(frame, TOKENS, tokens, path, hint)
    if run_id is not None:
        frame = build_run_ids(frame, list(run_id), source=repr(str(path)))
    if RUN not in frame.columns:
        raise SchemaError(
            f"{str(path)!r} has no {RUN!r} column (run id); columns are {frame.columns[:30]}. Rename the id column with "
            f"{opt('columns', py=repr({'your_id': 'run'}), cli='your_id=run')}, or build ids from the columns that identify "
            f"a run with {opt('run_id', py=repr(['params', 'mix']), cli='params,mix')}. For RegMix or Olmix files, pass the "
            f"mixture file with {opt('ratios')}."
        )
    if not _has_measurements(frame.columns):
        looks_long = any(c.lower() in ("value", "name", "domain", "metric") for c in frame.columns)
        raise SchemaError(
            f"{str(path)!r} has no loss or score columns: expected {LOSS!r}, '{LOSS_PREFIX}<domain>' or "
            f"'{SCORE_PREFIX}<benchmark>' (got {frame.columns[:30]}). Rename yours with "
            f"{opt('columns', py=repr({'{d}_loss': 'loss:{d}'}), cli='{d}_loss=loss:{d}')}"
            + (f", or read one-row-per-domain files with {opt('format', py=repr('long'), cli='long')}" if looks_long else "")
            + f" (or pass {opt('format')})."
        )
    return frame


def _table_of(frame: pl.DataFrame, path: Path, ratios_path: Path | None, layout_benchmarks: list[Benchmark],
              benchmarks: list[Benchmark], chance: Mapping[str, float | None] | None) -> RunTable:
    """The validated :class:`RunTable`, its benchmarks from the layout, the sidecar file and the caller."""
    score_names = [c[len(SCORE_PREFIX):] for c in frame.columns if c.startswith(SCORE_PREFIX)]
    side = sidecar_path(path)
    sidecar = _read_sidecar(side) if side.is_file() else []
    if sidecar:
        extra = sorted({b.name for b in sidecar} - set(score_names))
        if extra:
            raise SchemaError(
                f"The benchmark file {str(side)!r} describes {extra}, which have no score column in {str(path)!r} "
                f"(score columns: {score_names[:30]}). Remove them from the benchmark file."
            )
    bench = _resolve_benchmarks(score_names, [layout_benchmarks, sidecar, benchmarks], chance)
    try:
        table = RunTable(frame, bench)
    except SchemaError as e:
        head = str(e).split("\n", 1)[0] if e.problems else str(e)
        src = str(path) + (f" + {str(ratios_path)}" if ratios_path else "")
        raise SchemaError(f"Reading {src!r}: {head}", e.problems) from None
    summary = table.missing_summary()
    if summary:
        logger.info("read_runs(%s): %s", path, summary)
    return table


# -- public API -------------------------------------------------------------------------------
def read_runs(
    path: str | Path,
    *,
    ratios: str | Path | None = None,
    on: str | None = None,
    format: Format = "auto",  # noqa: A002 - the natural name for users
    params: float | None = None,
    tokens: float | None = None,
    benchmarks: Sequence[Benchmark | Mapping[str, Any]] | None = None,
    chance: Mapping[str, float | None] | None = None,
    columns: Mapping[str, str] | None = None,
    how: How = "exact",
    run_id: Sequence[str] | None = None,
    tokens_per_step: float | None = None,
    long: LongLayout | Mapping[str, Any] | None = None,
) -> RunTable:
    """Read sampling runs from a file (or a loss/metrics file plus a mixture file).

    Args:
        path: the run file: checkpoints with losses/scores (see the module docstring).
        ratios: optional second file with one mixture per run (RegMix, Olmix, or a
            ``run`` + domain-columns table).
        on: join column of the two files (default ``index`` for RegMix, ``run`` otherwise).
        format: ``"auto"``, ``"mixopt"``, ``"regmix"``, ``"olmix"`` or ``"long"``
            (one row per checkpoint x domain; see :mod:`mixopt.data.long`).
        params: parameter count N for every run, when the files have no ``params`` column.
        tokens: training tokens D for every run, when the files have no ``tokens`` column
            (one checkpoint per run then).
        benchmarks: metadata of score columns (Benchmark objects or dicts); overrides the
            sidecar file.
        chance: ``{benchmark: chance}`` overrides of the chance level (``None`` = no floor).
        columns: ``{file column or pattern: canonical column}`` renames applied to both
            files first (after the long-format pivot); patterns such as
            ``{"weight_{d}": "mix:{d}"}`` are described in :mod:`mixopt.data.columns`.
        how: ``"exact"`` (default) refuses keys present in only one file; ``"inner"``
            keeps the runs found in both and logs how many were dropped.
        run_id: build the ``run`` column from these columns when the file has no run id
            (``"mix"`` = every ``mix:<d>`` column), e.g. ``["params", "mix"]``.
        tokens_per_step: derive ``tokens = step x tokens_per_step`` from a ``step`` column.
        long: how to read ``format="long"`` files (:class:`~mixopt.data.long.LongLayout`
            or a dict of its fields).

    Returns:
        The validated :class:`RunTable` (extra columns kept). Empty loss/score cells are
        kept as missing values; their count is logged (INFO).

    Raises:
        SchemaError: every problem, naming the file, the expectation and the fix (the
            option names are the CLI flags inside :func:`~mixopt.data.options.cli_option_names`).
    """
    path = Path(path)
    columns, layout = _check_read_options(format, how, columns, run_id, long)
    main, rat, ratios_path = _read_files(path, ratios, on, columns, layout)
    fmt = "mixopt" if format == "long" else (_detect(main, rat) if format == "auto" else format)
    logger.debug("read_runs(%s): layout %s", path, fmt)
    layout_benchmarks: list[Benchmark] = []
    if fmt == "regmix":
        frame, path, ratios_path, hint = _regmix_frame(main, rat, path, ratios_path, on, how)
    elif fmt == "olmix":
        frame, layout_benchmarks, hint = _olmix_frame(main, rat, path, ratios_path, on, how)
    else:  # mixopt (and pivoted long format)
        frame, hint = _mixopt_frame(main, rat, path, ratios_path, on, how)
    frame = _complete(frame, path, hint, params=params, tokens=tokens, tokens_per_step=tokens_per_step, run_id=run_id)
    return _table_of(frame, path, ratios_path, layout_benchmarks, _as_benchmarks(benchmarks), chance)


def write_runs(table: RunTable, path: str | Path, *, sidecar: bool = True) -> Path:
    """Write a run table so that :func:`read_runs` gives it back unchanged.

    Args:
        table: the runs to write.
        path: ``.csv``, ``.tsv``, ``.parquet``/``.pq`` or ``.jsonl``/``.ndjson``; parent
            folders are created.
        sidecar: also write the benchmark metadata to ``<stem>.benchmarks.json`` (needed
            for a lossless round trip of chance levels and directions).

    Returns:
        The path written.
    """
    if not isinstance(table, RunTable):
        raise SchemaError(f"write_runs expects a RunTable, got {type(table).__name__}.")
    path = Path(path)
    kind = _kind(path)
    frame = table.frame
    with atomic_path(path, what="run table") as tmp:  # whole or not at all
        if kind == "csv":
            frame.write_csv(tmp)
        elif kind == "tsv":
            frame.write_csv(tmp, separator="\t")
        elif kind == "parquet":
            frame.write_parquet(tmp)
        else:
            frame.write_ndjson(tmp)
    side = sidecar_path(path)
    if sidecar and table.benchmarks:
        write_text(side, json.dumps(table.benchmarks_dict(), indent=1) + "\n", what="benchmarks sidecar")
    elif side.exists():
        side.unlink()  # a stale sidecar would describe other benchmarks
    return path


__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "SIDECAR_SUFFIX",
    "read_frame",
    "read_runs",
    "sidecar_path",
    "write_runs",
]
