"""Trainer interface: a job spec in, run-table rows out.

A :class:`JobSpec` says what to train (run id, mixture, parameters N, tokens D, seed,
checkpoints, trainer options); a :class:`Trainer` trains it and returns the run's rows as a
:class:`~mixopt.data.table.RunTable` (one row per evaluated checkpoint: ``tokens``,
``flops``, ``mix:<d>``, ``loss:<d>``, ``score:<b>``).

A job may train a *schedule*: ``phases`` lists each phase's end (the fraction of the run's
tokens where it ends; the last ends at 1) and its mixture. ``mixture`` is then the
token-weighted mixture of the whole run (filled in when not given), and the rows carry the
phase columns of the run table (``phase_end@k``, ``mix@k:<d>``, see ``docs/phases.md``). A
one-phase schedule is the constant mixture: it is stored as one and trains exactly like one. Trainers know nothing of Optuna or
Ray; executors (:mod:`mixopt.train.executors`) run jobs in guarded child processes and turn
failures into :class:`JobResult` records, so one failing job never stops the others.

A new trainer is one small file: subclass :class:`Trainer`, set ``kind``, implement
:meth:`Trainer.train`, decorate with :func:`register_trainer`.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from mixopt._params import init_params
from mixopt.data.phases import phase_end_column, phase_mix_column
from mixopt.data.table import MIX_PREFIX, RATIO_SUM_ATOL, RUN, Benchmark, RunTable
from mixopt.errors import ConfigError, SchemaError, TrainerError

_RUN_ID = re.compile(r"^[A-Za-z0-9_.:=+\-]{1,120}$")


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One training job.

    Attributes:
        run_id: the run id in the table (letters, digits and ``_.:=+-``; no spaces or
            slashes, so it is safe in file names and command lines).
        mixture: ``{domain: ratio}``, ratios in [0, 1] summing to 1.
        params: parameter count N the trainer should build (it reports the count it built).
        tokens: training tokens D.
        seed: seeds everything random in the job.
        checkpoints: evaluated checkpoints, evenly spaced in tokens (the last is the end).
        options: trainer-specific settings (e.g. the reference trainer's ``layers``).
        phases: the schedule, ``({"end": e_k, "mixture": {domain: ratio}}, ...)`` with ends
            increasing in (0, 1], the last 1, every phase naming the same domains; empty for a
            constant mixture (a one-phase schedule is stored as empty).
    """

    run_id: str
    mixture: Mapping[str, float] = field(default_factory=dict)
    params: float
    tokens: float
    seed: int = 0
    checkpoints: int = 4
    options: Mapping[str, Any] = field(default_factory=dict)
    phases: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.run_id, str) or not _RUN_ID.match(self.run_id):
            problems.append(f"run_id {self.run_id!r} must be 1-120 characters of letters, digits and _.:=+-")
        phased = bool(self.phases)
        phases = _check_phases(self.phases, problems)
        if phases:
            overall = schedule_mixture(phases)
            if self.mixture:
                given = {str(d): float(r) for d, r in self.mixture.items()}
                if set(given) != set(overall) or any(abs(given[d] - overall[d]) > SCHEDULE_MIX_ATOL for d in overall):
                    problems.append(f"mixture {given} is not the token-weighted mixture of the phases {overall}; "
                                    "leave mixture out of a phased job (it is computed)")
            object.__setattr__(self, "mixture", overall)
        if len(phases) == 1:
            phases = []
        object.__setattr__(self, "phases", tuple(phases))
        if not self.mixture and not phased:
            problems.append("mixture is empty; give {domain: ratio} with ratios summing to 1")
        elif self.mixture:
            bad = {d: r for d, r in self.mixture.items() if not (isinstance(r, (int, float)) and 0 <= float(r) <= 1)}
            if bad:
                problems.append(f"mixture ratios must be numbers in [0, 1], got {bad}")
            elif abs(sum(float(r) for r in self.mixture.values()) - 1) > RATIO_SUM_ATOL:
                problems.append(f"mixture ratios sum to {sum(self.mixture.values()):.4g}, not 1; renormalise them")
        for name, v in (("params", self.params), ("tokens", self.tokens)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                problems.append(f"{name} must be a finite number > 0, got {v!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            problems.append(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (isinstance(self.checkpoints, int) and self.checkpoints >= 1):
            problems.append(f"checkpoints must be an integer >= 1, got {self.checkpoints!r}")
        if problems:
            raise SchemaError(f"Invalid training job {self.run_id!r}:", problems)
        object.__setattr__(self, "mixture", {str(d): float(r) for d, r in self.mixture.items()})
        object.__setattr__(self, "options", dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        d = {"run_id": self.run_id, "mixture": dict(self.mixture), "params": float(self.params),
             "tokens": float(self.tokens), "seed": self.seed, "checkpoints": self.checkpoints,
             "options": dict(self.options)}
        if self.phases:
            d["phases"] = [{"end": p["end"], "mixture": dict(p["mixture"])} for p in self.phases]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobSpec:
        return cls(run_id=d["run_id"], mixture=d.get("mixture") or {}, params=float(d["params"]), tokens=float(d["tokens"]),
                   seed=int(d.get("seed", 0)), checkpoints=int(d.get("checkpoints", 4)), options=d.get("options", {}),
                   phases=d.get("phases") or ())

    @property
    def schedule(self) -> list[tuple[float, dict[str, float]]]:
        """``[(end, mixture), ...]`` of every phase; one phase ``(1.0, mixture)`` for a constant mixture."""
        if not self.phases:
            return [(1.0, dict(self.mixture))]
        return [(float(p["end"]), dict(p["mixture"])) for p in self.phases]

    def mixture_json(self) -> str:
        return json.dumps(dict(self.mixture), sort_keys=False)

    def schedule_json(self) -> str:
        """The schedule as JSON: ``[{"end": 0.8, "mixture": {...}}, {"end": 1.0, "mixture": {...}}]`` (one phase when constant)."""
        return json.dumps([{"end": e, "mixture": m} for e, m in self.schedule], sort_keys=False)

    def phase_columns(self) -> dict[str, float]:
        """The run-table phase columns of this job's schedule (empty for a constant mixture)."""
        if not self.phases:
            return {}
        return phase_columns([e for e, _ in self.schedule], [m for _, m in self.schedule])


#: largest difference allowed between a phased job's given mixture and its phases' token-weighted mixture
SCHEDULE_MIX_ATOL = 1e-6
def phase_columns(ends: Sequence[float], mixtures: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The run-table columns of one schedule (:mod:`mixopt.data.phases`): ``mix@k:<d>`` for phases
    ``k = 1..K`` and ``phase_end@k`` for ``k = 1..K-1`` (the last phase ends at 1).

    Args:
        ends: the ``K`` phase ends (the last is 1).
        mixtures: the ``K`` phase mixtures, naming the same domains.
    """
    out: dict[str, float] = {}
    for k, m in enumerate(mixtures, start=1):
        out.update({phase_mix_column(k, d): float(r) for d, r in m.items()})
    for k, e in enumerate(list(ends)[:-1], start=1):
        out[phase_end_column(k)] = float(e)
    return out


def schedule_mixture(phases: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Token-weighted mixture of a checked schedule: ``sum_k (e_k - e_{k-1}) · r_k``."""
    out: dict[str, float] = {d: 0.0 for d in phases[0]["mixture"]}
    prev = 0.0
    for p in phases:
        share = float(p["end"]) - prev
        prev = float(p["end"])
        for d, r in p["mixture"].items():
            out[d] += share * float(r)
    total = sum(out.values())
    total = 1.0 if abs(total - 1.0) <= _EXACT else total
    return {d: v / total for d, v in out.items()}


#: sums within this of 1 are taken as 1 (no renormalisation: a checked schedule round-trips bit for bit)
_EXACT = 1e-12


def _check_phases(phases: Any, problems: list[str]) -> list[dict[str, Any]]:
    """The phases as ``[{"end": float, "mixture": {d: float}}]`` (empty when none), problems appended."""
    if phases is None or (isinstance(phases, (list, tuple)) and not phases):
        return []
    if not isinstance(phases, (list, tuple)) or not all(isinstance(p, Mapping) for p in phases):
        problems.append(f"phases must be a list of {{\"end\": e, \"mixture\": {{domain: ratio}}}}, got {phases!r}")
        return []
    out: list[dict[str, Any]] = []
    prev = 0.0
    domains: tuple[str, ...] | None = None
    for k, p in enumerate(phases, start=1):
        end, mix = p.get("end"), p.get("mixture")
        if not (isinstance(end, (int, float)) and math.isfinite(end) and prev < float(end) <= 1.0):
            problems.append(f"phase {k} ends at {end!r}: phase ends must increase within (0, 1] (fractions of the run's tokens)")
            return []
        prev = float(end)
        if not isinstance(mix, Mapping) or not mix:
            problems.append(f"phase {k} has no mixture; give {{domain: ratio}} with ratios summing to 1")
            return []
        bad = {d: r for d, r in mix.items() if not (isinstance(r, (int, float)) and 0 <= float(r) <= 1)}
        if bad:
            problems.append(f"phase {k}: mixture ratios must be numbers in [0, 1], got {bad}")
            return []
        if abs(sum(float(r) for r in mix.values()) - 1) > RATIO_SUM_ATOL:
            problems.append(f"phase {k}: mixture ratios sum to {sum(float(r) for r in mix.values()):.4g}, not 1; renormalise them")
            return []
        if domains is None:
            domains = tuple(str(d) for d in mix)
        elif tuple(str(d) for d in mix) != domains:
            problems.append(f"phase {k} names domains {list(mix)}, phase 1 names {list(domains)}: every phase names the same "
                            "domains in the same order (ratio 0 for a domain a phase leaves out)")
            return []
        s = sum(float(r) for r in mix.values())
        s = 1.0 if abs(s - 1.0) <= _EXACT else s  # renormalise once: a checked schedule comes back unchanged
        out.append({"end": float(end), "mixture": {str(d): float(r) / s for d, r in mix.items()}})
    if abs(prev - 1.0) > 1e-9:
        problems.append(f"the last phase ends at {prev:g}, not 1: the phases must cover the whole run")
        return []
    out[-1]["end"] = 1.0
    return out


@dataclass(frozen=True, kw_only=True)
class JobResult:
    """What became of one job: its rows (when it finished) or why it failed.

    Attributes:
        spec: the job.
        status: ``"ok"``, ``"failed"`` or ``"timeout"``.
        table: the run's rows (None unless ok).
        message: the reason of a failure (with the job's log tail), empty when ok.
        wall_s: wall time of the job, seconds.
        log_tail: last lines of the job's log.
        node: the Ray node id the job ran on (None when it ran in this process's machine without Ray).
    """

    spec: JobSpec
    status: str
    table: RunTable | None = None
    message: str = ""
    wall_s: float = 0.0
    log_tail: str = ""
    node: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Trainer(ABC):
    """Base of trainers: ``train(spec, workdir) -> RunTable`` (rows of one run).

    Subclasses set ``kind`` and implement :meth:`train`. ``__init__`` stores settings
    only. A trainer raises :class:`~mixopt.errors.TrainerError` (carrying the run id)
    when the job cannot produce valid rows.
    """

    kind: ClassVar[str] = ""

    @abstractmethod
    def train(self, spec: JobSpec, workdir: Path) -> RunTable:
        """Train one job in ``workdir``; the rows of its checkpoints."""

    def settings(self) -> dict[str, Any]:
        """The settings that rebuild this trainer (``make_trainer(kind, **settings)``): its ``__init__`` arguments."""
        return init_params(self)

    def preload(self) -> None:
        """Import what this trainer's jobs import, in a job server before it forks them
        (:mod:`mixopt.train.forkserver`). Import only: nothing a job could see may change. No-op by default."""

    def warm(self, spec: JobSpec) -> None:
        """Prepare, in a job server before it forks the job, what the job only reads and other jobs share (the
        reference trainer: its evaluation sets). The job must compute exactly what it computes unwarmed. No-op by
        default."""


TRAINERS: dict[str, type[Trainer]] = {}


def register_trainer(cls: type[Trainer]) -> type[Trainer]:
    """Class decorator: make a trainer available by its ``kind``."""
    TRAINERS[cls.kind] = cls
    return cls


def make_trainer(kind: str, **settings: Any) -> Trainer:
    """Build a registered trainer (``"reference"`` or ``"command"``) from its settings."""
    import mixopt.train.external  # noqa: F401  (registers)
    import mixopt.train.reference  # noqa: F401

    if kind not in TRAINERS:
        raise ConfigError(f"Unknown trainer {kind!r}; choose one of {sorted(TRAINERS)}.")
    try:
        return TRAINERS[kind](**settings)
    except TypeError as e:
        raise ConfigError(f"Bad settings for the {kind!r} trainer: {e}.") from None


def rows_to_table(spec: JobSpec, rows: Sequence[Mapping[str, Any]], benchmarks: Sequence[Benchmark] = ()) -> RunTable:
    """Validate a run's checkpoint rows (dicts in run-table columns) as a RunTable.

    Fills ``run``, the ``mix:<d>`` columns and (for a phased job) the phase columns from the
    spec when absent.

    Raises:
        TrainerError: the rows do not form a valid run table (every problem listed).
    """
    if not rows:
        raise TrainerError(f"Job {spec.run_id!r} produced no checkpoint rows.", run_id=spec.run_id)
    filled = []
    for r in rows:
        r = dict(r)
        r.setdefault(RUN, spec.run_id)
        for d, v in spec.mixture.items():
            r.setdefault(MIX_PREFIX + d, v)
        for c, v in spec.phase_columns().items():
            r.setdefault(c, v)
        filled.append(r)
    frame = pl.DataFrame(filled, infer_schema_length=None)
    if set(frame[RUN].cast(pl.String).unique().to_list()) != {spec.run_id}:
        raise TrainerError(f"Job {spec.run_id!r} returned rows for other runs {frame[RUN].unique().to_list()[:5]}.", run_id=spec.run_id)
    try:
        return RunTable(frame, benchmarks)
    except SchemaError as e:
        raise TrainerError(f"Job {spec.run_id!r} returned an invalid run table: {e}", run_id=spec.run_id) from None


__all__ = ["TRAINERS", "JobResult", "JobSpec", "Trainer", "make_trainer", "phase_columns",
           "register_trainer", "rows_to_table", "schedule_mixture"]
