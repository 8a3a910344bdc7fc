"""Stage-1 laws of schedules: a mixture law on the *effective exposure* with a learned recency weight.

A run's mixture may change during training (:mod:`mixopt.data.phases`). Tokens seen late may
teach a domain more than the same tokens seen early (annealing on math or code in the last
10-20 % of training). The schedule laws weight the tokens seen at training fraction ``t`` by
``exp(λ·t/f)`` and feed the resulting *effective mixture* to a constant-mixture law::

    r_eff,s(f; λ) = ∫_0^f r_s(t)·exp(λ·t/f) dt / ∫_0^f exp(λ·t/f) dt

for a checkpoint at fraction ``f`` of its run (1 for the final checkpoint), with ``r_s(t)``
the schedule's ratio of source ``s`` at ``t`` (piecewise constant over the phases). Time is
counted in the tokens seen so far (``t/f``), so a checkpoint reads like a run trained to its
tokens on the schedule up to it (:func:`truncate_schedule`), as the constant-mixture laws read
checkpoints. ``λ``
(parameter ``recency``, per loss domain) is fitted with the law's other parameters, not
assumed: ``λ = 0`` is the constant-mixture law on the whole run's token-weighted mixture;
``λ > 0`` lets late phases count more, ``λ < 0`` early ones. A constant mixture gives
``r_eff = r`` for every ``λ``, so on one-phase runs the law *is* its base law. The effective
mixture is a mixture (non-negative, sums like the ratios), so the base law's form and
parameters keep their meaning: the compute is ``C`` (all tokens seen), the recency only decides
which tokens the ratios are read from.

Forms: ``flpm_recency`` (base :class:`~mixopt.laws.mixture.FLPMLaw`) and ``dml_recency`` (base
:class:`~mixopt.laws.mixture.DMLLaw`). Inputs: ``flops`` (when compute varies), the truncated
``phase_end@1..K-1``, then every phase's ratios but the last source's ``p@k:<s>`` (it is
``ratio_total`` less the others, as in :class:`~mixopt.laws.mixture.MixtureLaw`). ``K`` is the
fitted table's; the parameters do not depend on it, so schedules with any number of phases are
predicted (``K`` is read from the width of the inputs).
The Jacobian is the base law's analytic one for its parameters and a central difference in
``λ``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mixopt.errors import ConfigError
from mixopt.laws.base import Law, Param
from mixopt.laws.mixture import DMLLaw, FLPMLaw, MixtureLaw

#: bounds of the recency weight λ (per unit of training fraction); exp(15) is a 3e6-fold weight
RECENCY_BOUNDS = (-5.0, 15.0)
#: starting values of λ in the multi-start fit
RECENCY_GRID = (0.0, 2.0, 6.0)
#: below this |λ| the weights are the λ -> 0 limit (token counts)
_LAM_ZERO = 1e-8
#: relative step of the central difference in λ
_LAM_STEP = 1e-4


def truncate_schedule(phase_end: np.ndarray, fraction: np.ndarray | float) -> np.ndarray:
    """``(..., n, K-1)`` phase ends relative to the tokens seen at ``fraction`` of training: ``min(e / f, 1)``.

    A checkpoint at ``f`` has seen the schedule up to ``f``; as a fraction of its own tokens a
    phase ends at ``e / f``, and phases that start after ``f`` have zero width (end at 1).
    """
    E = np.asarray(phase_end, dtype=np.float64)
    f = np.asarray(fraction, dtype=np.float64)[..., None]
    return np.minimum(E / f, 1.0)


def recency_weights(phase_end: np.ndarray, lam: np.ndarray | float, fraction: np.ndarray | float = 1.0) -> np.ndarray:
    """``(..., n, K)`` each phase's share of ``∫_0^f exp(λ·t/f) dt`` (the weights sum to 1).

    Args:
        phase_end: ``(..., n, K-1)`` phase ends as fractions of the run.
        lam: ``λ`` as a scalar or ``(..., 1)`` (batch dimensions broadcast in front of ``n``).
        fraction: ``(..., n)`` or a scalar: where in training each row is (1 = the end of the run).
    """
    E = truncate_schedule(phase_end, fraction)
    b = np.concatenate([np.zeros(E.shape[:-1] + (1,)), E, np.ones(E.shape[:-1] + (1,))], axis=-1)  # (..., n, K+1)
    lo, hi = b[..., :-1], b[..., 1:]
    lam = np.asarray(lam, dtype=np.float64)[..., None]  # (..., 1, 1) against (n, K)
    small = np.abs(lam) < _LAM_ZERO
    safe = np.where(small, 1.0, lam)
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.where(small, hi - lo, (np.exp(safe * (hi - 1.0)) - np.exp(safe * (lo - 1.0))) / safe)
    w = np.maximum(w, 0.0)
    return w / np.maximum(w.sum(axis=-1, keepdims=True), 1e-300)


def recency_mixture(phases: np.ndarray, phase_end: np.ndarray, lam: np.ndarray | float,
                    fraction: np.ndarray | float = 1.0) -> np.ndarray:
    """``(..., n, k)`` the effective mixture ``r_eff(f; λ)`` of schedules ``phases (n, K, k)`` (see the module docstring)."""
    w = recency_weights(phase_end, lam, fraction)  # (..., n, K)
    P = np.asarray(phases, dtype=np.float64)
    return np.matmul(w[..., None, :], P)[..., 0, :]


class ScheduleLaw(Law):
    """A mixture law on the recency-weighted effective mixture (see the module docstring).

    Args:
        sources: the ``k >= 2`` mixture domains.
        n_phases: ``K >= 1`` phases of the schedules.
        vary_compute, reference, ratio_total: as for :class:`~mixopt.laws.mixture.MixtureLaw`.
    """

    log_space = True
    positive_inputs = False
    #: inputs are schedules (:meth:`inputs_from_schedule`), not one mixture
    uses_schedule = True
    uses_nd = False
    _base_cls: type[MixtureLaw] = FLPMLaw

    def __init__(self, sources: Sequence[str], n_phases: int, vary_compute: bool = True, reference: float = 1e18,
                 ratio_total: float = 1.0) -> None:
        self.base = self._base_cls(sources, vary_compute, reference, ratio_total)
        if int(n_phases) < 1:
            raise ConfigError(f"{type(self).__name__} needs n_phases >= 1, got {n_phases!r}.")
        self.n_phases = int(n_phases)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.base.sources

    @property
    def vary_compute(self) -> bool:
        return self.base.vary_compute

    @property
    def k(self) -> int:
        return self.base.k

    @property  # type: ignore[override]
    def inputs(self) -> tuple[str, ...]:
        K = self.n_phases
        return ((("flops",) if self.vary_compute else ()) + tuple(f"phase_end@{j}" for j in range(1, K))
                + tuple(f"p@{j}:{s}" for j in range(1, K + 1) for s in self.sources[:-1]))

    @property  # type: ignore[override]
    def params(self) -> tuple[Param, ...]:
        return (*self.base.params, Param("recency", *RECENCY_BOUNDS, RECENCY_GRID,
                                         "recency weight λ: tokens at training fraction t count exp(λ·t)"))

    def config(self) -> dict[str, Any]:
        return {**self.base.config(), "n_phases": self.n_phases}

    # -- inputs ----------------------------------------------------------------------------------
    def inputs_from_schedule(self, flops: np.ndarray, phases: np.ndarray, phase_end: np.ndarray,
                             fraction: np.ndarray | float | None = None) -> np.ndarray:
        """Law inputs ``(n, q)`` from compute ``(n,)`` seen so far, schedules ``(n, K, k)``, ``phase_end (n, K-1)``
        and the fractions of training ``(n,)`` the rows are at (None = 1, the end of the run)."""
        P = np.asarray(phases, dtype=np.float64)
        n = P.shape[0]
        if P.ndim != 3 or P.shape[2] != self.k:
            raise ConfigError(f"{self.name}: schedules must be (n, K, {self.k}), got {P.shape}.")
        E = np.asarray(phase_end, dtype=np.float64).reshape(n, P.shape[1] - 1)
        if fraction is not None:
            E = truncate_schedule(E, np.broadcast_to(np.asarray(fraction, dtype=np.float64).reshape(-1), (n,)))
        cols = ([np.asarray(flops, dtype=np.float64).reshape(n, 1)] if self.vary_compute else []) + [
            E, P[:, :, :-1].reshape(n, -1)]
        return np.concatenate(cols, axis=1)

    def inputs_from_scale(self, flops: np.ndarray, params: np.ndarray | None, tokens: np.ndarray | None,
                          ratios: np.ndarray) -> np.ndarray:
        """Constant mixtures ``(n, k)`` as one-phase schedules (their ``r_eff`` is the mixture)."""
        R = np.asarray(ratios, dtype=np.float64)
        return self.inputs_from_schedule(flops, R[:, None, :], np.zeros((R.shape[0], 0)))

    def _split(self, x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """``(flops (..., n) or None, phase_end (..., n, K-1), phases (..., n, K, k))`` (the last source completed)."""
        x = np.asarray(x, dtype=np.float64)
        j = 0
        c = None
        if self.vary_compute:
            c, j = x[..., 0], 1
        K = (x.shape[-1] - j + 1) // self.k  # any number of phases: the parameters do not depend on it
        E = x[..., j : j + K - 1]
        r = x[..., j + K - 1 :].reshape(x.shape[:-1] + (K, self.k - 1))
        last = np.maximum(self.base.ratio_total - r.sum(axis=-1, keepdims=True), 0.0)
        return c, E, np.concatenate([r, last], axis=-1)

    def effective_mixture(self, x: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
        """``(..., n, k)`` effective mixtures of inputs ``x (n, q)`` at ``λ`` (scalar or ``(..., 1)``)."""
        _, E, P = self._split(x)
        return recency_mixture(P, E, lam)

    def _base_inputs(self, x: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """The base law's inputs ``(..., n, q')`` at effective mixtures for ``λ (..., 1)``."""
        c, _, _ = self._split(x)
        R = self.effective_mixture(x, lam)
        parts = [R[..., :-1]]
        if c is not None:
            parts.insert(0, np.broadcast_to(c, R.shape[:-1])[..., None])
        return np.concatenate(parts, axis=-1)

    # -- evaluation -------------------------------------------------------------------------------
    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        return self.base.predict(self._base_inputs(x, theta[..., -1:]), theta[..., :-1])

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self._value_jacobian(x, np.asarray(theta, dtype=np.float64))[1]

    def _value_jacobian(self, x: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lam = theta[..., -1:]
        tb = theta[..., :-1]
        f, jb = self.base._vj(self.base._prepare(self._base_inputs(x, lam)), tb, True)
        h = _LAM_STEP * np.maximum(1.0, np.abs(lam))
        up = self.base.predict(self._base_inputs(x, lam + h), tb)
        dn = self.base.predict(self._base_inputs(x, lam - h), tb)
        dl = (up - dn) / (2 * h)
        assert jb is not None
        jb = np.broadcast_to(jb, f.shape + jb.shape[-1:])
        return f, np.concatenate([jb, dl[..., None]], axis=-1)

    def evaluator(self, x: np.ndarray):  # noqa: ANN201 - Law.evaluator's type
        x = np.asarray(x, dtype=np.float64)

        def evaluate(theta: np.ndarray, with_jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
            theta = np.asarray(theta, dtype=np.float64)
            if not with_jacobian:
                return self.predict(x, theta), None
            f, jac = self._value_jacobian(x, theta)
            return f, np.array(jac, dtype=np.float64)

        return evaluate

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        grid = self.base.start_grid(self._base_inputs(x, np.zeros(1)), y)
        grid["recency"] = RECENCY_GRID
        return grid


class FLPMRecencyLaw(ScheduleLaw):
    """FLP-M's pooled compute power law (:class:`~mixopt.laws.mixture.FLPMLaw`) on the effective mixture."""

    name = "flpm_recency"
    _base_cls = FLPMLaw


class DMLRecencyLaw(ScheduleLaw):
    """The Data Mixing Laws form (:class:`~mixopt.laws.mixture.DMLLaw`) on the effective mixture."""

    name = "dml_recency"
    _base_cls = DMLLaw


#: schedule stage-1 forms by name
SCHEDULE_LAWS: dict[str, type[ScheduleLaw]] = {"flpm_recency": FLPMRecencyLaw, "dml_recency": DMLRecencyLaw}


def make_schedule_law(form: str, sources: Sequence[str], *, n_phases: int, vary_compute: bool, reference: float,
                      ratio_total: float = 1.0) -> ScheduleLaw:
    """Build a schedule law by form name (``flpm_recency``, ``dml_recency``)."""
    if form not in SCHEDULE_LAWS:
        raise ConfigError(f"A schedule law is one of {sorted(SCHEDULE_LAWS)}, got {form!r}.")
    return SCHEDULE_LAWS[form](sources, n_phases, vary_compute, reference, ratio_total)


__all__ = [
    "RECENCY_BOUNDS",
    "SCHEDULE_LAWS",
    "DMLRecencyLaw",
    "FLPMRecencyLaw",
    "ScheduleLaw",
    "make_schedule_law",
    "recency_mixture",
    "recency_weights",
    "truncate_schedule",
]
