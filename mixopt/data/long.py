"""Long-format run logs: one row per checkpoint x validation domain (or metric).

Data Mixing Laws (Ye et al. 2024) publishes its losses as tab-separated lines
``<checkpoint path>\\t<validation file>\\t<loss>`` with the model size, mixture and step
written into the checkpoint path (``.../70M_13-0.25-0.125-0.625/4000``); training loggers
export ``run, step, metric, value`` rows. :func:`long_to_wide` pivots either to mixopt's
wide layout (one row per checkpoint, one ``loss:<d>``/``score:<b>`` column per name), after
which :func:`~mixopt.data.readers.read_runs` treats it like any other table (column maps,
run ids, a mixture file, validation).

Columns (roles)
---------------
``run``, ``step``, ``name`` (the domain or metric), ``value``, ``checkpoint`` (a path to
parse). Unless set in :class:`LongLayout`, each role is found by its usual names (see
:data:`ROLE_NAMES`). A CSV/TSV/TXT file without a header row is read by position: three
fields = ``checkpoint, name, value`` (Data Mixing Laws), four = ``run, step, name, value``.
Every other column (``params``, ``tokens``, ``mix:<d>``, ...) is a property of the
checkpoint and is carried into the wide row.

Patterns
--------
``checkpoint_pattern`` parses the checkpoint path; ``name_pattern`` the name column. Both
match the *end* of the text, starting at a ``/`` (so the leading folders need no
mention), and ``{field}`` matches within one path segment. Fields:

=============== ===========================================================================
``{run}``       run id (without it: the matched text before ``{step}``, e.g. ``70M_13-0.25-0.125-0.625``)
``{step}``      training step (``tokens = step x tokens_per_step``)
``{tokens}``    tokens seen; ``{params}`` parameters. Both accept K/M/B/G/T suffixes (``70M``)
``{mix}``       the ratios, separated by any of ``- _ , : /`` or spaces, in the order of
                ``mix_domains`` (required with ``{mix}``)
``{name}``      (``name_pattern`` only) the domain/metric name
``{_}``, ``*``  anything (ignored)
other           kept as a text column of that name
=============== ===========================================================================

Data Mixing Laws: ``checkpoint_pattern="{params}_{_}-{mix}/{step}"``,
``name_pattern="pythia-pile.valid.{name}.bin"``, ``mix_domains=("Github", "Books3", "Pile-CC")``,
``tokens_per_step=1048576`` (4096 x 256, their ``BSZ``).

Wide columns follow ``mix_domains`` first, then the other names sorted (never the row
order). Names become ``loss:<name>`` (``kind="loss"``, the default) or ``score:<name>``
(``kind="score"``); names that already start with ``loss``/``score:`` are kept, and
``kind="raw"`` keeps every name as is (map them with ``columns=`` afterwards).

Rows repeated exactly (Data Mixing Laws' files have some) are dropped and counted in the
log; two different values for the same checkpoint and name are an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import polars as pl

from mixopt.data.options import opt
from mixopt.data.table import LOSS, LOSS_PREFIX, MIX_PREFIX, PARAMS, RUN, SCORE_PREFIX, TOKENS
from mixopt.errors import SchemaError

logger = logging.getLogger(__name__)

STEP = "step"
KINDS = ("loss", "score", "raw")

#: Usual column names of each role, tried in order (case-insensitive).
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "run": ("run", "run_id", "run_name", "model"),
    "step": ("step", "_step", "global_step", "iteration", "iter"),
    "name": ("name", "domain", "metric", "task", "dataset", "valid_set", "eval_set", "key"),
    "value": ("value", "loss", "val_loss", "score"),
    "checkpoint": ("checkpoint", "ckpt", "checkpoint_path", "ckpt_path", "path"),
}

#: Positional roles of a header-less file, by number of fields.
POSITIONAL: dict[int, tuple[str, ...]] = {3: ("checkpoint", "name", "value"), 4: ("run", "step", "name", "value")}

_SIZE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|\*")


@dataclass(frozen=True, kw_only=True)
class LongLayout:
    """How to read a long-format file (every field optional; see the module docstring)."""

    columns: Mapping[str, str] | None = None  # {role: file column}, roles run/step/name/value/checkpoint
    checkpoint_pattern: str | None = None  # parse the checkpoint column, e.g. "{run}/step{step}"
    name_pattern: str | None = None  # parse the name column, e.g. "pythia-pile.valid.{name}.bin"
    mix_domains: Sequence[str] = ()  # domain names of a {mix} field, in order
    kind: str = "loss"  # "loss": names -> loss:<name>; "score": -> score:<name>; "raw": kept as is

    def __post_init__(self) -> None:
        problems = []
        roles = dict(self.columns or {})
        bad_roles = sorted(set(roles) - set(ROLE_NAMES))
        if bad_roles:
            problems.append(f"unknown role(s) {bad_roles} in {opt('long.columns')}: the roles are {list(ROLE_NAMES)}")
        if self.kind not in KINDS:
            problems.append(f"{opt('long.kind')} must be one of {list(KINDS)}, got {self.kind!r}")
        if isinstance(self.mix_domains, str):
            problems.append(f"{opt('long.mix_domains')} must be a list of domain names, got the string {self.mix_domains!r}")
        elif len(set(self.mix_domains)) != len(tuple(self.mix_domains)):
            problems.append(f"{opt('long.mix_domains')} lists a domain twice: {list(self.mix_domains)}")
        for what, pat in (("long.checkpoint_pattern", self.checkpoint_pattern), ("long.name_pattern", self.name_pattern)):
            if pat is not None and not _FIELD.search(pat):
                problems.append(f"{opt(what)} {pat!r} has no {{field}}: write e.g. '{{run}}/step{{step}}'")
        if self.name_pattern is not None and "{name}" not in self.name_pattern:
            problems.append(f"{opt('long.name_pattern')} {self.name_pattern!r} must contain {{name}}")
        if self.checkpoint_pattern and "{mix}" in self.checkpoint_pattern and not self.mix_domains:
            example = opt("long.mix_domains", py="('web', 'code')", cli="web,code")
            problems.append(f"{opt('long.checkpoint_pattern')} has a {{mix}} field: name its domains in order with {example}")
        if problems:
            raise SchemaError("Invalid long-format layout:", problems)
        object.__setattr__(self, "mix_domains", tuple(self.mix_domains))
        object.__setattr__(self, "columns", dict(roles))

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | LongLayout | None) -> LongLayout:
        if d is None:
            return cls()
        if isinstance(d, LongLayout):
            return d
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SchemaError(f"Unknown long-format setting(s) {unknown}; the settings are {sorted(known)}.")
        return cls(**dict(d))


# -- patterns ---------------------------------------------------------------------------------
def _pattern_regex(pattern: str, split_at_step: bool) -> tuple[str, list[str]]:
    """End-anchored regex of a path pattern; fields become named groups ``f_<name>``.

    With ``split_at_step`` and no ``{run}``, the text before ``{step}`` is captured as
    ``f___run`` (the implicit run id).
    """
    names: list[str] = []
    out: list[str] = []
    pos = 0
    n_any = 0
    implicit_run = split_at_step and "{run}" not in pattern and "{step}" in pattern
    if implicit_run:
        out.append("(?P<f___run>")
    for m in _FIELD.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        name = m.group(1) if m.group(0) != "*" else "_"
        if name == "step" and implicit_run:
            out.append(")")
        if name == "_":
            out.append(f"(?P<_a{n_any}>[^/]*?)")
            n_any += 1
        elif name in names:
            out.append(f"(?P=f_{name})")
        else:
            out.append(f"(?P<f_{name}>[^/]+?)")
            names.append(name)
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return "(?:^|/)" + "".join(out) + "$", names


def _parse(series: pl.Series, pattern: str, what: str, source: str, split_at_step: bool) -> pl.DataFrame:
    regex, names = _pattern_regex(pattern, split_at_step)
    groups = series.str.extract_groups(regex).struct.unnest()
    keep = [c for c in groups.columns if c.startswith("f_")]
    groups = groups.select(keep).rename({c: c[2:] for c in keep})
    miss = groups[groups.columns[0]].is_null() if groups.width else pl.Series([False] * series.len())
    if miss.any():
        bad = series.filter(miss).unique(maintain_order=True).head(3).to_list()
        raise SchemaError(
            f"{int(miss.sum())} row(s) of {source} have a {what} that does not match {opt(f'long.{what}_pattern')} {pattern!r}, "
            f"e.g. {bad}. Fields match within one path segment and the pattern matches the end of the text; adjust the pattern."
        )
    return groups


def parse_sizes(series: pl.Series, what: str, source: str) -> pl.Series:
    """``"70M"`` -> 7e7, ``"1.1B"`` -> 1.1e9, ``"2e8"`` -> 2e8 (K/M/B/G/T, case-insensitive)."""
    text = series.cast(pl.String).str.strip_chars()
    parts = text.str.extract_groups(rf"^({_NUMBER})\s*([kKmMbBgGtT]?)$").struct.unnest()
    num, suf = parts[parts.columns[0]].cast(pl.Float64, strict=False), parts[parts.columns[1]].str.to_uppercase()
    bad = num.is_null() & text.is_not_null()
    if bad.any():
        raise SchemaError(
            f"{int(bad.sum())} {what} value(s) in {source} are not sizes like 70M, 1.1B or 2e8: "
            f"{text.filter(bad).unique(maintain_order=True).head(5).to_list()}. Fix the pattern or the file."
        )
    mult = suf.replace_strict(_SIZE, default=1.0, return_dtype=pl.Float64)
    return (num * mult).alias(what)


def _split_mix(series: pl.Series, domains: Sequence[str], source: str) -> pl.DataFrame:
    nums = series.str.extract_all(_NUMBER)
    lens = nums.list.len()
    bad = lens != len(domains)
    if bad.any():
        raise SchemaError(
            f"The {{mix}} field of {int(bad.sum())} row(s) of {source} does not hold {len(domains)} ratios "
            f"(one per domain of {opt('long.mix_domains')} {list(domains)}), e.g. {series.filter(bad).unique(maintain_order=True).head(3).to_list()}."
        )
    return pl.DataFrame([nums.list.get(j).cast(pl.Float64).alias(MIX_PREFIX + d) for j, d in enumerate(domains)])


# -- the pivot --------------------------------------------------------------------------------
def _find_role(columns: Sequence[str], role: str, explicit: Mapping[str, str], source: str) -> str | None:
    if role in explicit:
        col = explicit[role]
        if col not in columns:
            raise SchemaError(
                f"{opt('long.columns', py=repr({role: col}), cli=f'{role}={col}')} names a column {col!r} that {source} "
                f"does not have; its columns are {list(columns)[:30]}."
            )
        return col
    lower = {c.lower(): c for c in columns}
    for cand in ROLE_NAMES[role]:
        if cand in lower:
            return lower[cand]
    return None


def _column_name(name: pl.Expr, kind: str) -> pl.Expr:
    if kind == "raw":
        return name
    prefix = LOSS_PREFIX if kind == "loss" else SCORE_PREFIX
    keep = (name == LOSS) | name.str.starts_with(LOSS_PREFIX) | name.str.starts_with(SCORE_PREFIX)
    return pl.when(keep).then(name).otherwise(pl.lit(prefix) + name)


def _roles(frame: pl.DataFrame, layout: LongLayout, source: str, header: bool) -> tuple[pl.DataFrame, dict[str, str | None]]:
    """The column of each role (run, step, name, value, checkpoint); header-less fields named by position."""
    explicit = dict(layout.columns or {})
    if not header and not explicit:
        roles_by_pos = POSITIONAL.get(frame.width)
        if roles_by_pos is None:
            raise SchemaError(
                f"{source} has no header row and {frame.width} fields per line: name the fields with "
                f"{opt('long.columns', py=repr({'run': 'column_1', 'name': 'column_2', 'value': 'column_3'}), cli='run=column_1,name=column_2,value=column_3')} "
                "(header-less fields are column_1, column_2, ...), or add a header row. Three fields are read as "
                "checkpoint, name, value and four as run, step, name, value."
            )
        frame = frame.rename(dict(zip(frame.columns, roles_by_pos, strict=True)))
    cols = frame.columns
    role = {r: _find_role(cols, r, explicit, source) for r in ROLE_NAMES}
    missing = [r for r in ("name", "value") if role[r] is None]
    if missing:
        raise SchemaError(
            f"{source} is read as long format (one row per checkpoint and domain) but has no {missing} column: "
            f"its columns are {list(cols)[:30]}. Name them with "
            f"{opt('long.columns', py=repr({'name': 'your_domain_col', 'value': 'your_loss_col'}), cli='name=your_domain_col,value=your_loss_col')}."
        )
    if role["checkpoint"] is not None and layout.checkpoint_pattern is None and role["run"] is None:
        raise SchemaError(
            f"{source} identifies checkpoints by the path in column {role['checkpoint']!r}: tell mixopt how to read it with "
            f"{opt('long.checkpoint_pattern', py=repr('{run}/step{step}'), cli=repr('{run}/step{step}'))} "
            f"(e.g. {{params}}_{{_}}-{{mix}}/{{step}} for Data Mixing Laws), or give a run column."
        )
    if layout.checkpoint_pattern is not None and role["checkpoint"] is None:
        raise SchemaError(
            f"{opt('long.checkpoint_pattern')} was given but {source} has no checkpoint column (looked for "
            f"{list(ROLE_NAMES['checkpoint'])}); name it with {opt('long.columns', py=repr({'checkpoint': 'col'}), cli='checkpoint=col')}."
        )
    return frame, role


def _numeric_values(frame: pl.DataFrame, value_col: str, source: str) -> pl.DataFrame:
    """The value column as floats (empty = missing); refuses text that is not a number."""
    # values: numbers, empty = missing
    v = frame[value_col]
    if not v.dtype.is_numeric():
        text = v.cast(pl.String).str.strip_chars()
        num = text.cast(pl.Float64, strict=False)
        bad = text.is_not_null() & (text != "") & num.is_null()
        if bad.any():
            idx = bad.arg_true().head(5).to_list()
            raise SchemaError(
                f"Column {value_col!r} of {source} has {int(bad.sum())} non-numeric value(s), e.g. "
                f"{[text[i] for i in idx]} in data row(s) {[i + 1 for i in idx]}: use plain numbers (empty = missing)."
            )
        v = num
    frame = frame.with_columns(v.cast(pl.Float64).alias(value_col))
    return frame


def _wide_names(frame: pl.DataFrame, name_col: str, layout: LongLayout, source: str) -> pl.DataFrame:
    """Domain/metric names (parsed by ``name_pattern``) as the wide table's column names."""
    # names -> wide column names
    names = frame[name_col].cast(pl.String)
    if layout.name_pattern is not None:
        parsed = _parse(names, layout.name_pattern, "name", source, split_at_step=False)
        names = parsed["name"]
    frame = frame.with_columns(names.alias(name_col)).with_columns(_column_name(pl.col(name_col), layout.kind).alias(name_col))
    if frame[name_col].null_count():
        raise SchemaError(f"{frame[name_col].null_count()} row(s) of {source} have an empty {name_col!r} (domain/metric name); fill or drop them.")
    return frame


def _checkpoint_fields(frame: pl.DataFrame, role: dict[str, str | None], layout: LongLayout, source: str) -> pl.DataFrame:
    """Run, step, params, tokens and mixture parsed from the checkpoint path; run and step columns named."""
    # checkpoint path -> run, step, params, tokens, mix, other fields
    attrs = pl.DataFrame()
    if role["checkpoint"] is not None and layout.checkpoint_pattern is not None:
        ck = frame[role["checkpoint"]].cast(pl.String).str.strip_chars().str.strip_chars_end("/")
        parsed = _parse(ck, layout.checkpoint_pattern, "checkpoint", source, split_at_step=True)
        cols_out = []
        for f in parsed.columns:
            s = parsed[f]
            if f == "__run":
                cols_out.append(s.str.strip_chars_end("/_-.: ").alias(RUN))
            elif f == RUN:
                cols_out.append(s.alias(RUN))
            elif f == STEP:
                cols_out.append(s)
            elif f in (PARAMS, TOKENS):
                cols_out.append(parse_sizes(s, f, source))
            elif f == "mix":
                cols_out.extend(_split_mix(s, layout.mix_domains, source).get_columns())
            else:
                cols_out.append(s)
        attrs = pl.DataFrame(cols_out)
        clash = sorted(set(attrs.columns) & (set(frame.columns) - {role["checkpoint"]}))
        if clash:
            raise SchemaError(
                f"{opt('long.checkpoint_pattern')} yields {clash}, which {source} also has as columns; remove the field from "
                "the pattern or the column from the file."
            )
        frame = pl.concat([frame.drop(role["checkpoint"]), attrs], how="horizontal")
    renames = {}
    if role["run"] is not None and role["run"] != RUN and RUN not in frame.columns:
        renames[role["run"]] = RUN
    if role["step"] is not None and role["step"] != STEP and STEP not in frame.columns:
        renames[role["step"]] = STEP
    frame = frame.rename(renames)
    if STEP in frame.columns and not frame[STEP].dtype.is_numeric():
        text = frame[STEP].cast(pl.String).str.strip_chars()
        num = text.cast(pl.Float64, strict=False)
        bad = text.is_not_null() & num.is_null()
        if bad.any():
            raise SchemaError(
                f"{int(bad.sum())} step value(s) of {source} are not numbers, e.g. {text.filter(bad).head(3).to_list()}; "
                "fix the pattern (e.g. step{step} for 'step4000') or the file."
            )
        frame = frame.with_columns(num.alias(STEP))
    return frame


def _drop_repeats(frame: pl.DataFrame, index: list[str], name_col: str, value_col: str, source: str) -> pl.DataFrame:
    """Exact repeats collapse; different values for one checkpoint and name are refused."""
    # exact repeats collapse; different values for one checkpoint+name conflict. Rows are
    # grouped by a 64-bit hash of (index, name) (one fast key instead of many); groups with
    # several values are then re-checked exactly, so a hash collision cannot merge rows.
    n_in = frame.height
    frame = frame.with_columns(pl.struct([*index, name_col]).hash(seed=0).alias("__h"))
    per_key = frame.group_by("__h").agg(pl.len().alias("__len"), pl.col(value_col).n_unique().alias("__n"))
    if per_key.height < n_in:
        suspect = per_key.filter(pl.col("__n") > 1)["__h"]
        if suspect.len():
            sub = frame.filter(pl.col("__h").is_in(suspect.implode()))
            exact = sub.group_by([*index, name_col]).agg(pl.col(value_col).n_unique().alias("__n"), pl.col(value_col).first())
            conflict = exact.filter(pl.col("__n") > 1)
            if conflict.height:
                ex = conflict.drop("__n").head(4).to_dicts()
                raise SchemaError(
                    f"{source} gives different values for the same checkpoint and name in {conflict.height} case(s), e.g. {ex} "
                    "(value shown: the first). Keep one value per checkpoint and name (or add the column that tells them apart)."
                )
            frame = pl.concat([frame.filter(~pl.col("__h").is_in(suspect.implode())).unique("__h", keep="first"),
                               sub.unique([*index, name_col], keep="first")])
        else:
            frame = frame.unique("__h", keep="first")
        logger.info("%s: dropped %d exact duplicate row(s) of %d", source, n_in - frame.height, n_in)
    frame = frame.drop("__h")
    return frame


def _pivot(frame: pl.DataFrame, index: list[str], name_col: str, value_col: str, layout: LongLayout, source: str) -> pl.DataFrame:
    """One row per checkpoint, one column per name, in an order that does not depend on the rows'."""
    # column order must not depend on row order: the mixture's domains first (as given),
    # then every other name sorted
    seen = set(frame[name_col].unique().to_list())
    prefix = "" if layout.kind == "raw" else (LOSS_PREFIX if layout.kind == "loss" else SCORE_PREFIX)
    first_names = [prefix + d for d in layout.mix_domains if prefix + d in seen]
    order = first_names + sorted(seen - set(first_names))
    wide = frame.pivot(on=name_col, index=index, values=value_col, maintain_order=False)
    first = [c for c in (RUN, STEP, PARAMS, TOKENS) if c in index]
    rest = [c for c in index if c not in first]
    wide = wide.select([*first, *rest, *order])
    logger.info("%s: long format, %d row(s) -> %d checkpoint(s) x %d name(s)", source, frame.height, wide.height, len(order))
    return wide


def long_to_wide(frame: pl.DataFrame, layout: LongLayout, *, source: str, header: bool = True) -> pl.DataFrame:
    """Pivot a long-format frame to one row per checkpoint.

    Args:
        frame: the file as read (``header=False``: columns named by position).
        layout: roles, patterns and naming (see the module docstring).
        source: the file, for messages.
        header: whether the file had a header row.

    Returns:
        Wide frame: ``run`` (when known), ``step``/``params``/``tokens``/``mix:<d>`` (when
        known), every other per-checkpoint column, then one column per name. Checkpoints
        lacking a name have an empty cell there.

    Raises:
        SchemaError: roles not found, patterns that do not match, non-numeric values,
            conflicting duplicates.
    """
    frame, role = _roles(frame, layout, source, header)
    name_col, value_col = role["name"], role["value"]
    assert name_col is not None and value_col is not None  # _roles refuses a frame without them
    frame = _numeric_values(frame, value_col, source)
    frame = _wide_names(frame, name_col, layout, source)
    frame = _checkpoint_fields(frame, role, layout, source)
    index = [c for c in frame.columns if c not in (name_col, value_col)]
    if not index:
        raise SchemaError(
            f"{source} has only name and value columns: nothing says which run and checkpoint a row belongs to. Add run and "
            f"step columns, or parse them from a checkpoint path with {opt('long.checkpoint_pattern')}."
        )
    frame = _drop_repeats(frame, index, name_col, value_col, source)
    return _pivot(frame, index, name_col, value_col, layout, source)


__all__ = ["KINDS", "POSITIONAL", "ROLE_NAMES", "LongLayout", "long_to_wide", "parse_sizes"]
