"""Phased mixtures (schedules): the mixture of a run may change at set fractions of training.

Columns (in a run table, beside the constant-mixture ones of :mod:`mixopt.data.table`):

================ ========= ===================================================================
column           dtype     meaning
================ ========= ===================================================================
``mix@<k>:<d>``  Float64   sampling ratio of domain d in phase k (k = 1..K; each phase sums to 1)
``phase_end@<k>`` Float64  fraction of the run's total training tokens at which phase k ends
                           (k = 1..K-1; strictly increasing, in (0, 1); phase K ends at 1)
``run_tokens``   Float64   the run's total training tokens (optional; default: the tokens of
                           the run's final checkpoint)
``mix:<d>``      Float64   the whole run's token-weighted mixture ``Σ_k (e_k - e_{k-1})·mix@k``
                           (computed when absent; must agree when given)
================ ========= ===================================================================

A constant mixture is the one-phase case: a table with only ``mix:<d>`` columns is not phased
and reads exactly as before. A one-phase run inside a K-phase table repeats its ratios in every
phase (its boundaries are then arbitrary and change nothing).

A checkpoint's **fraction of training** is ``tokens / run_tokens``; it is in phase ``k`` when
``e_{k-1} < fraction <= e_k`` (a checkpoint on a boundary belongs to the phase ending there),
and its **exposure** is the tokens of each domain seen so far:
``tokens_d = run_tokens · Σ_k overlap([0, fraction], (e_{k-1}, e_k]) · mix@k:d``.

Arrays: a schedule over ``k`` domains and ``K`` phases is ``phases (n, K, k)`` and
``phase_end (n, K-1)``; fractions of training are ``(n,)`` in ``(0, 1]``. The helpers below
are pure functions of those arrays.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from mixopt.errors import SchemaError

PHASE_MIX_PREFIX = "mix@"
PHASE_END_PREFIX = "phase_end@"
RUN_TOKENS = "run_tokens"
#: Tolerance on ``|sum(phase ratios) - 1|`` and on the agreement of a given ``mix:<d>`` with
#: the schedule's token-weighted mixture (the same as the constant-mixture ratio tolerance).
PHASE_SUM_ATOL = 0.01

_PHASE_MIX = re.compile(r"^mix@(\d+):(.+)$")
_PHASE_END = re.compile(r"^phase_end@(\d+)$")


def phase_mix_column(k: int, domain: str) -> str:
    """``mix@<k>:<domain>``, phase ``k`` counted from 1."""
    return f"{PHASE_MIX_PREFIX}{int(k)}:{domain}"


def phase_end_column(k: int) -> str:
    """``phase_end@<k>``, phase ``k`` counted from 1."""
    return f"{PHASE_END_PREFIX}{int(k)}"


def is_phase_column(name: str) -> bool:
    """Whether a column belongs to the schedule layout (``mix@k:<d>``, ``phase_end@k``, ``run_tokens``)."""
    return name == RUN_TOKENS or _PHASE_MIX.match(name) is not None or _PHASE_END.match(name) is not None


@dataclass(frozen=True, kw_only=True)
class PhaseLayout:
    """The schedule columns of a table.

    Attributes:
        n_phases: K, the number of phases (>= 1).
        domains: the domains of the phase columns, in column order of phase 1.
    """

    n_phases: int
    domains: tuple[str, ...]

    def mix_columns(self, k: int) -> list[str]:
        """The ``mix@k:<d>`` columns of phase ``k`` (from 1), in domain order."""
        return [phase_mix_column(k, d) for d in self.domains]

    @property
    def end_columns(self) -> list[str]:
        """``phase_end@1..K-1``."""
        return [phase_end_column(k) for k in range(1, self.n_phases)]


def phase_layout(columns: Sequence[str]) -> PhaseLayout | None:
    """The schedule layout of a table's columns, or None when it has no ``mix@k:`` columns.

    Raises:
        SchemaError: listing every problem: a missing phase (``mix@1`` and ``mix@3`` but no
            ``mix@2``), a phase numbered 0, a domain present in some phases only, a
            ``phase_end@k`` missing or beyond the last phase.
    """
    phases: dict[int, list[str]] = {}
    ends: list[int] = []
    for c in columns:
        if m := _PHASE_MIX.match(c):
            phases.setdefault(int(m.group(1)), []).append(m.group(2))
        elif m := _PHASE_END.match(c):
            ends.append(int(m.group(1)))
    if not phases:
        if ends:
            raise SchemaError(
                f"The table has boundary column(s) {[phase_end_column(k) for k in sorted(ends)]} but no phase mixtures: "
                f"a phased run needs {phase_mix_column(1, '<domain>')}, {phase_mix_column(2, '<domain>')}, ... columns "
                f"(see docs/phases.md). Add them, or drop the {PHASE_END_PREFIX}<k> columns for constant mixtures."
            )
        return None
    problems: list[str] = []
    K = max(phases)
    missing = [k for k in range(1, K + 1) if k not in phases]
    if 0 in phases:
        problems.append(f"phase 0 in {phase_mix_column(0, '...')} columns: phases are numbered from 1")
    if missing:
        problems.append(
            f"missing phase(s) {missing}: the table has mixtures for phases {sorted(phases)}; phases are numbered 1..K "
            f"without gaps, so add the {phase_mix_column(missing[0], '<domain>')} columns or renumber the phases"
        )
    domains = list(dict.fromkeys(d for k in sorted(phases) for d in phases[k]))
    for d in domains:
        have = [k for k in sorted(phases) if d in phases[k]]
        lack = [k for k in range(1, K + 1) if k in phases and k not in have]
        if lack:
            problems.append(
                f"domain {d!r} appears in phase(s) {have} only, not in phase(s) {lack}: every phase needs a ratio for "
                f"every domain; add {phase_mix_column(lack[0], d)} (0 if the domain is not sampled in that phase)"
            )
    want = set(range(1, K))
    if sorted(set(ends) - want):
        problems.append(
            f"boundary column(s) {[phase_end_column(k) for k in sorted(set(ends) - want)]} do not match {K} phase(s): "
            f"phase_end@k is given for k = 1..K-1 = {sorted(want)} (the last phase ends at 1); drop or renumber them"
        )
    if sorted(want - set(ends)):
        problems.append(
            f"missing boundary column(s) {[phase_end_column(k) for k in sorted(want - set(ends))]}: with {K} phases the "
            f"table needs phase_end@1..{K - 1} (the fraction of the run's tokens at which each phase ends)"
        )
    if problems:
        raise SchemaError("The schedule columns (mix@k:<domain>, phase_end@k) are malformed:", problems)
    return PhaseLayout(n_phases=K, domains=tuple(domains))


# -- array helpers ------------------------------------------------------------------------------------
def phase_bounds(phase_end: np.ndarray) -> np.ndarray:
    """``(n, K+1)`` phase starts and ends ``[0, e_1, ..., e_{K-1}, 1]`` for ``phase_end (n, K-1)``."""
    e = np.asarray(phase_end, dtype=np.float64)
    e = e.reshape(e.shape[0], -1) if e.ndim >= 1 else e.reshape(1, -1)
    n = e.shape[0]
    return np.concatenate([np.zeros((n, 1)), e, np.ones((n, 1))], axis=1)


def phase_shares(phase_end: np.ndarray) -> np.ndarray:
    """``(n, K)`` each phase's share of the run's tokens (rows sum to 1)."""
    return np.diff(phase_bounds(phase_end), axis=1)


def check_schedule(
    phases: np.ndarray,
    phase_end: np.ndarray | None,
    domains: Sequence[str] = (),
    *,
    atol: float = 1e-6,
    what: str = "schedule",
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a schedule; returns ``(phases (n, K, k), phase_end (n, K-1))`` as float arrays.

    Args:
        phases: ``(n, K, k)`` ratios per phase (``(K, k)`` is one schedule).
        phase_end: ``(n, K-1)`` phase ends as fractions of the run's tokens (``(K-1,)`` is one
            schedule; None or empty for one phase).
        domains: names of the ``k`` domains (for messages; checked for length when given).
        atol: tolerance on each phase's ratio sum.
        what: how to name the schedule in messages.

    Raises:
        SchemaError: every problem at once: wrong shapes, ratios outside [0, 1] or not
            summing to 1 in a phase, boundaries outside (0, 1) or not strictly increasing.
    """
    P = np.asarray(phases, dtype=np.float64)
    if P.ndim == 2:
        P = P[None]
    if P.ndim != 3 or P.shape[1] < 1:
        raise SchemaError(f"A {what} has phases of shape (n, K, k) (K >= 1 phases, k domains); got shape {np.shape(phases)}.")
    n, K, k = P.shape
    if phase_end is None:
        E = np.zeros((n, 0))
    else:
        E = np.asarray(phase_end, dtype=np.float64)
        if E.ndim <= 1:
            E = np.broadcast_to(E.reshape(1, -1), (n, E.size)).copy()
    problems: list[str] = []
    if E.shape != (n, K - 1):
        raise SchemaError(
            f"A {what} with {K} phase(s) needs phase_end of shape (n, K-1) = ({n}, {K - 1}) (phase K ends at 1); "
            f"got shape {E.shape}."
        )
    if domains and len(domains) != k:
        raise SchemaError(f"A {what} over domains {list(domains)} needs {len(domains)} ratios per phase, got {k}.")
    names = list(domains) if domains else [f"#{j}" for j in range(k)]
    if not np.all(np.isfinite(P)):
        problems.append("phase ratios must be finite numbers (got NaN/inf)")
    elif np.any(P < 0) or np.any(P > 1):
        i, p, j = (int(v[0]) for v in np.nonzero((P < 0) | (P > 1)))
        problems.append(f"phase ratios must be within [0, 1]; schedule {i} phase {p + 1} has {names[j]}={P[i, p, j]:.6g}")
    else:
        s = P.sum(axis=2)
        bad = np.abs(s - 1) > atol
        if bad.any():
            i, p = (int(v[0]) for v in np.nonzero(bad))
            problems.append(
                f"each phase's ratios must sum to 1 (tolerance {atol:g}); schedule {i} phase {p + 1} sums to "
                f"{s[i, p]:.6g} ({int(bad.sum())} phase(s) in all): renormalise the phase or add the missing domain"
            )
    if K > 1:
        if not np.all(np.isfinite(E)):
            problems.append("phase boundaries must be finite numbers (got NaN/inf or an empty cell)")
        else:
            out = (E <= 0) | (E >= 1)
            if out.any():
                i, p = (int(v[0]) for v in np.nonzero(out))
                problems.append(
                    f"phase boundaries are fractions of the run's tokens strictly inside (0, 1); schedule {i} has "
                    f"phase_end@{p + 1} = {E[i, p]:.6g}: use e.g. 0.8 for a phase ending at 80% of training"
                )
            dec = np.diff(E, axis=1) <= 0 if K > 2 else np.zeros((n, 0), dtype=bool)
            if dec.any():
                i, p = (int(v[0]) for v in np.nonzero(dec))
                problems.append(
                    f"phase boundaries must strictly increase; schedule {i} has phase_end@{p + 1} = {E[i, p]:.6g} "
                    f">= phase_end@{p + 2} = {E[i, p + 1]:.6g}: order the phases by time"
                )
    if problems:
        raise SchemaError(f"Invalid {what}:", problems)
    return P, E


def overall_mixture(phases: np.ndarray, phase_end: np.ndarray | None) -> np.ndarray:
    """``(n, k)`` the whole run's token-weighted mixture ``Σ_k share_k·phases_k`` (unchecked arrays)."""
    P = np.asarray(phases, dtype=np.float64)
    P = P[None] if P.ndim == 2 else P
    E = np.zeros((P.shape[0], 0)) if phase_end is None else np.asarray(phase_end, dtype=np.float64).reshape(P.shape[0], -1)
    return np.einsum("nk,nkd->nd", phase_shares(E), P)


def exposure(phases: np.ndarray, phase_end: np.ndarray | None, fraction: np.ndarray | float = 1.0) -> np.ndarray:
    """``(n, k)`` each domain's tokens seen by training fraction ``fraction``, as a fraction of the run's tokens.

    Rows sum to ``fraction``; at ``fraction = 1`` this is :func:`overall_mixture`. Multiply by
    ``run_tokens`` for token counts (:func:`exposure_tokens`).
    """
    P = np.asarray(phases, dtype=np.float64)
    P = P[None] if P.ndim == 2 else P
    n = P.shape[0]
    E = np.zeros((n, 0)) if phase_end is None else np.asarray(phase_end, dtype=np.float64).reshape(n, -1)
    b = phase_bounds(E)
    f = np.broadcast_to(np.asarray(fraction, dtype=np.float64).reshape(-1), (n,))[:, None]
    seen = np.clip(np.minimum(b[:, 1:], f) - b[:, :-1], 0.0, None)  # (n, K) tokens of each phase seen
    return np.einsum("nk,nkd->nd", seen, P)


def exposure_tokens(phases: np.ndarray, phase_end: np.ndarray | None, tokens: np.ndarray, run_tokens: np.ndarray) -> np.ndarray:
    """``(n, k)`` tokens of each domain seen at a checkpoint of ``tokens`` in a run of ``run_tokens``."""
    t = np.asarray(tokens, dtype=np.float64).reshape(-1)
    rt = np.asarray(run_tokens, dtype=np.float64).reshape(-1)
    return exposure(phases, phase_end, t / rt) * rt[:, None]


def phase_index(phase_end: np.ndarray | None, fraction: np.ndarray | float) -> np.ndarray:
    """``(n,)`` the phase (from 1) a checkpoint at ``fraction`` of training is in (a boundary belongs to the phase ending there)."""
    f = np.asarray(fraction, dtype=np.float64).reshape(-1)
    if phase_end is None or np.size(phase_end) == 0:
        return np.ones(f.shape[0], dtype=np.int64)
    E = np.asarray(phase_end, dtype=np.float64)
    E = E.reshape(1, -1) if E.ndim == 1 else E
    n = max(f.shape[0], E.shape[0])
    f = np.broadcast_to(f, (n,))
    E = np.broadcast_to(E, (n, E.shape[1]))
    return 1 + (f[:, None] > E + 1e-12).sum(axis=1).astype(np.int64)


def schedule_from_mappings(
    phases: Sequence[Mapping[str, float]], phase_end: Sequence[float], domains: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One schedule from ``[{domain: ratio}, ...]`` per phase and its boundaries: ``((K, k), (K-1,))``, checked.

    Raises:
        SchemaError: a domain outside ``domains``, or an invalid schedule (:func:`check_schedule`).
    """
    unknown = sorted({d for p in phases for d in p} - set(domains))
    if unknown:
        raise SchemaError(f"The schedule names domain(s) {unknown} that are not known; known domains are {list(domains)}.")
    P = np.array([[float(p.get(d, 0.0)) for d in domains] for p in phases], dtype=np.float64)
    P, E = check_schedule(P[None], np.asarray(phase_end, dtype=np.float64).reshape(1, -1), domains)
    return P[0], E[0]


def pad_schedule(phases: np.ndarray, phase_end: np.ndarray, n_phases: int) -> tuple[np.ndarray, np.ndarray]:
    """The same schedules in ``n_phases >= K`` phases: the last phase is split evenly (same exposure at every point).

    Args:
        phases: ``(n, K, k)``; phase_end: ``(n, K-1)``.
        n_phases: the number of phases wanted.

    Returns:
        ``(phases (n, n_phases, k), phase_end (n, n_phases - 1))``.
    """
    P = np.asarray(phases, dtype=np.float64)
    E = np.asarray(phase_end, dtype=np.float64).reshape(P.shape[0], -1)
    K, extra = P.shape[1], int(n_phases) - P.shape[1]
    if extra < 0:
        raise SchemaError(f"pad_schedule cannot shorten a {K}-phase schedule to {n_phases} phases.")
    if extra == 0:
        return P, E
    start = E[:, -1:] if K > 1 else np.zeros((P.shape[0], 1))
    cuts = start + (1.0 - start) * (np.arange(1, extra + 1) / (extra + 1))[None, :]
    return np.concatenate([P, np.repeat(P[:, -1:], extra, axis=1)], axis=1), np.concatenate([E, cuts], axis=1)


def schedule_columns(phases: np.ndarray, phase_end: np.ndarray, domains: Sequence[str]) -> dict[str, np.ndarray]:
    """The table columns of ``n`` schedules: ``mix@k:<d>``, ``phase_end@k`` and the overall ``mix:<d>``."""
    P = np.asarray(phases, dtype=np.float64)
    P = P[None] if P.ndim == 2 else P
    E = np.asarray(phase_end, dtype=np.float64).reshape(P.shape[0], -1)
    cols: dict[str, np.ndarray] = {}
    for k in range(P.shape[1]):
        for j, d in enumerate(domains):
            cols[phase_mix_column(k + 1, d)] = P[:, k, j]
    for k in range(E.shape[1]):
        cols[phase_end_column(k + 1)] = E[:, k]
    M = overall_mixture(P, E)
    for j, d in enumerate(domains):
        cols["mix:" + d] = M[:, j]
    return cols


# -- the table side -------------------------------------------------------------------------------------
def schedule_frame(frame: pl.DataFrame, problems: list[str], *, run: str = "run", tokens: str = "tokens") -> pl.DataFrame:
    """Check the schedule columns of a canonical frame and complete them (called by RunTable validation).

    On a phased frame: every phase sums to 1 and boundaries are valid on every row; the schedule
    is constant along a run; ``mix:<d>`` is added when absent (the token-weighted mixture) and
    must agree with the schedule when given; ``run_tokens`` is added when absent (each run's
    largest ``tokens``) and must be >= every checkpoint's tokens. Problems are appended to
    ``problems``; a frame without schedule columns is returned unchanged.
    """
    try:
        layout = phase_layout(frame.columns)
    except SchemaError as e:
        problems.extend(e.problems or [str(e)])
        return frame
    if layout is None:
        if RUN_TOKENS in frame.columns:
            problems.append(f"a {RUN_TOKENS!r} column is only used with phase columns (mix@k:<domain>); drop it")
        return frame
    cols = [c for k in range(1, layout.n_phases + 1) for c in layout.mix_columns(k)] + layout.end_columns
    bad_type = [c for c in cols if not (frame.schema[c].is_numeric() or frame.schema[c] == pl.Null)]
    if bad_type:
        problems.append(f"schedule column(s) {bad_type[:5]} must be numeric")
        return frame
    frame = frame.with_columns([pl.col(c).cast(pl.Float64) for c in cols])
    n, K, k = frame.height, layout.n_phases, len(layout.domains)
    P = np.stack([frame.select(layout.mix_columns(p)).to_numpy().astype(np.float64) for p in range(1, K + 1)], axis=1)
    E = frame.select(layout.end_columns).to_numpy().astype(np.float64) if K > 1 else np.zeros((n, 0))
    ids = frame[run].to_list()
    try:
        P, E = check_schedule(P, E, layout.domains, atol=PHASE_SUM_ATOL)
    except SchemaError as e:
        bad = _bad_rows(P, E)
        runs = list(dict.fromkeys(ids[i] for i in np.flatnonzero(bad)[:50]))[:5]
        problems.extend(f"{p} (runs {runs})" for p in (e.problems or [str(e)]))
        return frame
    P = P / P.sum(axis=2, keepdims=True)
    varying = (
        frame.select(run, *cols).group_by(run).agg([pl.col(c).n_unique().alias(c) for c in cols])
        .filter(pl.any_horizontal([pl.col(c) > 1 for c in cols]))[run].sort().to_list()
    )
    if varying:
        problems.append(
            f"runs {varying[:5]} have different schedules (mix@k / phase_end@k) on different checkpoints: one run is "
            "one schedule; give each schedule its own run id"
        )
    M = overall_mixture(P, E)
    given = [d for d in layout.domains if "mix:" + d in frame.columns]
    extra = [c[4:] for c in frame.columns if c.startswith("mix:") and c[4:] not in layout.domains]
    if extra:
        problems.append(
            f"mix:<d> column(s) for {extra} have no phase columns: with a schedule every domain of mix:<d> needs "
            f"{phase_mix_column(1, extra[0])}, ...; add them or drop the mix: columns"
        )
    if given and len(given) != k:
        problems.append(
            f"mix:<d> is given for {given} but not for {[d for d in layout.domains if d not in given]}: give the overall "
            "mixture for every domain or for none (it is computed from the schedule)"
        )
    elif given:
        G = frame.select(["mix:" + d for d in layout.domains]).cast(pl.Float64).to_numpy()
        diff = np.abs(G - M)
        bad = ~(diff <= PHASE_SUM_ATOL)
        if bad.any():
            i, j = (int(v[0]) for v in np.nonzero(bad))
            problems.append(
                f"mix:<d> must be the schedule's token-weighted mixture Σ_k (phase_end@k - phase_end@k-1)·mix@k:<d> "
                f"(tolerance {PHASE_SUM_ATOL}); run {ids[i]!r} has mix:{layout.domains[j]} = {G[i, j]:.6g} but its "
                f"schedule gives {M[i, j]:.6g} ({int(bad.any(axis=1).sum())} row(s)): fix it or drop the mix:<d> columns"
            )
    if problems:
        return frame
    frame = frame.with_columns(
        [pl.Series(phase_mix_column(p + 1, d), P[:, p, j]) for p in range(K) for j, d in enumerate(layout.domains)]
        + [pl.Series("mix:" + d, M[:, j]) for j, d in enumerate(layout.domains)]
    )
    if RUN_TOKENS in frame.columns:
        dt = frame.schema[RUN_TOKENS]
        if not dt.is_numeric():
            problems.append(f"column {RUN_TOKENS!r} must be numeric, got {dt}")
            return frame
        frame = frame.with_columns(pl.col(RUN_TOKENS).cast(pl.Float64))
        rt = frame.with_columns(pl.col(RUN_TOKENS).fill_null(pl.col(tokens).max().over(run)))
        short = rt.filter(~(pl.col(RUN_TOKENS).is_finite() & (pl.col(RUN_TOKENS) >= pl.col(tokens) * (1 - 1e-9))))
        if short.height:
            problems.append(
                f"{RUN_TOKENS!r} (the run's total training tokens) must be finite and >= every checkpoint's tokens; "
                f"runs {short[run].unique(maintain_order=True).head(5).to_list()} violate it: fix it or drop the column "
                "(the default is each run's final tokens)"
            )
        frame = rt
    else:
        frame = frame.with_columns(pl.col(tokens).max().over(run).alias(RUN_TOKENS))
    return frame


def _bad_rows(P: np.ndarray, E: np.ndarray) -> np.ndarray:
    """``(n,)`` rows whose schedule fails :func:`check_schedule` (for naming the runs)."""
    bad = ~np.isfinite(P).all(axis=(1, 2)) | (P < 0).any(axis=(1, 2)) | (P > 1).any(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        bad |= (np.abs(P.sum(axis=2) - 1) > PHASE_SUM_ATOL).any(axis=1)
        if E.shape[1]:
            bad |= ~np.isfinite(E).all(axis=1) | (E <= 0).any(axis=1) | (E >= 1).any(axis=1)
            if E.shape[1] > 1:
                bad |= (np.diff(E, axis=1) <= 0).any(axis=1)
    return bad


__all__ = [
    "PHASE_END_PREFIX",
    "PHASE_MIX_PREFIX",
    "PHASE_SUM_ATOL",
    "RUN_TOKENS",
    "PhaseLayout",
    "check_schedule",
    "exposure",
    "exposure_tokens",
    "is_phase_column",
    "overall_mixture",
    "pad_schedule",
    "phase_bounds",
    "phase_end_column",
    "phase_index",
    "phase_layout",
    "phase_mix_column",
    "phase_shares",
    "schedule_columns",
    "schedule_frame",
    "schedule_from_mappings",
]
