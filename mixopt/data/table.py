"""The canonical run table: mixopt's data contract.

A *sampling run* is one trained model (``params`` N, a mixture over domains) and its
evaluated checkpoints. :class:`RunTable` holds one row per checkpoint in a polars frame
with these columns (names are fixed; ``<d>``/``<b>`` are domain/benchmark names):

============== ========= =====================================================================
column         dtype     meaning
============== ========= =====================================================================
``run``        String    run id (one trained model)
``params``     Float64   parameters N of the model
``tokens``     Float64   training tokens seen at this checkpoint (D)
``flops``      Float64   training compute at this checkpoint, FLOPs (default ``6·N·D``)
``mix:<d>``    Float64   sampling ratio of domain d in the run's mixture (0..1, sum 1)
``loss``       Float64   overall validation loss, nats/token (optional; null = not measured)
``loss:<d>``   Float64   validation loss on domain d, nats/token (optional, any number;
                         null = not measured at this checkpoint)
``score:<b>``  Float64   score on benchmark b (null = not evaluated at this checkpoint)
============== ========= =====================================================================

A run whose mixture changes during training (a *schedule*) adds ``mix@<k>:<d>`` and
``phase_end@<k>`` columns (and optionally ``run_tokens``); ``mix:<d>`` is then the whole run's
token-weighted mixture. See :mod:`mixopt.data.phases` and docs/phases.md.

The last checkpoint of each run (largest ``tokens``) is its *final* checkpoint; mixopt
treats it as the end of a fully trained run (learning rate decayed), as FLP's stage 1
requires. Benchmark metadata (chance level, direction) travels with the table as
:class:`Benchmark` objects.

**Missing values.** A loss or score cell may be empty (null): the checkpoint was not
evaluated there, and the row still serves every other column. NaN/inf are damage, not
"missing", and are rejected. :meth:`RunTable.present` / :meth:`RunTable.rows_with` give
the rows where a column has a value, :meth:`RunTable.missing_counts` and
:meth:`RunTable.missing_summary` count the empty cells. A run whose *final* checkpoint
lacks a loss gives no final value for that domain (no earlier checkpoint is substituted,
since it is not a fully trained run); :meth:`RunTable.final_missing` lists such runs.

Every check runs when a table is built and every problem is reported at once, in a
:class:`~mixopt.errors.SchemaError` naming the run and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.phases import RUN_TOKENS, is_phase_column, phase_end_column, phase_layout, phase_mix_column, schedule_frame
from mixopt.errors import SchemaError

RUN = "run"
PARAMS = "params"
TOKENS = "tokens"
FLOPS = "flops"
LOSS = "loss"
MIX_PREFIX = "mix:"
LOSS_PREFIX = "loss:"
SCORE_PREFIX = "score:"

#: Tolerance on ``|sum(ratios) - 1|`` before a mixture is rejected. Rows within the
#: tolerance are renormalised to sum exactly to 1 (RegMix's published ratios are
#: rounded to 3 decimals and sum to 1 +- 0.003).
RATIO_SUM_ATOL = 0.01


#: Training compute per parameter and token: C = 6·N·D FLOPs (forward and backward pass).
FLOPS_PER_PARAM_TOKEN = 6.0


def training_flops(params: Any, tokens: Any) -> Any:
    """Training compute ``C = 6·N·D`` in FLOPs of ``params`` N and ``tokens`` D (numbers or arrays, broadcast).

    A product beyond float range is ``inf`` without a RuntimeWarning: callers validate the
    compute (finite and > 0) and say so in their own words.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return FLOPS_PER_PARAM_TOKEN * params * tokens


@dataclass(frozen=True, kw_only=True)
class Benchmark:
    """Metadata of one benchmark score column.

    Attributes:
        name: benchmark name, the ``<b>`` of ``score:<b>``.
        chance: random-guess score on the metric's own scale (0.25 for 4-way multiple
            choice, 0 for open-ended generation). ``None`` means the metric has no
            chance floor (e.g. bits-per-byte): every checkpoint counts as emerged.
        higher_is_better: direction of the metric (accuracy: True; BPB or loss: False).
    """

    name: str
    chance: float | None = None
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise SchemaError(f"A benchmark needs a non-empty name, got {self.name!r}.")
        if self.chance is not None and not math.isfinite(float(self.chance)):
            raise SchemaError(
                f"Benchmark {self.name!r}: chance must be a finite number or None, got {self.chance!r}."
            )

    def to_dict(self) -> dict:
        return {"name": self.name, "chance": self.chance, "higher_is_better": self.higher_is_better}

    @classmethod
    def from_dict(cls, d: Mapping) -> Benchmark:
        return cls(
            name=str(d["name"]),
            chance=None if d.get("chance") is None else float(d["chance"]),
            higher_is_better=bool(d.get("higher_is_better", True)),
        )


#: Chance levels of common benchmarks (0-1 accuracy scale), used when a table does not
#: declare a benchmark's metadata itself. Keys are lower-case; ``score:ARC_Easy`` matches
#: ``arc_easy``.
KNOWN_BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(name="arc_easy", chance=0.25),
        Benchmark(name="arc_challenge", chance=0.25),
        Benchmark(name="arc:easy", chance=0.25),
        Benchmark(name="arc:challenge", chance=0.25),
        Benchmark(name="hellaswag", chance=0.25),
        Benchmark(name="hellaswag_zeroshot", chance=0.25),
        Benchmark(name="mmlu", chance=0.25),
        Benchmark(name="mmlu_zeroshot", chance=0.25),
        Benchmark(name="commonsense_qa", chance=0.2),
        Benchmark(name="openbookqa", chance=0.25),
        Benchmark(name="openbook_qa", chance=0.25),
        Benchmark(name="race", chance=0.25),
        Benchmark(name="sciq", chance=0.25),
        Benchmark(name="piqa", chance=0.5),
        Benchmark(name="siqa", chance=1 / 3),
        Benchmark(name="winogrande", chance=0.5),
        Benchmark(name="boolq", chance=0.5),
        Benchmark(name="copa", chance=0.5),
        Benchmark(name="bbh", chance=0.0),
        Benchmark(name="humaneval", chance=0.0),
        Benchmark(name="mbpp", chance=0.0),
        Benchmark(name="triviaqa", chance=0.0),
        Benchmark(name="gsm8k", chance=0.0),
        Benchmark(name="lambada_openai", chance=0.0),
        Benchmark(name="jeopardy", chance=0.0),
        Benchmark(name="squad", chance=0.0),
    ]
}



def _row_sum(cols: Sequence[str]) -> pl.Expr:
    """Row sums added left to right in the given column order: bit-for-bit reproducible
    (``pl.sum_horizontal`` may add in another order from one call to the next, which changed
    renormalised ratios in their last bit between two reads of the same file)."""
    expr = pl.col(cols[0])
    for c in cols[1:]:
        expr = expr + pl.col(c)
    return expr

def _names_with_prefix(columns: Iterable[str], prefix: str) -> tuple[str, ...]:
    return tuple(c[len(prefix) :] for c in columns if c.startswith(prefix))


class RunTable:
    """Validated table of sampling-run checkpoints (see the module docstring).

    Args:
        frame: polars frame in the canonical column layout. ``flops`` may be absent
            (filled with ``6·params·tokens``). Integer columns are cast to Float64.
        benchmarks: metadata for the ``score:<b>`` columns. Benchmarks not given here
            are looked up in :data:`KNOWN_BENCHMARKS`; a score column with metadata from
            neither is an error ("unknown benchmark").

    Raises:
        SchemaError: listing every problem found.

    Rows are sorted by ``(run, tokens)``; domain and benchmark order follow the
    column order of ``frame``.
    """

    def __init__(self, frame: pl.DataFrame, benchmarks: Sequence[Benchmark] = ()) -> None:
        frame, bench = _validate(frame, benchmarks)
        self._frame = frame
        self._benchmarks = bench
        self._domains = _names_with_prefix(frame.columns, MIX_PREFIX)
        self._loss_domains = _names_with_prefix(frame.columns, LOSS_PREFIX)

    # -- metadata ---------------------------------------------------------------------
    @property
    def frame(self) -> pl.DataFrame:
        """The canonical polars frame (read-only by convention)."""
        return self._frame

    @property
    def domains(self) -> tuple[str, ...]:
        """Mixture domains (``mix:<d>`` columns), in column order; empty if none."""
        return self._domains

    @property
    def loss_domains(self) -> tuple[str, ...]:
        """Domains with a validation loss column (``loss:<d>``), in column order."""
        return self._loss_domains

    @property
    def benchmarks(self) -> tuple[Benchmark, ...]:
        """Metadata of every ``score:<b>`` column, in column order."""
        return self._benchmarks

    @property
    def benchmark_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self._benchmarks)

    def benchmark(self, name: str) -> Benchmark:
        for b in self._benchmarks:
            if b.name == name:
                return b
        raise SchemaError(
            f"Unknown benchmark {name!r}: the table has {list(self.benchmark_names)}. "
            "Pick one of those or add its score:<name> column."
        )

    @property
    def has_overall_loss(self) -> bool:
        return LOSS in self._frame.columns and self._frame[LOSS].null_count() < self._frame.height

    @property
    def runs(self) -> tuple[str, ...]:
        """Run ids, in sorted order."""
        return tuple(self._frame[RUN].unique(maintain_order=True).to_list())

    @property
    def n_runs(self) -> int:
        return self._frame[RUN].n_unique()

    def __len__(self) -> int:
        return self._frame.height

    def __repr__(self) -> str:
        return (
            f"RunTable({self.n_runs} runs, {len(self)} checkpoints, domains={list(self.domains)}, "
            f"loss_domains={list(self.loss_domains)}, benchmarks={list(self.benchmark_names)})"
        )

    # -- row selections -----------------------------------------------------------------
    def _with_frame(self, frame: pl.DataFrame) -> RunTable:
        new = object.__new__(RunTable)
        new._frame = frame
        new._benchmarks = self._benchmarks
        new._domains = self._domains
        new._loss_domains = self._loss_domains
        return new

    def final(self) -> RunTable:
        """The final checkpoint (largest ``tokens``) of every run.

        A value the final checkpoint lacks stays empty (null / NaN in arrays); no earlier
        checkpoint is substituted (see :meth:`final_missing`).
        """
        f = self._frame.group_by(RUN, maintain_order=True).agg(pl.all().sort_by(TOKENS).last())
        return self._with_frame(f.select(self._frame.columns))

    def select_runs(self, runs: Iterable[str]) -> RunTable:
        """Rows of the given runs only. Unknown run ids raise :class:`SchemaError`."""
        wanted = list(dict.fromkeys(str(r) for r in runs))
        unknown = sorted(set(wanted) - set(self.runs))
        if unknown:
            raise SchemaError(
                f"Unknown run id(s) {unknown[:10]}: the table has {self.n_runs} runs "
                f"(e.g. {list(self.runs[:5])}). Use ids from the table's 'run' column."
            )
        return self._with_frame(self._frame.filter(pl.col(RUN).is_in(wanted)))

    def drop_runs(self, runs: Iterable[str]) -> RunTable:
        drop = set(str(r) for r in runs)
        return self._with_frame(self._frame.filter(~pl.col(RUN).is_in(list(drop))))

    def filter(self, predicate: pl.Expr) -> RunTable:
        """Rows matching a polars expression (e.g. ``pl.col('params') <= 4e8``)."""
        return self._with_frame(self._frame.filter(predicate))

    def concat(self, other: RunTable) -> RunTable:
        """Append the runs of ``other`` (same columns; run ids must not collide)."""
        clash = set(self.runs) & set(other.runs)
        if clash:
            raise SchemaError(f"Cannot append runs already present: {sorted(clash)[:10]}. Give new runs new ids.")
        frame = pl.concat([self._frame, other.frame.select(self._frame.columns)], how="vertical")
        return RunTable(frame, self._benchmarks)

    # -- arrays (the ONE place tables become arrays) -------------------------------------
    def column(self, name: str) -> np.ndarray:
        """Float64 array ``(n,)`` of a column; nulls become NaN."""
        if name not in self._frame.columns:
            raise SchemaError(f"The table has no column {name!r}; columns are {self._frame.columns}.")
        return self._frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=True)

    def run_ids(self) -> np.ndarray:
        """Run id of every row, ``(n,)`` object array of str."""
        return np.asarray(self._frame[RUN].to_list(), dtype=object)

    def params(self) -> np.ndarray:
        return self.column(PARAMS)

    def tokens(self) -> np.ndarray:
        return self.column(TOKENS)

    def flops(self) -> np.ndarray:
        return self.column(FLOPS)

    def mixture(self, domains: Sequence[str] | None = None) -> np.ndarray:
        """Mixture ratios ``(n, k)`` for ``domains`` (default: :attr:`domains`)."""
        domains = self._domains if domains is None else tuple(domains)
        if not domains:
            return np.ones((len(self), 0))
        return np.column_stack([self.column(MIX_PREFIX + d) for d in domains])

    # -- schedules (phased mixtures, see mixopt.data.phases) ------------------------------
    @property
    def n_phases(self) -> int:
        """Phases K of the table's schedules (1 for constant mixtures)."""
        layout = phase_layout(self._frame.columns)
        return 1 if layout is None else layout.n_phases

    @property
    def is_phased(self) -> bool:
        """Whether the table has schedule columns (``mix@k:<d>``), even if every run is constant."""
        return phase_layout(self._frame.columns) is not None

    def phases(self, domains: Sequence[str] | None = None) -> np.ndarray:
        """Phase ratios ``(n, K, k)`` for ``domains`` (default :attr:`domains`); ``(n, 1, k)`` = :meth:`mixture` when not phased."""
        domains = self._domains if domains is None else tuple(domains)
        if not self.is_phased:
            return self.mixture(domains)[:, None, :]
        K = self.n_phases
        return np.stack([np.column_stack([self.column(phase_mix_column(p, d)) for d in domains]) if domains
                         else np.ones((len(self), 0)) for p in range(1, K + 1)], axis=1)

    def phase_end(self) -> np.ndarray:
        """Phase ends ``(n, K-1)`` as fractions of the run's tokens (``(n, 0)`` when not phased)."""
        K = self.n_phases
        if K == 1:
            return np.zeros((len(self), 0))
        return np.column_stack([self.column(phase_end_column(p)) for p in range(1, K)])

    def run_tokens(self) -> np.ndarray:
        """``(n,)`` the run's total training tokens (``run_tokens``; the run's final tokens when not phased)."""
        if RUN_TOKENS in self._frame.columns:
            return self.column(RUN_TOKENS)
        return self._frame.select(pl.col(TOKENS).max().over(RUN)).to_series().to_numpy().astype(np.float64)

    def training_fraction(self) -> np.ndarray:
        """``(n,)`` each checkpoint's fraction of its run's training, ``tokens / run_tokens`` in (0, 1]."""
        return self.tokens() / self.run_tokens()

    def phase(self) -> np.ndarray:
        """``(n,)`` the phase (from 1) each checkpoint is in (see :func:`mixopt.data.phases.phase_index`)."""
        from mixopt.data.phases import phase_index

        return phase_index(self.phase_end(), self.training_fraction())

    def exposure(self, domains: Sequence[str] | None = None) -> np.ndarray:
        """``(n, k)`` tokens of each domain seen up to each checkpoint (``tokens·mix`` when not phased)."""
        from mixopt.data.phases import exposure_tokens

        return exposure_tokens(self.phases(domains), self.phase_end(), self.tokens(), self.run_tokens())

    def overall_loss(self) -> np.ndarray:
        """Overall validation loss ``(n,)``, nats/token."""
        return self.column(LOSS)

    def losses(self, domains: Sequence[str] | None = None) -> np.ndarray:
        """Per-domain validation losses ``(n, d)``, nats/token."""
        domains = self._loss_domains if domains is None else tuple(domains)
        return np.column_stack([self.column(LOSS_PREFIX + d) for d in domains]) if domains else np.ones((len(self), 0))

    def scores(self, names: Sequence[str] | None = None) -> np.ndarray:
        """Benchmark scores ``(n, b)``; NaN where not evaluated."""
        names = self.benchmark_names if names is None else tuple(names)
        return np.column_stack([self.column(SCORE_PREFIX + b) for b in names]) if names else np.ones((len(self), 0))

    # -- missing values -------------------------------------------------------------------
    # A loss or score cell may be empty (null): that checkpoint was not evaluated on that
    # domain/benchmark. The row still serves every other column. Surrogates select the rows
    # where a column is present with these accessors instead of re-implementing the mask.
    def present(self, columns: str | Sequence[str]) -> np.ndarray:
        """Where values exist: rows whose cell is not null (and not NaN).

        Args:
            columns: one column name (e.g. ``"loss:web"``) or a sequence of them.

        Returns:
            Boolean array ``(n,)`` for one column, ``(n, k)`` for a sequence of ``k``
            (in the order given), aligned with :attr:`frame` rows and every array accessor.
        """
        names = [columns] if isinstance(columns, str) else list(columns)
        absent = [c for c in names if c not in self._frame.columns]
        if absent:
            raise SchemaError(f"The table has no column(s) {absent}; columns are {self._frame.columns}.")
        if not names:
            return np.ones((len(self), 0), dtype=bool)
        mask = (
            self._frame.select([(pl.col(c).is_not_null() & ~pl.col(c).cast(pl.Float64).is_nan()).fill_null(False) for c in names])
            .to_numpy()
            .astype(bool, copy=False)
        )
        return mask[:, 0].copy() if isinstance(columns, str) else mask

    def rows_with(self, columns: str | Sequence[str]) -> RunTable:
        """The rows where every one of ``columns`` has a value (same domains/benchmarks).

        E.g. ``runs.rows_with("loss:web")`` for a per-domain fit, or
        ``runs.final().rows_with(["loss:web", "loss:code"])`` for runs whose final
        checkpoint has both losses. May be empty (0 rows).
        """
        names = [columns] if isinstance(columns, str) else list(columns)
        absent = [c for c in names if c not in self._frame.columns]
        if absent:
            raise SchemaError(f"The table has no column(s) {absent}; columns are {self._frame.columns}.")
        if not names:
            return self
        keep = pl.all_horizontal([pl.col(c).is_not_null() & ~pl.col(c).cast(pl.Float64).is_nan() for c in names]).fill_null(False)
        return self._with_frame(self._frame.filter(keep))

    @property
    def measurement_columns(self) -> tuple[str, ...]:
        """The ``loss``, ``loss:<d>`` and ``score:<b>`` columns, in column order."""
        return tuple(c for c in self._frame.columns if c == LOSS or c.startswith((LOSS_PREFIX, SCORE_PREFIX)))

    def missing_counts(self) -> dict[str, int]:
        """Empty cells per measurement column, only columns with at least one.

        The overall ``loss`` column is left out when it is empty everywhere (unused).
        """
        cols = self.measurement_columns
        if not cols:
            return {}
        counts = self._frame.select([pl.col(c).null_count() for c in cols]).row(0)
        return {c: int(n) for c, n in zip(cols, counts, strict=True) if n and not (c == LOSS and n == len(self))}

    def final_missing(self) -> dict[str, tuple[str, ...]]:
        """Runs whose final checkpoint lacks a value, per measurement column.

        mixopt never substitutes an earlier checkpoint for a missing final value (an
        earlier checkpoint is not a fully trained run); a run listed here simply gives no
        final value for that column.
        """
        out: dict[str, tuple[str, ...]] = {}
        cols = [c for c in self.missing_counts()]
        if not cols:
            return out
        fin = self.final().frame
        for c in cols:
            runs = fin.filter(pl.col(c).is_null())[RUN].to_list()
            if runs:
                out[c] = tuple(runs)
        return out

    def missing_summary(self) -> str:
        """One line on empty loss/score cells (``""`` when there are none).

        E.g. ``"12 empty cells (loss:web 7, loss:code 5); final checkpoint lacks loss:web in 2 run(s)"``.
        """
        counts = self.missing_counts()
        if not counts:
            return ""
        parts = ", ".join(f"{c} {n}" for c, n in counts.items())
        line = f"{sum(counts.values())} empty cells ({parts})"
        fin = self.final_missing()
        if fin:
            line += "; final checkpoint lacks " + ", ".join(f"{c} in {len(r)} run(s)" for c, r in fin.items())
        return line

    # -- io -----------------------------------------------------------------------------
    def benchmarks_dict(self) -> list[dict]:
        return [b.to_dict() for b in self._benchmarks]


def _runs_list(runs: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(r) for r in runs[:limit])
    return f"[{shown}{', ...' if len(runs) > limit else ''}]"


def _structure(frame: pl.DataFrame) -> pl.DataFrame:
    """Required and numeric columns present (raises at once if not); ids as text, numbers as floats, sorted."""
    if not isinstance(frame, pl.DataFrame):
        raise SchemaError(f"A RunTable is built from a polars DataFrame, got {type(frame).__name__}.")
    problems: list[str] = []
    if frame.height == 0:
        raise SchemaError(
            "The run table is empty (0 rows). Expected one row per evaluated checkpoint with "
            f"columns {RUN!r}, {PARAMS!r}, {TOKENS!r} and loss/score columns; check the file or the filters."
        )
    missing = [c for c in (RUN, PARAMS, TOKENS) if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"Missing required column(s) {missing}. A run table needs {RUN!r} (run id), {PARAMS!r} "
            f"(parameters N) and {TOKENS!r} (tokens seen, D); got columns {frame.columns[:30]}. "
            "Rename your columns or pass a column mapping (see README: 'Bring your own data')."
        )
    dup_cols = {c for c in frame.columns if frame.columns.count(c) > 1}
    if dup_cols:
        problems.append(f"duplicate column(s) {sorted(dup_cols)}")
    known_prefixes = (MIX_PREFIX, LOSS_PREFIX, SCORE_PREFIX)
    numeric_cols = [c for c in frame.columns if c in (PARAMS, TOKENS, FLOPS, LOSS) or c.startswith(known_prefixes)
                    or is_phase_column(c)]
    casts = []
    for c in numeric_cols:
        dt = frame.schema[c]
        if dt.is_numeric() or dt == pl.Null:
            casts.append(pl.col(c).cast(pl.Float64))
        else:
            problems.append(f"column {c!r} must be numeric, got {dt} (e.g. {frame[c].head(1).to_list()})")
    if problems:
        raise SchemaError("The run table is malformed:", problems)
    frame = frame.with_columns(pl.col(RUN).cast(pl.String), *casts)
    if FLOPS not in frame.columns:
        frame = frame.with_columns(training_flops(pl.col(PARAMS), pl.col(TOKENS)).alias(FLOPS))
    frame = frame.sort([RUN, TOKENS], maintain_order=True, nulls_last=True)
    return frame


def _value_checks(frame: pl.DataFrame, problems: list[str]) -> pl.Expr:
    """Row-level damage (blank ids, sizes, losses, scores, ratios), one polars pass; returns the rows whose ratios are all finite."""
    n_blank = frame.select((pl.col(RUN).is_null() | (pl.col(RUN).str.strip_chars() == "")).sum()).item()
    if n_blank:
        problems.append(f"{n_blank} row(s) have no run id (null or blank); fill the {RUN!r} column")

    # Each check is (mask expression, what, fix); all masks are evaluated in one pass.
    checks: list[tuple[pl.Expr, str, str]] = []

    def finite(c: str) -> pl.Expr:
        return pl.col(c).is_not_null() & pl.col(c).is_finite()

    for c, fix in ((PARAMS, "parameter counts must be finite and > 0"), (TOKENS, "token counts must be finite and > 0"),
                   (FLOPS, "FLOPs must be finite and > 0 (default 6*params*tokens)")):
        checks.append((~finite(c), f"{c!r} is missing/NaN/inf", fix))
        checks.append((finite(c) & (pl.col(c) <= 0), f"{c!r} is zero or negative", fix))

    loss_cols = [c for c in frame.columns if c == LOSS or c.startswith(LOSS_PREFIX)]
    null_counts = frame.select([pl.col(c).null_count() for c in loss_cols]).row(0) if loss_cols else ()
    for c, nulls in zip(loss_cols, null_counts, strict=True):
        if nulls == frame.height:
            if c != LOSS:  # the overall loss column may be present but unused
                problems.append(
                    f"loss column {c!r} has no values at all: drop the column (or fill it) so that {c[len(LOSS_PREFIX):]!r} "
                    "is not treated as a validation domain"
                )
            continue
        # null = not measured at this checkpoint (allowed); NaN/inf is damage.
        checks.append((pl.col(c).is_not_null() & ~pl.col(c).is_finite(), f"loss {c!r} is NaN/inf",
                       "leave the cell empty if the checkpoint was not evaluated on that domain; otherwise fix the value"))
        checks.append((finite(c) & (pl.col(c) <= 0), f"loss {c!r} is zero or negative",
                       "losses are cross-entropies in nats/token and must be > 0"))

    score_cols = [c for c in frame.columns if c.startswith(SCORE_PREFIX)]
    for c in score_cols:
        checks.append((pl.col(c).is_not_null() & ~pl.col(c).is_finite(), f"score {c!r} is NaN/inf",
                       "leave the cell empty (null) if the checkpoint was not evaluated"))

    mix_cols = [c for c in frame.columns if c.startswith(MIX_PREFIX)]
    mix_ok = pl.lit(True)
    if mix_cols:
        mix_ok = pl.all_horizontal([finite(c) for c in mix_cols])
        checks.append((~mix_ok, "a mixture ratio is missing/NaN", "every run needs a ratio for every domain (0 if unused)"))
        checks.append((mix_ok & pl.any_horizontal([(pl.col(c) < 0) | (pl.col(c) > 1) for c in mix_cols]),
                       "a mixture ratio is outside [0, 1]", "ratios are sampling weights in [0, 1]"))

    if checks:
        masks = frame.select([m.fill_null(False).alias(f"_m{i}") for i, (m, _, _) in enumerate(checks)])
        counts = masks.sum().row(0)
        for i, ((_, what, fix), n) in enumerate(zip(checks, counts, strict=True)):
            if n:
                bad_runs = frame.filter(masks[f"_m{i}"])[RUN].unique(maintain_order=True).head(6).to_list()
                problems.append(f"{what} in {n} row(s), runs {_runs_list(bad_runs)}: {fix}")
    return mix_ok


def _mixture_checks(frame: pl.DataFrame, mix_ok: pl.Expr, problems: list[str]) -> pl.DataFrame:
    """Ratios sum to 1 and are constant along a run; the frame with ratios renormalised (when all is well)."""
    mix_cols = [c for c in frame.columns if c.startswith(MIX_PREFIX)]
    if mix_cols:
        sums = frame.select(_row_sum(mix_cols).alias("_sum"), mix_ok.alias("_ok"), pl.col(RUN))
        bad = sums.filter(pl.col("_ok") & ((pl.col("_sum") - 1.0).abs() > RATIO_SUM_ATOL))
        if bad.height:
            per_run = bad.group_by(RUN, maintain_order=True).agg(pl.col("_sum").first(), pl.len().alias("_n"))
            shown = [
                f"run {r!r} sums to {s:.6g} ({s - 1:+.3g})" for r, s in per_run.head(5).select(RUN, "_sum").iter_rows()
            ]
            more = f" and {per_run.height - 5} more run(s)" if per_run.height > 5 else ""
            problems.append(
                f"mixture ratios do not sum to 1 (tolerance +-{RATIO_SUM_ATOL}) in {bad.height} row(s) of {per_run.height} "
                f"run(s): {'; '.join(shown)}{more}. Ratios over all domains must sum to 1: fix the typo, add the "
                "missing domain, or renormalise the run's ratios"
            )
        if not problems:
            total = _row_sum(mix_cols)
            frame = frame.with_columns([(pl.col(c) / total).alias(c) for c in mix_cols])
            # a run has one mixture
            nun = frame.group_by(RUN).agg([pl.col(c).n_unique().alias(c) for c in mix_cols])
            varying = nun.filter(pl.any_horizontal([pl.col(c) > 1 for c in mix_cols]))[RUN].sort().to_list()
            if varying:
                problems.append(
                    f"runs {_runs_list(varying)} have different mixture ratios on different checkpoints: one run is one "
                    "mixture; give each mixture its own run id (or build ids from the mixture with --run-id/run_id=)"
                )
    return frame


def _order_checks(frame: pl.DataFrame, problems: list[str]) -> None:
    """Tokens and compute grow along a run; one model size per run; one row per (run, tokens)."""
    # tokens (and compute) must grow along a run: checked against 'step' when the
    # file has one, and FLOPs against tokens always.
    order_col = "step" if "step" in frame.columns else None
    order_checks = [(FLOPS, TOKENS)] + ([(TOKENS, order_col)] if order_col else [])
    for value, by in order_checks:
        dec = (
            frame.select(RUN, by, value)
            .sort([RUN, by], maintain_order=True)
            .filter((pl.col(value).diff().over(RUN) < 0).fill_null(False))
        )
        if dec.height:
            problems.append(
                f"{value!r} decreases along run(s) {_runs_list(dec[RUN].unique(maintain_order=True).to_list())} as {by!r} grows: "
                f"checkpoints of a run must have non-decreasing {value}; fix the counts or split the runs"
            )
    nun = frame.group_by(RUN).agg(pl.col(PARAMS).n_unique())
    varying = nun.filter(pl.col(PARAMS) > 1)[RUN].sort().to_list()
    if varying:
        problems.append(
            f"runs {_runs_list(varying)} have several parameter counts: one run is one model; give each model its own "
            "run id (or build ids from params and the mixture with --run-id/run_id=)"
        )
    dup = frame.select(RUN, TOKENS).filter(pl.struct(RUN, TOKENS).is_duplicated())
    if dup.height:
        problems.append(
            f"duplicate checkpoints (same run and tokens) in {dup.height} rows, runs {_runs_list(dup[RUN].unique(maintain_order=True).to_list())}: "
            "each (run, tokens) must appear once; drop duplicates or fix the token counts"
        )


def _table_benchmarks(score_cols: Sequence[str], benchmarks: Sequence[Benchmark], problems: list[str]) -> tuple[Benchmark, ...]:
    """The metadata of every score column: declared, else known by name; unknown ones are problems."""
    declared = {b.name: b for b in benchmarks}
    bench: list[Benchmark] = []
    names = [c[len(SCORE_PREFIX):] for c in score_cols]
    for n in names:
        if n in declared:
            bench.append(declared[n])
        elif n.lower() in KNOWN_BENCHMARKS:
            kb = KNOWN_BENCHMARKS[n.lower()]
            bench.append(Benchmark(name=n, chance=kb.chance, higher_is_better=kb.higher_is_better))
        else:
            problems.append(
                f"unknown benchmark {n!r}: its chance level is not known; declare it (e.g. --chance {n}=0.25, "
                "a benchmarks file, or Benchmark(name=..., chance=...)); use chance=None for metrics without a floor"
            )
    extra = sorted(set(declared) - set(names))
    if extra:
        problems.append(f"benchmark metadata given for {extra} but the table has no score column for them (score columns: {names})")
    return tuple(bench)


def _validate(frame: pl.DataFrame, benchmarks: Sequence[Benchmark]) -> tuple[pl.DataFrame, tuple[Benchmark, ...]]:
    """Check and normalise a canonical frame; collect every problem before raising.

    Every check is a polars expression over whole columns (no per-row Python), so a
    1,000,000-row table validates in a few seconds.
    """
    frame = _structure(frame)
    problems: list[str] = []
    frame = schedule_frame(frame, problems, run=RUN, tokens=TOKENS)
    mix_ok = _value_checks(frame, problems)
    frame = _mixture_checks(frame, mix_ok, problems)
    if not problems:
        _order_checks(frame, problems)
    loss_cols = [c for c in frame.columns if c == LOSS or c.startswith(LOSS_PREFIX)]
    score_cols = [c for c in frame.columns if c.startswith(SCORE_PREFIX)]
    if not loss_cols and not score_cols:
        problems.append(f"no loss or score columns: expected '{LOSS}', '{LOSS_PREFIX}<domain>' or '{SCORE_PREFIX}<benchmark>' columns")
    bench = _table_benchmarks(score_cols, benchmarks, problems)
    if problems:
        raise SchemaError(f"The run table has {len(problems)} problem(s):", problems)
    return frame, bench

__all__ = [
    "FLOPS",
    "KNOWN_BENCHMARKS",
    "LOSS",
    "LOSS_PREFIX",
    "MIX_PREFIX",
    "PARAMS",
    "RATIO_SUM_ATOL",
    "RUN",
    "SCORE_PREFIX",
    "TOKENS",
    "Benchmark",
    "RunTable",
]
