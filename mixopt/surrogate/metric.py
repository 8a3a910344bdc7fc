"""FLP-M and DML on metric-only tables: the mixture law fitted to each task metric.

When a run table has task metrics that behave like losses (every ``score:<b>`` is lower
is better with no chance floor, e.g. bits-per-byte) and no ``loss:<d>`` columns, FLP-M's
two stages collapse into one: the metric *is* the loss-like quantity, so the stage-1
mixture law is fitted to every metric directly (:mod:`mixopt.laws.metric`: FLP-M's pooled
power law for ``flpm``, the Data Mixing Law -- Olmix's log-linear law -- for ``dml``), all
metrics at once, regularised, with a learned residual chosen per metric by leave-one-out.

:class:`MetricOnly` is the fitted mode: :class:`~mixopt.surrogate.flpm.FLPM` and
:class:`~mixopt.surrogate.flpm.DML` fit one on a metric-only table, hold it as ``metric_only_``
and delegate prediction and the model file to it.

Domains whose ratio never varies in training (e.g. always 0 in the fitting runs, used by a
held-out run) get the ridge's prior -- coefficient 0, the common level of all domains --
rather than an error: the law stays defined on the whole simplex, as regmix's is.

Intervals: Gaussian in log space with the metric's leave-one-out log-rms error as sd
(``y·exp(±z·sd)``), so they widen where the law (and residual) predicted held-out runs
poorly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.data.table import RunTable
from mixopt.errors import ConfigError, FitError
from mixopt.laws.base import reference_for
from mixopt.laws.metric import MetricLaws, fit_metric_laws
from mixopt.surrogate.base import Prediction, Targets, check_fixed_ratios, check_single_scale, normal_quantile

logger = logging.getLogger(__name__)

#: compute must span this factor over the final checkpoints for a compute term
MIN_COMPUTE_SPAN = 2.0
#: the law fitted to each metric for a stage-1 setting; "auto" (FLP-M's default) is the pooled
#: power law, which beat the DML/Olmix form on all three Olmix swarms (benchmarks/real_olmix.py)
FORM_OF_STAGE1 = {"flpm": "flpm", "dml": "dml", "auto": "flpm"}


def is_metric_only(runs: RunTable) -> bool:
    """True when the table has no ``loss:<d>`` columns and every benchmark is loss-like.

    Loss-like: lower is better and no chance floor (``chance=None``), e.g. bits-per-byte.
    """
    b = runs.benchmarks
    return not runs.loss_domains and bool(b) and all(x.chance is None and not x.higher_is_better for x in b)


@dataclass
class MetricOnly:
    """FLP-M's metric-only mode, fitted: one mixture law per metric (held by an FLPM/DML as ``metric_only_``).

    Attributes:
        laws: the fitted :class:`~mixopt.laws.metric.MetricLaws` (all metrics at once).
        active: indices of the mixture domains the laws take (all of them: a never-varied one
            gets the ridge prior).
        fixed_ratios: ratio of every inactive domain in training (targets must keep it).
        reference: reference compute of the compute term, FLOPs.
        vary_compute: whether a compute term was fitted.
        compute_range: ``(min, max)`` final-checkpoint compute of the training runs.
    """

    laws: MetricLaws
    active: tuple[int, ...]
    fixed_ratios: tuple[float, ...]
    reference: float
    vary_compute: bool
    compute_range: tuple[float, float]

    @classmethod
    def fit(cls, runs: RunTable, stage1: str) -> MetricOnly:
        """Fit the law of ``stage1`` (``"flpm"``, ``"dml"`` or ``"auto"``) to every metric of a metric-only table."""
        form = FORM_OF_STAGE1.get(stage1)
        if form is None:
            raise ConfigError(
                f"stage1={stage1!r} needs per-domain losses; on a metric-only table (task metrics, no loss:<d> "
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
        return cls(laws=laws, active=tuple(active), fixed_ratios=tuple(float(R[0, j]) for j in inactive),
                   reference=float(ref), vary_compute=vary, compute_range=(float(C.min()), float(C.max())))

    def predict(self, targets: Targets, names: tuple[str, ...], domains: Sequence[str], *, tolerance: float,
                model_name: str, intervals: bool, level: float) -> Prediction:
        """Predictions of the metrics ``names`` for aligned targets (mixture over ``domains``).

        ``tolerance``: with one training compute scale, how far (fraction) a target's compute
        may be from it; ``model_name`` names the model in the error.
        """
        R = targets.mixture
        assert R is not None  # aligned by Surrogate.predict
        C = targets.flops
        inactive = [j for j in range(len(domains)) if j not in self.active]
        check_fixed_ratios(R, inactive, self.fixed_ratios, domains)
        if not self.vary_compute:
            check_single_scale(C, self.compute_range, tolerance, model_name, runs="metric-only runs")
            u = None
        else:
            u = np.log(C / self.reference)
        mean = self.laws.predict(R[:, list(self.active)], u)
        if not intervals:
            return Prediction(names=names, mean=mean, level=level)
        z = normal_quantile(0.5 + level / 2)
        sd = self.laws.loo_log_rmse[None, :]
        lower = mean * np.exp(-z * sd)
        upper = mean * np.exp(z * sd)
        std = mean * np.broadcast_to(sd, mean.shape)
        return Prediction(names=names, mean=mean, lower=lower, upper=upper, std=np.array(std), level=level)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(JSON state, arrays)`` for the model file."""
        state = {
            "metric_only": True,
            "form": self.laws.form,
            "vary_compute": bool(self.vary_compute),
            "compute_range": list(self.compute_range),
            "active": list(self.active),
            "fixed_ratios": list(self.fixed_ratios),
            "reference": self.reference,
        }
        return state, {f"metric.{k}": v for k, v in self.laws.arrays().items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n_outputs: int) -> MetricOnly:
        """Restore what :meth:`state` wrote, checked against the model's ``n_outputs`` metrics."""
        arr = {k[len("metric."):]: np.asarray(v) for k, v in arrays.items() if k.startswith("metric.")}
        out = cls(laws=MetricLaws.from_arrays(str(state["form"]), bool(state["vary_compute"]), arr),
                  active=tuple(int(j) for j in state["active"]),
                  fixed_ratios=tuple(float(v) for v in state["fixed_ratios"]), reference=float(state["reference"]),
                  vary_compute=bool(state["vary_compute"]),
                  compute_range=(float(state["compute_range"][0]), float(state["compute_range"][1])))
        if out.laws.coef.shape != (n_outputs, len(out.active)):
            raise ValueError(f"metric-law coefficients {out.laws.coef.shape} do not match {n_outputs} "
                             f"metrics x {len(out.active)} domains")
        return out


__all__ = ["FORM_OF_STAGE1", "MIN_COMPUTE_SPAN", "MetricOnly", "is_metric_only"]
