"""The search space: mixtures on a bounded simplex, a compute budget, and data limits.

The space belongs to mixopt, not to Optuna. Optuna only ever sees a unit cube
``[0, 1]^dim``; :class:`SearchSpace` maps cube points to models (a mixture, FLOPs,
parameters and tokens) and back.

Mixtures
--------
:class:`MixtureSpace` is the polytope ``{r : floor_d <= r_d <= cap_d, sum_d r_d = 1}``.
Pinned domains have ``floor = cap = pin``; a domain with ``cap = 0`` is excluded. The map
from the cube is **stick-breaking with sequential conditional bounds**: with the floors
taken off (``s_d = r_d - floor_d``, widths ``w_d = cap_d - floor_d``, free mass
``S = 1 - sum(floor)``), the free domains are filled in order; domain ``i`` gets

    lo_i = max(0, M - sum_{j>i} w_j),   hi_i = min(w_i, M),   s_i = lo_i + v_i (hi_i - lo_i)

of the mass ``M`` still to place, and the last free domain takes what is left. ``lo`` and
``hi`` are exactly the values for which the remaining domains can still be filled, so every
cube point maps to a feasible mixture (on the simplex, within the bounds) and every feasible
mixture is reached. ``v_i = 1 - (1 - u_i)^(1 / m_i)`` (the inverse CDF of Beta(1, m_i), with
``m_i`` the number of free domains after ``i``) makes a uniform cube point a *uniform*
point on the simplex when no bounds bind (the classic Dirichlet(1) stick-breaking), so
random and quasi-random samplers cover the simplex evenly instead of piling up on the
first domain. Each step is a monotone bijection of ``[0, 1]``, so the map is a bijection
from the cube to the polytope wherever ``hi_i > lo_i``; :meth:`MixtureSpace.to_unit` is
its inverse (used for warm starts) and round-trips.

Compute
-------
:class:`ComputeSpace` gives FLOPs ``C``, parameters ``N`` and tokens ``D`` with
``C = 6·N·D``, in one of two ways:

* ``flops=(lo, hi)`` (log-uniform) with ``tokens_per_param=rho`` (a number or a log-uniform
  range). Tokens are derived by the **compute-optimal rule** ``D = sqrt(rho·C/6)``,
  ``N = C/(6·D)`` (so ``D/N = rho``); ``rho = 20`` is the Chinchilla ratio. A range of
  ``rho`` lets the search trade model size for data (over-training).
* ``params=(lo, hi)`` and ``tokens=(lo, hi)`` (each log-uniform): ``C = 6·N·D``.

A range with ``lo == hi`` is fixed and takes no cube dimension.

Data limits
-----------
:class:`DataBudget` holds the unique tokens available per domain and the most epochs
allowed over them. A model trained on ``D`` tokens of mixture ``r`` reads ``r_d·D`` tokens
of domain ``d``; it is feasible if ``r_d·D <= max_epochs_d · available_d`` for every
domain. The runner hands Optuna one constraint value (``<= 0`` feasible)::

    data = max_d ( r_d·D / (max_epochs_d · available_d) ) - 1

(the worst domain's over-use, relative). Whether *any* mixture is feasible is decided
analytically before any work: at the smallest token count ``D_min`` of the space, domain
``d`` can supply at most ``min(cap_d, max_epochs_d·available_d / D_min)`` of the mixture;
a feasible mixture exists iff every floor fits under that and the supplies sum to at
least 1 (the minimum over mixtures of ``max_d r_d·D/supply_d`` is then <= 1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixopt.data.table import FLOPS_PER_PARAM_TOKEN, training_flops
from mixopt.errors import SearchError

logger = logging.getLogger(__name__)

#: Tolerance used when checking that bounds are consistent (sums of floors and caps).
BOUNDS_ATOL = 1e-9


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class MixtureSpace:
    """Mixtures over ``k`` domains with per-domain floors, caps and pins.

    Args:
        domains: the ``k`` domain names, in the order of the mixture columns (``k = 0``:
            no mixture, for surrogates that do not depend on it; the space is compute only).
        floors: ``{domain: lowest ratio}`` (default 0 for every domain).
        caps: ``{domain: highest ratio}`` (default 1).
        pins: ``{domain: fixed ratio}``; a pinned domain may not also have a floor or cap.

    Raises:
        SearchError: unknown domain names, ratios outside ``[0, 1]``, a floor above its cap,
            floors summing over 1 or caps summing under 1 (every problem at once).

    Attributes:
        domains: the ``k`` domain names.
        floor: ``(k,)`` lowest ratio per domain.
        cap: ``(k,)`` highest ratio per domain.
        free: indices of the domains whose ratio varies (``floor < cap``), in order.
        dim: number of cube coordinates, ``max(len(free) - 1, 0)``.
    """

    def __init__(
        self,
        domains: Sequence[str],
        *,
        floors: Mapping[str, float] | None = None,
        caps: Mapping[str, float] | None = None,
        pins: Mapping[str, float] | None = None,
    ) -> None:
        self.domains: tuple[str, ...] = tuple(str(d) for d in domains)
        floors, caps, pins = dict(floors or {}), dict(caps or {}), dict(pins or {})
        k = len(self.domains)
        problems: list[str] = []
        if len(set(self.domains)) != k:
            dup = sorted({d for d in self.domains if self.domains.count(d) > 1})
            problems.append(f"domain names must be unique, got duplicates {dup}")
        known = set(self.domains)
        for what, m in (("floor", floors), ("cap", caps), ("pin", pins)):
            unknown = sorted(set(m) - known)
            if unknown:
                problems.append(f"{what} given for unknown domain(s) {unknown}; the domains are {list(self.domains)}")
            for d, v in m.items():
                try:
                    fv = float(v)
                except (TypeError, ValueError):
                    problems.append(f"{what} of {d!r} must be a number, got {v!r}")
                    continue
                if not (math.isfinite(fv) and 0.0 <= fv <= 1.0):
                    problems.append(f"{what} of {d!r} must be a ratio in [0, 1], got {v!r}")
        both = sorted(set(pins) & (set(floors) | set(caps)))
        if both:
            problems.append(f"domain(s) {both} are pinned and also have a floor or cap; give either a pin or bounds")
        if problems:
            raise SearchError("Invalid mixture bounds:\n" + "\n".join(f"  - {p}" for p in problems))
        lo = np.array([float(pins.get(d, floors.get(d, 0.0))) for d in self.domains])
        hi = np.array([float(pins.get(d, caps.get(d, 1.0))) for d in self.domains])
        bad = [d for d, a, b in zip(self.domains, lo, hi, strict=True) if a > b]
        if bad:
            problems.append(
                "floor > cap for " + ", ".join(f"{d} (floor {_fmt(lo[i])} > cap {_fmt(hi[i])})"
                                               for i, d in enumerate(self.domains) if d in bad)
                + "; lower the floor or raise the cap"
            )
        if k and lo.sum() > 1 + BOUNDS_ATOL:
            named = [d for d in self.domains if lo[self.domains.index(d)] > 0]
            problems.append(
                f"sum(floors and pins) <= 1 must hold, but got {_fmt(lo.sum())} for domains ({', '.join(named)}); lower the floors"
            )
        if k and hi.sum() < 1 - BOUNDS_ATOL:
            problems.append(
                f"sum(caps) >= 1 must hold so that the ratios can sum to 1, but got {_fmt(hi.sum())} for domains "
                f"({', '.join(self.domains)}); raise the caps"
            )
        if problems:
            raise SearchError("Infeasible mixture bounds:\n" + "\n".join(f"  - {p}" for p in problems))
        self.floor: np.ndarray = lo
        self.cap: np.ndarray = hi
        self.floor.setflags(write=False)
        self.cap.setflags(write=False)
        self.free: tuple[int, ...] = tuple(int(i) for i in np.flatnonzero(hi - lo > BOUNDS_ATOL))
        self.dim: int = max(len(self.free) - 1, 0)
        # free mass once the floors are placed, and the widths of the free domains
        self._mass = float(max(1.0 - lo.sum(), 0.0))
        w = (hi - lo)[list(self.free)] if self.free else np.zeros(0)
        self._width = w
        # sum of widths of the free domains after position i
        self._after = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]]) if len(w) else np.zeros(0)

    @property
    def k(self) -> int:
        """Number of domains."""
        return len(self.domains)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        """Names of the cube coordinates: ``u:<domain>`` for each free domain but the last."""
        return tuple(f"u:{self.domains[i]}" for i in self.free[:-1])

    def __repr__(self) -> str:
        parts = []
        for d, a, b in zip(self.domains, self.floor, self.cap, strict=True):
            parts.append(f"{d}={_fmt(a)}" if a == b else f"{d}∈[{_fmt(a)}, {_fmt(b)}]")
        return f"MixtureSpace({', '.join(parts)}; dim={self.dim})"

    # -- the bijection ----------------------------------------------------------------------
    def _bounds(self, mass: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo = np.maximum(0.0, mass - self._after[i])
        hi = np.minimum(self._width[i], mass)
        return lo, np.maximum(hi, lo)

    def to_mixture(self, u: np.ndarray) -> np.ndarray:
        """Map cube points to mixtures.

        Args:
            u: ``(n, dim)`` points in ``[0, 1]^dim`` (values outside are clipped).

        Returns:
            ``(n, k)`` mixture ratios: each row sums to 1 and lies within ``[floor, cap]``.
        """
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 1:
            u = u[None, :] if self.dim else u.reshape(-1, 0)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise SearchError(f"cube points must have shape (n, {self.dim}), got {u.shape}.")
        n = u.shape[0]
        r = np.broadcast_to(self.floor, (n, self.k)).copy()
        if not self.free:
            return r
        u = np.clip(u, 0.0, 1.0)
        m = len(self.free)
        mass = np.full(n, self._mass)
        for i in range(m - 1):
            lo, hi = self._bounds(mass, i)
            v = 1.0 - (1.0 - u[:, i]) ** (1.0 / (m - 1 - i))
            s = lo + v * (hi - lo)
            r[:, self.free[i]] += s
            mass = mass - s
        last = self.free[-1]
        r[:, last] += np.clip(mass, 0.0, self._width[-1])
        return r

    def to_unit(self, mixture: np.ndarray, *, atol: float = 1e-6) -> np.ndarray:
        """Inverse map: mixtures to cube points (for warm starts).

        Args:
            mixture: ``(n, k)`` ratios in this space (rows sum to 1, within the bounds, up to
                ``atol``).
            atol: tolerance on the bounds and the sum.

        Returns:
            ``(n, dim)`` cube points ``u`` with ``to_mixture(u) == mixture`` (to rounding).
            Where a coordinate is not identifiable (its conditional interval has zero width)
            it is set to 0.5.

        Raises:
            SearchError: a mixture outside the space.
        """
        r = np.asarray(mixture, dtype=np.float64)
        if r.ndim == 1:
            r = r[None, :]
        if r.ndim != 2 or r.shape[1] != self.k:
            raise SearchError(f"mixtures must have shape (n, {self.k}) over {list(self.domains)}, got {r.shape}.")
        bad = ~self.contains(r, atol=atol)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SearchError(
                f"Mixture {dict(zip(self.domains, np.round(r[i], 6).tolist(), strict=True))} is outside the search space "
                f"{self!r}: ratios must sum to 1 and respect the floors, caps and pins. Fix the warm-start mixture."
            )
        n = r.shape[0]
        u = np.full((n, self.dim), 0.5)
        m = len(self.free)
        mass = np.full(n, self._mass)
        for i in range(m - 1):
            lo, hi = self._bounds(mass, i)
            s = r[:, self.free[i]] - self.floor[self.free[i]]
            width = hi - lo
            ok = width > 1e-15
            v = np.where(ok, (s - lo) / np.where(ok, width, 1.0), 0.5)
            v = np.clip(v, 0.0, 1.0)
            u[:, i] = 1.0 - (1.0 - v) ** (m - 1 - i)
            # follow the mass the forward map will place, so a clipped coordinate stays consistent
            mass = mass - (lo + v * width)
        return u

    def contains(self, mixture: np.ndarray, *, atol: float = 1e-9) -> np.ndarray:
        """``(n,)`` bool: which rows of an ``(n, k)`` mixture array lie in the space."""
        r = np.atleast_2d(np.asarray(mixture, dtype=np.float64))
        if self.k == 0:
            return np.ones(r.shape[0], dtype=bool)
        return (
            np.all(np.isfinite(r), axis=1)
            & (np.abs(r.sum(axis=1) - 1.0) <= atol)
            & np.all(r >= self.floor - atol, axis=1)
            & np.all(r <= self.cap + atol, axis=1)
        )

    def center(self) -> np.ndarray:
        """``(k,)`` the mixture at the cube centre (a convenient interior default)."""
        return self.to_mixture(np.full((1, self.dim), 0.5))[0]


def _range(value: float | Sequence[float] | None, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        lo = hi = float(value)
    else:
        vals = [float(v) for v in value]
        if len(vals) == 1:
            vals = vals * 2
        if len(vals) != 2:
            raise SearchError(f"{what} must be a number or a [low, high] pair, got {value!r}.")
        lo, hi = vals
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise SearchError(f"{what} must be finite with 0 < low <= high, got {value!r}; give e.g. [1e20, 1e22].")
    return lo, hi


@dataclass(frozen=True, kw_only=True)
class ComputeSpace:
    """Training compute as a search variable (see the module docstring for the rules).

    Attributes:
        flops: ``(lo, hi)`` FLOPs, log-uniform; ``lo == hi`` fixes the budget. Mutually
            exclusive with ``params``/``tokens``.
        tokens_per_param: ``rho = D/N`` used to derive tokens from FLOPs: a number or a
            log-uniform ``(lo, hi)`` range (only with ``flops``).
        params: ``(lo, hi)`` parameter counts N, log-uniform (with ``tokens``).
        tokens: ``(lo, hi)`` training tokens D, log-uniform (with ``params``).
    """

    flops: tuple[float, float] | None = None
    tokens_per_param: tuple[float, float] | float = 20.0
    params: tuple[float, float] | None = None
    tokens: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("flops", _range(self.flops, "flops"))
        set_("params", _range(self.params, "params"))
        set_("tokens", _range(self.tokens, "tokens"))
        set_("tokens_per_param", _range(self.tokens_per_param, "tokens_per_param"))
        if self.flops is not None and (self.params is not None or self.tokens is not None):
            raise SearchError("Give compute either as flops (with tokens_per_param) or as params and tokens, not both.")
        if self.flops is None and (self.params is None or self.tokens is None):
            raise SearchError(
                "Compute needs either flops = [low, high] (tokens derived by D = sqrt(tokens_per_param·C/6)) "
                "or both params = [low, high] and tokens = [low, high]."
            )

    @property
    def mode(self) -> str:
        """``"flops"`` or ``"params_tokens"``."""
        return "flops" if self.flops is not None else "params_tokens"

    def _ranges(self) -> list[tuple[str, tuple[float, float]]]:
        if self.mode == "flops":
            out = [("flops", self.flops), ("tokens_per_param", self.tokens_per_param)]
        else:
            out = [("params", self.params), ("tokens", self.tokens)]
        return [(n, r) for n, r in out]  # type: ignore[misc]

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        """Cube coordinate names of the ranges that vary (``u:log_flops``, ...)."""
        return tuple(f"u:log_{n}" for n, (lo, hi) in self._ranges() if hi > lo)

    @property
    def dim(self) -> int:
        return len(self.coordinate_names)

    def decode(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cube points to models.

        Args:
            u: ``(n, dim)`` points in ``[0, 1]^dim``.

        Returns:
            ``(flops, params, tokens)``, each ``(n,)`` (FLOPs, parameters, tokens).
        """
        u = np.asarray(u, dtype=np.float64)
        if u.ndim != 2:
            u = u.reshape(-1, self.dim) if self.dim else u.reshape(-1, 0)
        if u.shape[1] != self.dim:
            raise SearchError(f"compute coordinates must have shape (n, {self.dim}), got {u.shape}.")
        u = np.clip(u, 0.0, 1.0)
        n = u.shape[0]
        vals: dict[str, np.ndarray] = {}
        j = 0
        for name, (lo, hi) in self._ranges():
            if hi > lo:
                vals[name] = np.exp(math.log(lo) + u[:, j] * (math.log(hi) - math.log(lo)))
                j += 1
            else:
                vals[name] = np.full(n, lo)
        if self.mode == "flops":
            c = vals["flops"]
            d = np.sqrt(vals["tokens_per_param"] * c / FLOPS_PER_PARAM_TOKEN)
            return c, c / (FLOPS_PER_PARAM_TOKEN * d), d
        p, d = vals["params"], vals["tokens"]
        return training_flops(p, d), p, d

    def encode(self, flops: np.ndarray, params: np.ndarray | None = None, tokens: np.ndarray | None = None) -> np.ndarray:
        """Inverse of :meth:`decode` (models to cube points, clipped to the ranges).

        In ``flops`` mode ``tokens`` (or ``params``) fix ``rho`` when ``tokens_per_param`` is a
        range; otherwise ``rho`` is taken at the middle of its range.
        """
        flops = np.atleast_1d(np.asarray(flops, dtype=np.float64))
        n = flops.shape[0]
        vals: dict[str, np.ndarray] = {}
        if self.mode == "flops":
            vals["flops"] = flops
            if tokens is not None:
                d = np.broadcast_to(np.asarray(tokens, dtype=np.float64), (n,))
                vals["tokens_per_param"] = FLOPS_PER_PARAM_TOKEN * d**2 / flops
            elif params is not None:
                p = np.broadcast_to(np.asarray(params, dtype=np.float64), (n,))
                vals["tokens_per_param"] = flops / (FLOPS_PER_PARAM_TOKEN * p**2)
            else:
                lo, hi = self.tokens_per_param  # type: ignore[misc]
                vals["tokens_per_param"] = np.full(n, math.sqrt(lo * hi))
        else:
            if params is None and tokens is None:
                raise SearchError("Encoding compute in params/tokens mode needs params or tokens.")
            if params is None:
                params = flops / (FLOPS_PER_PARAM_TOKEN * np.asarray(tokens))
            if tokens is None:
                tokens = flops / (FLOPS_PER_PARAM_TOKEN * np.asarray(params))
            vals["params"] = np.broadcast_to(np.asarray(params, dtype=np.float64), (n,))
            vals["tokens"] = np.broadcast_to(np.asarray(tokens, dtype=np.float64), (n,))
        cols = []
        for name, (lo, hi) in self._ranges():
            if hi > lo:
                x = (np.log(vals[name]) - math.log(lo)) / (math.log(hi) - math.log(lo))
                cols.append(np.clip(x, 0.0, 1.0))
        return np.column_stack(cols) if cols else np.zeros((n, 0))

    def token_range(self) -> tuple[float, float]:
        """Smallest and largest training tokens D over the space."""
        if self.mode == "flops":
            (c0, c1), (r0, r1) = self.flops, self.tokens_per_param  # type: ignore[misc]
            return math.sqrt(r0 * c0 / FLOPS_PER_PARAM_TOKEN), math.sqrt(r1 * c1 / FLOPS_PER_PARAM_TOKEN)
        return self.tokens  # type: ignore[return-value]

    def flops_range(self) -> tuple[float, float]:
        if self.mode == "flops":
            return self.flops  # type: ignore[return-value]
        (p0, p1), (d0, d1) = self.params, self.tokens  # type: ignore[misc]
        return training_flops(p0, d0), training_flops(p1, d1)


@dataclass(frozen=True, kw_only=True)
class DataBudget:
    """Unique tokens available per domain and how often they may be repeated.

    Attributes:
        available: ``{domain: unique tokens available}``; domains not listed are unlimited.
        max_epochs: default maximum number of passes over a domain's unique tokens.
        epochs: ``{domain: max epochs}`` overrides of ``max_epochs``.
    """

    available: Mapping[str, float] = field(default_factory=dict)
    max_epochs: float = 4.0
    epochs: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        for d, v in self.available.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                problems.append(f"available tokens of {d!r} must be a number > 0, got {v!r}")
        if not (isinstance(self.max_epochs, (int, float)) and math.isfinite(self.max_epochs) and self.max_epochs > 0):
            problems.append(f"max_epochs must be a number > 0, got {self.max_epochs!r}")
        for d, v in self.epochs.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                problems.append(f"max epochs of {d!r} must be a number > 0, got {v!r}")
        extra = sorted(set(self.epochs) - set(self.available))
        if extra:
            problems.append(f"epochs given for {extra} but no available tokens for them; add them to available")
        if problems:
            raise SearchError("Invalid data budget:\n" + "\n".join(f"  - {p}" for p in problems))
        object.__setattr__(self, "available", {str(k): float(v) for k, v in self.available.items()})
        object.__setattr__(self, "epochs", {str(k): float(v) for k, v in self.epochs.items()})

    def supply(self, domains: Sequence[str]) -> np.ndarray:
        """``(k,)`` most tokens each domain may contribute (``inf`` where unlimited)."""
        return np.array([
            self.available[d] * self.epochs.get(d, self.max_epochs) if d in self.available else np.inf for d in domains
        ])


@dataclass(frozen=True, eq=False)
class Points:
    """Decoded models of a batch.

    Attributes:
        mixture: ``(n, k)`` mixture ratios (of a schedule: the whole run's token-weighted mixture).
        flops: ``(n,)`` training compute, FLOPs.
        params: ``(n,)`` parameters N.
        tokens: ``(n,)`` training tokens D.
        phases: ``(n, K, k)`` phase ratios of schedules (None for constant mixtures).
        phase_end: ``(n, K-1)`` phase ends, fractions of the run's tokens (None for constant mixtures).
    """

    mixture: np.ndarray
    flops: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    phases: np.ndarray | None = None
    phase_end: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.flops.shape[0])

    def take(self, idx: np.ndarray) -> Points:
        """The points at rows ``idx``."""
        idx = np.asarray(idx)
        return Points(mixture=self.mixture[idx], flops=self.flops[idx], params=self.params[idx], tokens=self.tokens[idx],
                      phases=None if self.phases is None else self.phases[idx],
                      phase_end=None if self.phase_end is None else self.phase_end[idx])

    def tile(self, s: int) -> Points:
        """The ``n`` points repeated ``s`` times (``s*n`` rows, repeat-major)."""
        return Points(mixture=np.tile(self.mixture, (s, 1)), flops=np.tile(self.flops, s), params=np.tile(self.params, s),
                      tokens=np.tile(self.tokens, s), phases=None if self.phases is None else np.tile(self.phases, (s, 1, 1)),
                      phase_end=None if self.phase_end is None else np.tile(self.phase_end, (s, 1)))

    def features(self) -> np.ndarray:
        """``(n, f)`` what tells two points' mixtures apart: the ratios, or a schedule's phase ratios and boundaries."""
        if self.phases is None:
            return self.mixture
        return np.hstack([self.phases.reshape(len(self), -1), np.asarray(self.phase_end).reshape(len(self), -1)])


class SearchSpace:
    """Mixture × compute, with data limits: the map between the unit cube and models.

    Args:
        mixture: the mixture polytope, or a :class:`~mixopt.search.schedule.ScheduleSpace` for a
            search over schedules (decoded points then carry their phases; the data limits count
            the whole run's tokens of each domain, over every phase).
        compute: the compute budget.
        data: token availability; None means unlimited data.

    Raises:
        SearchError: data limits name unknown domains, or no mixture satisfies the data
            limits even at the smallest token count of the space (checked analytically).

    Attributes:
        dim: cube dimension (mixture coordinates first, then compute coordinates).
        names: cube coordinate names (used as Optuna parameter names).
    """

    def __init__(self, mixture: MixtureSpace | Any, compute: ComputeSpace, data: DataBudget | None = None) -> None:
        self.mixture = mixture
        self.compute = compute
        self.data = data if data is not None and data.available else None
        self.dim: int = mixture.dim + compute.dim
        self.names: tuple[str, ...] = mixture.coordinate_names + compute.coordinate_names
        self._supply = self.data.supply(mixture.domains) if self.data else np.full(mixture.k, np.inf)
        if self.data is not None:
            unknown = sorted(set(self.data.available) - set(mixture.domains))
            if unknown:
                raise SearchError(
                    f"Token availability given for unknown domain(s) {unknown}; the domains are {list(mixture.domains)}. "
                    "Fix the names under [tokens]."
                )
            self._check_data_feasible()

    @property
    def domains(self) -> tuple[str, ...]:
        return self.mixture.domains

    @property
    def has_data_constraint(self) -> bool:
        """True if some domain has a limited token supply."""
        return bool(np.isfinite(self._supply).any())

    def __repr__(self) -> str:
        return f"SearchSpace({self.mixture!r}, {self.compute!r}, data={self.data!r})"

    def decode(self, u: np.ndarray) -> Points:
        """Cube points ``(n, dim)`` to models (:class:`Points`)."""
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 1:
            u = u.reshape(1, -1) if u.size else u.reshape(-1, self.dim)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise SearchError(f"cube points must have shape (n, {self.dim}), got {u.shape}.")
        km = self.mixture.dim
        flops, params, tokens = self.compute.decode(u[:, km:])
        if self.schedule is not None:
            from mixopt.data.phases import overall_mixture

            P, E = self.schedule.to_schedule(u[:, :km])
            return Points(mixture=overall_mixture(P, E), flops=flops, params=params, tokens=tokens, phases=P, phase_end=E)
        mix = self.mixture.to_mixture(u[:, :km])
        return Points(mixture=mix, flops=flops, params=params, tokens=tokens)

    @property
    def schedule(self) -> Any:
        """The :class:`~mixopt.search.schedule.ScheduleSpace` of a search over schedules, else None."""
        return self.mixture if hasattr(self.mixture, "to_schedule") else None

    def encode(self, mixture: np.ndarray, flops: np.ndarray, params: np.ndarray | None = None,
               tokens: np.ndarray | None = None) -> np.ndarray:
        """Models to cube points ``(n, dim)`` (inverse of :meth:`decode`; for warm starts)."""
        um = self.mixture.to_unit(mixture)
        uc = self.compute.encode(np.broadcast_to(np.asarray(flops, dtype=np.float64), (um.shape[0],)), params, tokens)
        return np.hstack([um, uc])

    def epochs(self, points: Points) -> np.ndarray:
        """``(n, k)`` passes over each domain's unique tokens, ``r_d·D / available_d`` (0 if unlimited)."""
        avail = np.array([self.data.available.get(d, np.inf) if self.data else np.inf for d in self.domains])
        return points.mixture * points.tokens[:, None] / avail

    def data_violation(self, points: Points) -> np.ndarray:
        """``(n,)`` data constraint value ``max_d r_d·D / supply_d - 1`` (``<= 0`` feasible)."""
        if not self.has_data_constraint:
            return np.full(len(points), -1.0)
        use = points.mixture * points.tokens[:, None] / self._supply
        return use.max(axis=1) - 1.0

    # -- analytic feasibility -----------------------------------------------------------------
    def _feasible_at(self, tokens: float) -> tuple[bool, np.ndarray]:
        share = np.minimum(self.mixture.cap, self._supply / tokens)
        ok = bool(np.all(self.mixture.floor <= share + BOUNDS_ATOL) and share.sum() >= 1 - BOUNDS_ATOL)
        return ok, share

    def max_feasible_tokens(self) -> float:
        """Largest token count D at which some mixture satisfies the data limits (inf if unlimited)."""
        if not self.has_data_constraint:
            return math.inf
        lo, hi = 1.0, 1e30
        if not self._feasible_at(lo)[0]:
            return 0.0
        if self._feasible_at(hi)[0]:
            return math.inf
        for _ in range(200):  # bisection in log space
            mid = math.sqrt(lo * hi)
            if self._feasible_at(mid)[0]:
                lo = mid
            else:
                hi = mid
            if hi / lo < 1 + 1e-12:
                break
        return lo

    def _check_data_feasible(self) -> None:
        d_min, d_max = self.compute.token_range()
        ok, share = self._feasible_at(d_min)
        if not ok:
            problems = []
            for i, d in enumerate(self.domains):
                if self.mixture.floor[i] > share[i] + BOUNDS_ATOL:
                    problems.append(
                        f"domain {d!r} has floor {_fmt(self.mixture.floor[i])} but can supply at most "
                        f"{_fmt(share[i])} of {d_min:.3g} tokens ({self._supply[i]:.3g} = available × max epochs)"
                    )
            if share.sum() < 1 - BOUNDS_ATOL:
                problems.append(
                    f"all domains together can supply at most {_fmt(share.sum())} of the {d_min:.3g} tokens needed at the "
                    f"smallest compute ({self.compute.flops_range()[0]:.3g} FLOPs): "
                    + ", ".join(f"{d}≤{_fmt(s)}" for d, s in zip(self.domains, share, strict=True))
                )
            raise SearchError(
                "The token budget is impossible for every mixture:\n" + "\n".join(f"  - {p}" for p in problems)
                + "\nAdd unique tokens, allow more epochs (max_epochs), lower the floors or lower the compute range."
            )
        d_ok = self.max_feasible_tokens()
        if d_ok < d_max:
            logger.info(
                "Data limits make every mixture infeasible above %.3g training tokens (the space goes up to %.3g); "
                "those models are marked infeasible.", d_ok, d_max,
            )


__all__ = ["BOUNDS_ATOL", "ComputeSpace", "DataBudget", "MixtureSpace", "Points", "SearchSpace"]
