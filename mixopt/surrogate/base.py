"""The surrogate interface shared by FLP, FP, FLP-M and the comparators.

A surrogate is an sklearn-style estimator: ``__init__`` stores settings only, ``fit(runs)``
validates, learns and returns ``self`` (learned state ends in ``_``), ``predict(targets)``
returns a :class:`Prediction` with a mean and an interval for every predicted quantity.
Backtests, the search and the HTTP API only ever see this interface.

Predicted quantities are named like run-table columns: ``score:<benchmark>`` and
``loss:<domain>`` (or ``loss`` for the overall loss).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl

from mixopt._params import init_params
from mixopt.data.table import Benchmark, RunTable, training_flops
from mixopt.data.thinning import MAX_CHECKPOINTS_PER_RUN, thin_checkpoints
from mixopt.errors import ModelFileError, NotFittedError, NotPredictableError, SchemaError

#: Version of the on-disk model format written by :func:`save_surrogate`. Version 2 added
#: ``manifest.json`` (SHA-256 of every file, settings included); version 1 is refused.
MODEL_FORMAT_VERSION = 2
#: settings older mixopt versions wrote that no longer exist: wall-time fit budgets (fits now
#: count iterations only). A model file carrying them loads with them ignored: a loaded model
#: is not refitted, so they never had an effect on its predictions.
RETIRED_SETTINGS = frozenset({"max_seconds", "fit_budget_s"})
_MODEL_FORMAT = "mixopt-surrogate"
#: The files of a model directory; ``manifest.json`` lists the SHA-256 of each.
MODEL_FILES = ("model.json", "arrays.npz")
MANIFEST = "manifest.json"


@dataclass(frozen=True, eq=False)
class Targets:
    """Models to predict: compute and (for mixture-aware surrogates) mixtures.

    Attributes:
        flops: ``(n,)`` training compute, FLOPs.
        params: ``(n,)`` parameter counts N, or None when only compute is known.
        tokens: ``(n,)`` training tokens D, or None.
        mixture: ``(n, k)`` mixture ratios over ``domains`` (rows sum to 1), or None. With a
            schedule it is the whole run's token-weighted mixture (computed when None, checked
            when given), so every surrogate that reads ``mixture`` predicts phased targets.
        domains: names of the ``k`` mixture columns.
        phases: ``(n, K, k)`` the schedule's ratios per phase (:mod:`mixopt.data.phases`), or
            None for constant mixtures (``(K, k)`` is broadcast to every row).
        phase_end: ``(n, K-1)`` phase ends as fractions of the run's tokens (None or empty with
            one phase; ``(K-1,)`` is broadcast).
        fraction: ``(n,)`` fraction of its run's training each target sits at (a checkpoint
            inside a run; ``tokens`` are the tokens seen there), or None = the end of the run.
    """

    flops: np.ndarray
    params: np.ndarray | None = None
    tokens: np.ndarray | None = None
    mixture: np.ndarray | None = None
    domains: tuple[str, ...] = ()
    phases: np.ndarray | None = None
    phase_end: np.ndarray | None = None
    fraction: np.ndarray | None = None

    def __post_init__(self) -> None:
        flops = np.atleast_1d(np.asarray(self.flops, dtype=np.float64))
        n = flops.shape[0]
        problems = []
        if flops.ndim != 1:
            problems.append(f"flops must be 1-d, got shape {flops.shape}")
        elif not np.all(np.isfinite(flops)) or np.any(flops <= 0):
            bad = flops[~(np.isfinite(flops) & (flops > 0))][:3]
            problems.append(f"compute must be finite and > 0 FLOPs, got {bad.tolist()}")
        object.__setattr__(self, "flops", flops)
        for name in ("params", "tokens"):
            v = getattr(self, name)
            if v is not None:
                v = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
                if not np.all(np.isfinite(v)) or np.any(v <= 0):
                    problems.append(f"{name} must be finite and > 0, got {v[~(np.isfinite(v) & (v > 0))][:3].tolist()}")
                object.__setattr__(self, name, v)
        object.__setattr__(self, "domains", tuple(self.domains))
        if self.phases is not None:
            self._check_phases(n, problems)
        elif self.phase_end is not None and np.size(self.phase_end):
            problems.append("phase_end given without phases: pass the schedule's phases (n, K, k) too")
        if self.fraction is not None:
            f = np.broadcast_to(np.asarray(self.fraction, dtype=np.float64).reshape(-1), (n,)).copy()
            if not np.all(np.isfinite(f)) or np.any(f <= 0) or np.any(f > 1 + 1e-9):
                problems.append(f"fraction (of the run's training) must be in (0, 1], got {f[~((f > 0) & (f <= 1 + 1e-9))][:3].tolist()}")
            object.__setattr__(self, "fraction", np.minimum(f, 1.0))
        if self.mixture is not None:
            m = np.asarray(self.mixture, dtype=np.float64)
            if m.ndim == 1:
                m = np.broadcast_to(m, (n, m.shape[0])).copy()
            if m.shape != (n, len(self.domains)):
                problems.append(
                    f"mixture must have shape (n, k) = ({n}, {len(self.domains)}) for domains {list(self.domains)}, got {m.shape}"
                )
            elif m.size:
                if not np.all(np.isfinite(m)) or np.any(m < 0) or np.any(m > 1):
                    problems.append("mixture ratios must be finite and within [0, 1]")
                else:
                    s = m.sum(axis=1)
                    bad = np.abs(s - 1) > 1e-6
                    if bad.any():
                        problems.append(
                            f"mixture ratios must sum to 1, got sums like {s[bad][:3].round(6).tolist()}; renormalise the mixture"
                        )
            object.__setattr__(self, "mixture", m)
        elif self.domains:
            problems.append("domains given without a mixture")
        if problems:
            raise SchemaError("Invalid prediction targets:", problems)

    def _check_phases(self, n: int, problems: list[str]) -> None:
        """Validate and broadcast the schedule; fill (or check) ``mixture`` with its token-weighted mixture."""
        from mixopt.data.phases import check_schedule, overall_mixture

        P = np.asarray(self.phases, dtype=np.float64)
        if P.ndim == 2:
            P = np.broadcast_to(P, (n, *P.shape)).copy()
        k = len(self.domains)
        if P.ndim != 3 or P.shape[0] != n or P.shape[2] != k:
            problems.append(f"phases must have shape (n, K, k) = ({n}, K, {k}) for domains {list(self.domains)}, got {P.shape}")
            return
        E = np.zeros((n, 0)) if self.phase_end is None else np.asarray(self.phase_end, dtype=np.float64)
        if E.ndim <= 1:
            E = np.broadcast_to(E.reshape(1, -1), (n, E.size)).copy()
        try:
            P, E = check_schedule(P, E, self.domains, what="target schedule")
        except SchemaError as e:
            problems.extend(e.problems or [str(e)])
            return
        M = overall_mixture(P, E)
        if self.mixture is not None:
            m = np.asarray(self.mixture, dtype=np.float64)
            m = np.broadcast_to(m, (n, m.shape[-1])) if m.ndim == 1 else m
            if m.shape != M.shape or not np.allclose(m, M, rtol=0, atol=1e-6):
                problems.append(
                    "mixture must be the schedule's token-weighted mixture Σ_k share_k·phases_k when both are given; "
                    "pass mixture=None to compute it"
                )
                return
        object.__setattr__(self, "phases", P)
        object.__setattr__(self, "phase_end", E)
        object.__setattr__(self, "mixture", M)

    def __len__(self) -> int:
        return int(self.flops.shape[0])

    @property
    def n_phases(self) -> int:
        """Phases K of the schedules (1 for constant mixtures)."""
        return 1 if self.phases is None else int(self.phases.shape[1])

    def schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """``(phases (n, K, k), phase_end (n, K-1))``; a constant mixture is one phase. Needs a mixture."""
        if self.phases is not None:
            assert self.phase_end is not None
            return self.phases, self.phase_end
        if self.mixture is None:
            raise SchemaError("These targets have no mixture, so no schedule; pass a mixture or phases.")
        return self.mixture[:, None, :], np.zeros((len(self), 0))

    def rows(self, index: np.ndarray | slice) -> Targets:
        """The targets at ``index`` (schedule and fractions kept)."""
        def take(v: np.ndarray | None) -> np.ndarray | None:
            return None if v is None else v[index]

        return Targets(flops=self.flops[index], params=take(self.params), tokens=take(self.tokens),
                       mixture=None if self.phases is not None else take(self.mixture), domains=self.domains,
                       phases=take(self.phases), phase_end=take(self.phase_end), fraction=take(self.fraction))

    @classmethod
    def from_params_tokens(
        cls,
        params: Sequence[float] | np.ndarray | float,
        tokens: Sequence[float] | np.ndarray | float,
        mixture: np.ndarray | None = None,
        domains: Sequence[str] = (),
    ) -> Targets:
        """Targets from model size and tokens; compute is ``6·N·D``."""
        p = np.atleast_1d(np.asarray(params, dtype=np.float64))
        t = np.atleast_1d(np.asarray(tokens, dtype=np.float64))
        p, t = np.broadcast_arrays(p, t)
        return cls(flops=training_flops(p, t), params=p, tokens=t, mixture=mixture, domains=tuple(domains))

    @classmethod
    def from_mapping(cls, mix: Mapping[str, float], domains: Sequence[str]) -> np.ndarray:
        """Turn ``{"web": 0.6, ...}`` into a ratio row over ``domains`` (missing = 0).

        Raises SchemaError for a domain not in ``domains``.
        """
        unknown = sorted(set(mix) - set(domains))
        if unknown:
            raise SchemaError(
                f"Mixture names domain(s) {unknown} that the model was not fitted on; known domains are {list(domains)}."
            )
        return np.array([float(mix.get(d, 0.0)) for d in domains])

    @classmethod
    def grid(cls, mixtures: np.ndarray, flops: np.ndarray, domains: Sequence[str]) -> Targets:
        """All ``N`` mixtures x ``M`` compute budgets: ``n = N*M`` rows, mixture-major.

        Row ``i*M + j`` is mixture ``i`` at compute ``flops[j]``.
        """
        mixtures = np.asarray(mixtures, dtype=np.float64)
        flops = np.atleast_1d(np.asarray(flops, dtype=np.float64))
        n_mix, m = mixtures.shape[0], flops.shape[0]
        return cls(flops=np.tile(flops, n_mix), mixture=np.repeat(mixtures, m, axis=0), domains=tuple(domains))

    @classmethod
    def from_runs(cls, runs: RunTable) -> Targets:
        """Targets at every row of a run table (for backtests); a phased table gives phased targets."""
        if runs.is_phased and runs.domains:
            return cls(flops=runs.flops(), params=runs.params(), tokens=runs.tokens(), domains=runs.domains,
                       phases=runs.phases(), phase_end=runs.phase_end(), fraction=runs.training_fraction())
        return cls(
            flops=runs.flops(),
            params=runs.params(),
            tokens=runs.tokens(),
            mixture=runs.mixture() if runs.domains else None,
            domains=runs.domains,
        )

    def align(self, domains: Sequence[str]) -> Targets:
        """The same targets with the mixture re-ordered to ``domains``.

        Raises SchemaError if a target mixture puts weight on a domain outside ``domains``,
        or if ``domains`` need a mixture and none was given.
        """
        domains = tuple(domains)
        if domains == self.domains:
            return self
        if self.mixture is None:
            raise SchemaError(
                f"This model needs a mixture over domains {list(domains)}; none was given. "
                "Pass a mixture (e.g. --mix web=0.6,code=0.4)."
            )
        idx = {d: j for j, d in enumerate(self.domains)}
        unknown = [d for d in self.domains if d not in domains]
        if unknown:
            w = self.mixture[:, [idx[d] for d in unknown]]
            if np.any(w > 0):
                raise SchemaError(
                    f"Target mixture puts weight on domain(s) {unknown} that the model never saw "
                    f"(it knows {list(domains)}). Remove them or refit on runs that cover them."
                )
        out = np.zeros((len(self), len(domains)))
        for j, d in enumerate(domains):
            if d in idx:
                out[:, j] = self.mixture[:, idx[d]]
        if self.phases is not None:
            P = np.zeros((len(self), self.phases.shape[1], len(domains)))
            for j, d in enumerate(domains):
                if d in idx:
                    P[:, :, j] = self.phases[:, :, idx[d]]
            if unknown and np.any(self.phases[:, :, [idx[d] for d in unknown]] > 0):
                raise SchemaError(
                    f"Target schedule puts weight on domain(s) {unknown} in some phase that the model never saw "
                    f"(it knows {list(domains)}). Remove them or refit on runs that cover them."
                )
            return Targets(flops=self.flops, params=self.params, tokens=self.tokens, domains=domains, phases=P,
                           phase_end=self.phase_end, fraction=self.fraction)
        return Targets(flops=self.flops, params=self.params, tokens=self.tokens, mixture=out, domains=domains,
                       fraction=self.fraction)


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predictions for ``n`` targets and ``m`` named quantities.

    Attributes:
        names: ``m`` quantity names (``score:<b>``, ``loss:<d>``, ``loss``).
        mean: ``(n, m)`` point predictions.
        lower: ``(n, m)`` lower end of the central ``level`` interval (None if not computed).
        upper: ``(n, m)`` upper end.
        std: ``(n, m)`` predictive standard deviation (None if not computed).
        level: interval coverage, e.g. 0.9.
        unpredictable: quantity name -> reason, for quantities the data cannot predict
            (their columns are NaN).
        compute_ratio: ``(n,)`` each target's compute over the largest fitted run's
            (``> 1``: extrapolating in compute), or None when the surrogate does not say.
        calibrated_ratio: the largest compute ratio (held-out run over its fold's largest
            fitted run) that the internal backtests behind the interval calibration
            reached, or None when the intervals were not calibrated. Targets beyond it
            carry intervals widened by the calibrator's extrapolation rule, not measured
            coverage (:attr:`beyond_calibration`).
    """

    names: tuple[str, ...]
    mean: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    std: np.ndarray | None = None
    level: float = 0.9
    unpredictable: Mapping[str, str] = field(default_factory=dict)
    compute_ratio: np.ndarray | None = None
    calibrated_ratio: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        m = np.asarray(self.mean, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != len(self.names):
            raise ValueError(f"mean must be (n, {len(self.names)}), got {m.shape}")
        object.__setattr__(self, "mean", m)
        if self.compute_ratio is not None:
            r = np.asarray(self.compute_ratio, dtype=np.float64).reshape(-1)
            if r.shape != (m.shape[0],):
                raise ValueError(f"compute_ratio must be ({m.shape[0]},), got {r.shape}")
            object.__setattr__(self, "compute_ratio", r)

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    @property
    def beyond_calibration(self) -> np.ndarray:
        """``(n,)`` True where a target extrapolates further in compute than the interval
        calibration was measured (beyond :attr:`calibrated_ratio`; with no calibration,
        any target beyond the largest fitted run). All False when the ratio is unknown."""
        if self.compute_ratio is None:
            return np.zeros(len(self), dtype=bool)
        reach = 1.0 if self.calibrated_ratio is None else max(float(self.calibrated_ratio), 1.0)
        return self.compute_ratio > reach * (1.0 + 1e-9)

    @property
    def extrapolation(self) -> dict[str, Any]:
        """How far the targets lie beyond the data, JSON-able.

        Keys: ``compute_ratio_max`` (largest target compute over the largest fitted run's,
        None if unknown), ``calibrated_ratio`` (see the attribute), ``beyond_calibration``
        (any target beyond it) and ``n_beyond`` (how many).
        """
        r = self.compute_ratio
        beyond = self.beyond_calibration
        return {
            "compute_ratio_max": None if r is None or not r.size else float(np.max(r)),
            "calibrated_ratio": None if self.calibrated_ratio is None else float(self.calibrated_ratio),
            "beyond_calibration": bool(beyond.any()),
            "n_beyond": int(beyond.sum()),
        }

    @classmethod
    def from_normal(
        cls, names: tuple[str, ...], mean: np.ndarray, std: np.ndarray | float | None, level: float
    ) -> Prediction:
        """A prediction with normal intervals of sd ``std`` (``(n, m)`` or a scalar) around ``mean``.

        ``std=None`` gives means only (what ``predict(..., intervals=False)`` returns).
        """
        if std is None:
            return cls(names=names, mean=mean, level=level)
        std = np.broadcast_to(np.asarray(std, dtype=np.float64), np.shape(mean)).copy()
        lo, hi = gaussian_interval(mean, std, level)
        return cls(names=names, mean=mean, lower=lo, upper=hi, std=std, level=level)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise SchemaError(f"No prediction for {name!r}; predicted quantities are {list(self.names)}.") from None

    def get(self, name: str) -> np.ndarray:
        """Mean prediction ``(n,)`` of one quantity."""
        return self.mean[:, self.index(name)]

    def interval(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if self.lower is None or self.upper is None:
            raise SchemaError("This prediction was made without intervals; call predict(..., intervals=True).")
        j = self.index(name)
        return self.lower[:, j], self.upper[:, j]

    def to_frame(self) -> pl.DataFrame:
        """One row per target: ``<name>``, ``<name>:lower``, ``<name>:upper`` columns."""
        cols: dict[str, np.ndarray] = {}
        for j, n in enumerate(self.names):
            cols[n] = self.mean[:, j]
            if self.lower is not None and self.upper is not None:
                cols[f"{n}:lower"] = self.lower[:, j]
                cols[f"{n}:upper"] = self.upper[:, j]
        return pl.DataFrame(cols)


def gaussian_interval(mean: np.ndarray, std: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of a normal with the given mean and std."""
    z = normal_quantile(0.5 + level / 2)
    return mean - z * std, mean + z * std


@functools.lru_cache(maxsize=256)
def normal_quantile(p: float) -> float:
    """The standard normal's ``p`` quantile (:func:`mixopt._normal.ndtri`, scipy's algorithm without importing scipy; kept per ``p``)."""
    from mixopt._normal import ndtri

    return float(ndtri(p))


def check_fixed_ratios(R: np.ndarray, inactive: Sequence[int], fixed_ratios: Sequence[float], domains: Sequence[str]) -> None:
    """Raise :class:`NotPredictableError` when a target ``R`` ``(n, k)`` moves a domain every training run held fixed.

    ``inactive``: the columns of ``R`` (over ``domains``) the training runs never varied;
    ``fixed_ratios``: the ratio each of them had in every run.
    """
    if not len(inactive):
        return
    cols = list(inactive)
    bad = np.any(np.abs(R[:, cols] - np.asarray(fixed_ratios)) > 1e-9, axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NotPredictableError(
            f"Target {i} sets the ratio of {[domains[j] for j in cols]} to {R[i, cols].round(6).tolist()}, "
            f"but every training run had {list(fixed_ratios)}: the effect of those domains was never observed. "
            "Keep their ratios or refit on runs that vary them."
        )


def check_single_scale(C: np.ndarray, compute_range: tuple[float, float], tolerance: float, model_name: str,
                       runs: str = "runs") -> None:
    """Raise :class:`NotPredictableError` when a target's compute ``C`` ``(n,)`` leaves the one training scale.

    For a model fitted at a single compute scale ``compute_range`` (FLOPs): targets within
    ``tolerance`` (a fraction) of it are predictable, others are not. ``model_name`` and
    ``runs`` (what it was fitted on) name the model in the error.
    """
    lo, hi = compute_range
    tol = 1.0 + float(tolerance)
    bad = (C > hi * tol) | (C < lo / tol)
    if bad.any():
        raise NotPredictableError(
            f"not extrapolable in compute: this {model_name} was fitted on {runs} at a single compute scale "
            f"({lo:.4g}-{hi:.4g} FLOPs), so it predicts mixtures at that scale only (+-{float(tolerance):.0%}); "
            f"got target compute {float(C[bad][0]):.4g} FLOPs. Predict at ~{math.sqrt(lo * hi):.4g} FLOPs, "
            "or fit on runs of several sizes."
        )


class Surrogate(ABC):
    """Base class of every surrogate: ``fit(runs) -> self``, ``predict(targets) -> Prediction``.

    Subclasses set ``kind`` (the name used by the CLI, configs and model files), store
    their settings in ``__init__`` without work, and implement ``_fit``, ``_predict``,
    ``_get_state`` and ``_set_state``.
    """

    kind: ClassVar[str] = ""
    #: whether predictions depend on the mixture (FLP-M, DML, RegMix) or only on compute
    uses_mixture: ClassVar[bool] = False
    #: most checkpoints per run used in fitting (evenly spaced, final kept; None = every row);
    #: see :mod:`mixopt.data.thinning`
    max_checkpoints_per_run: ClassVar[int | None] = MAX_CHECKPOINTS_PER_RUN
    #: most rows in all used in fitting (finals kept, others sampled; None = no cap)
    max_fit_rows: ClassVar[int | None] = None

    # -- public API -----------------------------------------------------------------------
    def fit(self, runs: RunTable) -> Self:
        """Fit on a run table; returns self."""
        if not isinstance(runs, RunTable):
            raise SchemaError(f"fit expects a RunTable, got {type(runs).__name__}; build one with mixopt.read_runs(...).")
        runs = thin_checkpoints(runs, self.max_checkpoints_per_run, self.max_fit_rows, seed=int(getattr(self, "seed", 0)))
        self._fit(runs)
        self.fitted_ = True
        return self

    def predict(self, targets: Targets, *, intervals: bool = True, level: float = 0.9) -> Prediction:
        """Predict every quantity for ``targets``.

        Args:
            targets: the models to predict.
            intervals: compute ``lower``/``upper``/``std`` (slower); means only if False.
            level: central coverage of the interval.
        """
        self._check_fitted()
        if not isinstance(targets, Targets):
            raise SchemaError(f"predict expects Targets, got {type(targets).__name__}.")
        if not 0 < level < 1:
            raise SchemaError(f"level must be in (0, 1), got {level}.")
        if self.uses_mixture:
            targets = targets.align(self.domains_)
        pred = self._predict(targets, intervals=intervals, level=level)
        return self._with_extrapolation(pred, targets)

    def predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Joint predictive draws of every quantity, ``{name: (n_draws, n)}``.

        Draw ``s`` is one plausible fitted model applied to *every* row (the same
        bootstrap-by-run refit, ensemble member and residual-noise value), so the draws
        are joint across targets: ``mean(draws[q][:, a] < draws[q][:, b])`` is the
        probability that target ``a`` has the lower ``q``. Each row's draws are calibrated
        like its interval: their 5 % / 95 % quantiles are the calibrated 90 % interval of
        :meth:`predict` (see :mod:`mixopt.surrogate.draws`). Quantities that are
        unpredictable are NaN. Seeded: the same ``seed`` and ``n_draws`` give the same
        draws, and a row's draws do not depend on the other rows of the batch.

        Args:
            targets: the ``n`` models to predict.
            n_draws: draws per quantity (>= 1).
            seed: seed of the draws (non-negative integer).

        Raises:
            SchemaError: bad targets or arguments.
        """
        from mixopt.surrogate.draws import check_draw_args

        self._check_fitted()
        if not isinstance(targets, Targets):
            raise SchemaError(f"predict_draws expects Targets, got {type(targets).__name__}.")
        n_draws, seed = check_draw_args(n_draws, seed)
        if self.uses_mixture:
            targets = targets.align(self.domains_)
        return self._predict_draws(targets, n_draws=n_draws, seed=seed)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the predicted quantities (after fit)."""
        self._check_fitted()
        return tuple(self.outputs_)

    def get_params(self) -> dict[str, Any]:
        """Settings given to ``__init__`` (JSON-serialisable)."""
        return dict(self._settings())

    # -- subclass hooks -------------------------------------------------------------------
    @abstractmethod
    def _fit(self, runs: RunTable) -> None:
        """Learn state; must set ``outputs_``, ``domains_`` (tuple, empty if mixture-blind),
        ``benchmarks_`` (tuple of Benchmark) and ``unpredictable_`` (dict name -> reason)."""

    @abstractmethod
    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction: ...

    def _predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Joint draws for aligned targets. The default, for surrogates with nothing
        better: one shared standard normal per draw and quantity through each row's
        calibrated interval (:func:`~mixopt.surrogate.draws.comonotone_draws`)."""
        from mixopt.surrogate.draws import DRAW_LEVEL, comonotone_draws

        pred = self._predict(targets, intervals=True, level=DRAW_LEVEL)
        assert pred.lower is not None and pred.upper is not None
        return comonotone_draws(pred.mean, pred.lower, pred.upper, pred.names, n_draws=n_draws, seed=seed)

    def _extrapolation_reference(self) -> tuple[float | None, float | None]:
        """``(largest fitted compute in FLOPs, calibrated compute ratio)``, either None when
        unknown; fills :attr:`Prediction.compute_ratio` and :attr:`Prediction.calibrated_ratio`."""
        return None, None

    def _with_extrapolation(self, pred: Prediction, targets: Targets) -> Prediction:
        import dataclasses

        top, reach = self._extrapolation_reference()
        if top is None or not (math.isfinite(top) and top > 0):
            return pred
        if type(pred) is Prediction:  # what dataclasses.replace builds, without its walk over the fields
            return Prediction(names=pred.names, mean=pred.mean, lower=pred.lower, upper=pred.upper, std=pred.std,
                              level=pred.level, unpredictable=pred.unpredictable,
                              compute_ratio=targets.flops / float(top), calibrated_ratio=reach)
        return dataclasses.replace(pred, compute_ratio=targets.flops / float(top), calibrated_ratio=reach)

    def _settings(self) -> dict[str, Any]:
        """``__init__`` arguments, read back from the attributes of the same names.

        As in scikit-learn, ``__init__`` stores each argument unchanged under its own name,
        so the settings are derived from the signature rather than listed twice. A
        subclass whose arguments are not JSON-serialisable overrides this.
        """
        return init_params(self)

    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fitted state as (JSON-able dict, named float arrays)."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Restore fitted state written by ``_get_state``."""

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(runs) before predict.")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({args})"


# -- registry and model files ---------------------------------------------------------------
_REGISTRY: dict[str, type[Surrogate]] = {}


def register(cls: type[Surrogate]) -> type[Surrogate]:
    """Class decorator: make a surrogate available by its ``kind`` (CLI, configs, model files)."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} must set a non-empty 'kind'")
    _REGISTRY[cls.kind] = cls
    return cls


#: Method names that are a registered kind with fixed settings: ``flpm_additive`` is FLP-M
#: with the paper's additive stage-1 law (``stage1 = "flpm_additive"``).
METHOD_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {"flpm_additive": ("flpm", {"stage1": "flpm_additive"})}


def surrogate_kinds() -> tuple[str, ...]:
    """Every method name :func:`make_surrogate` accepts (kinds and aliases)."""
    _load_builtin()
    return tuple(sorted(set(_REGISTRY) | set(METHOD_ALIASES)))


def make_surrogate(kind: str, **settings: Any) -> Surrogate:
    """Instantiate a surrogate by method name (``flp``, ``fp``, ``flpm``, ``flpm_additive``, ``dml``, ``regmix``).

    An alias (:data:`METHOD_ALIASES`) fixes some settings; giving one of those settings
    with another value is refused.
    """
    _load_builtin()
    if kind in METHOD_ALIASES:
        base, fixed = METHOD_ALIASES[kind]
        clash = {k: v for k, v in settings.items() if k in fixed and v != fixed[k]}
        if clash:
            raise SchemaError(f"Method {kind!r} is {base!r} with {fixed}; the settings {clash} contradict it. "
                              f"Use method {base!r} with your settings instead.")
        kind, settings = base, {**settings, **fixed}
    if kind not in _REGISTRY:
        raise SchemaError(f"Unknown surrogate method {kind!r}; choose one of {list(surrogate_kinds())}.")
    try:
        return _REGISTRY[kind](**settings)
    except TypeError as e:
        raise SchemaError(f"Invalid settings for surrogate {kind!r}: {e}") from None


def _load_builtin() -> None:
    import importlib

    for mod in ("mixopt.surrogate.flp", "mixopt.surrogate.fp", "mixopt.surrogate.flpm", "mixopt.surrogate.baselines",
                "mixopt.surrogate.reuse"):
        importlib.import_module(mod)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Benchmark):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    return obj


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_model_dir(path: str | Path) -> bool:
    """Whether ``path`` looks like a directory written by :func:`save_surrogate` (any version)."""
    p = Path(path)
    return p.is_dir() and ((p / MANIFEST).is_file() or (p / "model.json").is_file())


def check_model_out(path: str | Path) -> Path:
    """Check, before fitting, that a model can be saved at ``path``.

    ``path`` may be new (its parent folders are created), an empty directory, or an
    existing model directory (replaced when the new model is saved). An existing file, a
    non-empty directory that is not a model, or a place that cannot be written is refused.

    Raises:
        ModelFileError: naming the path, the problem and the fix.
    """
    import os
    import uuid

    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ModelFileError(f"The model output {p} is an existing file; a model is saved as a directory. "
                             "Give a new directory path (e.g. out/model).")
    if p.is_dir() and any(p.iterdir()) and not is_model_dir(p):
        raise ModelFileError(f"The model output {p} is a non-empty directory that is not a mixopt model; "
                             "refusing to write into it. Give a new or empty directory.")
    parent = p if p.is_dir() else p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelFileError(f"Cannot create the folder {parent} for the model ({e.strerror or e}); "
                             "choose a path you can write to.") from None
    probe = parent / f".mixopt-write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise ModelFileError(f"Cannot write the model in {parent} ({e.strerror or e}); "
                             "choose a path you can write to.") from None
    return p


def save_surrogate(model: Surrogate, path: str | Path) -> Path:
    """Save a fitted surrogate to directory ``path``.

    Layout (format version :data:`MODEL_FORMAT_VERSION`): ``model.json`` (format, version,
    kind, settings, JSON state), ``arrays.npz`` (float arrays only, loaded without pickle)
    and ``manifest.json`` (format, version and the SHA-256 of each of the two files, so
    any edit, to the settings as much as to the arrays, is refused on load). The directory
    is written beside ``path`` and renamed into place, so a failed save leaves no half
    model; an existing model directory at ``path`` is replaced.

    Raises:
        ModelFileError: ``path`` is a file, a non-model directory, or not writable.
    """
    import shutil
    import uuid

    model._check_fitted()
    path = check_model_out(path)
    state, arrays = model._get_state()
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    blob = buf.getvalue()
    meta = {
        "format": _MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "kind": model.kind,
        "settings": _jsonable(model._settings()),
        "outputs": list(model.outputs_),
        "domains": list(model.domains_),
        "benchmarks": [b.to_dict() for b in model.benchmarks_],
        "unpredictable": dict(model.unpredictable_),
        "state": _jsonable(state),
    }
    meta_bytes = (json.dumps(meta, indent=1) + "\n").encode()
    manifest = {"format": _MODEL_FORMAT, "version": MODEL_FORMAT_VERSION,
                "files": {"model.json": _sha256(meta_bytes), "arrays.npz": _sha256(blob)}}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.mkdir(parents=True)
        (tmp / "arrays.npz").write_bytes(blob)
        (tmp / "model.json").write_bytes(meta_bytes)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelFileError(f"Cannot save the model to {path}: {e.strerror or e}.") from None
    return path


def load_surrogate(path: str | Path) -> Surrogate:
    """Load a surrogate saved by :func:`save_surrogate`; predictions are identical.

    Every file is checked against ``manifest.json`` before anything is read from it.

    Raises:
        ModelFileError: missing files, another format or version, or any file that does
            not match its recorded SHA-256 (an edited or damaged model).
    """
    path = Path(path)
    man_p, meta_p = path / MANIFEST, path / "model.json"
    if not path.is_dir() or not meta_p.is_file():
        raise ModelFileError(
            f"{path} is not a mixopt model directory: expected {MANIFEST}, model.json and arrays.npz in it. "
            "Create one with `mixopt fit ... --out DIR`."
        )
    if not man_p.is_file():
        try:
            old = json.loads(meta_p.read_text()).get("version")
        except (ValueError, UnicodeDecodeError, AttributeError):
            old = None
        raise ModelFileError(
            f"{path} has no {MANIFEST}: it was written in model format version {old!r} (or the manifest was deleted); "
            f"this mixopt reads version {MODEL_FORMAT_VERSION}, whose manifest guards every file. "
            "Refit the model with this version of mixopt (`mixopt fit ... --out DIR`)."
        )
    try:
        manifest = json.loads(man_p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{man_p} is not valid JSON ({e}); the model is damaged, refit it.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _MODEL_FORMAT:
        raise ModelFileError(f"{man_p} is not a mixopt model manifest; refit the model.")
    if manifest.get("version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written in model format version {manifest.get('version')!r}; this mixopt reads version "
            f"{MODEL_FORMAT_VERSION}. Refit the model with this version of mixopt."
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or sorted(files) != sorted(MODEL_FILES):
        raise ModelFileError(f"{man_p} must list exactly {list(MODEL_FILES)}; the model was altered. Refit it.")
    data: dict[str, bytes] = {}
    for name in MODEL_FILES:
        fp = path / name
        if not fp.is_file():
            raise ModelFileError(f"{fp} is missing; the model is incomplete. Refit it.")
        data[name] = fp.read_bytes()
        if _sha256(data[name]) != files[name]:
            raise ModelFileError(
                f"{fp} does not match the SHA-256 recorded in {MANIFEST}: the model was edited or damaged "
                "(settings and arrays are both guarded). Refit it rather than editing it."
            )
    try:
        meta = json.loads(data["model.json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{meta_p} is not valid JSON ({e}); the file is damaged, refit the model.") from None
    if not isinstance(meta, dict) or meta.get("format") != _MODEL_FORMAT or meta.get("version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(f"{meta_p} disagrees with {MANIFEST} on format or version; refit the model.")
    try:
        with np.load(io.BytesIO(data["arrays.npz"]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        settings = {k: v for k, v in meta.get("settings", {}).items() if k not in RETIRED_SETTINGS}
        model = make_surrogate(meta["kind"], **settings)
        model.outputs_ = tuple(meta["outputs"])
        model.domains_ = tuple(meta["domains"])
        model.benchmarks_ = tuple(Benchmark.from_dict(b) for b in meta["benchmarks"])
        model.unpredictable_ = dict(meta.get("unpredictable", {}))
        model._set_state(meta["state"], arrays)
    except (KeyError, ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: model file content is inconsistent ({type(e).__name__}: {e}); refit the model.") from None
    model.fitted_ = True
    return model


__all__ = [
    "MANIFEST",
    "MODEL_FILES",
    "METHOD_ALIASES",
    "MODEL_FORMAT_VERSION",
    "Prediction",
    "Surrogate",
    "Targets",
    "check_model_out",
    "gaussian_interval",
    "is_model_dir",
    "normal_quantile",
    "load_surrogate",
    "make_surrogate",
    "register",
    "save_surrogate",
    "surrogate_kinds",
]
