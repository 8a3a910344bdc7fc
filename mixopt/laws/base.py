"""The stateless :class:`Law` abstraction: a parametric function of inputs.

A law declares its parameters (name, bounds, a small grid of starting values), the names
of its ``q`` input columns, whether its residuals are taken in log space, and one function
``predict(x, theta)``. It holds no data and no fitted values: :class:`~mixopt.laws.LawFitter`
fits any law, and surrogates keep the fitted parameter vectors. A law's constructor may take
*configuration* (a reference scale, a fixed floor) which :meth:`Law.config` returns so the law
can be rebuilt with :func:`mixopt.laws.make_law`.

Shapes (botorch style)
----------------------
``predict`` broadcasts over leading batch dimensions, so one call evaluates many bootstrap
parameter vectors at once:

* ``x``: ``(..., n, q)`` inputs, ``theta``: ``(..., p)`` parameters -> ``(..., n)`` outputs.
  ``x (n, q)`` with ``theta (p,)`` gives ``(n,)``; with ``theta (B, p)`` it gives ``(B, n)``;
  ``x (B, n, q)`` with ``theta (B, p)`` gives ``(B, n)`` (draw ``b`` uses ``x[b]``).

Inside ``predict`` use :meth:`Law.unpack` (parameters as ``(..., 1)`` arrays) and
:meth:`Law.column` (input column ``j`` as ``(..., n)``); ordinary numpy broadcasting then
does the rest. A minimal law::

    class Exponential(Law):
        name = "exponential"
        inputs = ("x",)
        log_space = True
        params = (Param("a", -20.0, 20.0, (-1.0, 0.0, 1.0)), Param("k", 0.0, 10.0, (0.1, 1.0)))

        def predict(self, x, theta):
            a, k = self.unpack(theta)
            return np.exp(a - k * self.column(x, 0))

Optional hooks: :meth:`Law.jacobian` (analytic ``d predict / d theta``; without it the
fitter uses finite differences), :meth:`Law.design` (for laws that are linear in their
parameters in residual space: the fitter then solves them in closed form) and
:meth:`Law.start_grid` (data-scaled starting values).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mixopt.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One declared parameter of a law.

    Attributes:
        name: parameter name (unique within the law), e.g. ``"alpha"``.
        lower: lower bound (``-inf`` for none).
        upper: upper bound (``inf`` for none).
        grid: starting values tried by the multi-start fit (each within the bounds).
        doc: one line on meaning and units.
    """

    name: str
    lower: float = -math.inf
    upper: float = math.inf
    grid: tuple[float, ...] = (0.0,)
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("A law parameter needs a non-empty name.")
        if not self.lower < self.upper:
            raise ConfigError(
                f"Parameter {self.name!r}: lower < upper must hold, got [{self.lower}, {self.upper}]; fix the bounds."
            )
        if not self.grid:
            raise ConfigError(f"Parameter {self.name!r}: the starting grid is empty; give at least one value.")
        bad = [g for g in self.grid if not (self.lower <= g <= self.upper) or not math.isfinite(g)]
        if bad:
            raise ConfigError(
                f"Parameter {self.name!r}: starting values {bad} are outside the bounds [{self.lower}, {self.upper}] "
                "or not finite; move them inside."
            )
        object.__setattr__(self, "grid", tuple(float(g) for g in self.grid))


class Law(ABC):
    """A parametric law ``y = f(x; theta)``, stateless (see the module docstring).

    Class attributes to set in a subclass:
        name: short identifier used by :func:`mixopt.laws.make_law` and in model files.
        inputs: names of the ``q`` input columns, in order (e.g. ``("flops",)``).
        log_space: if True the fitter takes residuals ``log y - log f`` (outputs and
            targets must be > 0); else ``y - f``.
        positive_inputs: if True every input must be > 0 (the law takes their log).
        params: the declared :class:`Param` tuple (may be a property when it depends on
            the law's configuration).
    """

    name: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    log_space: ClassVar[bool] = False
    positive_inputs: ClassVar[bool] = False
    params: tuple[Param, ...] = ()

    # -- to implement ---------------------------------------------------------------------
    @abstractmethod
    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Evaluate the law.

        Args:
            x: ``(..., n, q)`` inputs (units as in :attr:`inputs`).
            theta: ``(..., p)`` parameters, batch dimensions broadcastable with ``x``'s.

        Returns:
            ``(..., n)`` outputs.
        """

    # -- optional hooks ---------------------------------------------------------------------
    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray | None:
        """``d predict / d theta``, or None (the fitter then uses finite differences).

        Broadcasts like :meth:`predict` (build it from :meth:`unpack` and
        ``np.stack(..., axis=-1)``).

        Args:
            x: ``(..., n, q)`` inputs.
            theta: ``(..., p)`` parameters.

        Returns:
            ``(..., n, p)`` Jacobian, or None when the law has no analytic form.
        """
        return None

    def predict_each(self, x: np.ndarray, thetas: Sequence[np.ndarray], scratch: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """``[predict(x, theta) for theta in thetas]`` (the same numbers); a law whose inputs need
        preparing overrides it to prepare them once (prediction's point fit and bootstrap refits).
        ``scratch``: per ``theta``, an optional ``(n, b)`` C-contiguous float64 array a law may
        compute in (its result then views it; the default ignores it)."""
        return [self.predict(x, theta) for theta in thetas]

    def evaluator(self, x: np.ndarray) -> Callable[[np.ndarray, bool], tuple[np.ndarray, np.ndarray | None]]:
        """Value and Jacobian on fixed inputs: ``evaluate(theta (b, p), with_jacobian)``.

        The fitter's solver calls this once per iteration for a batch of ``b`` parameter
        vectors; it returns ``(f (b, n), J (b, n, p) or None)``, ``J`` freshly allocated
        (the solver scales it in place). The default calls :meth:`predict` and
        :meth:`jacobian`; a law whose inputs need preparing (e.g. the mixture laws' log
        compute and completed ratios) overrides it to do that once, not per call.
        """
        x = np.asarray(x, dtype=np.float64)

        def evaluate(theta: np.ndarray, with_jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
            f = self.predict(x, theta)
            if not with_jacobian:
                return f, None
            jac = self.jacobian(x, theta)
            if jac is None:
                return f, None
            return f, np.array(np.broadcast_to(jac, f.shape + (self.n_params,)), dtype=np.float64)

        return evaluate

    def design(self, x: np.ndarray) -> np.ndarray | None:
        """Design matrix for laws that are linear in ``theta`` in residual space.

        If ``g(predict(x, theta)) == design(x) @ theta`` with ``g = log`` for
        :attr:`log_space` laws and the identity otherwise, return the ``(n, p)`` matrix; the
        fitter then solves least squares in closed form (Huber by iteratively reweighted
        least squares). Return None (the default) for nonlinear laws.
        """
        return None

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        """Starting values per parameter for the multi-start fit.

        The default is each :class:`Param`'s declared grid; laws override this to scale
        starts to the data (e.g. an irreducible loss below the smallest observed loss).

        Args:
            x: ``(n, q)`` training inputs.
            y: ``(n,)`` training targets.
        """
        return {p.name: p.grid for p in self.params}

    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON-serialisable) that rebuild this law."""
        return {}

    # -- helpers ------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower (p,), upper (p,))`` parameter bounds (``±inf`` where unbounded)."""
        return (
            np.array([p.lower for p in self.params], dtype=np.float64),
            np.array([p.upper for p in self.params], dtype=np.float64),
        )

    @staticmethod
    def unpack(theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """Split ``theta (..., p)`` into ``p`` arrays of shape ``(..., 1)``.

        The trailing 1 broadcasts against input columns of shape ``(..., n)``.
        """
        theta = np.asarray(theta, dtype=np.float64)
        return tuple(theta[..., i, None] for i in range(theta.shape[-1]))

    @staticmethod
    def column(x: np.ndarray, j: int) -> np.ndarray:
        """Input column ``j`` of ``x (..., n, q)`` as ``(..., n)``."""
        return np.asarray(x, dtype=np.float64)[..., j]

    def as_dict(self, theta: np.ndarray) -> dict[str, float]:
        """``{name: value}`` for one parameter vector ``theta (p,)``."""
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        return {n: float(v) for n, v in zip(self.param_names, theta, strict=True)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.config() == other.config()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.config().items()))))


def log_scaled(x: np.ndarray, reference: float) -> np.ndarray:
    """``log(x / reference)`` — the conditioning helper of power laws.

    Working in ``u = log(x / reference)`` with ``reference`` near the data's geometric
    mean keeps ``u`` of order 1, so a power law's log-scale and exponent are nearly
    uncorrelated and the solver sees a well-conditioned problem.
    """
    return np.log(np.asarray(x, dtype=np.float64) / reference)


def check_reference(name: str, value: float) -> float:
    """Validate a positive, finite reference scale (raise ConfigError otherwise)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive number, got {value!r}.") from None
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{name} must be finite and > 0, got {value!r}; e.g. 1e18 FLOPs.")
    return v


def reference_for(x: np.ndarray) -> float:
    """Power of ten nearest the geometric mean of positive ``x`` (a good reference scale)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        return 1.0
    return float(10.0 ** np.round(np.mean(np.log10(x))))


__all__ = ["Law", "Param", "check_reference", "log_scaled", "reference_for"]
