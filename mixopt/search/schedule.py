"""Schedules as a search variable: ``K`` phase mixtures and the boundaries between them.

A schedule over ``k`` domains has ``K`` phases; phase ``p`` has its own mixture polytope (a
:class:`~mixopt.search.space.MixtureSpace`: per-phase floors, caps and pins) and phase ``p``
ends at ``e_p``, a fraction of the run's tokens (``phase_end@p`` of :mod:`mixopt.data.phases`;
the last phase ends at 1). Each boundary is fixed (a number) or searched within ``[low, high]``
(uniform); searched ranges may not overlap (``high_p < low_{p+1}``), so every cube point gives
strictly increasing boundaries.

:class:`ScheduleSpace` maps the unit cube to schedules: the coordinates of phase 1's mixture,
then phase 2's, ..., then the searched boundaries (``u@<p>:<domain>`` and ``u:phase_end@<p>``).
It stands where a :class:`~mixopt.search.space.MixtureSpace` stands in a
:class:`~mixopt.search.space.SearchSpace`: ``to_mixture`` gives the whole run's token-weighted
mixture ``Σ_p (e_p - e_{p-1})·r_p`` (what a constant-mixture surrogate reads, and what the
data budget counts: the tokens a domain gives in every phase add up), ``floor``/``cap`` are the
lowest and highest whole-run ratio a domain can take over the schedules (what the analytic
data-feasibility check needs), and :meth:`ScheduleSpace.to_schedule` gives the phases
themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mixopt.data.phases import overall_mixture, phase_shares
from mixopt.errors import SearchError
from mixopt.search.space import MixtureSpace


class ScheduleSpace:
    """Schedules of ``K`` phases over the same domains (see the module docstring).

    Args:
        phases: ``K >= 2`` mixture spaces, one per phase, over the same domains in the same order.
        ends: ``K - 1`` boundaries, each a number in (0, 1) (fixed) or a ``(low, high)`` pair
            with ``0 < low < high < 1`` (searched).

    Raises:
        SearchError: fewer than two phases, phases over other domains, a boundary outside
            (0, 1), or boundaries that are not strictly increasing / searched ranges that
            overlap (every problem at once).

    Attributes:
        phases: the ``K`` mixture spaces.
        ends: ``K - 1`` ``(low, high)`` ranges (``low == high`` when fixed).
        domains: the ``k`` domain names.
        floor: ``(k,)`` lowest whole-run ratio of each domain over the schedules (an outer bound:
            from each phase's floors and caps alone, not the tighter limits they set together).
        cap: ``(k,)`` highest whole-run ratio of each domain (an outer bound, likewise).
        dim: number of cube coordinates.
    """

    def __init__(self, phases: Sequence[MixtureSpace], ends: Sequence[float | Sequence[float]]) -> None:
        self.phases: tuple[MixtureSpace, ...] = tuple(phases)
        problems: list[str] = []
        K = len(self.phases)
        if K < 2:
            raise SearchError(f"A schedule needs at least 2 phases, got {K}; a one-phase search is a constant mixture (drop [phases]).")
        self.domains: tuple[str, ...] = self.phases[0].domains
        for p, m in enumerate(self.phases[1:], start=2):
            if m.domains != self.domains:
                problems.append(f"phase {p} is over domains {list(m.domains)}, phase 1 over {list(self.domains)}: every phase "
                                "has the same domains in the same order")
        if len(ends) != K - 1:
            problems.append(f"{K} phases need {K - 1} boundaries (phase {K} ends at 1), got {len(ends)}")
        rng: list[tuple[float, float]] = []
        for p, e in enumerate(ends, start=1):
            lo, hi = _end_range(e, p, problems)
            rng.append((lo, hi))
        for p in range(1, len(rng)):
            if not rng[p - 1][1] < rng[p][0]:
                problems.append(f"phase_end@{p} ({_show(rng[p - 1])}) must end before phase_end@{p + 1} ({_show(rng[p])}) starts: "
                                "boundaries increase, and searched ranges may not overlap")
        if problems:
            raise SearchError("Invalid schedule space:\n" + "\n".join(f"  - {x}" for x in problems))
        self.ends: tuple[tuple[float, float], ...] = tuple(rng)
        self._searched = tuple(p for p, (lo, hi) in enumerate(rng) if hi > lo)
        self.dim: int = sum(m.dim for m in self.phases) + len(self._searched)
        self.floor, self.cap = self._overall_bounds()
        self.floor.setflags(write=False)
        self.cap.setflags(write=False)

    @property
    def k(self) -> int:
        """Number of domains."""
        return len(self.domains)

    @property
    def n_phases(self) -> int:
        """Number of phases K."""
        return len(self.phases)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        """``u@<p>:<domain>`` per phase (phase ``p`` from 1), then ``u:phase_end@<p>`` per searched boundary."""
        names = [f"u@{p}:{c[2:]}" for p, m in enumerate(self.phases, start=1) for c in m.coordinate_names]
        return tuple(names + [f"u:phase_end@{p + 1}" for p in self._searched])

    def __repr__(self) -> str:
        ends = ", ".join(f"phase_end@{p}={_show(r)}" for p, r in enumerate(self.ends, start=1))
        return f"ScheduleSpace({'; '.join(repr(m) for m in self.phases)}; {ends}; dim={self.dim})"

    # -- the map ------------------------------------------------------------------------------------
    def to_schedule(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cube points ``(n, dim)`` to ``(phases (n, K, k), phase_end (n, K-1))``."""
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 1:
            u = u[None, :] if self.dim else u.reshape(-1, 0)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise SearchError(f"cube points must have shape (n, {self.dim}), got {u.shape}.")
        n, j = u.shape[0], 0
        P = np.empty((n, self.n_phases, self.k))
        for p, m in enumerate(self.phases):
            P[:, p] = m.to_mixture(u[:, j : j + m.dim])
            j += m.dim
        E = np.empty((n, self.n_phases - 1))
        for p, (lo, hi) in enumerate(self.ends):
            if hi > lo:
                E[:, p] = lo + np.clip(u[:, j], 0.0, 1.0) * (hi - lo)
                j += 1
            else:
                E[:, p] = lo
        return P, E

    def to_mixture(self, u: np.ndarray) -> np.ndarray:
        """``(n, k)`` the whole run's token-weighted mixture of the schedules at cube points ``(n, dim)``."""
        return overall_mixture(*self.to_schedule(u))

    def to_unit(self, mixture: np.ndarray, phase_end: np.ndarray | None = None, *, atol: float = 1e-6) -> np.ndarray:
        """Inverse map (for warm starts): schedules to cube points ``(n, dim)``.

        Args:
            mixture: ``(n, K, k)`` phase ratios, or ``(n, k)`` for the same mixture in every phase.
            phase_end: ``(n, K-1)`` boundaries (clipped to their ranges); None = the middle of each range.
            atol: tolerance on the bounds and the sums.

        Raises:
            SearchError: a phase mixture outside its phase's bounds.
        """
        P = np.asarray(mixture, dtype=np.float64)
        if P.ndim == 1:
            P = P[None, :]
        if P.ndim == 2:
            P = np.repeat(P[:, None, :], self.n_phases, axis=1)
        if P.ndim != 3 or P.shape[1:] != (self.n_phases, self.k):
            raise SearchError(f"schedules must have shape (n, {self.n_phases}, {self.k}) over {list(self.domains)}, got {P.shape}.")
        n = P.shape[0]
        cols = []
        for p, m in enumerate(self.phases):
            try:
                cols.append(m.to_unit(P[:, p], atol=atol))
            except SearchError as e:
                raise SearchError(f"Phase {p + 1}: {e}") from None
        E = None if phase_end is None else np.broadcast_to(np.asarray(phase_end, dtype=np.float64).reshape(-1, self.n_phases - 1),
                                                            (n, self.n_phases - 1))
        for p in self._searched:
            lo, hi = self.ends[p]
            x = np.full(n, 0.5) if E is None else np.clip((E[:, p] - lo) / (hi - lo), 0.0, 1.0)
            cols.append(x[:, None])
        return np.hstack(cols) if cols else np.zeros((n, 0))

    def contains(self, phases: np.ndarray, phase_end: np.ndarray, *, atol: float = 1e-9) -> np.ndarray:
        """``(n,)`` bool: which schedules lie in the space (every phase in its bounds, boundaries in their ranges)."""
        P = np.asarray(phases, dtype=np.float64)
        E = np.asarray(phase_end, dtype=np.float64).reshape(P.shape[0], -1)
        ok = np.ones(P.shape[0], dtype=bool)
        for p, m in enumerate(self.phases):
            ok &= m.contains(P[:, p], atol=atol)
        for p, (lo, hi) in enumerate(self.ends):
            ok &= (E[:, p] >= lo - atol) & (E[:, p] <= hi + atol)
        return ok

    def describe(self) -> dict[str, object]:
        """JSON-able bounds of every phase and the boundary ranges (part of a study's problem)."""
        return {"floor": [[round(float(x), 12) for x in m.floor] for m in self.phases],
                "cap": [[round(float(x), 12) for x in m.cap] for m in self.phases],
                "ends": [list(r) for r in self.ends]}

    def center(self) -> np.ndarray:
        """``(k,)`` the whole-run mixture at the cube centre."""
        return self.to_mixture(np.full((1, self.dim), 0.5))[0]

    def _overall_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest whole-run ratio per domain: the share-weighted phase floors (caps),
        minimised (maximised) over the corners of the boundary ranges (the ratio is linear in the shares)."""
        corners = np.array(np.meshgrid(*[list(r) for r in self.ends], indexing="ij")).reshape(len(self.ends), -1).T
        shares = phase_shares(corners)  # (c, K)
        lo = np.stack([m.floor for m in self.phases])  # (K, k)
        hi = np.stack([m.cap for m in self.phases])
        return np.min(shares @ lo, axis=0), np.minimum(np.max(shares @ hi, axis=0), 1.0)


def _end_range(e: float | Sequence[float], p: int, problems: list[str]) -> tuple[float, float]:
    """A boundary as ``(low, high)``; problems appended (returns a harmless range then)."""
    if isinstance(e, (int, float)) and not isinstance(e, bool):
        lo = hi = float(e)
    elif isinstance(e, Sequence) and len(e) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in e):
        lo, hi = float(e[0]), float(e[1])
    else:
        problems.append(f"phase_end@{p} must be a number (fixed) or a [low, high] pair (searched), got {e!r}")
        return (p * 1e-3, p * 1e-3)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi < 1.0):
        problems.append(f"phase_end@{p} = {e!r} must lie strictly inside (0, 1) with low <= high: it is the fraction of the "
                        "run's tokens where the phase ends, e.g. 0.8")
        return (p * 1e-3, p * 1e-3)
    return lo, hi


def _show(r: tuple[float, float]) -> str:
    return f"{r[0]:g}" if r[0] == r[1] else f"[{r[0]:g}, {r[1]:g}]"


__all__ = ["ScheduleSpace"]
