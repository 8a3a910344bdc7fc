"""FLP-M's prediction: ratios and compute -> stage-1 laws -> domain losses -> stage-2 nets -> scores.

:class:`FLPMPrediction` is the prediction half of :class:`~mixopt.surrogate.flpm.FLPM` (which
fits the attributes it reads; see its docstring and the module docstring of
:mod:`mixopt.surrogate.flpm` for the intervals): the stage-1 inputs and the checks that a
target is within reach, point and bootstrap losses, the paired propagation of loss draws
through the nets, and the conformal calibration of the intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt._rowwise import Workspace, apply_rows, swap01, var_draws
from mixopt.data.table import FLOPS_PER_PARAM_TOKEN, SCORE_PREFIX
from mixopt.laws.fitter import combine_interval, predictive_std
from mixopt.laws.uncertainty import sorted_all_valid, sorted_interval
from mixopt.surrogate.base import Prediction, Surrogate, Targets, check_fixed_ratios, check_single_scale, gaussian_interval, normal_quantile
from mixopt.surrogate.calibrate import extrapolation_distance
from mixopt.surrogate.draws import DRAW_LEVEL, calibrated_draws, draw_rng
from mixopt.surrogate.schedule import Schedule, residual_features, targets_schedule

#: rows per block in prediction (means / intervals)
_CHUNK_MEAN = 262144
_CHUNK_INTERVAL = 256  # (B, rows, m) draw blocks that stay in cache
#: draws x rows per block in joint draws
_CHUNK_DRAW_CELLS = 1 << 20
#: the stage-1 families: the law alone, the law times the kernel correction, their equal-weight model average
FAMILIES: tuple[str, ...] = ("law", "hybrid", "average")
#: weight of the kernel correction (log space) per family
RESIDUAL_WEIGHT: dict[str, float] = {"law": 0.0, "hybrid": 1.0, "average": 0.5}


@dataclass
class Stage1Alt:
    """The second law form of a form average: ``log L = (1 - w)·log L_form + w·log L_alt``.

    Its bootstrap refits pair with the first form's (the same resamples of the runs); draw
    ``b`` of the average is the alternative form's refit where ``pick[b]`` (a seeded
    ``w`` share of the draws, at least one of each form), the first form's elsewhere -- a
    mixture of the two models, so bootstrap intervals and joint draws carry their
    disagreement; intervals are in addition widened to contain both forms' predictions.

    ``weight`` is one number, or one per loss domain (``config_["stage1_weights"]``; ``auto``
    sets one number: per-domain weights were measured worse, see
    :func:`mixopt.surrogate.flpm_auto._form_average`); then ``pick`` is
    ``(B, m)``, and a domain at weight 0 (1) is the first (the alternative) form alone: its
    draws and interval come from that form only.
    """

    law: Any
    params: np.ndarray  # (m, p)
    bootstrap: np.ndarray  # (m, B, p)
    residual: np.ndarray  # (m,)
    weight: float | np.ndarray  # a number, or (m,)
    pick: np.ndarray  # (B,) bool, or (B, m) with per-domain weights

    @classmethod
    def make(cls, law: Any, params: np.ndarray, bootstrap: np.ndarray, residual: np.ndarray, weight: float | Sequence[float],
             seed: int) -> Stage1Alt:
        B = bootstrap.shape[1]
        w = np.asarray(weight, dtype=np.float64)
        perm = np.random.default_rng(np.random.SeedSequence([int(seed), 5])).permutation(B)
        ws = w.reshape(-1)
        pick = np.zeros((B, ws.size), dtype=bool)
        for j, wj in enumerate(ws):
            if B and (w.ndim == 0 or 0.0 < wj < 1.0):  # an average: at least one draw of each form
                n_alt = int(np.clip(round(wj * B), 1 if B > 1 else 0, B - 1 if B > 1 else B))
            else:
                n_alt = int(round(wj * B))
            pick[perm[:n_alt], j] = True
        return cls(law, np.asarray(params, dtype=np.float64), np.asarray(bootstrap, dtype=np.float64),
                   np.asarray(residual, dtype=np.float64), float(w) if w.ndim == 0 else w,
                   pick[:, 0] if w.ndim == 0 else pick)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"params": self.params, "bootstrap": self.bootstrap, "residual": self.residual, "pick": self.pick}
        if np.ndim(self.weight):
            out["weights"] = np.asarray(self.weight, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, law: Any, arrays: dict[str, np.ndarray], weight: float) -> Stage1Alt:
        w = np.asarray(arrays["weights"], dtype=np.float64) if "weights" in arrays else float(weight)
        return cls(law, np.asarray(arrays["params"], dtype=np.float64), np.asarray(arrays["bootstrap"], dtype=np.float64),
                   np.asarray(arrays["residual"], dtype=np.float64), w, np.asarray(arrays["pick"], dtype=bool))

    @property
    def per_domain(self) -> bool:
        return bool(np.ndim(self.weight))

    def mean(self, x: np.ndarray) -> np.ndarray:
        """The alternative form's point losses ``(n, m)``."""
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(self.law.predict(x, self.params).T)

    def points(self, first: np.ndarray, alt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two forms' points ``(n, m)`` as far as the average uses them: a domain at weight 0 (1) is
        the first (alternative) form alone, both entries of the pair."""
        if not self.per_domain:
            return first, alt
        w = np.asarray(self.weight)
        return np.where(w >= 1.0, alt, first), np.where(w <= 0.0, first, alt)

    def n_picked(self, n_draws: int) -> np.ndarray:
        """Without bootstrap refits: ``use_alt`` ``(n_draws,)`` or ``(n_draws, m)``, the weight's share of the draws."""
        w = np.asarray(self.weight, dtype=np.float64)
        use = np.arange(n_draws)[:, None] < np.round(w.reshape(-1) * n_draws)[None, :]
        return use if self.per_domain else use[:, 0]


class FLPMPrediction(Surrogate):
    """Prediction from a fitted FLP-M (the attributes below are set by ``FLPM.fit`` or a model file)."""

    domains_: tuple[str, ...]
    loss_domains_: tuple[str, ...]
    outputs_: tuple[str, ...]
    unpredictable_: dict[str, str]
    fixed_compute_tolerance: float
    metric_only_: Any
    residual_: Any
    calibrator_: Any
    nets_: Any
    stage1_law_: Any
    stage1_params_: np.ndarray
    stage1_bootstrap_: np.ndarray
    stage1_residual_: np.ndarray
    stage1_noise_draws_: np.ndarray
    stage1_active_: tuple[int, ...]
    stage1_fixed_ratios_: tuple[float, ...]
    stage2_benchmarks_: tuple[str, ...]
    vary_compute_: bool
    compute_range_: tuple[float, float]
    tokens_per_param_: float
    train_max_flops_: float
    extrapolation_error_: np.ndarray
    extrapolation_distance_: np.ndarray

    def _averaged_rows(self, flops: np.ndarray) -> np.ndarray:
        """Rows ``(n,)`` predicted by the average of the law and the hybrid: every row of the ``average``
        family; for a hybrid ``auto`` judged on out-of-range folds, the rows beyond the compute ratio
        those folds checked (``config_["residual_reach"]``): what carried that far is not shown to
        carry further, so there the hybrid hedges as it does without such evidence."""
        flops = np.asarray(flops, dtype=np.float64)
        family = self.config_.get("family")
        if family == "average":
            return np.ones(flops.shape[0], dtype=bool)
        reach = self.config_.get("residual_reach")
        if family != "hybrid" or reach is None:
            return np.zeros(flops.shape[0], dtype=bool)
        return flops > float(reach) * float(self.train_max_flops_) * (1.0 + 1e-9)

    def _residual_correction(self, R: np.ndarray, flops: np.ndarray | None = None, full: np.ndarray | None = None) -> np.ndarray:
        """Log-space correction ``(n, m)`` of the hybrid family, half of it for the average (zeros for the law family);
        with ``flops``, half of it too on a hybrid's rows beyond its checked reach (:meth:`_averaged_rows`).
        ``full``: ``residual_.predict(R)`` when the caller has it already."""
        if getattr(self, "residual_", None) is None:
            return np.zeros((np.asarray(R).shape[0], len(self.loss_domains_)))
        corr = RESIDUAL_WEIGHT[self.config_["family"]] * (self._residual_predict(R) if full is None else full)
        if flops is not None and self.config_.get("residual_reach") is not None:
            corr = np.where(self._averaged_rows(flops)[:, None], RESIDUAL_WEIGHT["average"] * corr, corr)
        return corr

    def _residual_predict(self, R: np.ndarray) -> np.ndarray:
        """``residual_.predict`` at the correction's inputs ``R`` (:meth:`_residual_inputs`), with the law's own
        losses at the reference compute where the correction reads them (:meth:`_residual_own`)."""
        res = self.residual_
        return res.predict(R, self._residual_own(R) if res.uses_own else None)

    def _residual_own(self, R: np.ndarray) -> np.ndarray | None:
        """The stage-1 log losses ``(n, m)`` of mixtures ``R (n, k)`` at one reference compute
        (``residual_ref_flops_``): the correction's per-domain feature (:class:`~mixopt.surrogate.hybrid.MixtureResidual`),
        a function of the mixture only. None where the correction reads schedule features."""
        ref = getattr(self, "residual_ref_flops_", None)
        if ref is None or getattr(self, "residual_schedule_", False):
            return None
        R = np.asarray(R, dtype=np.float64)
        C = np.full(R.shape[0], float(ref))
        N = D = None
        if self.stage1_law_.uses_nd:  # split as the sampling runs did (their median tokens per parameter)
            N = np.sqrt(C / (FLOPS_PER_PARAM_TOKEN * self.tokens_per_param_))
            D = self.tokens_per_param_ * N
        with np.errstate(all="ignore"):
            return np.log(self._stage1_mean(self._law_inputs(C, N, D, R, None)))

    def _family_spread(self, L: np.ndarray, corr: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                       rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The averaged rows' loss interval widened to cover both averaged models (the law, the hybrid)."""
        if not rows.any():
            return lo, hi
        spread = np.exp(np.abs(corr))
        lo2, hi2 = np.minimum(lo, L / spread), np.maximum(hi, L * spread)
        return np.where(rows[:, None], lo2, lo), np.where(rows[:, None], hi2, hi)

    def _stage1_inputs(self, targets: Targets) -> np.ndarray:
        """Law inputs ``(n, q)`` for aligned targets; raises when compute/ratios are out of reach."""
        C = targets.flops
        R = targets.mixture
        assert R is not None  # aligned by Surrogate.predict
        inactive = [j for j in range(len(self.domains_)) if j not in self.stage1_active_]
        check_fixed_ratios(R, inactive, self.stage1_fixed_ratios_, self.domains_)
        if not self.vary_compute_:
            check_single_scale(C, self.compute_range_, self.fixed_compute_tolerance, type(self).__name__)
        N, D = targets.params, targets.tokens
        if self.stage1_law_.uses_nd and (N is None or D is None):
            # compute only: split it as the sampling runs did (their median tokens per parameter)
            N = np.sqrt(C / (FLOPS_PER_PARAM_TOKEN * self.tokens_per_param_))
            D = self.tokens_per_param_ * N
        return self._law_inputs(C, N, D, R, targets_schedule(targets))

    def _law_inputs(self, C: np.ndarray, N: np.ndarray | None, D: np.ndarray | None, R: np.ndarray,
                    schedule: Schedule | None, *, law: Any = None, active: Sequence[int] | None = None) -> np.ndarray:
        """Stage-1 law inputs ``(n, q)``: a schedule law reads ``schedule`` (constant mixtures are one phase), the
        others the overall mixture ``R (n, k)``; ``law``/``active`` default to the fitted ones."""
        law = self.stage1_law_ if law is None else law
        act = list(self.stage1_active_ if active is None else active)
        if getattr(law, "uses_schedule", False):
            P, E, f = schedule if schedule is not None else (R[:, None, :], np.zeros((R.shape[0], 0)), None)
            return law.inputs_from_schedule(C, P[:, :, act], E, f)
        return law.inputs_from_scale(C, N, D, R[:, act])

    def _residual_inputs(self, targets: Targets) -> np.ndarray:
        """What the hybrid correction reads for aligned targets: the mixture, or schedule features (:mod:`mixopt.surrogate.schedule`)."""
        assert targets.mixture is not None
        if not getattr(self, "residual_schedule_", False):
            return targets.mixture
        sched = targets_schedule(targets)
        if sched is None:  # a constant mixture is a one-phase schedule
            sched = (targets.mixture[:, None, :], np.zeros((len(targets), 0)), np.ones(len(targets)))
        return residual_features(targets.mixture, sched)

    def _stage1_form_mean(self, x: np.ndarray) -> np.ndarray:
        """The first law form's point losses ``(n, m)`` (the stage-1 law when no forms are averaged)."""
        with np.errstate(over="ignore"):
            return np.ascontiguousarray(self.stage1_law_.predict(x, self.stage1_params_).T)

    def _stage1_mean(self, x: np.ndarray) -> np.ndarray:
        """Point losses ``(n, m)``, nats/token (a form average: the weighted geometric mean of both forms)."""
        L = self._stage1_form_mean(x)
        alt = getattr(self, "stage1_alt_", None)
        return L if alt is None else self._average_forms(L, alt.mean(x))

    def _average_forms(self, L: np.ndarray, La: np.ndarray) -> np.ndarray:
        """The form average's point losses ``(n, m)`` from the first form's ``L`` and the alternative's ``La``."""
        alt = self.stage1_alt_
        w = np.asarray(alt.weight, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.exp((1.0 - w) * np.log(L) + w * np.log(La))
        if alt.per_domain:  # a domain that uses one form alone is that form's loss exactly
            out = np.where(w <= 0.0, L, np.where(w >= 1.0, La, out))
        return out

    def _form_points(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Both averaged forms' point losses ``(n, m)`` each, or None when no forms are averaged."""
        alt = getattr(self, "stage1_alt_", None)
        return None if alt is None else alt.points(self._stage1_form_mean(x), alt.mean(x))

    def _law_draws(self, law: Any, x: np.ndarray, boot: np.ndarray) -> np.ndarray:
        """Bootstrap losses ``(B, n, m)`` of ``law`` with refits ``boot (m, B, p)`` (NaN for failed refits)."""
        theta, failed = self._draw_params(boot)
        B, m = boot.shape[1], boot.shape[0]
        with np.errstate(all="ignore"):  # one (B·m, p) batch: the ratios' sums are one matrix product
            # (B, n, m) contiguous: the reductions over draws (quantiles, variance) read it along axis 0
            out = np.ascontiguousarray(law.predict(x, theta).T.reshape(x.shape[0], B, m).transpose(1, 0, 2))
        if failed is not None:
            out[np.broadcast_to(failed[:, None, :], out.shape)] = np.nan
        return out

    def _draw_params(self, boot: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(theta (B·m, p) with failed refits zeroed, failed (B, m) or None)``, kept per fitted array."""
        cache = self.__dict__.setdefault("_draw_params_cache", {})
        hit = cache.get(id(boot))
        if hit is None or hit[0] is not boot:
            m, B, p = boot.shape
            failed = ~np.isfinite(boot).all(axis=2).T  # (B, m)
            theta = np.ascontiguousarray(np.nan_to_num(boot.transpose(1, 0, 2), nan=0.0).reshape(B * m, p))
            theta.setflags(write=False)  # read-only: the law keeps what it derives from it (_NDLaw._theta_consts)
            hit = cache[id(boot)] = (boot, theta, failed if failed.any() else None)
        return hit[1], hit[2]

    def _frozen(self, params: np.ndarray) -> np.ndarray:
        """A read-only view of the fitted ``params``, kept per array: the law then keeps the constants it derives
        from them (:meth:`~mixopt.laws.mixture._NDLaw._theta_consts`; fitted arrays are replaced, never written)."""
        cache = self.__dict__.setdefault("_frozen_cache", {})
        hit = cache.get(id(params))
        if hit is None or hit[0] is not params:
            view = params.view()
            view.setflags(write=False)
            if len(cache) >= 8:
                cache.clear()
            hit = cache[id(params)] = (params, view)
        return hit[1]

    def _alt_picked(self, alt: Stage1Alt) -> np.ndarray:
        """``alt.bootstrap[:, alt.pick]`` ``(m, B_alt, p)``, kept per fitted arrays (one array, so
        :meth:`_draw_params` keeps its parameters once, not per call)."""
        hit = self.__dict__.get("_alt_picked_cache")
        if hit is None or hit[0] is not alt.bootstrap or hit[1] is not alt.pick:
            hit = self.__dict__["_alt_picked_cache"] = (alt.bootstrap, alt.pick, alt.bootstrap[:, alt.pick])
        return hit[2]

    def _stage1_draws(self, x: np.ndarray) -> np.ndarray:
        """Bootstrap losses ``(B, n, m)`` without residual noise (NaN for failed draws); a form average mixes the forms' draws."""
        B = self.stage1_bootstrap_.shape[1]
        if B == 0:
            return np.zeros((0, x.shape[0], len(self.loss_domains_)))
        out = self._law_draws(self.stage1_law_, x, self.stage1_bootstrap_)
        alt = getattr(self, "stage1_alt_", None)
        if alt is not None and alt.pick.any():
            if alt.per_domain:  # (B, m): each domain's draws from its own share of each form
                out = np.where(alt.pick[:, None, :], self._law_draws(alt.law, x, alt.bootstrap), out)
            else:
                out[alt.pick] = self._law_draws(alt.law, x, self._alt_picked(alt))
        return out

    def _extrapolation_reference(self) -> tuple[float | None, float | None]:
        cal = getattr(self, "calibrator_", None)
        if cal is None:
            return float(self.train_max_flops_), None
        dist = getattr(cal, "distance_", None)  # calibrated_ratio is a function of the fitted distances and groups
        hit = self.__dict__.get("_calibrated_ratio_cache")
        if hit is None or hit[0] is not cal or hit[1] is not dist or hit[2] is not getattr(cal, "params_", None):
            hit = self.__dict__["_calibrated_ratio_cache"] = (cal, dist, getattr(cal, "params_", None), cal.calibrated_ratio)
        return float(self.train_max_flops_), hit[3]

    def _predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Joint draws: :meth:`_raw_draws`, each marginal matched to the calibrated interval.

        A metric-only model (no bootstrap: one log-normal spread per metric) uses the
        comonotone default.
        """
        if getattr(self, "metric_only_", None) is not None:
            return super()._predict_draws(targets, n_draws=n_draws, seed=seed)
        pred = self._predict(targets, intervals=True, level=DRAW_LEVEL)
        raw = self._raw_draws(targets, n_draws, seed)
        return calibrated_draws(raw, pred.mean, pred.lower, pred.upper, pred.names,  # type: ignore[arg-type]
                                n_draws=n_draws, seed=seed)

    def _raw_draws(self, targets: Targets, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Raw joint draws ``{name: (S, n)}`` of the losses and the predictable scores.

        Draw ``s`` is one world for every row: the stage-1 bootstrap refit ``b_s`` of every
        domain law (joint by run; the draws cycle through a seeded permutation of the
        refits that succeeded for all domains), the hybrid correction, one residual-noise
        value per domain ``eps[s, d]·sd_d`` (log space), then stage-2 member ``s mod E`` on
        those losses plus one noise value per benchmark ``eta[s, b]·noise_sd_b``.
        """
        x = self._stage1_inputs(targets)
        corr = np.exp(self._residual_correction(self._residual_inputs(targets), targets.flops))
        n, m = x.shape[0], len(self.loss_domains_)
        rng = draw_rng(seed, 2)
        boot = self.stage1_bootstrap_  # (m, B, p)
        ok = np.flatnonzero(np.isfinite(boot).all(axis=(0, 2))) if boot.shape[1] else np.zeros(0, dtype=np.int64)
        order = rng.permutation(ok) if ok.size else ok
        eps = rng.standard_normal((n_draws, m)) * self.stage1_residual_
        n_b = len(self.stage2_benchmarks_)
        eta = rng.standard_normal((n_draws, n_b)) * (self.nets_.noise_sd_ if n_b else 0.0)
        alt = getattr(self, "stage1_alt_", None)
        if alt is not None and boot.shape[1]:
            ok = ok[np.isfinite(alt.bootstrap[:, ok]).all(axis=(0, 2))]
            order = rng.permutation(ok) if ok.size else ok
        if order.size:
            which = order[np.arange(n_draws) % order.size]
            theta = boot.transpose(1, 0, 2)[which]  # (S, m, p)
        else:
            which = np.zeros(0, dtype=np.int64)
            theta = np.broadcast_to(self.stage1_params_, (n_draws, *self.stage1_params_.shape))
        use_alt = alt.pick[which] if alt is not None and which.size else None
        if alt is not None and use_alt is None:  # no bootstrap: the forms' points, in the weight's share of the draws
            use_alt = alt.n_picked(n_draws)
        alt_theta = None
        per_domain = use_alt is not None and use_alt.ndim == 2
        if per_domain:  # every draw of the alternative form, then each domain takes its own share
            alt_theta = alt.bootstrap.transpose(1, 0, 2)[which] if which.size else \
                np.broadcast_to(alt.params, (n_draws, *alt.params.shape))
        elif use_alt is not None and use_alt.any():
            alt_theta = alt.bootstrap.transpose(1, 0, 2)[which[use_alt]] if which.size else \
                np.broadcast_to(alt.params, (int(use_alt.sum()), *alt.params.shape))
        losses = np.empty((n_draws, n, m))
        scores = np.empty((n_draws, n, n_b))
        step = max(1, _CHUNK_DRAW_CELLS // max(n_draws * max(m, 1), 1))
        for s in range(0, n, step):
            with np.errstate(all="ignore"):
                L = self.stage1_law_.predict(x[s : s + step], theta).transpose(0, 2, 1)  # (S, rows, m)
                if per_domain:
                    L = np.where(use_alt[:, None, :], alt.law.predict(x[s : s + step], alt_theta).transpose(0, 2, 1), L)
                elif alt_theta is not None:
                    L[use_alt] = alt.law.predict(x[s : s + step], alt_theta).transpose(0, 2, 1)
            L *= corr[None, s : s + step] * np.exp(eps)[:, None, :]
            losses[:, s : s + step] = L
            if n_b:
                scores[:, s : s + step] = self.nets_.predict_paired(L) + eta[:, None, :]
        col = {q: j for j, q in enumerate(self.outputs_)}
        out = {self.outputs_[j]: losses[:, :, j] for j in range(m)}
        for i, b in enumerate(self.stage2_benchmarks_):
            out[self.outputs_[col[SCORE_PREFIX + b]]] = scores[:, :, i]
        return out

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        if getattr(self, "metric_only_", None) is not None:
            return self.metric_only_.predict(targets, tuple(self.outputs_), self.domains_, intervals=intervals, level=level,
                                             tolerance=self.fixed_compute_tolerance, model_name=type(self).__name__)
        cal = getattr(self, "calibrator_", None)
        if not intervals or cal is None:
            return self._predict_raw(targets, intervals=intervals, level=level)
        # conformal calibration: the model's own interval at the calibrator's level, each side
        # scaled by the factor learned from the internal backtest at this extrapolation distance
        memo: dict[str, Any] = {}
        pred = self._predict_raw(targets, intervals=True, level=cal.level, memo=memo)
        d = extrapolation_distance(targets.flops, self.train_max_flops_)
        k = normal_quantile(0.5 + level / 2) / normal_quantile(0.5 + pred.level / 2)
        weak = getattr(self, "weak_", {})
        # benchmarks predicted on weak evidence (few emerged checkpoints) have their own calibration group;
        # without held-out rows of their own they take the scores' factor
        weak_group = "weak" if "weak" in cal.params_ else "score"
        f, f_std = self._cal_matrices(cal, d, pred.names, weak_group, weak, level)  # (n, q): every column its group's factor
        mu, lo, hi = pred.mean, pred.lower, pred.upper
        # calibration only widens: a held-out fold one size down sees less of a rising score
        # than the target does, so a factor < 1 learned there is not trusted beyond it (losses too:
        # letting the loss factor narrow, measured on the issue-11 worlds, took seed 1 from 94 % to 53 %)
        side = np.subtract(mu, lo)  # type: ignore[arg-type]
        lower = np.minimum(mu - f * side, mu - k * side)
        np.subtract(hi, mu, out=side)
        upper = np.maximum(mu + f * side, mu + k * side)
        std = pred.std * f_std  # type: ignore[operator]
        env = self._model_envelope(targets, pred.names, full=memo.get("full"), x=memo.get("x"), forms=memo.get("forms"),
                                   shared=memo.get("form_points"), models=memo.get("envelope"))
        if env is not None:  # a model average's interval keeps every averaged model's prediction inside
            lower, upper = np.fmin(lower, env[0]), np.fmax(upper, env[1])
        return Prediction(names=pred.names, mean=pred.mean, lower=lower, upper=upper, std=std, level=level,
                          unpredictable=dict(self.unpredictable_))

    def _cal_matrices(self, cal: Any, d: np.ndarray, names: tuple[str, ...], weak_group: str, weak: Any,
                      level: float) -> tuple[np.ndarray, np.ndarray]:
        """``(f, f_std)`` ``(n, q)``: per row and column, the calibration factor of the column's group at
        ``level`` and the std's factor (at the calibrator's level, at least 1). Kept for small batches (the
        API's and the search's repeated requests at the same distances), keyed by the calibrator itself,
        the distances' bytes, the columns' groups and the level; rows at one distance share one row's factors
        (the factor is a function of the distance alone, row by row)."""
        if d.size > 1 and (d == d[0]).all():  # one distance (a batch at one compute): one row, broadcast
            cache = self.__dict__.setdefault("_cal_broadcast_cache", {})
            key = (id(cal), float(d[0]), d.size, tuple(names), weak_group, tuple(sorted(weak)), level)
            hit = cache.get(key)
            if hit is None or hit[0] is not cal:
                f1, fs1 = self._cal_matrices(cal, d[:1], names, weak_group, weak, level)
                hit = (cal, np.broadcast_to(f1, (d.size, f1.shape[1])), np.broadcast_to(fs1, (d.size, fs1.shape[1])))
                cache[key] = hit
                if len(cache) > 64:
                    cache.pop(next(iter(cache)))
            return hit[1], hit[2]
        groups = self._calibration_groups(names, weak_group, weak)
        cache = self.__dict__.setdefault("_cal_matrix_cache", {})
        key = (id(cal), d.tobytes(), tuple(names), weak_group, tuple(sorted(weak)), level) if d.size <= 4096 else None
        hit = cache.get(key) if key is not None else None
        if hit is None or hit[0] is not cal:
            f, f_std = np.empty((d.size, len(names))), np.empty((d.size, len(names)))
            for g, cols in groups:
                f[:, cols] = cal.factor(d, groups=g, level=level)[:, None]
                f_std[:, cols] = np.maximum(cal.factor(d, groups=g, level=None), 1.0)[:, None]
            f.setflags(write=False)
            f_std.setflags(write=False)
            hit = (cal, f, f_std)
            if key is not None:
                cache[key] = hit
                if len(cache) > 64:
                    cache.pop(next(iter(cache)))
        return hit[1], hit[2]

    def _calibration_groups(self, names: tuple[str, ...], weak_group: str, weak: Any) -> list[tuple[str, np.ndarray]]:
        """``[(group, columns)]`` of the calibration groups (``loss``, ``score``, weak benchmarks' group),
        kept per (names, weak group, weak benchmarks): they depend on the fit only."""
        key = (tuple(names), weak_group, tuple(sorted(weak)))
        cache = self.__dict__.setdefault("_calibration_groups_cache", {})
        hit = cache.get(key)
        if hit is None:
            groups = np.array([weak_group if q in weak else q.split(":")[0] for q in names])
            hit = cache[key] = [(str(u), np.flatnonzero(groups == u)) for u in np.unique(groups)]
            if len(cache) > 16:
                cache.pop(next(iter(cache)))
        return hit

    def _model_envelope(self, targets: Targets, names: tuple[str, ...], full: np.ndarray | None = None,
                        x: np.ndarray | None = None, forms: tuple[np.ndarray, np.ndarray] | None = None,
                        shared: tuple[np.ndarray, np.ndarray] | None = None,
                        models: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Per column, the smallest and largest prediction of the models a model average combines
        (the law and the hybrid of the ``average`` family; the two forms of a form average), or None;
        ``full``, ``x``, ``forms``: the residual model's corrections, the law inputs and a form average's two
        points (:meth:`_form_points` before :meth:`Stage1Alt.points`) for these targets when the caller has them;
        ``shared``: a form average's two corrected points ``(2, n, m)`` and their scores ``(2, n, b)`` from
        :meth:`_predict_raw` (the same products this method would compute when no row is family-averaged);
        ``models``: the envelope's model losses ``(k, n, m)`` (:meth:`_envelope_losses`) and their scores
        ``(k, n, b)`` from :meth:`_predict_raw` (a batch of one block: its stage-2 call scored them)."""
        rows = self._averaged_rows(targets.flops)
        fam_avg = bool(rows.any()) and getattr(self, "residual_", None) is not None
        alt = getattr(self, "stage1_alt_", None)
        if not fam_avg and alt is None:
            return None
        if shared is not None and not fam_avg and alt is not None:
            return self._envelope_of(shared[0], shared[1], names)
        if models is not None:
            return self._envelope_of(models[0], models[1], names)
        x = self._stage1_inputs(targets) if x is None else x
        if alt is not None:
            bases = list(alt.points(*forms) if forms is not None else self._form_points(x))  # type: ignore[misc]
        else:
            bases = [self._stage1_mean(x)]
        R = self._residual_inputs(targets)
        if fam_avg:  # averaged rows span the law (no correction) and the hybrid (all of it); the others their own
            full = self._residual_predict(R) if full is None else full
            own = self._residual_correction(R, targets.flops, full=full)
        else:
            own = self._residual_correction(R, targets.flops, full=full)
        return self._envelope_of(self._envelope_losses(bases, rows if fam_avg else None, full, own), None, names)

    @staticmethod
    def _envelope_losses(bases: Sequence[np.ndarray], rows: np.ndarray | None, full: np.ndarray | None,
                         own: np.ndarray) -> np.ndarray:
        """The losses ``(k, n, m)`` of the models :meth:`_model_envelope` spans: each base (a form's point, or the
        one point) times each correction, where ``rows`` (family-averaged rows; None: no such rows) span the law
        (no correction) and the hybrid (``full``) and the other rows keep their own correction ``own``."""
        if rows is not None and rows.all():  # every row family-averaged: the law (no correction) and the hybrid
            factors = [None, np.exp(full)]
        else:
            corrs = [np.where(rows[:, None], 0.0, own), np.where(rows[:, None], full, own)] if rows is not None else [own]
            factors = [np.exp(c) if c.any() else None for c in corrs]  # exp(0) = 1: the base itself
        Ls = np.empty((len(bases) * len(factors), *bases[0].shape))
        for i, (base, f) in enumerate((b, f) for b in bases for f in factors):
            if f is None:
                Ls[i] = base
            else:
                np.multiply(base, f, out=Ls[i])
        return Ls

    def _envelope_of(self, Ls: np.ndarray, Ss: np.ndarray | None, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_model_envelope` from the models' losses ``Ls (k, n, m)`` and their scores ``Ss (k, n, b)``
        (computed here when None): smallest and largest over the models, fmin/fmax reduced over axis 0 in the
        models' order (ignoring NaN; all NaN or non-finite -> NaN), one call each instead of one per model."""
        m, n = len(self.loss_domains_), Ls.shape[1]
        score_cols = self._score_columns() if tuple(names) == tuple(self.outputs_) else \
            [{q: j for j, q in enumerate(names)}[SCORE_PREFIX + b] for b in self.stage2_benchmarks_]
        lo = np.full((n, len(names)), np.nan)
        hi = np.full((n, len(names)), np.nan)
        lo[:, :m], hi[:, :m] = np.fmin.reduce(Ls, axis=0), np.fmax.reduce(Ls, axis=0)
        if score_cols:
            Ss = self.nets_.predict_mean_each(Ls) if Ss is None else Ss
            lo[:, score_cols], hi[:, score_cols] = np.fmin.reduce(Ss, axis=0), np.fmax.reduce(Ss, axis=0)
        lo[~np.isfinite(lo)] = np.nan
        hi[~np.isfinite(hi)] = np.nan
        return lo, hi

    def _predict_raw(self, targets: Targets, *, intervals: bool, level: float, memo: dict[str, Any] | None = None) -> Prediction:
        """The model's own prediction (before calibration); ``memo`` receives ``full``, the residual model's
        corrections for these targets (None without one), and ``x``, the law inputs, for the caller's :meth:`_model_envelope`."""
        x = self._stage1_inputs(targets)
        R = self._residual_inputs(targets)
        full = self._residual_predict(R) if getattr(self, "residual_", None) is not None else None
        if memo is not None:
            memo["full"], memo["x"] = full, x
        corr = self._residual_correction(R, targets.flops, full=full)
        averaged = self._averaged_rows(targets.flops)
        # the law family's correction is 0: no scaling (x * 1.0 is x)
        corr_any = getattr(self, "residual_", None) is not None and bool(np.any(corr))
        n = x.shape[0]
        m = len(self.loss_domains_)
        names = list(self.outputs_)
        score_cols = self._score_columns()
        # mean, lower, upper, std: one allocation (NaN where a quantity is unpredictable)
        buf = np.full((4 if intervals else 1, n, len(names)), np.nan)
        mean = buf[0]
        lower, upper, std = (buf[1], buf[2], buf[3]) if intervals else (None, None, None)
        chunk = _CHUNK_INTERVAL if intervals else _CHUNK_MEAN
        ws = Workspace()  # the blocks' large scratch arrays, allocated once per call
        alt = getattr(self, "stage1_alt_", None)
        # a form average with intervals: both forms' points (n, m), for the blocks and the caller's envelope
        forms = (np.empty((n, m)), np.empty((n, m))) if intervals and alt is not None else None
        # ... and for the caller's envelope, both forms' corrected points and their scores
        shared = (np.empty((2, n, m)), np.empty((2, n, len(self.stage2_benchmarks_)))) \
            if forms is not None and memo is not None else None
        if memo is not None:
            memo["forms"] = forms
        # a batch of one block whose envelope spans family-averaged rows: the envelope's models are scored
        # in the block's stage-2 call (each input its own product of the same shape as in _model_envelope)
        envelope = intervals and memo is not None and n <= chunk and full is not None and bool(averaged.any()) and bool(score_cols)
        for s in range(0, n, chunk):
            sl = slice(s, s + chunk)
            xs = x[sl]
            cs = np.exp(corr[sl]) if corr_any else None
            both = self._point_and_draws(xs, ws) if intervals else None
            if both is not None:
                L, nat, fp = both
            elif forms is not None:
                fp = (self._stage1_form_mean(xs), alt.mean(xs))  # type: ignore[union-attr]
                L, nat = self._average_forms(*fp), None
            else:
                L, nat, fp = self._stage1_mean(xs), None, None
            pts = None
            env_Ls = None
            if forms is not None:
                forms[0][sl], forms[1][sl] = fp  # type: ignore[misc]
                pts = alt.points(*fp)  # type: ignore[union-attr]
                if envelope:
                    env_Ls = self._envelope_losses(pts, averaged, full, corr)
                if cs is not None:
                    pts = (pts[0] * cs, pts[1] * cs)
            elif envelope:
                env_Ls = self._envelope_losses([L], averaged, full, corr)
            if cs is not None:
                L = L * cs
            mean[sl, :m] = L
            spts = None
            if env_Ls is not None:  # the point's, both forms' (if averaged) and the envelope's models' scores
                Sall = self.nets_.predict_mean_each([L, *(pts or ()), *env_Ls])
                S, spts = Sall[0], ((Sall[1], Sall[2]) if pts is not None else None)
                memo["envelope"] = (env_Ls, Sall[Sall.shape[0] - env_Ls.shape[0]:])  # type: ignore[index]
            elif pts is not None and score_cols:  # the point's and both forms' scores in one call
                S, *spts = self.nets_.predict_mean_each([L, *pts])
            else:
                S = self.nets_.predict_mean(L)
            if shared is not None and pts is not None:
                shared[0][0, sl], shared[0][1, sl] = pts
                if spts:
                    shared[1][0, sl], shared[1][1, sl] = spts
            mean[sl, score_cols] = S
            if not intervals:
                continue
            out = (lower[sl], upper[sl], std[sl])  # type: ignore[index]
            if nat is not None:
                if self._interval_block_sorted(L, S, nat, targets.flops[sl], level, out, score_cols, ws, corr=corr[sl],
                                               averaged=averaged[sl], pts=pts, spts=spts, cs=cs):
                    continue
                if cs is not None:
                    nat *= cs[:, None, :]
                draws = np.ascontiguousarray(nat.transpose(1, 0, 2))  # what _stage1_draws gives in this case
            else:
                draws = self._stage1_draws(xs)
                if cs is not None:
                    draws *= cs[None]
            self._interval_block(L, S, xs, cs, corr[sl], averaged[sl], draws, targets.flops[sl], level, out, score_cols, pts=pts, spts=spts)
        if memo is not None and shared is not None:
            memo["form_points"] = shared
        return Prediction(names=tuple(names), mean=mean, lower=lower, upper=upper, std=std, level=level,
                          unpredictable=dict(self.unpredictable_))

    def _score_columns(self) -> slice | list[int]:
        """The columns of the predictable scores among the outputs (a slice when they are contiguous), kept per outputs."""
        key = (tuple(self.outputs_), tuple(self.stage2_benchmarks_))
        hit = self.__dict__.get("_score_columns_cache")
        if hit is None or hit[0] != key:
            col = {q: j for j, q in enumerate(self.outputs_)}
            cols = [col[SCORE_PREFIX + b] for b in self.stage2_benchmarks_]
            if cols and cols == list(range(cols[0], cols[0] + len(cols))):
                cols = slice(cols[0], cols[0] + len(cols))  # type: ignore[assignment]
            hit = self.__dict__["_score_columns_cache"] = (key, cols)
        return hit[1]

    def _point_and_draws(self, x: np.ndarray, ws: Workspace | None = None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None] | None:
        """Point losses ``(n, m)`` (:meth:`_stage1_mean`), bootstrap losses ``(n, B, m)`` in the law's own layout
        (``(n, B·m)`` of its matrix product, no copy) and, for a form average, both forms' points ``(n, m)``
        (:meth:`_form_points` before :meth:`Stage1Alt.points`), each law's inputs prepared once, when there
        are >= 2 refits and none failed (a form average: one weight for every domain and draws of both forms);
        None otherwise (:meth:`_stage1_mean`, :meth:`_stage1_draws`). The same numbers as those (the same
        products and operations; the alternative form's draws replace the first's where picked, as there)."""
        boot = self.stage1_bootstrap_
        alt = getattr(self, "stage1_alt_", None)
        if boot.shape[1] < 2 or (alt is not None and (alt.per_domain or not alt.pick.any())):
            return None
        theta, failed = self._draw_params(boot)
        if failed is not None:
            return None
        n, B, m = x.shape[0], boot.shape[1], boot.shape[0]
        if alt is not None:
            alt_boot = self._alt_picked(alt)
            alt_theta, alt_failed = self._draw_params(alt_boot)
            if alt_failed is not None:
                return None
        with np.errstate(all="ignore"):
            scratch = None if ws is None else (None, ws.get("law", (n, theta.shape[0])))
            # both forms' inputs prepared once where they prepare them alike (the same prep_key: the N,D forms)
            key = getattr(self.stage1_law_, "prep_key", lambda: None)()
            share = key is not None and alt is not None and key == getattr(alt.law, "prep_key", lambda: None)()
            kw = {"prep": self.stage1_law_.prepare(x)} if share else {}
            point, draws = self.stage1_law_.predict_each(x, (self._frozen(self.stage1_params_), theta), scratch, **kw)
            nat = draws.T.reshape(n, B, m)
            point = np.ascontiguousarray(point.T)
            if alt is None:
                return point, nat, None
            scratch = None if ws is None else (None, ws.get("law_alt", (n, alt_theta.shape[0])))
            alt_point, alt_draws = alt.law.predict_each(x, (self._frozen(alt.params), alt_theta), scratch, **kw)
            nat[:, alt.pick, :] = alt_draws.T.reshape(n, alt_boot.shape[1], m)
            alt_point = np.ascontiguousarray(alt_point.T)
        return self._average_forms(point, alt_point), nat, (point, alt_point)

    def _interval_block_sorted(self, L: np.ndarray, S: np.ndarray, nat: np.ndarray, flops: np.ndarray, level: float,
                               out: tuple[np.ndarray, np.ndarray, np.ndarray], score_cols: slice | list[int], ws: Workspace | None = None, *,
                               corr: np.ndarray | None = None, averaged: np.ndarray | None = None,
                               pts: tuple[np.ndarray, np.ndarray] | None = None, spts: Sequence[np.ndarray] | None = None,
                               cs: np.ndarray | None = None) -> bool:
        """:meth:`_interval_block` for the common case, from draws ``nat (n, B, m)`` (:meth:`_point_and_draws`) sorted
        once along B: False (nothing written) unless every draw is finite and > 0; ``cs``: the block's correction
        factors ``(n, m)``, which the draws are multiplied by here (``nat`` itself is left as it is); ``corr``/``averaged``: the
        block's log-space correction and averaged rows (:meth:`_family_spread`); ``pts``: a form average's two
        points ``(n, m)`` (corrected), which the interval contains, and ``spts`` their scores. The same numbers as :meth:`_interval_block` (the same operations on the
        same operands: the order statistics of the sort, the variance by :func:`~mixopt._rowwise.var_draws`,
        the cached noise factors applied through :func:`~mixopt._rowwise.apply_rows`), tested."""
        ws = Workspace() if ws is None else ws
        B, n, m = nat.shape[1], nat.shape[0], nat.shape[2]
        draws = swap01(nat, ws.get("draws", (B, n, m)))  # (B, n, m): the reductions over draws run along axis 0
        if cs is not None:  # nat * cs[:, None, :], the same products, in the layout where cs broadcasts contiguously
            np.multiply(draws, cs, out=draws)
            srt = swap01(draws, ws.get("a", nat.shape))
        else:
            srt = ws.get("a", nat.shape)
            np.copyto(srt, nat)
        srt.sort(axis=1)  # np.sort(nat, axis=1), in the scratch array
        if not sorted_all_valid(srt, positive=True, axis=1):
            return False
        lower, upper, std = out
        lo, hi = sorted_interval(srt, self.stage1_residual_, level, log_space=True, axis=1)
        if averaged is not None and corr is not None:
            lo, hi = self._family_spread(L, corr, lo, hi, averaged)
        if pts is not None:
            lo, hi = np.fmin(lo, np.fmin(*pts)), np.fmax(hi, np.fmax(*pts))
        lower[:, :m], upper[:, :m] = lo, hi
        var = var_draws(draws, work=ws.get("work", draws.shape))
        std[:, :m] = np.sqrt(var + (L * self.stage1_residual_) ** 2)  # predictive_std(L, draws, residual, log_space=True)
        if score_cols:
            self._score_block(S, draws, flops, level, out, score_cols, pts=pts, spts=spts, ws=ws)
        return True

    def _noise_factors(self) -> np.ndarray:
        """``exp(noise_draws · residual sd)`` ``(B, 1, m)``: the stage-1 residual noise of every draw, kept per fitted arrays."""
        nd, sd = self.stage1_noise_draws_, self.stage1_residual_
        hit = self.__dict__.get("_noise_factors_cache")
        if hit is None or hit[0] is not nd or hit[1] is not sd:
            f = np.exp(nd[:, None, :] * sd)
            f.setflags(write=False)
            hit = self.__dict__["_noise_factors_cache"] = (nd, sd, f)
        return hit[2]

    def _score_block(self, S: np.ndarray, draws: np.ndarray, flops: np.ndarray, level: float,
                     out: tuple[np.ndarray, np.ndarray, np.ndarray], score_cols: slice | list[int], ok: np.ndarray | None = None,
                     L: np.ndarray | None = None, pts: tuple[np.ndarray, np.ndarray] | None = None, ws: Workspace | None = None,
                     spts: Sequence[np.ndarray] | None = None) -> None:
        """Score intervals of a block: the loss draws (those in ``ok``; all if None) with their residual noise through
        the paired stage-2 members, the members' spread, the nets' noise and the extrapolation error in quadrature;
        a form average's interval contains the scores of both forms' points ``pts`` (``spts`` when the caller has them)."""
        if ok is None or ok.all():
            noise = self._noise_factors()  # what exp(noise_draws[ok] · sd) gives when every draw is ok
            noisy = apply_rows(np.multiply, draws, noise, self.__dict__.setdefault("_row_tiles", {}), out=None if ws is None else ws.get("a", draws.shape))
            Sd = self.nets_.predict_paired(noisy)
        elif ok.any():
            noise = np.exp(self.stage1_noise_draws_[ok][:, None, :] * self.stage1_residual_)
            Sd = self.nets_.predict_paired(draws[ok] * noise)
        else:
            Sd = self.nets_.predict_members(L)
        var = var_draws(Sd, work=None if ws is None else ws.get("work", Sd.shape)) if Sd.shape[0] > 1 else np.zeros_like(S)
        beyond = np.log(np.maximum(flops / self.train_max_flops_, 1.0))
        extra = self.extrapolation_error_[None, :] ** 2 * (beyond[:, None] / self.extrapolation_distance_[None, :])
        sd = np.sqrt(var + self.nets_.noise_sd_**2 + extra)
        lo, hi = gaussian_interval(S, sd, level)
        if pts is not None:
            Sa, Sb = spts if spts is not None else (self.nets_.predict_mean(pts[0]), self.nets_.predict_mean(pts[1]))
            lo, hi = np.fmin(lo, np.fmin(Sa, Sb)), np.fmax(hi, np.fmax(Sa, Sb))
        lower, upper, std = out
        lower[:, score_cols] = lo
        upper[:, score_cols] = hi
        std[:, score_cols] = sd

    def _interval_block(self, L: np.ndarray, S: np.ndarray, xs: np.ndarray, cs: np.ndarray | None, corr: np.ndarray,
                        averaged: np.ndarray, draws: np.ndarray, flops: np.ndarray, level: float,
                        out: tuple[np.ndarray, np.ndarray, np.ndarray], score_cols: slice | list[int],
                        pts: tuple[np.ndarray, np.ndarray] | None = None, spts: Sequence[np.ndarray] | None = None) -> None:
        """Intervals and std of a block of rows (every case): loss intervals from the bootstrap draws
        ``(B, rows, m)`` and the residual noise, widened for averaged models, then the scores'; ``pts``: a
        form average's two points (corrected), computed here when None, and ``spts`` their scores."""
        ok = np.isfinite(draws).all(axis=(1, 2)) if draws.shape[0] else np.zeros(0, dtype=bool)
        lo, hi = combine_interval(L, draws if draws.shape[0] else None, self.stage1_residual_, level, log_space=True)
        lo, hi = self._family_spread(L, corr, lo, hi, averaged)
        if pts is None and (pts := self._form_points(xs)) is not None and cs is not None:
            pts = (pts[0] * cs, pts[1] * cs)
        if pts is not None:  # a form average: the interval contains both forms' predictions
            lo, hi = np.fmin(lo, np.fmin(*pts)), np.fmax(hi, np.fmax(*pts))
        m = L.shape[1]
        lower, upper, std = out
        lower[:, :m] = lo
        upper[:, :m] = hi
        std[:, :m] = predictive_std(L, draws if draws.shape[0] else None, self.stage1_residual_, log_space=True)
        if score_cols:
            self._score_block(S, draws, flops, level, out, score_cols, ok=ok, L=L, pts=pts, spts=spts)


__all__ = ["FAMILIES", "FLPMPrediction", "RESIDUAL_WEIGHT", "Stage1Alt"]
