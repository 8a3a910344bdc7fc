"""FLP-M (Chen et al. 2024): compute and mixture -> per-domain losses -> benchmark scores.

**Stage 1** fits, for every validation domain ``d`` (``loss:<d>`` column), one law of the
training compute ``C`` (FLOPs) and the mixture ratios ``r_s`` (one per mixture domain ``s``)
on the **final checkpoint of every run**, with the shared :class:`~mixopt.laws.LawFitter`
(log-space Huber residuals, batched multi-start Levenberg-Marquardt, bootstrap by run). Forms (``stage1``):

``"flpm"`` (default) -- transfer-weighted compute power law::

    L_d = E_d + ((eps_d·C + Σ_s w_ds·C_s) / C_ref)^(-alpha_d),   C_s = r_s·C

  Our reading of the paper's ``L_d = (C/C_N,d)^α_N,d + Σ_s (C_s/C_s,d)^α_s,d``: the loss on
  domain d falls as a power law of the compute spent on every source, each source counted
  with its own scale (``C_s,d = C_ref / w_ds``, how much a FLOP of source s teaches domain
  d) and an ``eps_d·C`` term for what the whole mixture teaches d regardless of ratios. The
  sources are pooled *before* the power law and share one exponent per domain, which
  (a) keeps the law finite when ``r_s = 0`` (no ``0^(-α)`` terms), (b) has only ``k + 3``
  parameters per domain (``E, alpha, log eps, log w_1..k``), identifiable from a few dozen
  runs for any ``k``, and (c) needs no separate reducible-loss scale (it is carried by the
  ``w``), so there is no redundant direction. Measured (fit on RegMix ``train_1m``, predict
  the 256 held-out ``test_1m`` mixtures; 13 domains): median relative error 1.07 % (mean over
  domains; 0.7-2.1 % per domain), Spearman ρ 0.982 (Pile-CC 0.970), against 1.73 % / 0.972
  for ``flpm_additive`` and 3.19 % / 0.947 for ``dml``. On synthetic 3-domain worlds
  (whose truth is of this pooled form) it extrapolates losses to 10x the sampling compute
  exactly without noise (the additive form: 6.5-15 % max error) and at 0.7 % median error
  with 1 % loss noise.

``"flpm_additive"`` -- the paper's per-source sum, made finite at zero::

    L_d = E_d + A_d·(C/C_ref)^(-alpha_d) + Σ_s B_ds·(1 + r_s·C / C_ds)^(-beta_ds)

  ``3k + 3`` parameters per domain (``shared_exponent=True``: one ``beta_d`` for all
  sources, ``2k + 4``). Close to the printed equation, but its per-source terms saturate
  independently, so it cannot express "code teaches math only when there is little math".

``"dml"`` -- Data Mixing Laws (Ye et al. 2024), ``L_d(r) = c_d + k_d·exp(Σ_j t_dj·r_j)``,
  combined *multiplicatively* with a compute power law::

    L_d = E_d + exp(-alpha_d·log(C/C_ref) + Σ_j t_dj·r_j)

  (``k_d`` is absorbed into the ``t_dj``: with ``Σ r_j = 1`` a shared shift of all ``t`` is a
  scale.) Multiplicative, so the mixture changes the *reducible* loss by a factor, the usual
  reading of the DML + scaling-law combination in Ye et al.

**Single compute scale.** When the final checkpoints span less than a factor
:data:`MIN_COMPUTE_SPAN` in compute (RegMix: 512 runs at one size), the compute terms are not
identifiable: stage 1 is fitted on the ratios alone (a warning is logged) and predicting at
another compute (beyond ``fixed_compute_tolerance``) raises
:class:`~mixopt.errors.NotPredictableError` ("not extrapolable in compute") instead of
returning numbers the data cannot support. A mixture domain whose ratio never varies in
training (e.g. always 0) is dropped from stage 1 with a warning; a target that changes its
ratio is likewise not predictable.

**Stage 2** maps the vector of per-domain losses to each benchmark's score with a small
two-layer network ensemble (:mod:`mixopt.surrogate.nets`: Linear -> ReLU -> Linear, one net
per benchmark, 5 members) trained on the checkpoints of **all** runs, using each
checkpoint's *observed* domain losses. Emergence (paper: ``score >= chance + 0.05``;
flipped for lower-is-better metrics; every checkpoint when ``chance`` is None) decides
predictability: benchmarks with fewer than ``min_emerged`` emerged checkpoints or from fewer
than ``min_runs`` runs are listed in ``unpredictable_`` with the reason and predicted as NaN.
For a benchmark with a chance level the net's output goes through a sigmoid link from chance
to a learned ceiling (``link="auto"``; ``"linear"`` is the paper's literal net), and
``stage2_points`` says which checkpoints it trains on (see the settings).

**Prediction**: ratios and compute -> stage 1 -> domain losses -> networks -> scores, fully
vectorised (rows in blocks). ``intervals=False`` evaluates the point laws and the ensemble
mean only. With intervals, stage-1 uncertainty is a **joint bootstrap by run** (draw ``b``
resamples the runs once for every domain), plus each domain's residual noise drawn with
common random numbers (the same draws for every target, so a row's interval does not depend
on the batch it is in); draw ``b`` of the losses goes through ensemble member ``b mod E``;
the score interval is Gaussian with variance = variance of those draws + the nets' held-out
residual variance.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl

from mixopt.data.table import LOSS_PREFIX, SCORE_PREFIX, Benchmark, RunTable
from mixopt.data.thinning import STAGE2_MAX_ROWS
from mixopt.errors import ConfigError, FitError, SchemaError
from mixopt.laws.base import reference_for
from mixopt.laws.fitter import GroupResample, LawFitter
from mixopt.laws.mixture import (
    STAGE1_LAWS,
    DMLLaw,
    FLPMAdditiveLaw,
    FLPMLaw,
    make_stage1_law,
)
from mixopt.laws.recency import SCHEDULE_LAWS, make_schedule_law
from mixopt.surrogate.advice import too_few_runs_message
from mixopt.surrogate.base import register
from mixopt.surrogate.calibrate import IntervalCalibrator
from mixopt.surrogate.emergence import emerged_mask, weak_evidence_predictable
from mixopt.surrogate.flpm_predict import FAMILIES, FLPMPrediction, Stage1Alt
from mixopt.surrogate.hybrid import MixtureResidual
from mixopt.surrogate.logistic import LogisticScoreMap
from mixopt.surrogate.metric import MetricOnly, is_metric_only
from mixopt.surrogate.nets import NetConfig, ScoreNetEnsemble
from mixopt.surrogate.schedule import has_schedules, residual_features, runs_schedule
from mixopt.surrogate.widen import size_backtest_widening

logger = logging.getLogger(__name__)

#: compute must span at least this factor over the final checkpoints for the compute terms
#: of stage 1 to be fitted; below it stage 1 is a pure mixture law at one compute scale
MIN_COMPUTE_SPAN = 2.0
#: stage-2 models: ``net`` (the paper's two-layer net ensemble) or ``logistic`` (a GLM, see
#: :mod:`mixopt.surrogate.logistic`)
STAGE2_MODELS: tuple[str, ...] = ("net", "logistic")
#: the N,D forms fit at most this many checkpoints per run (the final one included), each at
#: least ND_MIN_FRACTION of the run's final tokens (early checkpoints carry warm-up effects)
ND_MAX_CHECKPOINTS = 4
ND_MIN_FRACTION = 0.25


def _thin_checkpoints(runs: RunTable, k: int, min_fraction: float) -> RunTable:
    """At most ``k`` checkpoints per run, evenly spread over those with tokens >= ``min_fraction`` of the final."""
    f = runs.frame.with_columns(
        (pl.col("tokens") / pl.col("tokens").max().over("run")).alias("_frac"),
    ).filter(pl.col("_frac") >= min_fraction - 1e-12)
    f = f.with_columns(pl.int_range(pl.len()).over("run").alias("_i"), pl.len().over("run").alias("_n"))
    # keep the final checkpoint and k - 1 more, evenly spaced from the last backwards
    step = ((pl.col("_n") - 1) / max(k - 1, 1)).ceil().clip(lower_bound=1)
    keep = ((pl.col("_n") - 1 - pl.col("_i")) % step == 0) & ((pl.col("_n") - 1 - pl.col("_i")) / step < k)
    ids = f.filter(keep).select("run", "tokens")
    return RunTable(runs.frame.join(ids, on=["run", "tokens"], how="semi"), runs.benchmarks)


# -- the surrogate ---------------------------------------------------------------------------------
@register
class FLPM(FLPMPrediction):
    """FLP-M: (compute, mixture) -> per-domain losses (stage 1) -> scores (stage-2 nets).

    Args:
        stage1: stage-1 form: ``"auto"`` (default for FLP-M: chosen by internal backtest
            among ``flpm``, ``dml``, ``flpm_nd``, ``dml_nd``, see
            :mod:`mixopt.surrogate.flpm_auto`), ``"flpm"``, ``"flpm_additive"``, ``"dml"``
            (FLOPs forms, final checkpoints) or ``"flpm_nd"``, ``"dml_nd"`` (N,D forms,
            :mod:`mixopt.laws.mixture`; every checkpoint, thinned). DML's default: ``"dml"``.
        family: ``"auto"`` (default), ``"law"`` (the law alone), ``"hybrid"`` (the law
            times a kernel-ridge correction over the mixture, :mod:`mixopt.surrogate.hybrid`)
            or ``"average"`` (the equal-weight model average of the two, in log space: the law
            times half the correction; its loss intervals cover both the law's and the
            hybrid's prediction, so their disagreement shows).
        shared_exponent: ``flpm_additive`` only: one exponent for all source terms.
        n_bootstrap: stage-1 bootstrap draws by run (joint over domains); 0 disables
            stage-1 parameter uncertainty.
        n_starts: multi-start points per domain law (from the law's data-scaled grid).
        loss: ``"huber"`` or ``"squared"`` stage-1 residual loss (log space).
        huber_delta: Huber threshold in log-loss units.
        maxiter: solver iterations per start (Levenberg-Marquardt,
            :mod:`mixopt.laws.solvers`); the 17-source RegMix law converges in 200-600. Fits
            are bounded by iterations only, never by seconds, so they do not depend on the
            machine (a stage-1 start at the cap is kept if it is the best; ``auto``'s
            internal backtest judges it).
        fixed_compute_tolerance: when the training runs share one compute scale, targets
            within this relative distance of it (either way) are predicted at that scale;
            others raise NotPredictableError.
        emergence_margin: a checkpoint has emerged when ``score >= chance + margin``
            (``<= chance - margin`` for lower-is-better metrics); metric's own scale.
        min_emerged: fewest emerged checkpoints for a benchmark to be predictable.
        min_runs: fewest distinct runs among them.
        stage2_points: checkpoints the nets train on: ``"emerged"`` (the paper), ``"all"``
            evaluated checkpoints, or ``"auto"`` (default): all for benchmarks with a
            sigmoid link (its chance floor models the flat pre-emergence part, and those
            points locate where the rise starts), emerged only for linear links.
        stage2: ``"auto"`` (default), ``"net"`` (the paper's two-layer net ensemble) or
            ``"logistic"`` (a GLM, :mod:`mixopt.surrogate.logistic`).
        stage2_inputs: ``"auto"`` (default), ``"observed"`` (each checkpoint's measured
            losses, the paper) or ``"fitted"`` (stage 1's losses at that checkpoint).
        intervals: ``"auto"`` (default: ``"calibrated"``, or ``"raw"`` with the paper
            preset), ``"calibrated"`` (conformal factors from the internal backtest by
            extrapolation distance, :mod:`mixopt.surrogate.calibrate`; they only widen),
            ``"widen"`` (score intervals widened by the nets' size backtest, see
            :func:`~mixopt.surrogate.widen.size_backtest_widening`) or ``"raw"`` (bootstrap + residual noise only).
        preset: None, or ``"paper"``: the paper's method (pooled per-source power law on
            final checkpoints, two-layer net on observed losses, no selection, raw intervals;
            ``link="linear"`` and ``stage2_points="emerged"`` make the net exactly the
            paper's Linear-ReLU-Linear on emerged checkpoints).
        hidden, activation, link, n_members, max_epochs, lr, weight_decay, val_fraction,
            patience: stage-2 network settings (:class:`~mixopt.surrogate.nets.NetConfig`).
        seed: seeds the stage-1 starts and bootstrap, the nets and the interval draws.

    Attributes (after fit):
        outputs_: ``loss:<d>`` per loss domain, then ``score:<b>`` per benchmark.
        domains_: mixture domains (targets are aligned to them).
        loss_domains_: validation domains of stage 1.
        unpredictable_: ``{"score:<b>": reason}`` (NaN predictions).
        stage1_law_: the fitted :class:`~mixopt.laws.Law` (shared by all domains).
        stage1_params_: ``(m, p)`` parameters per loss domain.
        stage1_bootstrap_: ``(m, B, p)`` joint bootstrap parameters (NaN rows = failed draws).
        stage1_residual_: ``(m,)`` log-space residual sd per domain.
        stage1_active_: indices of the mixture domains stage 1 uses (ratio varies in training).
        vary_compute_: whether compute terms were fitted; ``compute_range_``: ``(min, max)``
            FLOPs of the final checkpoints.
        metric_only_: on a metric-only table, the fitted
            :class:`~mixopt.surrogate.metric.MetricOnly` that predicts (else None).
        nets_: the stage-2 :class:`~mixopt.surrogate.nets.ScoreNetEnsemble` over the
            predictable benchmarks ``stage2_benchmarks_``.
    """

    kind: ClassVar[str] = "flpm"
    uses_mixture: ClassVar[bool] = True
    #: stage-2 nets cost grows with rows: cap the fit rows (finals kept)
    max_fit_rows: ClassVar[int | None] = STAGE2_MAX_ROWS
    _default_stage1: ClassVar[str] = "auto"

    def __init__(
        self,
        *,
        stage1: str | None = None,
        family: str = "auto",
        shared_exponent: bool = False,
        n_bootstrap: int = 30,
        n_starts: int = 6,
        loss: str = "huber",
        huber_delta: float = 1e-3,
        maxiter: int = 5000,
        fixed_compute_tolerance: float = 0.25,
        emergence_margin: float = 0.05,
        min_emerged: int = 10,
        min_runs: int = 2,
        stage2_points: str = "auto",
        stage2: str = "auto",
        stage2_inputs: str = "auto",
        intervals: str = "auto",
        preset: str | None = None,
        hidden: int = 16,
        activation: str = "relu",
        link: str = "auto",
        n_members: int = 5,
        max_epochs: int = 1500,
        lr: float = 1e-2,
        weight_decay: float = 1e-3,
        val_fraction: float = 0.2,
        patience: int = 150,
        seed: int = 0,
    ) -> None:
        self.stage1 = self._default_stage1 if stage1 is None else stage1
        self.shared_exponent = shared_exponent
        self.n_bootstrap = n_bootstrap
        self.n_starts = n_starts
        self.loss = loss
        self.huber_delta = huber_delta
        self.maxiter = maxiter
        self.fixed_compute_tolerance = fixed_compute_tolerance
        self.emergence_margin = emergence_margin
        self.min_emerged = min_emerged
        self.min_runs = min_runs
        self.stage2_points = stage2_points
        self.family = family
        self.stage2 = stage2
        self.stage2_inputs = stage2_inputs
        self.intervals = intervals
        self.preset = preset
        self.hidden = hidden
        self.activation = activation
        self.link = link
        self.n_members = n_members
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed

    def _net_config(self) -> NetConfig:
        return NetConfig(
            hidden=self.hidden, activation=self.activation, n_members=self.n_members, max_epochs=self.max_epochs,
            lr=self.lr, weight_decay=self.weight_decay, val_fraction=self.val_fraction, patience=self.patience,
            link="linear" if self.preset == "paper" else self.link, stop="all" if self.preset == "paper" else "member",
            seed=int(self.seed),
        )

    def _make_stage2(self) -> ScoreNetEnsemble | LogisticScoreMap:
        """An unfitted stage-2 model of the kind in use (``stage2_model_`` once chosen)."""
        kind = self.config_["stage2"]
        if kind == "logistic":
            return LogisticScoreMap(n_members=int(self.n_members) * 4, seed=int(self.seed))
        return ScoreNetEnsemble(self._net_config())

    def _check_settings(self) -> None:
        problems = []
        if self.stage1 not in (*STAGE1_LAWS, *SCHEDULE_LAWS, "auto"):
            problems.append(f"stage1 must be 'auto' or one of {sorted([*STAGE1_LAWS, *SCHEDULE_LAWS])}, got {self.stage1!r}")
        if self.family not in ("auto", *FAMILIES):
            problems.append(f"family must be 'auto' or one of {list(FAMILIES)}, got {self.family!r}")
        if self.intervals not in ("auto", "calibrated", "widen", "raw"):
            problems.append(f"intervals must be 'auto', 'calibrated', 'widen' or 'raw', got {self.intervals!r}")
        if self.preset not in (None, "paper"):
            problems.append(f"preset must be None or 'paper', got {self.preset!r}")
        for name, lo in (("n_bootstrap", 0), ("n_starts", 1), ("maxiter", 1), ("min_emerged", 2), ("min_runs", 1)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                problems.append(f"{name} must be an integer >= {lo}, got {v!r}")
        if self.loss not in ("huber", "squared"):
            problems.append(f"loss must be 'huber' or 'squared', got {self.loss!r}")
        if self.stage2 not in (*STAGE2_MODELS, "auto"):
            problems.append(f"stage2 must be 'auto' or one of {list(STAGE2_MODELS)}, got {self.stage2!r}")
        if self.stage2_inputs not in ("auto", "observed", "fitted"):
            problems.append(f"stage2_inputs must be 'observed' or 'fitted', got {self.stage2_inputs!r}")
        if self.stage2_points not in ("auto", "emerged", "all"):
            problems.append(f"stage2_points must be 'auto', 'emerged' or 'all', got {self.stage2_points!r}")
        for name in ("huber_delta", "fixed_compute_tolerance"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                problems.append(f"{name} must be a finite number > 0, got {v!r}")
        if not isinstance(self.emergence_margin, (int, float)) or not math.isfinite(self.emergence_margin) or self.emergence_margin < 0:
            problems.append(f"emergence_margin must be finite and >= 0, got {self.emergence_margin!r}")
        if problems:
            raise ConfigError(f"Invalid {type(self).__name__} settings: " + "; ".join(problems) + ".")
        self._net_config()  # validates the network settings

    # -- fit -----------------------------------------------------------------------------------
    def _fit(self, runs: RunTable) -> None:
        self._check_settings()
        if not runs.domains:
            raise SchemaError(
                f"{type(self).__name__} needs mixture columns (mix:<domain>) in the run table; it has none. "
                "Use FLP for single-source runs, or add the mixture ratios."
            )
        self.metric_only_ = None  # metric-only tables: laws fitted to each metric
        if is_metric_only(runs):
            return self._fit_metric_only(runs)
        if not runs.loss_domains:
            raise SchemaError(
                f"{type(self).__name__} needs per-domain validation losses (loss:<domain> columns); the table has none "
                f"(columns {runs.frame.columns[:12]}). Evaluate each checkpoint on every domain's validation set."
            )
        self._prepare(runs)
        # warm starts of stage 1, given by auto to its fold fits only; never kept from an earlier fit
        warm = self.__dict__.pop("_stage1_warm", None) or {}
        fixed = self._requested_config()
        self.selection_ = None
        self.calibrator_ = None
        choice = None
        if "auto" in fixed.values() or self._intervals_mode() == "calibrated":
            from mixopt.surrogate.flpm_auto import WEAK_GROUP, choose

            choice = choose(self, runs, fixed, need_rows=self._intervals_mode() == "calibrated")
            self.selection_ = choice.table
            fixed = choice.config
            warm = choice.warm
            logger.info("FLP-M auto: chose %s (folds: %s)", fixed, "; ".join(choice.folds) or "none")
        self.config_ = dict(fixed)
        self._fit_config(runs, warm)
        if self._intervals_mode() == "calibrated" and choice is not None and choice.rows.height:
            r = choice.rows.filter(pl.col("actual").is_finite() & pl.col("lower").is_finite() & pl.col("upper").is_finite())
            if r.height:
                groups = r["group"].to_list() if "group" in r.columns else [q.split(":")[0] for q in r["quantity"].to_list()]
                self.calibrator_ = IntervalCalibrator(level=0.9, apart=(WEAK_GROUP,)).fit(
                    r["actual"].to_numpy(), r["predicted"].to_numpy(), r["lower"].to_numpy(), r["upper"].to_numpy(),
                    r["distance"].to_numpy(), groups=groups)

    def _fit_metric_only(self, runs: RunTable) -> None:
        """Fit the metric-only mode (:class:`~mixopt.surrogate.metric.MetricOnly`) and take its names."""
        mode = self.metric_only_ = MetricOnly.fit(runs, self.stage1)
        self.domains_ = tuple(runs.domains)
        self.loss_domains_ = ()
        self.benchmarks_ = tuple(runs.benchmarks)
        self.outputs_ = tuple(SCORE_PREFIX + b for b in runs.benchmark_names)
        self.unpredictable_ = {}
        self.weak_ = {}
        self.vary_compute_ = mode.vary_compute
        self.compute_range_ = mode.compute_range
        self.train_max_flops_ = mode.compute_range[1]

    def _warn_level(self) -> int:
        """WARNING for the user's fit; DEBUG inside the internal backtest (its folds repeat the same warnings)."""
        return logging.DEBUG if getattr(self, "_internal", False) else logging.WARNING

    def _prepare(self, runs: RunTable) -> None:
        """Names from the table (no fitting)."""
        self.domains_ = tuple(runs.domains)
        self.loss_domains_ = tuple(runs.loss_domains)
        self.benchmarks_ = tuple(runs.benchmarks)
        self.outputs_ = tuple(LOSS_PREFIX + d for d in self.loss_domains_) + tuple(SCORE_PREFIX + b.name for b in self.benchmarks_)

    def _requested_config(self) -> dict[str, str]:
        """The choosable settings as requested (``"auto"`` = decided by :func:`~mixopt.surrogate.flpm_auto.choose`).

        ``preset="paper"`` fixes the paper's method: the pooled per-source power law
        (``flpm``), no mixture correction, the two-layer net on observed losses.
        """
        if self.preset == "paper":
            return {"stage1": "flpm" if self.stage1 == "auto" else self.stage1, "family": "law", "stage2": "net",
                    "stage2_inputs": "observed"}
        out = {"stage1": self.stage1, "family": self.family, "stage2": self.stage2, "stage2_inputs": self.stage2_inputs}
        # a form average chosen by auto, handed to its own fold fits (never a user setting)
        alt = getattr(self, "_stage1_alt_request", None)
        if alt is not None:
            out.update(stage1_alt=str(alt[0]), stage1_weight=repr(float(alt[1])))
            if len(alt) > 2 and alt[2]:  # per-domain weights (auto's domain evidence), "w1,w2,..." in loss-domain order
                out["stage1_weights"] = str(alt[2])
        return out

    def _intervals_mode(self) -> str:
        """``calibrated`` (conformal, from the internal backtest), ``widen`` (the nets' size backtest) or ``raw``."""
        if self.intervals != "auto":
            return self.intervals
        return "raw" if self.preset == "paper" else "calibrated"

    def _fit_config(self, runs: RunTable, warm: Mapping[str, Any] | None = None) -> None:
        """Fit stage 1 (+ mixture correction) and stage 2 with the settled ``config_`` (``warm``: see :meth:`_fit_stage1`).

        ``auto`` fits every stage-2 candidate on a fold with the same stage 1 (same runs, settings,
        warm starts and seeds, so the same fit): it hands its fold fits one ``_stage1_shared`` dict
        per fold, and the first fit leaves there what stage 1, its form average and the mixture
        correction set; the others take it instead of refitting (never kept from an earlier fit).
        """
        shared = self.__dict__.pop("_stage1_shared", None)
        key = tuple(self.config_.get(k) for k in ("stage1", "stage1_alt", "stage1_weight", "stage1_weights", "family"))
        if shared is not None and shared.get("key") == key:
            self.__dict__.update(shared["state"])
        else:
            before = dict(self.__dict__)
            self._fit_stage1(self._stage1_rows(runs), warm)
            self._fit_stage1_alt(runs, warm)
            self._fit_residual(runs)
            if shared is not None:
                shared["key"] = key
                shared["state"] = {k: v for k, v in self.__dict__.items() if k not in before or before[k] is not v}
        self._fit_stage2(runs)

    def _fit_stage1_alt(self, runs: RunTable, warm: Mapping[str, Any] | None = None) -> None:
        """The second law form of a form average (``config_["stage1_alt"]``, weight ``config_["stage1_weight"]``).

        ``auto`` averages two law forms of the same inputs (``flpm`` / ``dml``, or the N,D pair) when
        their held-out evidence is within noise but they disagree beyond the runs
        (:mod:`mixopt.surrogate.flpm_auto`). The second form is fitted on the same rows with the
        same bootstrap resamples, so draw ``b`` of either form is the same resample of the runs.
        """
        self.stage1_alt_ = None
        alt = self.config_.get("stage1_alt")
        if not alt:
            return
        keep = {k: getattr(self, k) for k in ("stage1_law_", "stage1_params_", "stage1_bootstrap_", "stage1_residual_")}
        form = self.config_["stage1"]
        self.config_["stage1"] = alt
        try:
            self._fit_stage1(self._stage1_rows(runs), warm)
            law, params, boot, resid = self.stage1_law_, self.stage1_params_, self.stage1_bootstrap_, self.stage1_residual_
        finally:
            self.config_["stage1"] = form
            for k, v in keep.items():
                setattr(self, k, v)
        self.stage1_alt_ = Stage1Alt.make(law, params, boot, resid, self._stage1_alt_weight(), int(self.seed))
        if self.stage1_alt_.per_domain:  # a domain that uses the second form alone has that form's residual noise
            self.stage1_residual_ = np.where(np.asarray(self.stage1_alt_.weight) >= 1.0, resid, self.stage1_residual_)

    def _stage1_alt_weight(self) -> float | list[float]:
        """The form average's weight of the second form: ``config_["stage1_weights"]`` (one per loss domain,
        comma-separated) when set, else ``config_["stage1_weight"]``."""
        per = self.config_.get("stage1_weights")
        if not per:
            return float(self.config_["stage1_weight"])
        w = [float(v) for v in per.split(",")]
        if len(w) != len(self.loss_domains_) or not all(0.0 <= v <= 1.0 for v in w):
            raise ConfigError(f"stage1_weights: expected {len(self.loss_domains_)} weights in [0, 1] (one per loss domain "
                              f"{self.loss_domains_}, comma-separated), got {per!r}")
        return w

    def _stage1_rows(self, runs: RunTable) -> RunTable:
        """The checkpoints stage 1 is fitted on: the final checkpoint of every run.

        The N,D forms (``flpm_nd``, ``dml_nd``) are fitted on **every checkpoint** instead:
        they describe a part-trained model (same N, fewer tokens), which is what lets them
        use intermediate checkpoints. (Valid for constant/WSD-like schedules and for the
        synthetic worlds; a cosine run's mid-training checkpoints sit above a run trained to
        that budget, so prefer the FLOPs forms there.) This is the one place where stage-1
        targets are chosen: a metric-only or thinned variant overrides it.
        """
        if self.config_["stage1"] in STAGE1_LAWS and STAGE1_LAWS[self.config_["stage1"]].uses_nd:
            return _thin_checkpoints(runs, ND_MAX_CHECKPOINTS, ND_MIN_FRACTION)
        return runs.final()

    def _fit_residual(self, runs: RunTable) -> None:
        """The hybrid (and average) family's correction over the mixture, fitted on the law's final-checkpoint residuals."""
        self.residual_ = None
        self.residual_schedule_ = False
        self.residual_ref_flops_ = None
        if self.config_["family"] not in ("hybrid", "average"):
            return
        fin = runs.final()
        R = fin.mixture(self.domains_)
        sched = runs_schedule(fin, self.domains_)
        x = self._law_inputs(fin.flops(), fin.params(), fin.tokens(), R, sched)
        L = fin.losses(self.loss_domains_)
        with np.errstate(divide="ignore", invalid="ignore"):
            res = np.log(L / self._stage1_mean(x))
        res[~np.isfinite(res)] = np.nan
        # schedules that differ from constant mixtures: the correction reads schedule features
        self.residual_schedule_ = has_schedules(fin)
        # constant mixtures: the law's own log losses at one compute (the fitted runs' median) are a feature too
        self.residual_ref_flops_ = None if self.residual_schedule_ else float(np.exp(np.median(np.log(fin.flops()))))
        own = self._residual_own(R)
        if own is not None:
            own[~np.isfinite(own)] = np.nan
        self.residual_ = MixtureResidual().fit(residual_features(R, sched if self.residual_schedule_ else None), res, own)

    def _fit_stage1(self, final: RunTable, warm: Mapping[str, Any] | None = None) -> None:
        """Fit the stage-1 law per loss domain on ``final`` (the rows of :meth:`_stage1_rows`).

        ``warm``: ``{form: entry}`` from :meth:`stage1_warm_entry` of a fit of the same form on
        overlapping runs (``auto`` passes its fold fits' results on: to the same fold's full
        fits, and from the largest fold to the final fit). Each domain's law fit then tries
        those parameters first; the grid starts still run, so the fit is never worse.
        """
        C = final.flops()
        R = final.mixture(self.domains_)
        L = final.losses(self.loss_domains_)
        ids = np.asarray(final.run_ids(), dtype=object)
        form = self.config_["stage1"]
        sched = runs_schedule(final, self.domains_) if form in SCHEDULE_LAWS else None
        if form in SCHEDULE_LAWS and not has_schedules(final):
            raise FitError(
                f"FLP-M stage 1 {form!r} reads schedules (mix@k:<domain>, phase_end@k columns, docs/phases.md), but every "
                "run has one constant mixture: the recency weight cannot be learned. Use stage1='auto' or 'flpm', or add "
                "runs whose mixture changes during training."
            )
        # a schedule law sees every phase's ratios: a domain is active when any of them varies
        P = sched[0] if sched is not None else R[:, None, :]
        active = [j for j in range(R.shape[1]) if np.ptp(P[:, :, j]) > 0]
        inactive = [j for j in range(R.shape[1]) if j not in active]
        if not active:
            raise FitError(
                f"Every run has the same mixture {dict(zip(self.domains_, R[0].round(4).tolist(), strict=True))}: "
                "the mixture's effect on the losses cannot be learned. Add runs with different mixtures."
            )
        if inactive:
            logger.log(
                self._warn_level(),
                "FLP-M stage 1: the ratio of domain(s) %s never varies in training (always %s); they are left out of "
                "stage 1 and targets must keep that ratio.", [self.domains_[j] for j in inactive], R[0, inactive].round(6).tolist(),
            )
        span = float(C.max() / C.min())
        vary = span >= MIN_COMPUTE_SPAN
        if not vary:
            logger.log(
                self._warn_level(),
                "FLP-M stage 1: training compute spans only a factor %.3g (< %.3g) over %d runs, so the compute terms "
                "are not identifiable; fitting a mixture-only law at C = %.4g FLOPs. Predictions at other compute "
                "will raise NotPredictableError.", span, MIN_COMPUTE_SPAN, len(C), float(np.median(C)),
            )
        ref = reference_for(C)
        total = float(1.0 - R[0, inactive].sum()) if inactive else 1.0
        if form in SCHEDULE_LAWS:
            law = make_schedule_law(form, [self.domains_[j] for j in active], n_phases=P.shape[1], vary_compute=vary,
                                    reference=ref, ratio_total=total)
        else:
            law = make_stage1_law(form, [self.domains_[j] for j in active], vary_compute=vary, reference=ref,
                                  ratio_total=total, shared_exponent=bool(self.shared_exponent),
                                  n_reference=reference_for(final.params()), d_reference=reference_for(final.tokens()))
        x = self._law_inputs(C, final.params(), final.tokens(), R, sched, law=law, active=active)
        n_runs = int(np.unique(ids).shape[0])
        if n_runs < law.n_params:
            raise FitError(too_few_runs_message(self.config_["stage1"], law.n_params, n_runs, law.sources, vary_compute=vary,
                                                ratio_total=total))
        resample = GroupResample.draw(ids, int(self.n_bootstrap), np.random.default_rng(np.random.SeedSequence([int(self.seed), 1])))
        m, p = len(self.loss_domains_), law.n_params
        params = np.empty((m, p))
        boot = np.empty((m, resample.n_draws, p))
        resid = np.empty(m)
        entry = (warm or {}).get(self.config_["stage1"])
        init = entry[2] if entry is not None and tuple(entry[0]) == law.param_names and \
            tuple(entry[1]) == tuple(self.loss_domains_) else None
        for j, d in enumerate(self.loss_domains_):
            fitter = LawFitter(law, loss=self.loss, huber_delta=float(self.huber_delta), n_starts=int(self.n_starts),
                               seed=int(self.seed), maxiter=int(self.maxiter),
                               # the internal backtest (auto) and the held-out checks judge the fit: a
                               # 17-source law that crawls at its optimum is kept, not refused
                               at_iteration_cap="best")
            ok = np.isfinite(L[:, j])  # a run whose final checkpoint lacks this domain's loss does not count
            if int(ok.sum()) < law.n_params:
                raise FitError(
                    f"FLP-M stage 1: domain {d!r} has a final-checkpoint loss in only {int(ok.sum())} runs, fewer than the "
                    f"{law.n_params} parameters of {law.name!r}. Evaluate more final checkpoints on {d!r} or drop loss:{d}."
                )
            try:
                fitter.fit(x[ok], L[ok, j], groups=ids[ok], resample=resample, init=None if init is None else init[j])
            except FitError as e:
                raise FitError(f"FLP-M stage 1 could not fit the loss of domain {d!r}: {e}", starts=e.starts) from e
            params[j] = fitter.params_
            boot[j] = fitter.bootstrap_params_
            resid[j] = fitter.residual_scale_
            logger.debug("FLP-M stage 1 %s: %s (objective %.3g)", d, law.as_dict(fitter.params_), fitter.objective_)
        self.stage1_law_ = law
        self.stage1_params_ = params
        self.stage1_bootstrap_ = boot
        self.stage1_residual_ = resid
        self.stage1_active_ = tuple(active)
        self.stage1_fixed_ratios_ = tuple(float(R[0, j]) for j in inactive)
        self.vary_compute_ = vary
        last = final.final()  # (stage 1 may have been fitted on every checkpoint)
        self.tokens_per_param_ = float(np.median(last.tokens() / last.params()))
        self.compute_range_ = (float(C.min()), float(C.max()))
        # common random numbers for the residual-noise part of interval draws
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), 3]))
        self.stage1_noise_draws_ = rng.standard_normal((resample.n_draws, m))

    def stage1_warm_entry(self) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
        """``(law parameter names, loss domains, (m, p) parameters)`` of the fitted stage 1, a warm start for :meth:`_fit_stage1`."""
        return self.stage1_law_.param_names, tuple(self.loss_domains_), np.array(self.stage1_params_, copy=True)

    def _stage2_inputs(self, runs: RunTable) -> np.ndarray:
        """Domain losses ``(n, m)`` the stage-2 model trains on, one row per checkpoint.

        ``stage2_inputs="observed"`` (the paper): each checkpoint's measured losses.
        ``"fitted"``: the stage-1 law's losses at that checkpoint's compute and mixture --
        noise-free inputs (measured losses carry evaluation noise, which flattens a fitted
        map: errors-in-variables), at the price of trusting stage 1 at every checkpoint.
        """
        if self.config_["stage2_inputs"] == "fitted":
            R = runs.mixture(self.domains_)
            sched = runs_schedule(runs, self.domains_)
            x = self._law_inputs(runs.flops(), runs.params(), runs.tokens(), R, sched)
            feats = residual_features(R, sched if getattr(self, "residual_schedule_", False) else None)
            return self._stage1_mean(x) * np.exp(self._residual_correction(feats))
        return runs.losses(self.loss_domains_)

    def _fit_stage2(self, runs: RunTable) -> None:
        unpredictable: dict[str, str] = {}
        ids = np.asarray(runs.run_ids(), dtype=object)
        X = self._stage2_inputs(runs)
        # a checkpoint missing a domain's loss cannot feed a map from the vector of domain losses
        # (observed inputs); it still served stage 1 for the domains it has
        xok = np.isfinite(X).all(axis=1)
        if not xok.all():
            logger.info("FLP-M stage 2: %d of %d checkpoints lack a domain loss and are not used by stage 2.",
                        int((~xok).sum()), len(xok))
            X, ids = X[xok], ids[xok]
        keep: list[Benchmark] = []
        Ys, masks = [], []
        self.emerged_counts_ = {}
        weak: dict[str, str] = {}
        for b in self.benchmarks_:
            s = runs.scores([b.name])[:, 0][xok]
            em = emerged_mask(s, b, float(self.emergence_margin))
            n_em = int(em.sum())
            n_runs = int(np.unique(ids[em]).shape[0]) if n_em else 0
            self.emerged_counts_[b.name] = n_em
            link = "linear" if self.preset == "paper" else self.link
            points = "emerged" if self.preset == "paper" else self.stage2_points
            sigmoid = self.config_["stage2"] == "logistic" or link == "sigmoid" or (link == "auto" and b.chance is not None)
            all_points = points == "all" or (points == "auto" and sigmoid)
            evaluated = np.isfinite(s)
            n_eval_runs = int(np.unique(ids[evaluated]).shape[0]) if evaluated.any() else 0
            if (n_em < self.min_emerged or n_runs < self.min_runs) and weak_evidence_predictable(
                    b, int(evaluated.sum()), n_eval_runs, anchored=sigmoid and all_points, min_points=int(self.min_emerged),
                    min_runs=int(self.min_runs)):
                weak[SCORE_PREFIX + b.name] = (
                    f"predicted on weak evidence: {n_em} emerged checkpoint(s) from {n_runs} run(s) (fewer than "
                    f"min_emerged {self.min_emerged} from {self.min_runs} runs); the chance-anchored stage 2 extrapolates "
                    "from the foot of the emergence curve, its interval is calibrated on its own and is wide")
            elif n_em < self.min_emerged or n_runs < self.min_runs:
                if b.chance is None:
                    rule = "every evaluated checkpoint counts (no chance level)"
                elif b.higher_is_better:
                    rule = f"score >= chance {b.chance:g} + margin {float(self.emergence_margin):g}"
                else:
                    rule = f"score <= chance {b.chance:g} - margin {float(self.emergence_margin):g}"
                unpredictable[SCORE_PREFIX + b.name] = (
                    f"not predictable: {n_em} emerged checkpoint(s) from {n_runs} run(s) ({rule}, out of "
                    f"{int(np.isfinite(s).sum())} evaluated); the stage-2 network needs >= {self.min_emerged} from >= "
                    f"{self.min_runs} runs. Add larger sampling runs, or lower min_emerged / emergence_margin."
                )
                continue
            keep.append(b)
            use = evaluated if all_points else em
            Ys.append(np.where(use, s, np.nan))
            masks.append(use)
        for q, why in unpredictable.items():
            logger.log(self._warn_level(), "FLP-M: %s %s", q, why)
        Y = np.column_stack(Ys) if Ys else np.zeros((len(ids), 0))
        M = np.column_stack(masks) if masks else np.zeros((len(ids), 0), dtype=bool)
        self.nets_ = self._make_stage2().fit(
            X, Y, M, ids, chance=[b.chance for b in keep], higher_is_better=[b.higher_is_better for b in keep]
        )
        self.stage2_benchmarks_ = tuple(b.name for b in keep)
        self.unpredictable_ = unpredictable
        self.weak_ = weak
        for q, why in weak.items():
            logger.log(self._warn_level(), "FLP-M: %s %s", q, why)
        self.train_max_flops_ = float(runs.flops().max())
        self.extrapolation_error_ = np.zeros(len(keep))
        self.extrapolation_distance_ = np.ones(len(keep))
        if self._intervals_mode() == "widen" and self.vary_compute_ and keep:
            self.extrapolation_error_, self.extrapolation_distance_ = size_backtest_widening(
                runs, X, Y, M, ids, keep, make_stage2=self._make_stage2, noise_sd=self.nets_.noise_sd_,
                margin=float(self.emergence_margin))

    # -- state --------------------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if getattr(self, "metric_only_", None) is not None:
            return self.metric_only_.state()
        state = {
            "loss_domains": list(self.loss_domains_),
            "stage1_law": self.stage1_law_.name,
            "stage1_config": self.stage1_law_.config(),
            "stage1_active": list(self.stage1_active_),
            "stage1_fixed_ratios": list(self.stage1_fixed_ratios_),
            "residual_schedule": bool(getattr(self, "residual_schedule_", False)),
            "residual_ref_flops": getattr(self, "residual_ref_flops_", None),
            "vary_compute": bool(self.vary_compute_),
            "compute_range": list(self.compute_range_),
            "stage2_benchmarks": list(self.stage2_benchmarks_),
            "emerged_counts": dict(self.emerged_counts_),
            "weak": dict(getattr(self, "weak_", {})),
            "train_max_flops": self.train_max_flops_,
            "config": dict(self.config_),
            "tokens_per_param": self.tokens_per_param_,
            "calibrator": self.calibrator_.state() if getattr(self, "calibrator_", None) is not None else None,
            "selection": self.selection_.to_dicts() if getattr(self, "selection_", None) is not None else None,
        }
        arrays = {
            "stage1.params": self.stage1_params_,
            "stage1.bootstrap": self.stage1_bootstrap_,
            "stage1.residual": self.stage1_residual_,
            "stage1.noise_draws": self.stage1_noise_draws_,
            "stage2.extrapolation_error": self.extrapolation_error_,
            "stage2.extrapolation_distance": self.extrapolation_distance_,
        }
        arrays.update({f"net.{k}": v for k, v in self.nets_.arrays().items()})
        if getattr(self, "residual_", None) is not None:
            arrays.update({f"residual.{k}": v for k, v in self.residual_.arrays().items()})
        alt = getattr(self, "stage1_alt_", None)
        if alt is not None:
            state["stage1_alt_law"] = alt.law.name
            state["stage1_alt_config"] = alt.law.config()
            arrays.update({f"stage1alt.{k}": v for k, v in alt.arrays().items()})
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.metric_only_ = None
        if state.get("metric_only"):
            mode = self.metric_only_ = MetricOnly.from_state(state, arrays, len(self.outputs_))
            self.vary_compute_ = mode.vary_compute
            self.compute_range_ = mode.compute_range
            self.loss_domains_ = ()
            self.train_max_flops_ = mode.compute_range[1]
            return None
        self.loss_domains_ = tuple(state["loss_domains"])
        self.config_ = {str(k): str(v) for k, v in dict(state["config"]).items()}
        self.tokens_per_param_ = float(state.get("tokens_per_param", 20.0))
        self.calibrator_ = None
        if state.get("calibrator") is not None:
            self.calibrator_ = IntervalCalibrator.from_state(state["calibrator"])
        self.selection_ = pl.DataFrame(state["selection"]) if state.get("selection") else None
        res_arrays = {k[len("residual."):]: v for k, v in arrays.items() if k.startswith("residual.")}
        self.residual_ = None
        if res_arrays:
            self.residual_ = MixtureResidual.from_arrays(res_arrays)
        self.residual_schedule_ = bool(state.get("residual_schedule", False))
        ref = state.get("residual_ref_flops")
        self.residual_ref_flops_ = None if ref is None else float(ref)
        self.stage1_law_ = _law_from_state(state["stage1_law"], dict(state["stage1_config"]))
        self.stage1_alt_ = None
        if state.get("stage1_alt_law"):
            alt_arrays = {k[len("stage1alt."):]: v for k, v in arrays.items() if k.startswith("stage1alt.")}
            self.stage1_alt_ = Stage1Alt.from_arrays(_law_from_state(state["stage1_alt_law"], dict(state["stage1_alt_config"])),
                                                     alt_arrays, float(self.config_["stage1_weight"]))
        self.stage1_active_ = tuple(int(j) for j in state["stage1_active"])
        self.stage1_fixed_ratios_ = tuple(float(v) for v in state["stage1_fixed_ratios"])
        self.vary_compute_ = bool(state["vary_compute"])
        self.compute_range_ = (float(state["compute_range"][0]), float(state["compute_range"][1]))
        self.stage2_benchmarks_ = tuple(state["stage2_benchmarks"])
        self.emerged_counts_ = {str(k): int(v) for k, v in dict(state.get("emerged_counts", {})).items()}
        self.weak_ = {str(k): str(v) for k, v in dict(state.get("weak", {})).items()}
        self.train_max_flops_ = float(state["train_max_flops"])
        self.extrapolation_error_ = np.asarray(arrays["stage2.extrapolation_error"], dtype=np.float64)
        self.extrapolation_distance_ = np.asarray(arrays["stage2.extrapolation_distance"], dtype=np.float64)
        self.stage1_params_ = np.asarray(arrays["stage1.params"], dtype=np.float64)
        self.stage1_bootstrap_ = np.asarray(arrays["stage1.bootstrap"], dtype=np.float64)
        self.stage1_residual_ = np.asarray(arrays["stage1.residual"], dtype=np.float64)
        self.stage1_noise_draws_ = np.asarray(arrays["stage1.noise_draws"], dtype=np.float64)
        net_arrays = {k[len("net."):]: v for k, v in arrays.items() if k.startswith("net.")}
        if self.config_["stage2"] == "logistic":
            self.nets_ = LogisticScoreMap.from_arrays(net_arrays, n_members=int(self.n_members) * 4, seed=int(self.seed))
        else:
            self.nets_ = ScoreNetEnsemble.from_arrays(self._net_config(), net_arrays)
        m, p = self.stage1_params_.shape
        if m != len(self.loss_domains_) or p != self.stage1_law_.n_params or self.nets_.n_benchmarks != len(self.stage2_benchmarks_):
            raise ValueError(
                f"stage-1 parameters {self.stage1_params_.shape} / networks ({self.nets_.n_benchmarks} benchmarks) do not "
                f"match {len(self.loss_domains_)} loss domains, {self.stage1_law_.n_params} law parameters and "
                f"{len(self.stage2_benchmarks_)} benchmarks"
            )


def _law_from_state(form: str, cfg: Mapping[str, Any]) -> Any:
    """A stage-1 law from its saved name and :meth:`~mixopt.laws.mixture.MixtureLaw.config`."""
    if form in SCHEDULE_LAWS:
        return make_schedule_law(form, cfg["sources"], n_phases=int(cfg["n_phases"]), vary_compute=bool(cfg["vary_compute"]),
                                 reference=float(cfg["reference"]), ratio_total=float(cfg.get("ratio_total", 1.0)))
    return make_stage1_law(form, cfg["sources"], vary_compute=bool(cfg["vary_compute"]),
                           reference=float(cfg["reference"]), ratio_total=float(cfg.get("ratio_total", 1.0)),
                           shared_exponent=bool(cfg.get("shared_exponent", False)),
                           n_reference=float(cfg.get("n_reference", 1e8)), d_reference=float(cfg.get("d_reference", 2e9)))


@register
class DML(FLPM):
    """FLP-M with the Data Mixing Laws stage 1 (``stage1="dml"``); kind ``"dml"``.

    Same settings, stage 2 and intervals as :class:`FLPM`; see the module docstring for the
    law ``L_d = E_d + exp(-alpha_d·log(C/C_ref) + Σ_j t_dj·r_j)``.
    """

    kind: ClassVar[str] = "dml"
    _default_stage1: ClassVar[str] = "dml"


__all__ = [
    "DML",
    "FLPM",
    "MIN_COMPUTE_SPAN",
    "STAGE1_LAWS",
    "DMLLaw",
    "FLPMAdditiveLaw",
    "FLPMLaw",
    "make_stage1_law",
]
