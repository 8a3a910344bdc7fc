"""FLP-M and DML on metric-only tables: the mixture law fitted to each task metric.

When a run table has task metrics that behave like losses (every ``score:<b>`` is lower
is better with no chance floor, e.g. bits-per-byte) and no ``loss:<d>`` columns, FLP-M's
two stages collapse into one: the metric *is* the loss-like quantity, so the stage-1
mixture law is fitted to every metric directly (:mod:`mixopt.laws.metric`: FLP-M's pooled
power law for ``flpm``, the Data Mixing Law -- Olmix's log-linear law -- for ``dml``), all
metrics at once, regularised, with a learned residual chosen per metric by leave-one-out.

:class:`~mixopt.surrogate.flpm.FLPM` and :class:`~mixopt.surrogate.flpm.DML` call into this
module from four small hooks (fit, predict, save, load); the logic lives here.

Domains whose ratio never varies in training (e.g. always 0 in the fitting runs, used by a
held-out run) get the ridge's prior -- coefficient 0, the common level of all domains --
rather than an error: the law stays defined on the whole simplex, as regmix's is.

Intervals: Gaussian in log space with the metric's leave-one-out log-rms error as sd
(``y·exp(±z·sd)``), so they widen where the law (and residual) predicted held-out runs
poorly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.data.table import SCORE_PREFIX, RunTable
from mixopt.errors import ConfigError, FitError, NotPredictableError
from mixopt.laws.base import reference_for
from mixopt.laws.metric import MetricLaws, fit_metric_laws
from mixopt.surrogate.base import Prediction, Targets

if TYPE_CHECKING:  # pragma: no cover
    from mixopt.surrogate.flpm import FLPM

logger = logging.getLogger(__name__)

#: compute must span this factor over the final checkpoints for a compute term
MIN_COMPUTE_SPAN = 2.0
#: law form used for each stage-1 setting of FLP-M / DML
#: the law fitted to each metric for a stage-1 setting; "auto" (FLP-M's default) is the pooled
#: power law, which beat the DML/Olmix form on all three Olmix swarms (benchmarks/real_olmix.py)
FORM_OF_STAGE1 = {"flpm": "flpm", "dml": "dml", "auto": "flpm"}


def is_metric_only(runs: RunTable) -> bool:
    """True when the table has no ``loss:<d>`` columns and every benchmark is loss-like.

    Loss-like: lower is better and no chance floor (``chance=None``), e.g. bits-per-byte.
    """
    b = runs.benchmarks
    return not runs.loss_domains and bool(b) and all(x.chance is None and not x.higher_is_better for x in b)


def fit_metric_only(model: FLPM, runs: RunTable) -> None:
    """Fit ``model`` (an FLPM or DML) on a metric-only table; sets its learned state."""
    form = FORM_OF_STAGE1.get(model.stage1)
    if form is None:
        raise ConfigError(
            f"stage1={model.stage1!r} needs per-domain losses; on a metric-only table (task metrics, no loss:<d> "
            f"columns) use stage1='flpm' or 'dml' (fitted to each metric directly)."
        )
    final = runs.final()
    C = final.flops()
    R = final.mixture()
    Y = final.scores()
    varied = [j for j in range(R.shape[1]) if np.ptp(R[:, j]) > 0]
    if not varied:
        raise FitError("Every run has the same mixture: the mixture's effect on the metrics cannot be learned. "
                       "Add runs with different mixtures.")
    fixed = [j for j in range(R.shape[1]) if j not in varied]
    if fixed:
        # the ridge gives a never-varied domain exactly the prior (coefficient 0: the common
        # level of all domains), so a target that uses it is predicted from that prior
        logger.warning("metric laws: the ratio of domain(s) %s never varies in training; their effect is the ridge "
                       "prior (that of an average domain) for targets that use them.", [runs.domains[j] for j in fixed])
    active = list(range(R.shape[1]))
    inactive: list[int] = []
    span = float(C.max() / C.min())
    vary = span >= MIN_COMPUTE_SPAN
    ref = reference_for(C)
    u = np.log(C / ref) if vary else None
    n = R.shape[0]
    logger.info("metric laws (%s): %d metrics x %d domains x %d runs%s", form, Y.shape[1], len(active), n,
                " with a compute term" if vary else " at one compute scale")
    laws = fit_metric_laws(R[:, active], Y, form=form, u=u, residual=True)
    model.metric_laws_ = laws
    model.metric_active_ = tuple(active)
    model.metric_fixed_ratios_ = tuple(float(R[0, j]) for j in inactive)
    model.metric_reference_ = float(ref)
    model.domains_ = tuple(runs.domains)
    model.loss_domains_ = ()
    model.benchmarks_ = tuple(runs.benchmarks)
    model.outputs_ = tuple(SCORE_PREFIX + b for b in runs.benchmark_names)
    model.unpredictable_ = {}
    model.vary_compute_ = vary
    model.compute_range_ = (float(C.min()), float(C.max()))
    model.train_max_flops_ = float(C.max())


def predict_metric_only(model: FLPM, targets: Targets, *, intervals: bool, level: float) -> Prediction:
    """Predictions of a metric-only FLPM/DML for aligned targets."""
    R = targets.mixture
    assert R is not None  # aligned by Surrogate.predict
    C = targets.flops
    inactive = [j for j in range(len(model.domains_)) if j not in model.metric_active_]
    if inactive:
        bad = np.any(np.abs(R[:, inactive] - np.asarray(model.metric_fixed_ratios_)) > 1e-9, axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise NotPredictableError(
                f"Target {i} sets the ratio of {[model.domains_[j] for j in inactive]} to {R[i, inactive].round(6).tolist()}, "
                f"but every training run had {list(model.metric_fixed_ratios_)}: the effect of those domains was never "
                "observed. Keep their ratios or refit on runs that vary them."
            )
    if not model.vary_compute_:
        lo, hi = model.compute_range_
        tol = 1.0 + float(model.fixed_compute_tolerance)
        out = (C > hi * tol) | (C < lo / tol)
        if out.any():
            raise NotPredictableError(
                f"not extrapolable in compute: this {type(model).__name__} was fitted on metric-only runs at a single compute "
                f"scale ({lo:.4g}-{hi:.4g} FLOPs), so it predicts mixtures at that scale only "
                f"(+-{float(model.fixed_compute_tolerance):.0%}); got target compute {float(C[out][0]):.4g} FLOPs. "
                f"Predict at ~{math.sqrt(lo * hi):.4g} FLOPs, or fit on runs of several sizes."
            )
        u = None
    else:
        u = np.log(C / model.metric_reference_)
    laws: MetricLaws = model.metric_laws_
    mean = laws.predict(R[:, list(model.metric_active_)], u)
    names = tuple(model.outputs_)
    if not intervals:
        return Prediction(names=names, mean=mean, level=level)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    sd = laws.loo_log_rmse[None, :]
    lower = mean * np.exp(-z * sd)
    upper = mean * np.exp(z * sd)
    std = mean * np.broadcast_to(sd, mean.shape)
    return Prediction(names=names, mean=mean, lower=lower, upper=upper, std=np.array(std), level=level)


def metric_state(model: FLPM) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(JSON state, arrays)`` of a metric-only FLPM/DML for the model file."""
    laws: MetricLaws = model.metric_laws_
    state = {
        "metric_only": True,
        "form": laws.form,
        "vary_compute": bool(model.vary_compute_),
        "compute_range": list(model.compute_range_),
        "active": list(model.metric_active_),
        "fixed_ratios": list(model.metric_fixed_ratios_),
        "reference": model.metric_reference_,
    }
    return state, {f"metric.{k}": v for k, v in laws.arrays().items()}


def set_metric_state(model: FLPM, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Restore what :func:`metric_state` wrote."""
    arr = {k[len("metric."):]: np.asarray(v) for k, v in arrays.items() if k.startswith("metric.")}
    model.metric_laws_ = MetricLaws.from_arrays(str(state["form"]), bool(state["vary_compute"]), arr)
    model.vary_compute_ = bool(state["vary_compute"])
    model.compute_range_ = (float(state["compute_range"][0]), float(state["compute_range"][1]))
    model.metric_active_ = tuple(int(j) for j in state["active"])
    model.metric_fixed_ratios_ = tuple(float(v) for v in state["fixed_ratios"])
    model.metric_reference_ = float(state["reference"])
    model.loss_domains_ = ()
    model.train_max_flops_ = model.compute_range_[1]
    if model.metric_laws_.coef.shape != (len(model.outputs_), len(model.metric_active_)):
        raise ValueError(f"metric-law coefficients {model.metric_laws_.coef.shape} do not match {len(model.outputs_)} "
                         f"metrics x {len(model.metric_active_)} domains")


__all__ = ["fit_metric_only", "is_metric_only", "metric_state", "predict_metric_only", "set_metric_state"]
