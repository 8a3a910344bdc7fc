"""The batched least-squares solver behind :class:`~mixopt.laws.fitter.LawFitter`.

One projected Levenberg-Marquardt run fits many problems at once: every start of a
multi-start fit (same rows, different starting points) or every bootstrap draw (same
start, different row weights). The objective is the fitter's: the weighted mean of a
loss ``rho`` of the residuals ``r = g(y) - g(f(x; theta))`` (``g = log`` for log-space
laws), Huber or squared. Each iteration is Gauss-Newton with IRLS weights ``psi(r)/r``
(the Huber majoriser's curvature), so it is exact Gauss-Newton for squared loss and the
standard robust-regression step for Huber; a per-problem damping shrinks on success and
grows on failure, variables at a bound whose gradient pushes outward are frozen and
steps are clipped to the bounds. Every accepted step lowers that problem's objective.

Everything is counted in **iterations** (never seconds), so the same problem gives the
same answer on any machine, at any load and any thread count. Each iteration evaluates
the law once, value and Jacobian together, at the trial point; a rejected trial costs no
further evaluation (the current point's gradient and curvature are kept).

Early stopping of starts that cannot win (``prune_every``): every that many iterations, a
start whose objective, even if it kept falling at its current rate for
``PRUNE_HORIZON`` more such windows, would still be above the best start's current
objective is stopped (status ``"pruned"``), and so is a start whose parameters are within
``DUPLICATE_RTOL`` of a start with a lower objective (``"duplicate"``: the same basin, it
would reach the same optimum). Rates of descent only shrink near an optimum, so this
rarely stops a start that would have won; it is counted in iterations, so deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: an accepted step gaining less than this fraction of the objective ends that problem
LM_FTOL = 1e-12
#: ... as does a step moving every parameter by less than this (relative)
LM_XTOL = 1e-10
#: damping at which a problem counts as stuck (no descent direction left)
LM_MAX_DAMPING = 1e8
#: windows of the current descent rate a pruned start is given credit for
PRUNE_HORIZON = 10.0
#: a start whose parameters are this close (relative, every one) to a start with a lower
#: objective is in that start's basin and is stopped (it would reach the same optimum)
DUPLICATE_RTOL = 1e-3

#: ``evaluate(theta (b, p), with_jacobian) -> (f (b, n), J (b, n, p) or a StructuredJacobian)``
Evaluate = Callable[[np.ndarray, bool], tuple[np.ndarray, "np.ndarray | StructuredJacobian | None"]]
#: ``rho_psi(r) -> (rho(r), psi(r) = rho'(r))``, elementwise
RhoPsi = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

#: status codes of :class:`LMResult`
STATUS_TEXT = {
    "ftol": "converged: relative reduction of the objective <= {ftol:g}",
    "xtol": "converged: relative step <= {xtol:g}",
    "stuck": "converged: no descent step left (damping reached {damping:g})",
    "maxiter": "stopped: iteration cap of {maxiter} reached",
    "pruned": "stopped at iteration {it}: cannot reach the best start's objective",
    "duplicate": "stopped at iteration {it}: in the same basin as a better start (parameters within {dup:g})",
    "invalid": "the law is undefined at the start (non-finite or non-positive output)",
}


@dataclass
class LMResult:
    """Outcome of :func:`batched_lm` per problem.

    Attributes:
        theta: ``(B, p)`` final parameters.
        objective: ``(B,)`` weighted mean loss ``Σ w·rho(r) / Σ w`` at ``theta`` (inf where the
            law is undefined).
        converged: ``(B,)`` stopped by a convergence test (ftol, xtol or stuck).
        n_iter: ``(B,)`` iterations taken.
        status: ``(B,)`` status codes (keys of :data:`STATUS_TEXT`).
    """

    theta: np.ndarray
    objective: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray

    def message(self, i: int, maxiter: int) -> str:
        return STATUS_TEXT[str(self.status[i])].format(ftol=LM_FTOL, xtol=LM_XTOL, damping=LM_MAX_DAMPING, maxiter=maxiter, dup=DUPLICATE_RTOL,
                                                       it=int(self.n_iter[i]))


class StructuredJacobian(Protocol):
    """A Jacobian ``(b, n, p)`` known by its structure; the solver needs only two products."""

    def tmatvec(self, a: np.ndarray) -> np.ndarray:
        """``J' a``: ``(b, n) -> (b, p)``."""

    def gram(self, q: np.ndarray) -> np.ndarray:
        """``J' diag(q) J``: ``(b, n) -> (b, p, p)``."""


def _tmatvec(jac: np.ndarray | StructuredJacobian, a: np.ndarray) -> np.ndarray:
    if isinstance(jac, np.ndarray):
        return np.matmul(a[:, None, :], jac)[:, 0, :]
    return jac.tmatvec(a)


def _gram(jac: np.ndarray | StructuredJacobian, q: np.ndarray) -> np.ndarray:
    if isinstance(jac, np.ndarray):
        return np.matmul(np.swapaxes(jac * q[..., None], 1, 2), jac)
    return jac.gram(q)


def _state(evaluate: Evaluate, gy: np.ndarray, log_space: bool, rho_psi: RhoPsi, th: np.ndarray, w: np.ndarray,
           ws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objective ``(b,)``, gradient ``(b, p)`` and Gauss-Newton/IRLS curvature ``(b, p, p)`` at ``th``.

    With ``s = 1/f`` (log space) or 1, ``d r / d theta = -s·J``: the gradient is
    ``-J' (w·psi·s) / Σw`` and the curvature ``J' diag(w·(psi/r)·s²) J / Σw`` -- two
    products with the Jacobian, which a law may supply by its structure
    (:class:`StructuredJacobian`) instead of as a dense array.
    """
    with np.errstate(all="ignore"):
        f, jac = evaluate(th, True)
        if log_space:
            r = gy - np.log(f)
            s = 1.0 / f
        else:
            r = gy - f
            s = np.ones_like(f)
        rho, psi = rho_psi(r)
        val = np.einsum("bn,bn->b", w, rho) / ws
        u = np.where(r != 0, psi / np.where(r == 0, 1.0, r), 1.0)
        grad = -_tmatvec(jac, w * psi * s) / ws[:, None]
        hess = _gram(jac, w * u * s * s) / ws[:, None, None]
        # a non-finite or (log space) non-positive output makes rho, hence val, non-finite
        bad = ~np.isfinite(val + grad.sum(axis=1) + hess.sum(axis=(1, 2)))
    return np.where(bad, np.inf, val), grad, hess


def _duplicates(theta: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """``(B,)``: starts within :data:`DUPLICATE_RTOL` of a start with a lower objective (ties: the lower index stays)."""
    b = theta.shape[0]
    if b < 2:
        return np.zeros(b, dtype=bool)
    close = np.all(np.abs(theta[:, None, :] - theta[None, :, :]) <= DUPLICATE_RTOL * (1.0 + np.abs(theta[None, :, :])), axis=2)
    idx = np.arange(b)
    better = (obj[None, :] < obj[:, None]) | ((obj[None, :] == obj[:, None]) & (idx[None, :] < idx[:, None]))
    return np.any(close & better & np.isfinite(obj)[None, :], axis=1)


def batched_lm(evaluate: Evaluate, gy: np.ndarray, weights: np.ndarray, theta0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray],
               rho_psi: RhoPsi, *, log_space: bool, maxiter: int, prune_every: int = 0) -> LMResult:
    """Minimise ``Σ_n w[b, n]·rho(r[b, n]) / Σ_n w[b, n]`` for every problem ``b`` at once.

    Args:
        evaluate: the law's value and Jacobian at ``theta (b, p)`` on the fixed inputs.
        gy: ``(n,)`` targets in residual space (``log y`` for log-space laws).
        weights: ``(B, n)`` row weights per problem.
        theta0: ``(B, p)`` starting points (clipped to the bounds).
        bounds: ``(lower (p,), upper (p,))``.
        rho_psi: the loss and its derivative.
        log_space: residuals in log space.
        maxiter: iteration cap per problem.
        prune_every: > 0 to stop starts that cannot win every that many iterations (see the
            module docstring); 0 never stops a problem early.
    """
    lo, hi = bounds
    theta = np.clip(np.array(theta0, dtype=np.float64), lo, hi)
    nb, p = theta.shape
    weights = np.asarray(weights, dtype=np.float64)
    wsum = weights.sum(axis=1)
    obj, grad, hess = _state(evaluate, gy, log_space, rho_psi, theta, weights, wsum)
    lam = np.full(nb, 1e-4)
    active = np.isfinite(obj)
    status = np.where(active, "maxiter", "invalid").astype(object)
    n_iter = np.zeros(nb, dtype=np.int64)
    eye = np.eye(p)
    window_start = obj.copy()
    last_gain = np.full(nb, np.inf)
    for it in range(1, int(maxiter) + 1):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        th, g, h0 = theta[a], grad[a], hess[a]
        eps = 1e-12 * (1 + np.abs(th))
        frozen = ((th <= lo + eps) & (g > 0)) | ((th >= hi - eps) & (g < 0))
        free = ~frozen
        h = h0 * (free[:, :, None] & free[:, None, :]) + eye * frozen[:, None, :]
        diag = np.einsum("bii->bi", h)
        h = h + (lam[a, None] * np.maximum(diag, 1e-12))[:, None, :] * eye
        gf = np.where(free, g, 0.0)
        try:
            step = -np.linalg.solve(h, gf[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -gf / np.maximum(diag, 1e-12)
        step = np.where(np.isfinite(step), step, 0.0)
        trial = np.clip(th + step, lo, hi)
        t_obj, t_grad, t_hess = _state(evaluate, gy, log_space, rho_psi, trial, weights[a], wsum[a])
        old = obj[a]
        better = t_obj <= old
        acc = a[better]
        theta[acc], obj[acc], grad[acc], hess[acc] = trial[better], t_obj[better], t_grad[better], t_hess[better]
        lam[acc] = np.maximum(lam[acc] / 4.0, 1e-10)
        lam[a[~better]] *= 8.0
        n_iter[a] += 1
        moved = np.max(np.abs(trial - th) / (1.0 + np.abs(th)), axis=1)
        ftol = better & (old - t_obj <= LM_FTOL * np.maximum(np.abs(old), 1e-300))
        xtol = ~ftol & (moved <= LM_XTOL)
        stuck = ~ftol & ~xtol & (lam[a] >= LM_MAX_DAMPING)
        for code, mask in (("ftol", ftol), ("xtol", xtol), ("stuck", stuck)):
            status[a[mask]] = code
        active[a[ftol | xtol | stuck]] = False
        if prune_every > 0 and it % prune_every == 0:
            gain = np.maximum(window_start - obj, 0.0)
            best = float(np.min(obj[np.isfinite(obj)])) if np.isfinite(obj).any() else np.inf
            # a start whose descent accelerates is given its larger past rate: never pruned on a slow patch alone
            rate = np.maximum(gain, np.where(np.isfinite(last_gain), last_gain, 0.0))
            hopeless = active & (obj - PRUNE_HORIZON * rate > best + 1e-12 * abs(best))
            status[hopeless] = "pruned"
            active[hopeless] = False
            dup = active & _duplicates(theta, obj)
            status[dup] = "duplicate"
            active[dup] = False
            last_gain, window_start = gain, obj.copy()
    converged = np.isin(status, ("ftol", "xtol", "stuck")) & np.isfinite(obj)
    return LMResult(theta=theta, objective=obj, converged=converged, n_iter=n_iter, status=status.astype(str))


__all__ = ["LMResult", "STATUS_TEXT", "StructuredJacobian", "batched_lm"]
