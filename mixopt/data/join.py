"""Join a file of checkpoints to a file with one row per run (RegMix, Olmix, a mixture file).

The join never drops rows silently: keys found in only one file are an error unless the
inner join is asked for (``how="inner"`` / ``--join inner``), and then their count is
logged. Keys are compared as text (``12`` and ``12.0`` both become ``"12"``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from mixopt.data.options import opt
from mixopt.errors import SchemaError

logger = logging.getLogger("mixopt.data.readers")  # the reader's log, where users look for it


def _key(frame: pl.DataFrame, on: str) -> pl.Series:
    """Join key as text: integers and integral floats become '12', not '12.0'."""
    s = frame[on]
    if s.dtype.is_integer():
        return s.cast(pl.String)
    if s.dtype.is_float():
        finite = s.drop_nulls()
        if finite.len() and (finite == finite.round(0)).all():
            return s.cast(pl.Int64, strict=False).cast(pl.String)
        return s.cast(pl.String)
    return s.cast(pl.String)


def join_runs(
    left: pl.DataFrame, right: pl.DataFrame, on: str, how: str, left_path: Path, right_path: Path
) -> pl.DataFrame:
    """Join run rows (``left``, many per key) to per-run rows (``right``, one per key)."""
    for f, p in ((left, left_path), (right, right_path)):
        if on not in f.columns:
            raise SchemaError(
                f"The file {str(p)!r} has no join column {on!r}; its columns are {f.columns[:20]}. "
                f"Pass {opt('on', py=repr('<key column>'), cli='<key column>')} (or rename the key column with {opt('columns')})."
            )
    lk, rk = _key(left, on), _key(right, on)
    problems: list[str] = []
    for k, p in ((lk, left_path), (rk, right_path)):
        if k.null_count():
            problems.append(f"{k.null_count()} row(s) of {str(p)!r} have an empty {on!r}: every row needs a key")
    rdup = rk.filter(rk.is_duplicated()).unique(maintain_order=True)
    if rdup.len():
        problems.append(
            f"{str(right_path)!r} has duplicate {on!r} value(s) {rdup.head(10).to_list()}: it must have one row per run; "
            "drop or rename the duplicates"
        )
    if problems:
        raise SchemaError(f"Cannot join {str(left_path)!r} with {str(right_path)!r} on {on!r}:", problems)
    lset, rset = set(lk.drop_nulls().to_list()), set(rk.drop_nulls().to_list())
    only_l = sorted(lset - rset, key=natural_key)
    only_r = sorted(rset - lset, key=natural_key)
    if only_l or only_r:
        n_l = int(lk.is_in(only_l).sum()) if only_l else 0
        msg = (
            f"{n_l} of {left.height} row(s) of {str(left_path)!r} ({len(only_l)} key(s), e.g. {only_l[:10]}) have no partner "
            f"in {str(right_path)!r}, and {len(only_r)} of {right.height} row(s) of {str(right_path)!r} (e.g. {only_r[:10]}) "
            f"have none in {str(left_path)!r}"
        )
        if how != "inner":
            raise SchemaError(
                f"The two files do not describe the same runs (join on {on!r}): {msg}. Fix the files, or pass "
                f"{opt('how', py=repr('inner'), cli='inner')} to keep only the runs found in both."
            )
        logger.warning("read_runs: the inner join drops unmatched runs: %s", msg)
    overlap = sorted((set(left.columns) & set(right.columns)) - {on})
    if overlap:
        raise SchemaError(
            f"Column(s) {overlap[:10]} appear in both {str(left_path)!r} and {str(right_path)!r}: the join would be ambiguous. "
            f"Drop them from one file or rename them with {opt('columns')}."
        )
    left = left.with_columns(lk.alias(on))
    right = right.with_columns(rk.alias(on))
    return left.join(right, on=on, how="inner", maintain_order="left")


def natural_key(s: str) -> tuple[int, Any]:
    return (0, int(s)) if s.isdigit() else (1, s)


__all__ = ["join_runs", "natural_key"]
