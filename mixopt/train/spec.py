"""Trainer interface: a job spec in, run-table rows out.

A :class:`JobSpec` says what to train (run id, mixture, parameters N, tokens D, seed,
checkpoints, trainer options); a :class:`Trainer` trains it and returns the run's rows as a
:class:`~mixopt.data.table.RunTable` (one row per evaluated checkpoint: ``tokens``,
``flops``, ``mix:<d>``, ``loss:<d>``, ``score:<b>``). Trainers know nothing of Optuna or
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
    """

    run_id: str
    mixture: Mapping[str, float]
    params: float
    tokens: float
    seed: int = 0
    checkpoints: int = 4
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.run_id, str) or not _RUN_ID.match(self.run_id):
            problems.append(f"run_id {self.run_id!r} must be 1-120 characters of letters, digits and _.:=+-")
        if not self.mixture:
            problems.append("mixture is empty; give {domain: ratio} with ratios summing to 1")
        else:
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
        return {"run_id": self.run_id, "mixture": dict(self.mixture), "params": float(self.params),
                "tokens": float(self.tokens), "seed": self.seed, "checkpoints": self.checkpoints,
                "options": dict(self.options)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobSpec:
        return cls(run_id=d["run_id"], mixture=d["mixture"], params=float(d["params"]), tokens=float(d["tokens"]),
                   seed=int(d.get("seed", 0)), checkpoints=int(d.get("checkpoints", 4)), options=d.get("options", {}))

    def mixture_json(self) -> str:
        return json.dumps(dict(self.mixture), sort_keys=False)


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

    Fills ``run`` and the ``mix:<d>`` columns from the spec when absent.

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
        filled.append(r)
    frame = pl.DataFrame(filled, infer_schema_length=None)
    if set(frame[RUN].cast(pl.String).unique().to_list()) != {spec.run_id}:
        raise TrainerError(f"Job {spec.run_id!r} returned rows for other runs {frame[RUN].unique().to_list()[:5]}.", run_id=spec.run_id)
    try:
        return RunTable(frame, benchmarks)
    except SchemaError as e:
        raise TrainerError(f"Job {spec.run_id!r} returned an invalid run table: {e}", run_id=spec.run_id) from None


__all__ = ["TRAINERS", "JobResult", "JobSpec", "Trainer", "make_trainer", "register_trainer", "rows_to_table"]
