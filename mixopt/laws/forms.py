"""The scaling-law forms mixopt fits (each a stateless :class:`~mixopt.laws.base.Law`).

=========================  =====================================  ============  ==========
law                        formula                                residuals     fit
=========================  =====================================  ============  ==========
:class:`PowerLawWithOffset` ``L = E + A·(C/C0)^(-alpha)``          log           LM
:class:`PurePowerLaw`       ``L = (C / C_N)^(alpha_N)`` (paper)    log           closed form
:class:`FPPowerLaw`         ``P = (C / C_P)^(alpha_P)`` (FP)       log           closed form
:class:`Linear`             ``P = w0 + w1·L``                      linear        closed form
:class:`Sigmoid`            ``P = f + (c - f)·σ(k·(L0 - L))``      linear        LM
:class:`ChinchillaLaw`      ``L = E + A/(N/N0)^alpha + B/(D/D0)^beta``  log       LM
:class:`ChinchillaTiedLaw`  ``L = E + A/(N/N0)^alpha + B/(D/D0)^alpha`` log       LM
=========================  =====================================  ============  ==========

LM: the batched multi-start Levenberg-Marquardt of :mod:`mixopt.laws.solvers`.

Conditioning: every power law works in ``u = log(x / reference)`` (``reference`` is a
constructor argument, default 1e18 FLOPs; FLP passes the power of ten nearest the data's
geometric mean, see :func:`~mixopt.laws.base.reference_for`) and fits the *log* of its scale
(``log_a`` instead of ``A``), so parameters are O(1) and weakly correlated. Units: ``C`` and
references in FLOPs, ``N`` parameters, ``D`` tokens, losses in nats/token, scores on the
benchmark's own scale.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mixopt.errors import ConfigError
from mixopt.laws.base import Law, Param, check_reference, log_scaled

#: default reference compute for the FLOPs laws (FLOPs)
DEFAULT_FLOPS_REFERENCE = 1e18
#: default reference parameter count of :class:`ChinchillaLaw`
DEFAULT_PARAMS_REFERENCE = 1e9
#: default reference token count of :class:`ChinchillaLaw`
DEFAULT_TOKENS_REFERENCE = 1e11

_BIG = 30.0  # bound on log-scales: exp(±30) covers any loss or score scale


def _irreducible_grid(y: np.ndarray) -> tuple[float, ...]:
    """Starting values for an irreducible term: fractions of the smallest target."""
    m = float(np.min(y)) if y.size else 1.0
    if not math.isfinite(m) or m <= 0:
        return (0.0,)
    return (0.0, 0.5 * m, 0.9 * m)


class PowerLawWithOffset(Law):
    """``L(C) = E + exp(log_a) · (C / reference)^(-alpha)``: loss with an irreducible term.

    mixopt's default FLOPs -> loss law. ``E >= 0`` is the irreducible loss (nats/token),
    ``exp(log_a)`` the reducible loss at ``C = reference``, ``alpha in [0, 5]`` the decay
    exponent. Residuals are taken in log space.

    Args:
        reference: compute scale ``C0`` in FLOPs (only conditions the fit; predictions do
            not depend on it).
    """

    name = "power_offset"
    inputs = ("flops",)
    log_space = True
    positive_inputs = True
    params = (
        Param("E", 0.0, math.inf, (0.0, 1.0, 2.0), "irreducible loss, nats/token"),
        Param("log_a", -_BIG, _BIG, (-1.6, 0.0, 1.6), "log of the reducible loss at C = reference"),
        Param("alpha", 0.0, 5.0, (0.05, 0.2, 0.5), "compute exponent (> 0: loss falls with compute)"),
    )

    def __init__(self, reference: float = DEFAULT_FLOPS_REFERENCE) -> None:
        self.reference = check_reference("reference", reference)

    def config(self) -> dict[str, Any]:
        return {"reference": self.reference}

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        e, log_a, alpha = self.unpack(theta)
        return e + np.exp(log_a - alpha * log_scaled(self.column(x, 0), self.reference))

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        _, log_a, alpha = self.unpack(theta)
        u = log_scaled(self.column(x, 0), self.reference)
        t = np.exp(log_a - alpha * u)
        return np.stack([np.ones_like(t), t, -u * t], axis=-1)

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        grid = super().start_grid(x, y)
        grid["E"] = _irreducible_grid(y)
        return grid


class _LogLinearPowerLaw(Law):
    """``y = exp(log_y_ref) · (x / reference)^alpha``, i.e. ``log y = log_y_ref + alpha·u``.

    Linear in its parameters in log space, so it is fitted in closed form.
    """

    inputs = ("flops",)
    log_space = True
    positive_inputs = True

    def __init__(self, reference: float = DEFAULT_FLOPS_REFERENCE) -> None:
        self.reference = check_reference("reference", reference)

    def config(self) -> dict[str, Any]:
        return {"reference": self.reference}

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        b, alpha = self.unpack(theta)
        return np.exp(b + alpha * log_scaled(self.column(x, 0), self.reference))

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        u = log_scaled(self.column(x, 0), self.reference)
        f = self.predict(x, theta)
        return np.stack([f, u * f], axis=-1)

    def design(self, x: np.ndarray) -> np.ndarray:
        u = log_scaled(self.column(x, 0), self.reference)
        return np.column_stack([np.ones_like(u), u])

    def paper_form(self, theta: np.ndarray) -> dict[str, float]:
        """The paper's parameters ``{"C": C_X, "alpha": alpha_X}`` of ``(C / C_X)^alpha_X``."""
        b, alpha = (float(v) for v in np.asarray(theta, dtype=np.float64).reshape(-1))
        c = self.reference * math.exp(-b / alpha) if alpha != 0 else math.inf
        return {"C": c, "alpha": alpha}


class PurePowerLaw(_LogLinearPowerLaw):
    """``L(C) = (C / C_N)^(alpha_N)``: the paper's FLOPs -> loss law (no irreducible term).

    Parametrised as ``log L = log_l_ref + alpha·log(C / reference)`` (``alpha <= 0``), which
    is exact least squares on ``log L`` vs ``log C`` and is solved in closed form;
    :meth:`paper_form` returns the paper's ``C_N`` and ``alpha_N``.

    Args:
        reference: compute scale in FLOPs (conditioning only).
    """

    name = "pure_power"
    params = (
        Param("log_l_ref", -_BIG, _BIG, (0.0, 1.0, 2.0), "log loss at C = reference"),
        Param("alpha", -5.0, 0.0, (-0.02, -0.05, -0.1), "compute exponent alpha_N (<= 0)"),
    )


class FPPowerLaw(_LogLinearPowerLaw):
    """``P(C) = (C / C_P)^(alpha_P)``: the FP baseline, FLOPs straight to score.

    The paper leaves the FP form open; this is its natural reading (a pure power law in
    compute, fitted in log space on the same emerged checkpoints as FLP's stage 2). The
    exponent is unbounded: positive for higher-is-better scores. Parametrised like
    :class:`PurePowerLaw` (``log P = log_p_ref + alpha·log(C / reference)``).

    Args:
        reference: compute scale in FLOPs (conditioning only).
    """

    name = "fp_power"
    params = (
        Param("log_p_ref", -_BIG, _BIG, (-1.0, 0.0), "log score at C = reference"),
        Param("alpha", -5.0, 5.0, (0.05, 0.2, -0.05), "compute exponent alpha_P"),
    )


class Linear(Law):
    """``P = w0 + w1 · L``: FLP's stage 2, loss (nats/token) -> score, in linear space.

    Solved in closed form (least squares, or Huber by iteratively reweighted least squares).
    """

    name = "linear"
    inputs = ("loss",)
    params = (
        Param("w0", -math.inf, math.inf, (0.0, 1.0), "intercept, score units"),
        Param("w1", -math.inf, math.inf, (-0.5, 0.0), "slope, score per nat/token"),
    )

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        w0, w1 = self.unpack(theta)
        return w0 + w1 * self.column(x, 0)

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        v = self.column(x, 0) + 0.0 * self.unpack(theta)[0]
        return np.stack([np.ones_like(v), v], axis=-1)

    def design(self, x: np.ndarray) -> np.ndarray:
        v = self.column(x, 0)
        return np.column_stack([np.ones_like(v), v])


class Sigmoid(Law):
    """``P = floor + (ceiling - floor) · σ(k · (L0 - L))``: a saturating loss -> score map.

    The reviewers' suggested alternative to the linear stage 2 (and the Llama 3 report's
    two-step method): the score sits at ``floor`` (chance) at high loss, rises around
    ``L = L0`` with steepness ``k > 0`` per nat/token, and saturates at ``ceiling`` at low
    loss. For lower-is-better metrics ``ceiling < floor`` works the same way.

    Args:
        floor: fixed value at high loss (the benchmark's chance level), or None to fit it
            (then it is the first parameter).
        ceiling_bounds: ``(lower, upper)`` bounds of ``ceiling`` (e.g. ``(chance, 1.0)``
            for an accuracy).
    """

    name = "sigmoid"
    inputs = ("loss",)

    def __init__(self, floor: float | None = None, ceiling_bounds: tuple[float, float] = (-math.inf, math.inf)) -> None:
        if floor is not None and not math.isfinite(float(floor)):
            raise ConfigError(f"Sigmoid floor must be finite or None, got {floor!r}.")
        lo, hi = (float(v) for v in ceiling_bounds)
        if not lo < hi:
            raise ConfigError(f"Sigmoid ceiling_bounds must satisfy lower < upper, got {ceiling_bounds!r}.")
        self.floor = None if floor is None else float(floor)
        self.ceiling_bounds = (lo, hi)
        if math.isfinite(lo) and math.isfinite(hi):
            mid = 0.5 * (lo + hi)
        elif math.isfinite(lo) or math.isfinite(hi):
            mid = lo + 1.0 if math.isfinite(lo) else hi - 1.0
        else:
            mid = 1.0
        shape = (
            Param("ceiling", lo, hi, (mid,), "score at low loss (saturation)"),
            Param("k", 0.0, 1e4, (1.0, 4.0, 16.0), "steepness per nat/token"),
            Param("L0", 0.0, 1e3, (2.0, 3.0, 4.0), "loss at the midpoint, nats/token"),
        )
        free = (Param("floor", -math.inf, math.inf, (0.0,), "score at high loss"),) if self.floor is None else ()
        self.params = free + shape

    def config(self) -> dict[str, Any]:
        return {"floor": self.floor, "ceiling_bounds": list(self.ceiling_bounds)}

    def _split(self, theta: np.ndarray) -> tuple[np.ndarray | float, np.ndarray, np.ndarray, np.ndarray]:
        parts = self.unpack(theta)
        if self.floor is None:
            return parts  # type: ignore[return-value]
        return (self.floor, *parts)  # type: ignore[return-value]

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        f, c, k, l0 = self._split(theta)
        s = _expit(k * (l0 - self.column(x, 0)))
        return f + (c - f) * s

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        f, c, k, l0 = self._split(theta)
        d = l0 - self.column(x, 0)
        s = _expit(k * d)
        ds = (c - f) * s * (1.0 - s)
        cols = [s, ds * d, ds * k]
        if self.floor is None:
            cols.insert(0, 1.0 - s)
        return np.stack(cols, axis=-1)

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        v = self.column(x, 0)
        lo_x, hi_x = float(np.min(v)), float(np.max(v))
        r = max(hi_x - lo_x, 1e-3)
        span = max(float(np.max(y) - np.min(y)), 1e-3)
        rising = _rises_as_loss_falls(v, y)
        top, bottom = (float(np.max(y)), float(np.min(y))) if rising else (float(np.min(y)), float(np.max(y)))
        sgn = 1.0 if rising else -1.0
        clo, chi = self.ceiling_bounds
        grid: dict[str, tuple[float, ...]] = {
            "ceiling": tuple(sorted({float(np.clip(top + sgn * m * span, clo, chi)) for m in (0.0, 1.0, 3.0)})),
            "k": (1.0 / r, 4.0 / r, 16.0 / r),
            "L0": tuple(max(g, 1e-3) for g in (lo_x - r, lo_x, float(np.median(v)), hi_x)),
        }
        if self.floor is None:
            grid = {"floor": (bottom, bottom - sgn * 0.1 * span), **grid}
        return grid


def _rises_as_loss_falls(v: np.ndarray, y: np.ndarray) -> bool:
    if v.size < 2 or np.ptp(v) == 0 or np.ptp(y) == 0:
        return True
    return float(np.corrcoef(v, y)[0, 1]) <= 0


def _expit(z: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free (``tanh`` form, faster than scipy's ``expit``)."""
    return 0.5 + 0.5 * np.tanh(0.5 * np.asarray(z, dtype=np.float64))


class ChinchillaLaw(Law):
    """``L(N, D) = E + exp(a)/(N/N0)^alpha + exp(b)/(D/D0)^beta`` (Hoffmann et al. 2022).

    Inputs ``q = 2``: parameters N and tokens D. Separates model size from data, so one
    compute budget split differently (or an over-trained run) gets its own loss. Fitted in
    log space (Epoch's practice: Huber, multi-start; here one batched Levenberg-Marquardt run).

    Args:
        params_reference: ``N0``, parameters (conditioning only).
        tokens_reference: ``D0``, tokens (conditioning only).
    """

    name = "chinchilla"
    inputs = ("params", "tokens")
    log_space = True
    positive_inputs = True
    params = (
        Param("E", 0.0, math.inf, (0.0, 1.0, 2.0), "irreducible loss, nats/token"),
        Param("a", -_BIG, _BIG, (-2.0, -0.5, 1.0), "log of the model-size term at N = N0"),
        Param("alpha", 0.0, 5.0, (0.15, 0.35, 0.6), "model-size exponent"),
        Param("b", -_BIG, _BIG, (-2.0, -0.5, 1.0), "log of the data term at D = D0"),
        Param("beta", 0.0, 5.0, (0.15, 0.35, 0.6), "data exponent"),
    )

    def __init__(
        self, params_reference: float = DEFAULT_PARAMS_REFERENCE, tokens_reference: float = DEFAULT_TOKENS_REFERENCE
    ) -> None:
        self.params_reference = check_reference("params_reference", params_reference)
        self.tokens_reference = check_reference("tokens_reference", tokens_reference)

    def config(self) -> dict[str, Any]:
        return {"params_reference": self.params_reference, "tokens_reference": self.tokens_reference}

    def _terms(self, x: np.ndarray, a: Any, alpha: Any, b: Any, beta: Any) -> tuple[np.ndarray, ...]:
        un = log_scaled(self.column(x, 0), self.params_reference)
        ud = log_scaled(self.column(x, 1), self.tokens_reference)
        return un, ud, np.exp(a - alpha * un), np.exp(b - beta * ud)

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        e, a, alpha, b, beta = self.unpack(theta)
        _, _, tn, td = self._terms(x, a, alpha, b, beta)
        return e + tn + td

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        _, a, alpha, b, beta = self.unpack(theta)
        un, ud, tn, td = self._terms(x, a, alpha, b, beta)
        return np.stack([np.ones_like(tn), tn, -un * tn, td, -ud * td], axis=-1)

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        grid = super().start_grid(x, y)
        grid["E"] = _irreducible_grid(y)
        return grid


class ChinchillaTiedLaw(ChinchillaLaw):
    """``L(N, D) = E + exp(a)/(N/N0)^alpha + exp(b)/(D/D0)^alpha``: Chinchilla with one exponent.

    Four parameters instead of five: the form Gadre et al. (2024) fit as
    ``L(C, M) = E + (a'·M^eta + b'·M^-eta)·C^-eta`` (with ``M = D/N``, ``C = 6·N·D`` and
    ``eta = alpha/2``), re-parametrised in N and D. Steadier than :class:`ChinchillaLaw`
    when few sizes are fitted, and exact for compute-optimal scaling with equal exponents.

    Args:
        params_reference: ``N0``, parameters (conditioning only).
        tokens_reference: ``D0``, tokens (conditioning only).
    """

    name = "chinchilla_tied"  # inputs (N, D) and log-space fitting as ChinchillaLaw
    params = (
        Param("E", 0.0, math.inf, (0.0, 1.0, 2.0), "irreducible loss, nats/token"),
        Param("a", -_BIG, _BIG, (-2.0, -0.5, 1.0), "log of the model-size term at N = N0"),
        Param("b", -_BIG, _BIG, (-2.0, -0.5, 1.0), "log of the data term at D = D0"),
        Param("alpha", 0.0, 5.0, (0.15, 0.3, 0.5), "shared exponent"),
    )

    # references, config and the start grid are ChinchillaLaw's (the same N, D inputs)

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        e, a, b, alpha = self.unpack(theta)
        _, _, tn, td = self._terms(x, a, alpha, b, alpha)
        return e + tn + td

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        _, a, b, alpha = self.unpack(theta)
        un, ud, tn, td = self._terms(x, a, alpha, b, alpha)
        return np.stack([np.ones_like(tn), tn, td, -un * tn - ud * td], axis=-1)


#: every built-in law by :attr:`Law.name`
LAWS: dict[str, type[Law]] = {
    cls.name: cls for cls in (PowerLawWithOffset, PurePowerLaw, FPPowerLaw, Linear, Sigmoid, ChinchillaLaw, ChinchillaTiedLaw)
}


def register_law(cls: type[Law]) -> type[Law]:
    """Class decorator: make a law rebuildable by name with :func:`make_law` (model files)."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} must set a non-empty 'name'")
    LAWS[cls.name] = cls
    return cls


def make_law(name: str, **config: Any) -> Law:
    """Build a registered law from its name and :meth:`Law.config`.

    Raises:
        ConfigError: unknown name or invalid configuration.
    """
    if name not in LAWS:
        raise ConfigError(f"Unknown law {name!r}; choose one of {sorted(LAWS)} (or register_law your own).")
    if "ceiling_bounds" in config and config["ceiling_bounds"] is not None:
        config = {**config, "ceiling_bounds": tuple(float(v) for v in config["ceiling_bounds"])}
    try:
        return LAWS[name](**config)
    except TypeError as e:
        raise ConfigError(f"Invalid configuration for law {name!r}: {e}") from None


__all__ = [
    "DEFAULT_FLOPS_REFERENCE",
    "DEFAULT_PARAMS_REFERENCE",
    "DEFAULT_TOKENS_REFERENCE",
    "LAWS",
    "ChinchillaLaw",
    "ChinchillaTiedLaw",
    "FPPowerLaw",
    "Linear",
    "PowerLawWithOffset",
    "PurePowerLaw",
    "Sigmoid",
    "make_law",
    "register_law",
]
