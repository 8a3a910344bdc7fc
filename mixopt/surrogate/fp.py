"""FP (kind ``"fp"``): the paper's baseline, FLOPs straight to score.

``P(C) = (C / C_P)^alpha_P`` per benchmark (:class:`~mixopt.laws.FPPowerLaw`), fitted in log
space by least squares on the same emerged checkpoints as FLP's stage 2 (the paper leaves FP's
points open; this is its natural reading and makes the comparison like for like). Same
bootstrap, intervals and predictability rules as :class:`~mixopt.surrogate.flp.FLP`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl

from mixopt.data.table import SCORE_PREFIX, RunTable
from mixopt.errors import ConfigError, FitError, NotPredictableError, SchemaError
from mixopt.laws.base import reference_for
from mixopt.laws.fitter import LawFitter, combine_interval, predictive_std
from mixopt.laws.forms import FPPowerLaw
from mixopt.surrogate.base import Prediction, Targets, register
from mixopt.surrogate.compute import _ComputeSurrogate
from mixopt.surrogate.draws import draw_rng
from mixopt.surrogate.fitted import _REPORT_SCHEMA, FittedLaw, _chunks, _report_row


@register
class FP(_ComputeSurrogate):
    """FP baseline: ``P(C) = (C / C_P)^alpha_P`` per benchmark, FLOPs straight to score.

    Fitted in log space on the emerged checkpoints (see the module docstring), with the same
    by-run bootstrap, intervals and predictability rules as :class:`FLP`.

    Args:
        emergence_margin, emergence, min_emerged, min_runs: as in :class:`FLP`.
        loss: ``"squared"`` (least squares on log score, default) or ``"huber"``.
        huber_delta: Huber threshold, log-score units (1e-3).
        flops_reference: reference compute, FLOPs; None = power of ten nearest the data's
            geometric mean (conditioning only).
        n_bootstrap: bootstrap draws by run (200).
        seed: seed of the draws.
        include_noise: add residual noise to the intervals.

    Raises (fit):
        NotPredictableError: no benchmark is predictable (each reason listed).
    """

    kind: ClassVar[str] = "fp"

    def __init__(
        self,
        *,
        emergence_margin: float = 0.05,
        emergence: str = "checkpoint",
        min_emerged: int = 3,
        min_runs: int = 2,
        loss: str = "squared",
        huber_delta: float = 1e-3,
        flops_reference: float | None = None,
        n_bootstrap: int = 200,
        seed: int = 0,
        include_noise: bool = True,
    ) -> None:
        self.emergence_margin = emergence_margin
        self.emergence = emergence
        self.min_emerged = min_emerged
        self.min_runs = min_runs
        self.loss = loss
        self.huber_delta = huber_delta
        self.flops_reference = flops_reference
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.include_noise = include_noise

    def _fit(self, runs: RunTable) -> None:
        t0 = time.perf_counter()
        problems = self._check_common()
        if self.loss not in ("huber", "squared"):
            problems.append(f"loss must be 'huber' or 'squared', got {self.loss!r}")
        if self.flops_reference is not None and not (isinstance(self.flops_reference, (int, float))
                                                     and math.isfinite(self.flops_reference) and self.flops_reference > 0):
            problems.append(f"flops_reference must be None or a positive number of FLOPs, got {self.flops_reference!r}")
        if problems:
            raise ConfigError("Invalid FP settings: " + "; ".join(problems) + ".")
        if not runs.benchmarks:
            raise SchemaError("FP predicts benchmark scores, but the table has no score:<benchmark> columns.")
        ref = self.flops_reference if self.flops_reference is not None else reference_for(runs.flops())
        law = FPPowerLaw(reference=ref)
        flops = runs.flops()
        run_ids = self._group_ids(runs.run_ids())
        scores = runs.scores()
        resample = self._resample(runs)
        laws: dict[str, FittedLaw] = {}
        report: list[dict[str, Any]] = []
        unpredictable: dict[str, str] = {}
        for j, b in enumerate(runs.benchmarks):
            name = SCORE_PREFIX + b.name
            s = scores[:, j]
            emerged = self._emergence(runs, b, s)
            reason = self._predictability(b, emerged, run_ids, int(np.isfinite(s).sum()))
            if reason is None and np.any(s[emerged] <= 0):
                reason = (f"not predictable by FP: {int(np.sum(s[emerged] <= 0))} emerged score(s) are <= 0, and the "
                          "power law P = (C/C_P)^alpha is fitted on log scores")
            if reason is None:
                fitter = LawFitter(law, loss=self.loss, huber_delta=self.huber_delta, n_bootstrap=0, seed=self.seed)
                try:
                    fitter.fit(flops[emerged], s[emerged], groups=run_ids[emerged], resample=resample)
                except FitError as e:
                    reason = f"not predictable: the FP power-law fit failed: {e}"
                else:
                    laws[name] = FittedLaw.from_fitter(fitter)
                    report.append(_report_row(name, law.name, "fitted", "", fitter.n_samples_, fitter.n_groups_,
                                              law.as_dict(fitter.params_), fitter.residual_scale_, fitter.bootstrap_failed_))
            if reason is not None:
                unpredictable[name] = reason
                report.append(_report_row(name, law.name, "unpredictable", reason, int(emerged.sum()),
                                          int(np.unique(run_ids[emerged]).shape[0]) if emerged.any() else 0))
        if not laws:
            raise NotPredictableError(
                "FP cannot predict any benchmark from these runs:\n"
                + "\n".join(f"  - {k}: {v}" for k, v in unpredictable.items())
            )
        self.laws_ = laws
        self.fit_report_ = pl.DataFrame(report, schema=_REPORT_SCHEMA, orient="row")
        self.outputs_ = tuple(SCORE_PREFIX + b.name for b in runs.benchmarks)
        self.domains_ = ()
        self.benchmarks_ = tuple(runs.benchmarks)
        self.unpredictable_ = unpredictable
        self.fit_flops_max_ = float(np.max(runs.final().flops()))
        self.fit_seconds_ = time.perf_counter() - t0

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        n = len(targets)
        x = targets.flops[:, None]
        names = list(self.outputs_)
        cols: dict[str, tuple[np.ndarray, ...]] = {}
        for nm in names:
            if nm not in self.laws_:
                continue
            fl = self.laws_[nm]
            noise = fl.scale if self.include_noise else 0.0
            vals = [np.empty(n) for _ in range(4)]
            n_draws = fl.boot.shape[0] if intervals else 0
            for sl in _chunks(n, n_draws):
                with np.errstate(all="ignore"):
                    p = fl.law.predict(x[sl], fl.params)
                    p_b = fl.law.predict(x[sl], fl.boot) if n_draws else None
                vals[0][sl] = p
                if intervals:
                    vals[1][sl], vals[2][sl] = combine_interval(p, p_b, noise, level, log_space=True)
                    vals[3][sl] = predictive_std(p, p_b, noise, log_space=True)
            cols[nm] = tuple(vals)
        return self._finish(names, cols, n, intervals, level)

    def _extrapolation_reference(self) -> tuple[float | None, float | None]:
        return getattr(self, "fit_flops_max_", None), None

    def _raw_draws(self, targets: Targets, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Draw ``s``: bootstrap refit ``b_s`` of every benchmark's law (one by-run resample)
        times ``exp(eta[s]·sd)``, the log residual shared by every row."""
        x = targets.flops[:, None]
        rng = draw_rng(seed, 2)
        n_boot = max((fl.boot.shape[0] for fl in self.laws_.values()), default=0)
        idx = self._draw_index(n_boot, n_draws, rng)
        eta = rng.standard_normal((n_draws, len(self.outputs_))) * float(self.include_noise)
        out = {}
        for j, nm in enumerate(self.outputs_):
            fl = self.laws_.get(nm)
            if fl is None:
                continue
            use = idx is not None and fl.boot.shape[0] == n_boot
            th = fl.boot[idx] if use else np.broadcast_to(fl.params, (n_draws, fl.params.shape[0]))
            with np.errstate(all="ignore"):
                out[nm] = fl.law.predict(x, th) * np.exp(eta[:, j : j + 1] * fl.scale)
        return out

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = self._laws_state()
        state["fit_flops_max"] = self.fit_flops_max_
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._set_laws_state(state, arrays)
        top = state.get("fit_flops_max")
        self.fit_flops_max_ = None if top is None else float(top)


__all__ = ["FP"]
