"""Column maps with patterns, and run ids built from the columns that identify a run.

Column maps
-----------
``columns={"old": "new"}`` (CLI ``--columns old=new,...``, config ``[data] columns``)
renames columns before anything else. A key may be a *pattern* with named fields in
braces or ``*`` wildcards, and the target reuses them::

    {"weight_{d}": "mix:{d}", "{d}_loss": "loss:{d}", "model_size": "params", "n_tokens": "tokens"}
    {"train_*": "mix:*"}                       # the n-th * of the target = the n-th * of the key

Rules: a field or ``*`` matches one or more characters (shortest match first; the whole
column name must match). Exact names are applied first, then patterns in the order given;
a column already renamed is not renamed again. Every key must match at least one column,
and every field used in a target must appear in its key.

Run ids
-------
``run_id=["params", "mix"]`` (CLI ``--run-id params,mix``) builds the ``run`` column from
the columns that identify a run, for tables without an id (one row per checkpoint of a
mixture x scale grid). ``mix`` stands for every ``mix:<d>`` column. An id reads like
``params=1.2e8 mix=0.25/0.125/0.625`` (values to 6 significant digits, domains in column
order); with more than :data:`MAX_SPELLED_DOMAINS` domains the mixture part becomes
``mix#<8 hex digits>``, a hash of the rounded ratios. The same values always give the
same id, in any file and any row order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

import polars as pl

from mixopt.data.options import opt
from mixopt.data.table import MIX_PREFIX, RUN
from mixopt.errors import SchemaError

#: Mixtures with at most this many domains are spelled out in run ids; more are hashed.
MAX_SPELLED_DOMAINS = 6

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|\*")


def is_pattern(key: str) -> bool:
    """Whether a column-map key is a pattern (has ``{field}`` or ``*``)."""
    return _FIELD.search(key) is not None


def _compile(key: str) -> tuple[re.Pattern[str], list[str]]:
    """Regex for a pattern key; returns it and the field names (``*`` -> ``*0``, ``*1``, ...)."""
    parts: list[str] = []
    names: list[str] = []
    pos = 0
    n_star = 0
    for m in _FIELD.finditer(key):
        parts.append(re.escape(key[pos : m.start()]))
        if m.group(0) == "*":
            name = f"*{n_star}"
            n_star += 1
            parts.append(f"(?P<_s{n_star - 1}>.+?)")
        else:
            name = m.group(1)
            parts.append(f"(?P=f_{name})" if name in names else f"(?P<f_{name}>.+?)")
        names.append(name)
        pos = m.end()
    parts.append(re.escape(key[pos:]))
    return re.compile("^" + "".join(parts) + "$"), list(dict.fromkeys(names))


def _fill(target: str, values: Mapping[str, str]) -> str:
    n_star = 0
    out: list[str] = []
    pos = 0
    for m in _FIELD.finditer(target):
        out.append(target[pos : m.start()])
        if m.group(0) == "*":
            out.append(values[f"*{n_star}"])
            n_star += 1
        else:
            out.append(values[m.group(1)])
        pos = m.end()
    out.append(target[pos:])
    return "".join(out)


def resolve_columns(available: Sequence[str], mapping: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Turn a column map (exact names and patterns) into exact renames.

    Args:
        available: the column names present.
        mapping: ``{name or pattern: target}``.

    Returns:
        ``(renames, unmatched)``: ``{old: new}`` for every column renamed, and the keys
        that matched no column.

    Raises:
        SchemaError: a target uses a field its key does not have.
    """
    renames: dict[str, str] = {}
    unmatched: list[str] = []
    for key, target in mapping.items():
        if not is_pattern(key):
            if key in available:
                if key != target:
                    renames[key] = target
            else:
                unmatched.append(key)
    for key, target in mapping.items():
        if not is_pattern(key):
            continue
        regex, names = _compile(key)
        used = [m.group(1) if m.group(0) != "*" else "*" for m in _FIELD.finditer(target)]
        n_star_key = sum(1 for n in names if n.startswith("*"))
        bad = sorted({u for u in used if u != "*" and u not in names})
        if bad or used.count("*") > n_star_key:
            raise SchemaError(
                f"The column pattern {key!r} -> {target!r} uses {bad or ['*']} in the target, which the pattern does not "
                f"have: use the same {{field}} names (or as many *) on both sides, e.g. "
                f"{opt('columns', py=repr({'weight_{d}': 'mix:{d}'}), cli='weight_{d}=mix:{d}')}."
            )
        hit = False
        for col in available:
            if col in renames:
                continue
            m = regex.match(col)
            if m is None:
                continue
            hit = True
            values = {k[2:]: v for k, v in m.groupdict().items() if k.startswith("f_")}
            values |= {f"*{k[2:]}": v for k, v in m.groupdict().items() if k.startswith("_s")}
            new = _fill(target, values)
            if new != col:
                renames[col] = new
        if not hit:
            unmatched.append(key)
    return renames, unmatched


# -- run ids ----------------------------------------------------------------------------------
def _num(v: float) -> str:
    text = f"{v:.6g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


def _value(v: object) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return _num(float(v))


def expand_run_id_keys(keys: Sequence[str], columns: Sequence[str]) -> list[str]:
    """``"mix"`` -> every ``mix:<d>`` column; other keys stay. Unknown keys raise SchemaError."""
    out: list[str] = []
    missing: list[str] = []
    for k in keys:
        if k == "mix":
            mix = [c for c in columns if c.startswith(MIX_PREFIX)]
            if not mix:
                missing.append("mix (no mix:<d> columns)")
            out.extend(mix)
        elif k in columns:
            out.append(k)
        else:
            missing.append(k)
    if missing:
        raise SchemaError(
            f"{opt('run_id', py=repr(list(keys)), cli=','.join(keys))} names column(s) {missing} that the table does not have "
            f"(after renaming); columns are {list(columns)[:30]}. Use column names of the table ('mix' = all mix:<d> "
            f"columns), renaming yours first with {opt('columns')}."
        )
    return list(dict.fromkeys(out))


def build_run_ids(frame: pl.DataFrame, keys: Sequence[str], *, source: str) -> pl.DataFrame:
    """Add a ``run`` column built from the columns that identify a run.

    Args:
        frame: the table (one row per checkpoint), without a ``run`` column.
        keys: column names; ``"mix"`` = every ``mix:<d>`` column.
        source: how to name the file in messages.

    Returns:
        ``frame`` with ``run`` as its first column.

    Raises:
        SchemaError: a ``run`` column exists already, a key column is missing or has
            empty cells.
    """
    if RUN in frame.columns:
        raise SchemaError(
            f"{source} already has a {RUN!r} column, and {opt('run_id')} asks to build run ids: drop "
            f"{opt('run_id')} to use the existing ids, or rename that column with {opt('columns', py=repr({RUN: 'old_run'}), cli='run=old_run')}."
        )
    cols = expand_run_id_keys(keys, frame.columns)
    nulls = {c: n for c, n in zip(cols, frame.select([pl.col(c).null_count() for c in cols]).row(0), strict=True) if n}
    if nulls:
        raise SchemaError(
            f"Cannot build run ids in {source}: the id column(s) have empty cells {nulls}. Every checkpoint needs "
            f"the values that identify its run; fill them or choose other columns for {opt('run_id')}."
        )
    mix_cols = [c for c in cols if c.startswith(MIX_PREFIX)]
    other = [c for c in cols if c not in mix_cols]
    combos = frame.select(cols).unique(maintain_order=True)
    ids: list[str] = []
    for row in combos.iter_rows(named=True):
        parts = [f"{c}={_value(row[c])}" for c in other]
        if mix_cols:
            vals = [_value(row[c]) for c in mix_cols]
            if len(mix_cols) <= MAX_SPELLED_DOMAINS:
                parts.append("mix=" + "/".join(vals))
            else:
                parts.append("mix#" + hashlib.sha1("/".join(vals).encode()).hexdigest()[:8])
        ids.append(" ".join(parts))
    combos = combos.with_columns(pl.Series(RUN, ids, dtype=pl.String))
    out = frame.join(combos, on=cols, how="left", nulls_equal=True, maintain_order="left")
    return out.select([RUN, *frame.columns])


__all__ = ["MAX_SPELLED_DOMAINS", "build_run_ids", "expand_run_id_keys", "is_pattern", "resolve_columns"]
