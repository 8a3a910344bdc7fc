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
``loss``       Float64   overall validation loss, nats/token (optional)
``loss:<d>``   Float64   validation loss on domain d, nats/token (optional, any number)
``score:<b>``  Float64   score on benchmark b (null = not evaluated at this checkpoint)
============== ========= =====================================================================

The last checkpoint of each run (largest ``tokens``) is its *final* checkpoint; mixopt
treats it as the end of a fully trained run (learning rate decayed), as FLP's stage 1
requires. Benchmark metadata (chance level, direction) travels with the table as
:class:`Benchmark` objects.

Every check runs when a table is built and every problem is reported at once, in a
:class:`~mixopt.errors.SchemaError` naming the run and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

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
        """The final checkpoint (largest ``tokens``) of every run."""
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

    # -- io -----------------------------------------------------------------------------
    def benchmarks_dict(self) -> list[dict]:
        return [b.to_dict() for b in self._benchmarks]


def _validate(frame: pl.DataFrame, benchmarks: Sequence[Benchmark]) -> tuple[pl.DataFrame, tuple[Benchmark, ...]]:
    """Check and normalise a canonical frame; collect every problem before raising."""
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
            "Rename your columns or pass a column mapping (see README: 'Run tables')."
        )
    dup_cols = {c for c in frame.columns if frame.columns.count(c) > 1}
    if dup_cols:
        problems.append(f"duplicate column(s) {sorted(dup_cols)}")
    known_prefixes = (MIX_PREFIX, LOSS_PREFIX, SCORE_PREFIX)
    numeric_cols = [c for c in frame.columns if c in (PARAMS, TOKENS, FLOPS, LOSS) or c.startswith(known_prefixes)]
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
        frame = frame.with_columns((6.0 * pl.col(PARAMS) * pl.col(TOKENS)).alias(FLOPS))
    frame = frame.sort([RUN, TOKENS], maintain_order=True)

    runs = frame[RUN].to_numpy()
    n_blank = frame[RUN].null_count() + int((frame[RUN].str.strip_chars() == "").sum())
    if n_blank:
        problems.append(f"{n_blank} row(s) have no run id (null or blank); fill the {RUN!r} column")

    def rows_where(mask: np.ndarray, what: str, fix: str) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            bad_runs = list(dict.fromkeys(str(runs[i]) for i in idx))
            problems.append(f"{what} in {idx.size} row(s), runs {bad_runs[:5]}{' ...' if len(bad_runs) > 5 else ''}: {fix}")

    def arr(c: str) -> np.ndarray:
        return frame[c].fill_null(float("nan")).to_numpy().astype(float)

    for c, fix in ((PARAMS, "parameter counts must be finite and > 0"), (TOKENS, "token counts must be finite and > 0"),
                   (FLOPS, "FLOPs must be finite and > 0 (default 6*params*tokens)")):
        a = arr(c)
        rows_where(~np.isfinite(a), f"{c!r} is missing/NaN/inf", fix)
        rows_where(np.isfinite(a) & (a <= 0), f"{c!r} is zero or negative", fix)

    loss_cols = [c for c in frame.columns if c == LOSS or c.startswith(LOSS_PREFIX)]
    for c in loss_cols:
        a = arr(c)
        if c == LOSS and np.isnan(a).all():
            continue  # overall loss column present but unused
        rows_where(~np.isfinite(a), f"loss {c!r} is NaN/inf/missing", "losses are required at every checkpoint; drop those rows or fill them")
        rows_where(np.isfinite(a) & (a <= 0), f"loss {c!r} is zero or negative", "losses are cross-entropies in nats/token and must be > 0")

    score_cols = [c for c in frame.columns if c.startswith(SCORE_PREFIX)]
    for c in score_cols:
        s = frame[c]
        a = s.to_numpy().astype(float) if s.null_count() == 0 else s.fill_null(0.0).to_numpy().astype(float)
        rows_where(np.isnan(a) | np.isinf(a), f"score {c!r} is NaN/inf", "leave the cell empty (null) if the checkpoint was not evaluated")

    mix_cols = [c for c in frame.columns if c.startswith(MIX_PREFIX)]
    if mix_cols:
        m = np.column_stack([arr(c) for c in mix_cols])
        rows_where(~np.isfinite(m).all(axis=1), "a mixture ratio is missing/NaN", "every run needs a ratio for every domain (0 if unused)")
        fin = np.isfinite(m).all(axis=1)
        rows_where(fin & ((m < 0) | (m > 1)).any(axis=1), "a mixture ratio is outside [0, 1]", "ratios are sampling weights in [0, 1]")
        sums = m.sum(axis=1)
        bad_sum = fin & (np.abs(sums - 1.0) > RATIO_SUM_ATOL)
        if bad_sum.any():
            i = int(np.flatnonzero(bad_sum)[0])
            rows_where(bad_sum, f"mixture ratios sum to {sums[i]:.4g} (e.g. run {runs[i]!r}), not 1 (+-{RATIO_SUM_ATOL})",
                       "ratios over all domains must sum to 1; add the missing domain or renormalise")
        if not problems:
            norm = m / sums[:, None]
            frame = frame.with_columns([pl.Series(c, norm[:, j]) for j, c in enumerate(mix_cols)])
        # a run has one mixture
        if not problems:
            nun = frame.group_by(RUN).agg([pl.col(c).n_unique().alias(c) for c in mix_cols])
            varying = nun.filter(pl.any_horizontal([pl.col(c) > 1 for c in mix_cols]))[RUN].to_list()
            if varying:
                problems.append(f"runs {varying[:5]} have different mixture ratios on different checkpoints: one run is one mixture; give each mixture its own run id")

    if not problems:
        # tokens (and compute) must grow along a run: checked against 'step' when the
        # file has one, and FLOPs against tokens always.
        order_col = "step" if "step" in frame.columns else None
        checks = [(FLOPS, TOKENS)] + ([(TOKENS, order_col)] if order_col else [])
        for value, by in checks:
            dec = (
                frame.sort([RUN, by], maintain_order=True)
                .with_columns((pl.col(value).diff().over(RUN) < 0).alias("_dec"))
                .filter(pl.col("_dec"))
            )
            if dec.height:
                problems.append(
                    f"{value!r} decreases along run(s) {dec[RUN].unique(maintain_order=True).to_list()[:5]} as {by!r} grows: "
                    f"checkpoints of a run must have non-decreasing {value}; fix the counts or split the runs"
                )
        nun = frame.group_by(RUN).agg(pl.col(PARAMS).n_unique())
        varying = nun.filter(pl.col(PARAMS) > 1)[RUN].to_list()
        if varying:
            problems.append(f"runs {varying[:5]} have several parameter counts: one run is one model; give each model its own run id")
        dup = frame.filter(frame.select([RUN, TOKENS]).is_duplicated())
        if dup.height:
            problems.append(
                f"duplicate checkpoints (same run and tokens) in {dup.height} rows, runs {dup[RUN].unique().to_list()[:5]}: "
                "each (run, tokens) must appear once; drop duplicates or fix the token counts"
            )

    if not loss_cols and not score_cols:
        problems.append(f"no loss or score columns: expected '{LOSS}', '{LOSS_PREFIX}<domain>' or '{SCORE_PREFIX}<benchmark>' columns")

    # benchmark metadata
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
    if problems:
        raise SchemaError(f"The run table has {len(problems)} problem(s):", problems)
    return frame, tuple(bench)


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
