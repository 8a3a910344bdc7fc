"""The three wide layouts :func:`~mixopt.data.readers.read_runs` joins: RegMix, Olmix and mixopt's own.

Each ``_<layout>_frame`` takes the run file (and the mixture file, when the layout has one)
as read, renames their columns to the canonical names of :mod:`mixopt.data.table` and joins
them by run (:func:`mixopt.data.join.join_runs`); :mod:`mixopt.data.readers` detects the
layout and completes the table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import polars as pl

from mixopt.data.join import join_runs as _join
from mixopt.data.long import STEP
from mixopt.data.options import opt
from mixopt.data.phases import is_phase_column
from mixopt.data.table import FLOPS, LOSS, LOSS_PREFIX, MIX_PREFIX, PARAMS, RUN, SCORE_PREFIX, TOKENS, Benchmark
from mixopt.errors import SchemaError

_REGMIX_MIX = re.compile(r"^train_the_pile_(.+)$")
_REGMIX_LOSS = re.compile(r"^metric/the_pile_(.+)_val_loss$")
#: Columns of Olmix files that are not data: pandas' unnamed row number, name, index.
_OLMIX_DROP = ("", "Unnamed: 0", "name", "index")
How = Literal["exact", "inner"]

def _is_canonical(c: str) -> bool:
    return c in (RUN, PARAMS, TOKENS, FLOPS, LOSS, STEP) or c.startswith((MIX_PREFIX, LOSS_PREFIX, SCORE_PREFIX)) \
        or is_phase_column(c)


def _size_example() -> str:
    return opt("params", py="1e6", cli="1e6") + " and " + opt("tokens", py="1.05e9", cli="1.05e9")


def _regmix_frame(main: pl.DataFrame, rat: pl.DataFrame | None, path: Path, ratios_path: Path | None, on: str | None,
                  how: How) -> tuple[pl.DataFrame, Path, Path | None, str]:
    """RegMix's two files joined: ``(frame, run file, mixture file, hint for a missing size)``; either file may come first."""
    size_example = _size_example()
    if rat is None or ratios_path is None:
        raise SchemaError(
            f"{str(path)!r} looks like a RegMix file, which comes in two parts: pass the other one with "
            f"{opt('ratios', py=repr('train_mixture_1m.csv'), cli='train_mixture_1m.csv')}, and the model size with "
            f"{size_example} (the 1M proxies)."
        )
    # either file may be the loss file: find which holds the mixture
    if any(_REGMIX_MIX.match(c) for c in main.columns) and any(_REGMIX_LOSS.match(c) for c in rat.columns):
        main, rat, path, ratios_path = rat, main, ratios_path, path
    if not any(_REGMIX_MIX.match(c) for c in rat.columns):
        raise SchemaError(
            f"The RegMix mixture file {str(ratios_path)!r} has no 'train_the_pile_<domain>' columns (got "
            f"{rat.columns[:10]}). Pass the train/test_mixture_*.csv file as {opt('ratios')}."
        )
    key = on or "index"
    rat = rat.rename({c: MIX_PREFIX + m.group(1) for c in rat.columns if (m := _REGMIX_MIX.match(c))})
    main = main.rename({c: LOSS_PREFIX + m.group(1) for c in main.columns if (m := _REGMIX_LOSS.match(c))})
    if not any(c.startswith(LOSS_PREFIX) for c in main.columns):
        raise SchemaError(
            f"The RegMix loss file {str(path)!r} has no 'metric/the_pile_<domain>_val_loss' columns (got "
            f"{main.columns[:10]}). Pass the *_pile_loss_*.csv file as the run file."
        )
    frame = _join(main, rat, key, how, path, ratios_path)
    if key != RUN:
        if RUN in frame.columns:
            raise SchemaError(f"{str(path)!r} has both a {RUN!r} column and the join key {key!r}; drop one.")
        frame = frame.rename({key: RUN})
    hint = f"RegMix files carry no model size: pass {size_example} (the 1M proxies)."
    return frame, path, ratios_path, hint


def _olmix_frame(main: pl.DataFrame, rat: pl.DataFrame | None, path: Path, ratios_path: Path | None, on: str | None,
                 how: How) -> tuple[pl.DataFrame, list[Benchmark], str]:
    """An Olmix swarm's metrics and ratios joined: ``(frame, its metrics as benchmarks, hint for a missing size)``."""
    olmix_size = opt("params", py="30e6", cli="30e6") + " and " + opt("tokens", py="3e9", cli="3e9")
    if rat is None or ratios_path is None:
        raise SchemaError(
            f"The Olmix layout needs the ratios file too: pass {opt('ratios', py=repr('<swarm>_ratios.csv'), cli='<swarm>_ratios.csv')} "
            f"with the <swarm>_metrics.csv run file, and {olmix_size} (the public swarms)."
        )
    key = on or RUN
    drop = [c for c in _OLMIX_DROP if c != key]
    main = main.drop([c for c in drop if c in main.columns])
    rat = rat.drop([c for c in drop if c in rat.columns])
    if key not in main.columns or key not in rat.columns:
        raise SchemaError(
            f"Olmix files are joined on {key!r}, but it is missing from "
            f"{[str(p) for f, p in ((main, path), (rat, ratios_path)) if key not in f.columns]}. Pass {opt('on')}<key column>."
        )
    rat = rat.rename({c: c if c.startswith(MIX_PREFIX) else MIX_PREFIX + c for c in rat.columns if c != key})
    main = main.rename({c: c if _is_canonical(c) else SCORE_PREFIX + c for c in main.columns if c != key})
    layout_benchmarks = [
        Benchmark(name=c[len(SCORE_PREFIX):], chance=None, higher_is_better=False)
        for c in main.columns
        if c.startswith(SCORE_PREFIX)
    ]
    frame = _join(main, rat, key, how, path, ratios_path)
    if key != RUN:
        frame = frame.rename({key: RUN})
    hint = f"Olmix swarms carry no model size: pass {olmix_size} (the public swarms)."
    return frame, layout_benchmarks, hint


def _mixopt_frame(main: pl.DataFrame, rat: pl.DataFrame | None, path: Path, ratios_path: Path | None, on: str | None,
                  how: How) -> tuple[pl.DataFrame, str]:
    """A mixopt wide table (joined with a mixture file when given): ``(frame, hint for missing sizes)``."""
    frame = main
    if rat is not None and ratios_path is not None:
        key = on or RUN
        if any(c.startswith(MIX_PREFIX) for c in main.columns):
            raise SchemaError(
                f"{str(path)!r} already has mix: columns and a mixture file {str(ratios_path)!r} was given too "
                f"({opt('ratios')}); use one."
            )
        rat = rat.rename({c: c if c.startswith(MIX_PREFIX) else MIX_PREFIX + c for c in rat.columns if c != key})
        frame = _join(main, rat, key, how, path, ratios_path)
    hint = (
        f"A run table needs {PARAMS!r} (parameters N) and {TOKENS!r} (tokens seen D) per checkpoint: add the columns, "
        f"rename yours with {opt('columns', py=repr({'model_size': 'params', 'n_tokens': 'tokens'}), cli='model_size=params,n_tokens=tokens')}, "
        f"derive tokens from a step column with {opt('tokens_per_step')}, or pass {opt('params')}/{opt('tokens')} if every run has the same."
    )
    return frame, hint
