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
from mixopt.errors import SchemaError
from mixopt.laws.recency import SCHEDULE_LAWS
from mixopt.surrogate.base import Targets

#: the schedule forms ``auto`` adds to its stage-1 candidates on tables with schedules
SCHEDULE_CANDIDATES: tuple[str, ...] = ("flpm_recency", "dml_recency")
#: the schedule form of each constant-mixture form (same base law): kept beside it on in-range folds
SCHEDULE_OF: dict[str, str] = {"flpm": "flpm_recency", "dml": "dml_recency"}
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


def schedule_groups(final: RunTable, decimals: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Group final checkpoints by their *schedule* (for leave-mixtures-out folds and held-out mixtures).

    Returns ``(inverse (n,), first (g,))``: each run's group (0..g-1, in the order of the sorted
    keys) and the index of each group's first run. Constant tables group by the mixture rounded
    to ``decimals``; phased tables by the schedule with equal adjacent phases merged (a constant
    run written in K phases is its mixture, whatever its boundaries), so two schedules with the
    same whole-run mixture but different phases are different groups.
    """
    if not final.domains:
        raise SchemaError("grouping runs by mixture needs mixture columns (mix:<domain>); this table has none.")
    if not final.is_phased or final.n_phases < 2:
        keys = [tuple(row) for row in np.round(final.mixture(), decimals).tolist()]
    else:
        P = np.round(final.phases(), decimals)
        E = np.round(final.phase_end(), decimals)
        keys = []
        for i in range(final.n_runs):
            ends = [*E[i].tolist(), 1.0]
            merged: list[tuple[float, tuple[float, ...]]] = []
            for k in range(P.shape[1]):
                mix = tuple(P[i, k].tolist())
                if merged and merged[-1][1] == mix:
                    merged[-1] = (ends[k], mix)
                else:
                    merged.append((ends[k], mix))
            keys.append(tuple(merged))
    uniq = sorted(set(keys))
    where = {k: g for g, k in enumerate(uniq)}
    inverse = np.asarray([where[k] for k in keys], dtype=np.int64)
    first = np.asarray([keys.index(k) for k in uniq], dtype=np.int64)
    return inverse, first


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


__all__ = ["LATE_SHARE", "SCHEDULE_CANDIDATES", "SCHEDULE_OF", "Schedule", "has_schedules", "is_schedule_form", "residual_features",
           "runs_schedule", "schedule_groups", "targets_schedule"]
