"""Stage-1 mixture laws of FLP-M and DML: per-domain loss as a function of scale and mixture.

Stateless :class:`~mixopt.laws.base.Law` forms (parameters, ``predict``, ``jacobian``,
data-scaled start grids) fitted by the shared :class:`~mixopt.laws.fitter.LawFitter`.
FLOPs-only forms (input ``flops`` then the ratios): ``flpm`` (pooled transfer-weighted
compute power law), ``flpm_additive`` (the paper's per-source sum), ``dml`` (Data Mixing
Laws times a compute power law); see :mod:`mixopt.surrogate.flpm` for their derivation and
measured accuracy. N,D forms (inputs ``params``, ``tokens`` then the ratios), which
separate model size from data so that intermediate checkpoints and over-trained runs are
described: ``flpm_nd`` and ``dml_nd`` (below).

Ratios sum to a constant, so the last source's ratio is never an input (it is
``ratio_total - Σ others``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mixopt.errors import ConfigError
from mixopt.laws.base import Law, Param, check_reference

_BIG = 30.0


class RatioBlockJacobian:
    """The Jacobian ``[lead | c·R·w]`` of a mixture law for ``b`` parameter vectors, by its parts.

    ``lead (b, n, m)``, ``c (b, n)``, ``R (n, k)`` (the completed ratios), ``rr (n, k·k)``
    (``R[n, i]·R[n, j]``, computed once per fit) and ``w (b, k)`` or None. The solver's two
    products are matrix products with ``R`` and ``rr``, so a fit never forms a
    ``(b, n, p)`` array: :meth:`gram`'s ratio block is ``w_i·w_j·Σ_n q·c²·R_ni·R_nj``.
    """

    __slots__ = ("c", "lead", "r", "rr", "w")

    def __init__(self, lead: np.ndarray, c: np.ndarray, r: np.ndarray, rr: np.ndarray, w: np.ndarray | None) -> None:
        self.lead, self.c, self.r, self.rr, self.w = lead, c, r, rr, w

    def tmatvec(self, a: np.ndarray) -> np.ndarray:
        """``J' a`` for ``a (b, n)``: ``(b, p)``."""
        blk = (self.c * a) @ self.r
        if self.w is not None:
            blk *= self.w
        return np.concatenate([np.einsum("bnm,bn->bm", self.lead, a), blk], axis=1)

    def gram(self, q: np.ndarray) -> np.ndarray:
        """``J' diag(q) J`` for ``q (b, n)``: ``(b, p, p)``."""
        b, _, m = self.lead.shape
        k = self.r.shape[1]
        out = np.empty((b, m + k, m + k))
        lq = self.lead * q[..., None]
        out[:, :m, :m] = np.matmul(np.swapaxes(lq, 1, 2), self.lead)
        cross = np.matmul(np.swapaxes(lq * self.c[..., None], 1, 2), self.r)  # (b, m, k)
        ss = ((q * self.c * self.c) @ self.rr).reshape(b, k, k)
        if self.w is not None:
            cross *= self.w[:, None, :]
            ss *= self.w[:, :, None] * self.w[:, None, :]
        out[:, :m, m:] = cross
        out[:, m:, :m] = np.swapaxes(cross, 1, 2)
        out[:, m:, m:] = ss
        return out


class MixtureLaw(Law):
    """Base of the stage-1 laws: inputs ``flops`` (if compute varies), then the ratios.

    Ratios sum to a constant (1, less any domains held fixed in training), so the last
    source's ratio is not an input: it is ``ratio_total - Σ(other ratios)``. (As inputs, the
    full set of ratios would be exactly collinear, which the fitter rightly rejects.)

    Args:
        sources: names of the ``k >= 2`` mixture domains, in order.
        vary_compute: whether compute varies in the data; if False the law has no compute
            input and no compute parameters (it is a mixture law at one compute scale).
        reference: compute scale ``C_ref``, FLOPs (conditioning only).
        ratio_total: what the ``k`` ratios sum to (1 unless some domains are held fixed).
    """

    log_space = True
    positive_inputs = False

    def __init__(self, sources: Sequence[str], vary_compute: bool = True, reference: float = 1e18,
                 ratio_total: float = 1.0) -> None:
        self.sources = tuple(str(s) for s in sources)
        if len(self.sources) < 2:
            raise ConfigError(f"{type(self).__name__} needs at least two mixture domains (sources), got {list(self.sources)}.")
        self.vary_compute = bool(vary_compute)
        self.reference = check_reference("reference", reference)
        self.ratio_total = float(ratio_total)
        if not 0 < self.ratio_total <= 1 + 1e-9:
            raise ConfigError(f"ratio_total must be in (0, 1], got {ratio_total!r}.")

    @property  # type: ignore[override]
    def inputs(self) -> tuple[str, ...]:
        return (("flops",) if self.vary_compute else ()) + tuple(f"r:{s}" for s in self.sources[:-1])

    @property
    def k(self) -> int:
        return len(self.sources)

    def config(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "vary_compute": self.vary_compute, "reference": self.reference,
                "ratio_total": self.ratio_total}

    def inputs_from(self, flops: np.ndarray, ratios: np.ndarray) -> np.ndarray:
        """Law inputs ``(n, q)`` from compute ``(n,)`` FLOPs and all ``k`` ratios ``(n, k)``."""
        r = np.asarray(ratios, dtype=np.float64)[:, :-1]
        return np.column_stack([np.asarray(flops, dtype=np.float64), r]) if self.vary_compute else r

    #: True for the N,D forms (inputs ``params``, ``tokens``); False for FLOPs-only forms
    uses_nd: bool = False

    def inputs_from_scale(self, flops: np.ndarray, params: np.ndarray | None, tokens: np.ndarray | None,
                          ratios: np.ndarray) -> np.ndarray:
        """Law inputs from compute ``(n,)`` (and, for N,D forms, ``params``/``tokens`` ``(n,)``) and ratios ``(n, k)``."""
        return self.inputs_from(flops, ratios)

    def _ux(self, x: np.ndarray) -> tuple[np.ndarray | float, np.ndarray]:
        """``(u = log(C / C_ref) (..., n) or 0.0, all k ratios (..., n, k))``."""
        x = np.asarray(x, dtype=np.float64)
        if self.vary_compute:
            u: np.ndarray | float = np.log(x[..., 0] / self.reference)
            r = x[..., 1:]
        else:
            u, r = 0.0, x
        last = np.maximum(self.ratio_total - r.sum(axis=-1, keepdims=True), 0.0)
        return u, np.concatenate([r, last], axis=-1)

    # -- evaluation: inputs prepared once, value and Jacobian in one pass ---------------------
    def _prepare(self, x: np.ndarray) -> tuple[Any, ...]:
        """The inputs as the formula uses them (FLOPs forms: ``(u, R)``, see :meth:`_ux`)."""
        return self._ux(x)

    #: whether the law's Jacobian is ``[leading columns | c·R·w]`` (see :meth:`_parts`)
    _ratio_block: ClassVar[bool] = True

    def _parts(self, prep: tuple[Any, ...], theta: np.ndarray,
               with_jacobian: bool) -> tuple[np.ndarray, Any, Any, Any]:
        """``(f (..., n), lead (..., n, m), c (..., n), w (..., k) or None)``.

        The Jacobian is ``[lead | c[..., n, None]·R[n, s]·w[..., None, s]]``: ``m`` leading
        columns, then one column per source that is the ratio scaled by a row factor ``c``
        and (for the weight forms) a per-source factor ``w``. Without the Jacobian only
        ``f`` is computed (the rest is None).
        """
        raise NotImplementedError

    def _vj(self, prep: tuple[Any, ...], theta: np.ndarray, with_jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``(f (..., n), J (..., n, p) or None)`` from prepared inputs."""
        f, lead, c, w = self._parts(prep, theta, with_jacobian)
        if not with_jacobian:
            return f, None
        blk = prep[-1] * c[..., None]
        if w is not None:
            blk = blk * w[..., None, :]
        return f, np.concatenate([np.broadcast_to(lead, blk.shape[:-1] + lead.shape[-1:]), blk], axis=-1)

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self._predict_prepared(self._prepare(x), np.asarray(theta, dtype=np.float64))

    def prep_key(self) -> tuple[Any, ...] | None:
        """What this law's prepared inputs depend on besides ``x``: two laws with the same key prepare the same
        inputs from the same ``x`` (:meth:`predict_each`'s ``prep``), None where this law does not say."""
        return None

    def prepare(self, x: np.ndarray) -> tuple[Any, ...]:
        """The prepared inputs of ``x`` (for :meth:`predict_each`'s ``prep``)."""
        return self._prepare(x)

    def predict_each(self, x: np.ndarray, thetas: Sequence[np.ndarray], scratch: Sequence[np.ndarray | None] | None = None,
                     prep: tuple[Any, ...] | None = None) -> list[np.ndarray]:
        """``[predict(x, theta) for theta in thetas]`` with the inputs prepared once (the same numbers);
        ``scratch`` as in :meth:`Law.predict_each <mixopt.laws.base.Law.predict_each>`; ``prep``: ``x``
        prepared already (:meth:`prepare`, by this law or one with the same :meth:`prep_key`)."""
        prep = self._prepare(x) if prep is None else prep
        outs = list(scratch) if scratch is not None else [None] * len(thetas)
        return [self._predict_prepared(prep, np.asarray(theta, dtype=np.float64), out) for theta, out in zip(thetas, outs, strict=True)]

    def _predict_prepared(self, prep: tuple[Any, ...], theta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`predict` from prepared inputs (:meth:`_prepare`); ``out`` an optional ``(n, b)`` scratch array (unused here)."""
        return self._vj(prep, theta, False)[0]

    def jacobian(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self._vj(self._prepare(x), np.asarray(theta, dtype=np.float64), True)[1]  # type: ignore[return-value]

    def evaluator(self, x: np.ndarray):  # noqa: ANN201 - Law.evaluator's type
        """Inputs prepared once; for a batch of parameter vectors the Jacobian comes as a
        :class:`RatioBlockJacobian` (its products by matrix products with the ratios,
        never a ``(b, n, p)`` array)."""
        prep = self._prepare(x)
        R = prep[-1]
        rr = (R[:, :, None] * R[:, None, :]).reshape(R.shape[0], -1) if self._ratio_block and R.ndim == 2 else None

        def evaluate(theta: np.ndarray, with_jacobian: bool = True) -> tuple[np.ndarray, Any]:
            theta = np.asarray(theta, dtype=np.float64)
            if rr is None or not with_jacobian or theta.ndim != 2:
                return self._vj(prep, theta, with_jacobian)
            f, lead, c, w = self._parts(prep, theta, True)
            return f, RatioBlockJacobian(np.broadcast_to(lead, f.shape + lead.shape[-1:]), c, R, rr, w)

        return evaluate

    @staticmethod
    def _lead(f: np.ndarray, m: int) -> np.ndarray:
        out = np.empty(f.shape + (m,))
        out[..., 0] = 1.0  # d f / d E
        return out

    @staticmethod
    def _mix(R: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``Σ_s R[..., n, s]·w[..., s]`` -> ``(..., n)`` with batch broadcasting."""
        if R.ndim == 2 and w.ndim == 2:  # many parameter vectors, one input set: one gemm
            return np.ascontiguousarray((R @ w.T).T)
        return np.matmul(R, w[..., :, None])[..., 0]


class FLPMLaw(MixtureLaw):
    """``L = E + exp(-alpha·(u + log(eps + Σ_s w_s·r_s)))``, ``u = log(C / C_ref)``.

    Equivalently ``L = E + ((eps·C + Σ_s w_s·C_s) / C_ref)^(-alpha)`` with ``C_s = r_s·C``.
    Parameters: ``E`` (irreducible loss, nats/token), ``alpha`` (exponent), ``log_eps``
    (log of the ratio-independent share), ``log_w:<s>`` (log of source s's weight).
    """

    name = "flpm"

    @property  # type: ignore[override]
    def params(self) -> tuple[Param, ...]:
        return (
            Param("E", 0.0, 50.0, (0.0,), "irreducible loss, nats/token"),
            Param("alpha", 0.01, 3.0, (0.15,), "compute exponent of the pooled effective compute"),
            Param("log_eps", -_BIG, 10.0, (-3.0,), "log share of compute that teaches the domain whatever the ratios"),
            *(Param(f"log_w:{s}", -_BIG, _BIG, (0.0,), f"log weight of source {s!r} in the effective compute") for s in self.sources),
        )

    def predict(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Losses ``(b, n)`` for a batch ``theta (b, p)`` (or ``(n,)`` for one vector, ``(..., n)`` batched).

        For one input set and a ``(b, p)`` batch (the prediction path: the point fit and
        every bootstrap refit at once) the formula runs in place in the gemm's ``(n, b)``
        layout and the result is its transposed view: the same operations in the same order
        as :meth:`_parts`, so the same numbers, without temporaries or a transposing copy.
        """
        return self._predict_prepared(self._prepare(x), np.asarray(theta, dtype=np.float64))

    def _predict_prepared(self, prep: tuple[Any, ...], theta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        u, R = prep
        if theta.ndim != 2 or R.ndim != 2:
            return self._vj(prep, theta, False)[0]
        share = np.matmul(R, np.exp(theta[:, 3:]).T, out=out)  # (n, b), in ``out`` when given (the same product)
        share += np.exp(theta[:, 2])
        np.log(share, out=share)
        if not isinstance(u, float):
            share += np.asarray(u)[:, None]
        share *= -theta[:, 1]
        np.exp(share, out=share)
        share += theta[:, 0]
        return share.T

    def _parts(self, prep: tuple[Any, ...], theta: np.ndarray, with_jacobian: bool) -> tuple[np.ndarray, Any, Any, Any]:
        u, R = prep
        alpha, eps = theta[..., 1, None], np.exp(theta[..., 2, None])
        w = np.exp(theta[..., 3:])
        share = eps + self._mix(R, w)
        ls = np.log(share)
        g = np.exp(-alpha * (u + ls))
        f = theta[..., 0, None] + g
        if not with_jacobian:
            return f, None, None, None
        c = -alpha * g / share
        lead = self._lead(f, 3)
        lead[..., 1] = -g * (u + ls)
        lead[..., 2] = c * eps
        return f, lead, c, w

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        lo, mean = float(np.min(y)), float(np.mean(y))
        grid: dict[str, tuple[float, ...]] = {"E": (0.0, 0.5 * lo, 0.8 * lo), "alpha": (0.1, 0.3, 0.6), "log_eps": (-3.0,)}
        # common log-weight so the reducible loss at a typical mixture and C_ref starts near the data
        level = -math.log(max(mean - 0.5 * lo, 1e-3)) / 0.3
        grid.update({f"log_w:{s}": (float(np.clip(level, -_BIG, _BIG)),) for s in self.sources})
        return grid


class FLPMAdditiveLaw(MixtureLaw):
    """``L = E + A·exp(-alpha·u) + Σ_s B_s·(1 + r_s·exp(u - c_s))^(-beta_s)``.

    The paper's per-source sum with a finite ``r_s = 0`` limit: ``exp(c_s)`` is the compute
    scale ``C_s,d / C_ref`` of source s. Without varying compute the ``A, alpha`` term is
    dropped (``u = 0``). ``shared_exponent=True`` uses one ``beta`` for every source.
    """

    name = "flpm_additive"
    _ratio_block = False

    def __init__(self, sources: Sequence[str], vary_compute: bool = True, reference: float = 1e18,
                 ratio_total: float = 1.0, shared_exponent: bool = False) -> None:
        super().__init__(sources, vary_compute, reference, ratio_total)
        self.shared_exponent = bool(shared_exponent)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "shared_exponent": self.shared_exponent}

    @property  # type: ignore[override]
    def params(self) -> tuple[Param, ...]:
        ps = [Param("E", 0.0, 50.0, (0.0,), "irreducible loss, nats/token")]
        if self.vary_compute:
            ps += [Param("log_a", -_BIG, 10.0, (0.0,), "log reducible loss of the total-compute term at C_ref"),
                   Param("alpha", 0.0, 3.0, (0.15,), "exponent of the total-compute term")]
        ps += [Param(f"log_b:{s}", -_BIG, 10.0, (0.0,), f"log loss removed by source {s!r}") for s in self.sources]
        ps += [Param(f"c:{s}", -_BIG, _BIG, (-2.3,), f"log compute scale of source {s!r} (relative to C_ref)") for s in self.sources]
        if self.shared_exponent:
            ps.append(Param("beta", 0.01, 5.0, (0.5,), "exponent shared by every source term"))
        else:
            ps += [Param(f"beta:{s}", 0.01, 5.0, (0.5,), f"exponent of source {s!r}") for s in self.sources]
        return tuple(ps)

    def _split(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        k = self.k
        i = 1
        if self.vary_compute:
            la, al = theta[..., 1:2], theta[..., 2:3]
            i = 3
        else:
            la = al = None
        lb, c = theta[..., i : i + k], theta[..., i + k : i + 2 * k]
        beta = theta[..., i + 2 * k :]
        if self.shared_exponent:
            beta = np.broadcast_to(beta, lb.shape)
        return theta[..., 0:1], la, al, lb, c, beta  # type: ignore[return-value]

    def _vj(self, prep: tuple[Any, ...], theta: np.ndarray, with_jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        u, R = prep
        e, la, al, lb, c, beta = self._split(theta)
        uu = np.asarray(u, dtype=np.float64)
        q = R * np.exp(uu[..., None] - c[..., None, :])  # (..., n, k)
        t = 1.0 + q
        lt = np.log(t)
        bb = beta[..., None, :]
        term = np.exp(lb[..., None, :] - bb * lt)
        f = e + term.sum(axis=-1)
        if self.vary_compute:
            a = np.exp(la - al * uu)  # (..., n)
            f = f + a
        if not with_jacobian:
            return f, None
        k = self.k
        jac = np.empty(f.shape + (theta.shape[-1],))
        jac[..., 0] = 1.0
        i = 1
        if self.vary_compute:
            jac[..., 1], jac[..., 2] = a, -uu * a
            i = 3
        jac[..., i : i + k] = term
        jac[..., i + k : i + 2 * k] = bb * term * q / t
        dbeta = -term * lt
        jac[..., i + 2 * k :] = dbeta.sum(axis=-1, keepdims=True) if self.shared_exponent else dbeta
        return f, jac

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        lo, mean = float(np.min(y)), float(np.mean(y))
        grid = {p.name: p.grid for p in self.params}
        grid["E"] = (0.0, 0.5 * lo, 0.8 * lo)
        spare = max(mean - 0.5 * lo, 1e-3)
        for s in self.sources:
            grid[f"log_b:{s}"] = (math.log(spare / (self.k + 1)),)
        if self.vary_compute:
            grid["log_a"] = (math.log(spare / 2),)
        return grid


class DMLLaw(MixtureLaw):
    """``L = E + exp(-alpha·u + Σ_j t_j·r_j)``: Data Mixing Law times a compute power law."""

    name = "dml"

    @property  # type: ignore[override]
    def params(self) -> tuple[Param, ...]:
        ps = [Param("E", 0.0, 50.0, (0.0,), "irreducible loss, nats/token")]
        if self.vary_compute:
            ps.append(Param("alpha", 0.0, 3.0, (0.15,), "compute exponent"))
        ps += [Param(f"t:{s}", -_BIG, _BIG, (0.0,), f"log reducible loss if all data were {s!r}") for s in self.sources]
        return tuple(ps)

    def _parts(self, prep: tuple[Any, ...], theta: np.ndarray, with_jacobian: bool) -> tuple[np.ndarray, Any, Any, Any]:
        u, R = prep
        i = 2 if self.vary_compute else 1
        z = self._mix(R, theta[..., i:])
        if self.vary_compute:
            z = z - theta[..., 1:2] * u
        g = np.exp(z)
        f = theta[..., 0:1] + g
        if not with_jacobian:
            return f, None, None, None
        lead = self._lead(f, i)
        if self.vary_compute:
            lead[..., 1] = -u * g
        return f, lead, g, None

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        lo, mean = float(np.min(y)), float(np.mean(y))
        grid = {p.name: p.grid for p in self.params}
        grid["E"] = (0.0, 0.5 * lo, 0.8 * lo)
        if self.vary_compute:
            grid["alpha"] = (0.1, 0.3)
        t0 = math.log(max(mean - 0.5 * lo, 1e-3))
        grid.update({f"t:{s}": (t0,) for s in self.sources})
        return grid


#: parameter batches (and scales per batch, x4) whose derived constants an N,D law keeps (:meth:`_NDLaw._theta_consts`)
_THETA_CONSTS_MAX = 16


class _NDLaw(MixtureLaw):
    """Base of the N,D forms: inputs ``params``, ``tokens`` (then ratios), references for each.

    ``L = E + A·(N/N_ref)^(-a) + data_term(D, r)``: model size and data enter separately
    (Chinchilla's ``A/N^a + B/D^b``), so a checkpoint part-way through a run (same N,
    fewer tokens) and an over-trained small model are described, where a FLOPs-only law
    sees only ``6·N·D``. The mixture acts on the **data term** (which data the tokens are
    made of), not on the model-size term. Needs varying scale (``vary_compute=True``).
    """

    uses_nd = True

    def __init__(self, sources: Sequence[str], vary_compute: bool = True, reference: float = 1e18,
                 ratio_total: float = 1.0, n_reference: float = 1e8, d_reference: float = 2e9) -> None:
        super().__init__(sources, vary_compute, reference, ratio_total)
        if not self.vary_compute:
            raise ConfigError(
                f"stage-1 form {self.name!r} separates model size and tokens, which needs runs at several scales; "
                "all runs share one compute scale. Use stage1='flpm' or 'dml'."
            )
        self.n_reference = check_reference("n_reference", n_reference)
        self.d_reference = check_reference("d_reference", d_reference)

    @property  # type: ignore[override]
    def inputs(self) -> tuple[str, ...]:
        return ("params", "tokens") + tuple(f"r:{s}" for s in self.sources[:-1])

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_reference": self.n_reference, "d_reference": self.d_reference}

    def inputs_from(self, flops: np.ndarray, ratios: np.ndarray) -> np.ndarray:
        raise ConfigError(
            f"stage-1 form {self.name!r} needs model size and tokens, not only compute: give targets with params and "
            "tokens (Targets.from_params_tokens), or use a FLOPs-only form (stage1='flpm' / 'dml')."
        )

    def inputs_from_scale(self, flops: np.ndarray, params: np.ndarray | None, tokens: np.ndarray | None,
                          ratios: np.ndarray) -> np.ndarray:
        if params is None or tokens is None:
            return self.inputs_from(flops, ratios)
        r = np.asarray(ratios, dtype=np.float64)[:, :-1]
        return np.column_stack([np.asarray(params, dtype=np.float64), np.asarray(tokens, dtype=np.float64), r])

    def _prepare(self, x: np.ndarray) -> tuple[Any, ...]:
        return self._nd(x)

    def prep_key(self) -> tuple[Any, ...] | None:
        # _nd reads the references and the ratio total only
        return ("nd", float(self.n_reference), float(self.d_reference), float(self.ratio_total))

    def _theta_consts(self, theta: np.ndarray) -> dict[Any, np.ndarray] | None:
        """The constants :meth:`_predict_prepared` derives from a ``(b, p)`` parameter batch, kept per batch
        when ``theta`` is read-only (a fitted model's parameter arrays as prediction passes them: never
        written, so what is derived from them stays valid while they are the same objects); None for a
        writable ``theta`` (a fit's trial parameters: derived per call). A dict to read and fill, bounded."""
        if theta.flags.writeable:
            return None
        cache = self.__dict__.setdefault("_theta_consts_cache", {})
        hit = cache.get(id(theta))
        if hit is None or hit[0] is not theta:
            if len(cache) >= _THETA_CONSTS_MAX:
                cache.clear()
            hit = cache[id(theta)] = (theta, {})
        return hit[1]

    @staticmethod
    def _kept(consts: dict[Any, np.ndarray] | None, key: Any, make: Any) -> np.ndarray:
        """``make()``, kept in ``consts`` under ``key`` (computed every time without ``consts``); at most
        :data:`_THETA_CONSTS_MAX` scale-dependent entries per batch."""
        if consts is None:
            return make()
        out = consts.get(key)
        if out is None:
            if isinstance(key, tuple) and len(consts) >= 4 * _THETA_CONSTS_MAX:
                for k in [k for k in consts if isinstance(k, tuple)]:
                    del consts[k]
            out = consts[key] = make()
            out.setflags(write=False)
        return out

    def _size_term(self, uN: np.ndarray, theta: np.ndarray, consts: dict[Any, np.ndarray] | None = None) -> np.ndarray:
        """``E + exp(log_a - a·uN)`` in the ``(n, b)`` layout of :meth:`_predict_prepared` for ``theta (b, p)``
        and ``uN (n,)``: the same operations as :meth:`_parts` (``E + tn``), once per distinct row when every
        row has the same model size (the usual prediction batch: many mixtures at one scale), then ``(1, b)``,
        kept in ``consts`` (:meth:`_theta_consts`) per model size for a fitted batch."""
        if uN.size > 1 and (uN == uN[0]).all():
            uN = uN[:1]
        if consts is not None and uN.size == 1:
            return self._kept(consts, ("size", float(uN[0])), lambda: self._size_term(uN, theta))
        tn = np.multiply(uN[:, None], theta[:, 2])
        np.subtract(theta[:, 1], tn, out=tn)
        np.exp(tn, out=tn)
        tn += theta[:, 0]
        return tn

    def _nd(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(uN = log(N/N_ref), uD = log(D/D_ref), all k ratios)``."""
        x = np.asarray(x, dtype=np.float64)
        r = x[..., 2:]
        last = np.maximum(self.ratio_total - r.sum(axis=-1, keepdims=True), 0.0)
        return np.log(x[..., 0] / self.n_reference), np.log(x[..., 1] / self.d_reference), np.concatenate([r, last], axis=-1)

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        lo, mean = float(np.min(y)), float(np.mean(y))
        grid = {p.name: p.grid for p in self.params}
        grid["E"] = (0.0, 0.5 * lo, 0.8 * lo)
        half = math.log(max((mean - 0.5 * lo) / 2, 1e-3))
        grid["log_a"] = (half,)
        grid["a"] = (0.15, 0.4)
        grid["b"] = (0.15, 0.4)
        return grid


class FLPMNDLaw(_NDLaw):
    """``L = E + exp(log_a - a·uN) + exp(-b·(uD + log(eps + Σ_s w_s·r_s)))`` (``flpm_nd``).

    The pooled FLP-M law with compute split into model size and *effective data*
    ``D·(eps + Σ_s w_s·r_s)`` (tokens weighted by how much each source teaches the domain).
    ``k + 5`` parameters per domain.
    """

    name = "flpm_nd"

    @property  # type: ignore[override]
    def params(self) -> tuple[Param, ...]:
        return (
            Param("E", 0.0, 50.0, (0.0,), "irreducible loss, nats/token"),
            Param("log_a", -_BIG, 10.0, (0.0,), "log model-size term at N_ref"),
            Param("a", 0.01, 3.0, (0.3,), "model-size exponent"),
            Param("b", 0.01, 3.0, (0.3,), "effective-data exponent"),
            Param("log_eps", -_BIG, 10.0, (-3.0,), "log share of data that teaches the domain whatever the ratios"),
            *(Param(f"log_w:{s}", -_BIG, _BIG, (0.0,), f"log weight of source {s!r} in the effective data") for s in self.sources),
        )

    def _predict_prepared(self, prep: tuple[Any, ...], theta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """For one input set and a ``(b, p)`` batch the formula runs in place in the matrix product's ``(n, b)``
        layout (in ``out`` when given) and the result is its transposed view: the same operations in the same
        order as :meth:`_parts`, so the same numbers (``E + tn + td`` as ``td + (E + tn)``: one addition
        commuted, exact), without temporaries or a transposing copy."""
        uN, uD, R = prep
        if theta.ndim != 2 or R.ndim != 2 or np.ndim(uN) != 1 or np.ndim(uD) != 1:
            return self._vj(prep, theta, False)[0]
        c = self._theta_consts(theta)
        td = np.matmul(R, self._kept(c, "w", lambda: np.exp(theta[:, 5:])).T, out=out)  # share - eps, (n, b)
        td += self._kept(c, "eps", lambda: np.exp(theta[:, 4]))
        np.log(td, out=td)
        td += uD[:, None]
        td *= self._kept(c, "-b", lambda: -theta[:, 3])
        np.exp(td, out=td)
        td += self._size_term(uN, theta, c)
        return td.T

    def _parts(self, prep: tuple[Any, ...], theta: np.ndarray, with_jacobian: bool) -> tuple[np.ndarray, Any, Any, Any]:
        uN, uD, R = prep
        la, a, b, eps = theta[..., 1, None], theta[..., 2, None], theta[..., 3, None], np.exp(theta[..., 4, None])
        w = np.exp(theta[..., 5:])
        share = eps + self._mix(R, w)
        ls = np.log(share)
        tn = np.exp(la - a * uN)
        td = np.exp(-b * (uD + ls))
        f = theta[..., 0, None] + tn + td
        if not with_jacobian:
            return f, None, None, None
        c = -b * td / share
        lead = self._lead(f, 5)
        lead[..., 1] = tn
        lead[..., 2] = -uN * tn
        lead[..., 3] = -(uD + ls) * td
        lead[..., 4] = c * eps
        return f, lead, c, w

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        grid = super().start_grid(x, y)
        lo, mean = float(np.min(y)), float(np.mean(y))
        level = -math.log(max((mean - 0.5 * lo) / 2, 1e-3)) / 0.3
        grid.update({f"log_w:{s}": (float(np.clip(level, -_BIG, _BIG)),) for s in self.sources})
        return grid


class DMLNDLaw(_NDLaw):
    """``L = E + exp(log_a - a·uN) + exp(-b·uD + Σ_j t_j·r_j)`` (``dml_nd``): Data Mixing Law on the data term."""

    name = "dml_nd"

    @property  # type: ignore[override]
    def params(self) -> tuple[Param, ...]:
        return (
            Param("E", 0.0, 50.0, (0.0,), "irreducible loss, nats/token"),
            Param("log_a", -_BIG, 10.0, (0.0,), "log model-size term at N_ref"),
            Param("a", 0.01, 3.0, (0.3,), "model-size exponent"),
            Param("b", 0.0, 3.0, (0.3,), "data exponent"),
            *(Param(f"t:{s}", -_BIG, _BIG, (0.0,), f"log data term at D_ref if all data were {s!r}") for s in self.sources),
        )

    def _predict_prepared(self, prep: tuple[Any, ...], theta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """In place in the ``(n, b)`` layout as :meth:`FLPMNDLaw._predict_prepared` (the same numbers as
        :meth:`_parts`); ``b·uD`` once per distinct row when every row has the same tokens."""
        uN, uD, R = prep
        if theta.ndim != 2 or R.ndim != 2 or np.ndim(uN) != 1 or np.ndim(uD) != 1:
            return self._vj(prep, theta, False)[0]
        c = self._theta_consts(theta)
        td = np.matmul(R, theta[:, 4:].T, out=out)  # Σ_j t_j·r_j, (n, b)
        if uD.size > 1 and (uD == uD[0]).all():
            uD = uD[:1]
        if c is not None and uD.size == 1:
            td -= self._kept(c, ("data", float(uD[0])), lambda: np.multiply(uD[:, None], theta[:, 3]))
        else:
            td -= np.multiply(uD[:, None], theta[:, 3])
        np.exp(td, out=td)
        td += self._size_term(uN, theta, c)
        return td.T

    def _parts(self, prep: tuple[Any, ...], theta: np.ndarray, with_jacobian: bool) -> tuple[np.ndarray, Any, Any, Any]:
        uN, uD, R = prep
        la, a, b = theta[..., 1, None], theta[..., 2, None], theta[..., 3, None]
        tn = np.exp(la - a * uN)
        td = np.exp(self._mix(R, theta[..., 4:]) - b * uD)
        f = theta[..., 0, None] + tn + td
        if not with_jacobian:
            return f, None, None, None
        lead = self._lead(f, 4)
        lead[..., 1] = tn
        lead[..., 2] = -uN * tn
        lead[..., 3] = -uD * td
        return f, lead, td, None

    def start_grid(self, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, ...]]:
        grid = super().start_grid(x, y)
        lo, mean = float(np.min(y)), float(np.mean(y))
        t0 = math.log(max((mean - 0.5 * lo) / 2, 1e-3))
        grid.update({f"t:{s}": (t0,) for s in self.sources})
        return grid


#: stage-1 forms by name. (Not in :data:`mixopt.laws.LAWS`: these laws need their mixture
#: domains to be built, and FLP-M rebuilds them itself from its saved state.)
STAGE1_LAWS: dict[str, type[MixtureLaw]] = {"flpm": FLPMLaw, "flpm_additive": FLPMAdditiveLaw, "dml": DMLLaw,
                                             "flpm_nd": FLPMNDLaw, "dml_nd": DMLNDLaw}


def make_stage1_law(form: str, sources: Sequence[str], *, vary_compute: bool, reference: float,
                    ratio_total: float = 1.0, shared_exponent: bool = False, n_reference: float = 1e8,
                    d_reference: float = 2e9) -> MixtureLaw:
    """Build a stage-1 law by form name (``flpm``, ``flpm_additive``, ``dml``, ``flpm_nd``, ``dml_nd``)."""
    if form not in STAGE1_LAWS:
        raise ConfigError(f"stage1 must be one of {sorted(STAGE1_LAWS)}, got {form!r}.")
    if form == "flpm_additive":
        return FLPMAdditiveLaw(sources, vary_compute, reference, ratio_total, shared_exponent)
    if form in ("flpm_nd", "dml_nd"):
        return STAGE1_LAWS[form](sources, vary_compute, reference, ratio_total, n_reference, d_reference)  # type: ignore[call-arg]
    return STAGE1_LAWS[form](sources, vary_compute, reference, ratio_total)



__all__ = ["STAGE1_LAWS", "DMLLaw", "DMLNDLaw", "FLPMAdditiveLaw", "FLPMLaw", "FLPMNDLaw", "MixtureLaw", "make_stage1_law"]
