"""Schedules (phased mixtures) as surrogate inputs: what FLP-M's stage 1 and its hybrid residual read.

A run table or a set of :class:`~mixopt.surrogate.base.Targets` carries either constant
mixtures or schedules (:mod:`mixopt.data.phases`). The helpers here give the schedule of either
as arrays, say whether a table's schedules differ from constant mixtures at all (only then are
the schedule laws :mod:`mixopt.laws.recency` candidates of ``auto``), and build the features
of the hybrid family's residual over schedules.

Residual features: for constant mixtures the mixture itself (so nothing changes for them); for
schedules the whole run's mixture next to the mixture of the last :data:`LATE_SHARE` of
training, ``(exposure(1) - exposure(1 - LATE_SHARE)) / LATE_SHARE``: two runs with the same
overall mixture that anneal differently have different features.
"""

from __future__ import annotations

import numpy as np

from mixopt.data.phases import exposure
from mixopt.data.table import RunTable
from mixopt.laws.recency import SCHEDULE_LAWS
from mixopt.surrogate.base import Targets

#: the schedule forms ``auto`` adds to its stage-1 candidates on tables with schedules
SCHEDULE_CANDIDATES: tuple[str, ...] = ("flpm_recency",)
#: the share of training at the end whose mixture is a residual feature of schedules
LATE_SHARE = 0.2
#: phase ratios closer than this are the same mixture
_SAME = 1e-9

#: ``(phases (n, K, k), phase_end (n, K-1), fraction (n,))``
Schedule = tuple[np.ndarray, np.ndarray, np.ndarray]


def runs_schedule(runs: RunTable, domains: tuple[str, ...]) -> Schedule | None:
    """The schedule of every row of a phased table (fraction = ``tokens / run_tokens``), or None when not phased."""
    if not runs.is_phased:
        return None
    return runs.phases(domains), runs.phase_end(), runs.training_fraction()


def targets_schedule(targets: Targets) -> Schedule | None:
    """The schedule of phased targets (fraction 1 where not given), or None for constant mixtures."""
    if targets.phases is None or targets.phase_end is None:
        return None
    f = np.ones(len(targets)) if targets.fraction is None else targets.fraction
    return targets.phases, targets.phase_end, f


def has_schedules(runs: RunTable) -> bool:
    """Whether some run's phases differ (a table of constant mixtures in the phase layout gives False)."""
    if not runs.is_phased or runs.n_phases < 2:
        return False
    P = runs.final().phases()
    return bool(np.any(np.abs(P - P[:, :1, :]) > _SAME))


def is_schedule_form(form: str) -> bool:
    """Whether a stage-1 form reads schedules (:data:`mixopt.laws.recency.SCHEDULE_LAWS`)."""
    return form in SCHEDULE_LAWS


def residual_features(mixture: np.ndarray, schedule: Schedule | None) -> np.ndarray:
    """``(n, k)`` the mixture for constant mixtures; ``(n, 2k)`` overall and late mixtures for schedules."""
    if schedule is None:
        return mixture
    P, E, _ = schedule
    late = (exposure(P, E, 1.0) - exposure(P, E, 1.0 - LATE_SHARE)) / LATE_SHARE
    return np.column_stack([exposure(P, E, 1.0), late])


__all__ = ["LATE_SHARE", "SCHEDULE_CANDIDATES", "Schedule", "has_schedules", "is_schedule_form", "residual_features",
           "runs_schedule", "targets_schedule"]
