"""FLP (FLOPs -> loss -> score, Chen et al. 2024) and the FP baseline (FLOPs -> score).

**FLP** (kind ``"flp"``), exactly the paper's two stages:

1. *FLOPs -> loss* on the **final checkpoint of every run** (:meth:`RunTable.final`): one
   point per run. Form ``stage1``: ``"power_offset"`` (default, ``L = E + A·C^-alpha``),
   ``"pure_power"`` (the paper's ``L = (C / C_N)^alpha_N``) or ``"chinchilla"``
   (``L(N, D)``; needs ``params`` and ``tokens`` in the targets). Fitted in log space.
2. *loss -> score*, one law per benchmark, on the **emerged checkpoints of all runs**
   (every checkpoint counts, not only final ones): ``stage2="linear"`` (the paper,
   ``P = w0 + w1·L``, least squares in closed form) or ``"sigmoid"`` (the reviewers'
   suggestion, chance floor to a ceiling; fitted on *all* checkpoints by default because its
   floor models the non-emerged ones, see ``stage2_points``).

Prediction ``P = stage2(stage1(C))``. Linear stage-2 predictions are not clipped to the
metric's range (the paper does not clip): far beyond the sampling runs a linear map can pass
1.0 or fall below chance, which is the cue to try ``stage2="sigmoid"``. Intervals come from a **joint bootstrap by run**: draw
``b`` resamples the runs once, and both stages are refitted on that same resample; the
prediction of draw ``b`` is ``stage2_b(stage1_b(C))``. Residual noise is added (when
``include_noise``): stage 2's residual sd, plus stage 1's log-loss residual sd carried to
the score by the delta method (``|dP/dL|·L·sd1``) — a new model's loss also misses the law.

**Emergence** (paper: score >= chance + 5 points). A checkpoint of benchmark ``b`` has
emerged when ``score >= chance + emergence_margin`` (higher-is-better metrics) or
``score <= chance - emergence_margin`` (lower-is-better); every checkpoint counts when
``chance`` is None. ``emergence="first_crossing"`` instead keeps every checkpoint of a run
from its first emerged one onward. The margin is on the metric's own scale (0.05 = 5
points of a 0-1 accuracy).

**Not predictable** (never extrapolated silently): a benchmark with fewer than
``min_emerged`` (default 3) emerged checkpoints, or emerged checkpoints from fewer than
``min_runs`` (default 2) distinct runs (one run gives a slope but no by-run bootstrap spread
and confounds the run's own quirks with the law), or whose fit fails. It is listed in
``unpredictable_`` with the reason, and its predictions are NaN.

**Loss column** (``loss_column``): None uses the overall ``loss`` column; a table with only
per-domain ``loss:<d>`` columns is an error listing them — FLP models *one* loss, and silently
picking a domain would change what is being predicted; pass e.g. ``loss_column="loss:web"``.

**FP** (kind ``"fp"``): the paper's baseline, ``P(C) = (C / C_P)^alpha_P`` per benchmark
(:class:`~mixopt.laws.FPPowerLaw`), fitted in log space by least squares on the same emerged
checkpoints (the paper leaves FP's points open; this is its natural reading and makes the
comparison like for like). Same bootstrap, intervals and predictability rules.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from mixopt.data.table import LOSS, LOSS_PREFIX, SCORE_PREFIX, Benchmark, RunTable
from mixopt.errors import ConfigError, FitError, NotPredictableError, SchemaError
from mixopt.laws.base import Law, reference_for
from mixopt.laws.fitter import GroupResample, LawFitter, combine_interval, predictive_std
from mixopt.laws.forms import ChinchillaLaw, FPPowerLaw, Linear, PowerLawWithOffset, PurePowerLaw, Sigmoid, make_law
from mixopt.surrogate.base import Prediction, Surrogate, Targets, register

logger = logging.getLogger(__name__)

Stage1 = Literal["power_offset", "pure_power", "chinchilla"]
Stage2 = Literal["linear", "sigmoid"]
STAGE1_FORMS: tuple[str, ...] = ("power_offset", "pure_power", "chinchilla")
STAGE2_FORMS: tuple[str, ...] = ("linear", "sigmoid")
EMERGENCE_MODES: tuple[str, ...] = ("checkpoint", "first_crossing")
#: bootstrap predictions are computed for at most this many (draw x target) cells at once
_CHUNK_CELLS = 2_000_000


# -- emergence -------------------------------------------------------------------------------
def emerged_mask(
    scores: np.ndarray,
    benchmark: Benchmark,
    margin: float = 0.05,
    *,
    run_ids: np.ndarray | None = None,
    mode: str = "checkpoint",
) -> np.ndarray:
    """Which checkpoints of one benchmark have emerged above chance.

    Args:
        scores: ``(n,)`` scores (NaN = not evaluated, never emerged).
        benchmark: metadata (chance level and direction).
        margin: distance from chance on the metric's scale (paper: 0.05).
        run_ids: ``(n,)`` run of every row, rows in token order within a run (as
            :class:`RunTable` keeps them); needed for ``mode="first_crossing"``.
        mode: ``"checkpoint"`` (each checkpoint on its own, the paper) or
            ``"first_crossing"`` (every checkpoint from a run's first emerged one onward).

    Returns:
        ``(n,)`` bool.
    """
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    if benchmark.chance is None:
        m = finite
    elif benchmark.higher_is_better:
        m = finite & (s >= benchmark.chance + margin)
    else:
        m = finite & (s <= benchmark.chance - margin)
    if mode == "first_crossing":
        if run_ids is None:
            raise ConfigError("emergence='first_crossing' needs the run id of every row.")
        frame = pl.DataFrame({"r": np.asarray(run_ids).astype(str), "m": m})
        m = frame.select(pl.col("m").cast(pl.Int8).cum_max().over("r") > 0)["m"].to_numpy() & finite
    elif mode != "checkpoint":
        raise ConfigError(f"emergence must be one of {list(EMERGENCE_MODES)}, got {mode!r}.")
    return np.asarray(m, dtype=bool)


def _threshold_text(b: Benchmark, margin: float) -> str:
    if b.chance is None:
        return "any score (no chance floor)"
    if b.higher_is_better:
        return f"score >= chance {b.chance:g} + margin {margin:g} = {b.chance + margin:g}"
    return f"score <= chance {b.chance:g} - margin {margin:g} = {b.chance - margin:g}"


# -- one fitted law ------------------------------------------------------------------------------
@dataclass
class FittedLaw:
    """A law with its fitted parameters, bootstrap draws and residual scale.

    Attributes:
        law: the law.
        params: ``(p,)`` best parameters.
        boot: ``(B, p)`` bootstrap parameters (NaN rows: failed draws).
        scale: residual sd in the law's residual space.
    """

    law: Law
    params: np.ndarray
    boot: np.ndarray
    scale: float

    @classmethod
    def from_fitter(cls, f: LawFitter) -> FittedLaw:
        return cls(law=f.law, params=np.asarray(f.params_, dtype=np.float64),
                   boot=np.asarray(f.bootstrap_params_, dtype=np.float64), scale=float(f.residual_scale_))

    def state(self) -> dict[str, Any]:
        return {"law": self.law.name, "config": self.law.config(), "scale": self.scale}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], params: np.ndarray, boot: np.ndarray) -> FittedLaw:
        cfg = {k: (None if v is None else v) for k, v in dict(state.get("config", {})).items()}
        for k in ("reference", "params_reference", "tokens_reference", "floor"):
            if k in cfg and cfg[k] is not None:
                cfg[k] = float(cfg[k])
        law = make_law(str(state["law"]), **cfg)
        p = law.n_params
        params = np.asarray(params, dtype=np.float64).reshape(p)
        boot = np.asarray(boot, dtype=np.float64).reshape(-1, p)
        return cls(law=law, params=params, boot=boot, scale=float(state["scale"]))


# -- shared machinery -------------------------------------------------------------------------------
class _ComputeSurrogate(Surrogate):
    """Shared settings checks, emergence, bootstrap plumbing and model-file state."""

    uses_mixture: ClassVar[bool] = False

    # set by subclasses' __init__
    emergence_margin: float
    emergence: str
    min_emerged: int
    min_runs: int
    n_bootstrap: int
    seed: int
    include_noise: bool

    def _check_common(self) -> list[str]:
        problems = []
        try:
            m = float(self.emergence_margin)
            if not math.isfinite(m) or m < 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"emergence_margin must be a finite number >= 0, got {self.emergence_margin!r} (paper: 0.05)")
        if self.emergence not in EMERGENCE_MODES:
            problems.append(f"emergence must be one of {list(EMERGENCE_MODES)}, got {self.emergence!r}")
        for name, lo in (("min_emerged", 1), ("min_runs", 1), ("n_bootstrap", 0)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                problems.append(f"{name} must be an integer >= {lo}, got {v!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        return problems

    def _emergence(self, runs: RunTable, b: Benchmark, scores: np.ndarray) -> np.ndarray:
        return emerged_mask(scores, b, float(self.emergence_margin), run_ids=runs.run_ids(), mode=self.emergence)

    def _predictability(self, b: Benchmark, emerged: np.ndarray, run_ids: np.ndarray, n_evaluated: int) -> str | None:
        """None when benchmark ``b`` can be fitted, else the reason."""
        n_em = int(emerged.sum())
        n_runs = int(np.unique(run_ids[emerged]).shape[0]) if n_em else 0
        if n_em < self.min_emerged or n_runs < self.min_runs:
            return (
                f"not predictable: {n_em} emerged checkpoint(s) from {n_runs} run(s) "
                f"({_threshold_text(b, float(self.emergence_margin))}, out of {n_evaluated} evaluated); "
                f"need >= {self.min_emerged} from >= {self.min_runs} runs. Add larger runs or lower min_emerged/"
                "emergence_margin (settings)."
            )
        return None

    def _resample(self, runs: RunTable) -> GroupResample | None:
        if self.n_bootstrap == 0:
            return None
        return GroupResample.draw(np.asarray(runs.runs, dtype=object), int(self.n_bootstrap), np.random.default_rng(self.seed))

    @staticmethod
    def _group_ids(ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids, dtype=object)

    # -- state ---------------------------------------------------------------------------------
    def _laws_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state: dict[str, Any] = {"laws": {}, "report": self.fit_report_.to_dicts()}
        arrays: dict[str, np.ndarray] = {}
        for i, (name, fl) in enumerate(self.laws_.items()):
            state["laws"][name] = {**fl.state(), "index": i}
            arrays[f"law{i}.params"] = fl.params
            arrays[f"law{i}.boot"] = fl.boot
        return state, arrays

    def _set_laws_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        laws: dict[str, FittedLaw] = {}
        for name, st in dict(state["laws"]).items():
            i = int(st["index"])
            laws[name] = FittedLaw.from_state(st, arrays[f"law{i}.params"], arrays[f"law{i}.boot"])
        self.laws_ = laws
        rows = [{**r, "residual_scale": float(r["residual_scale"])} for r in state.get("report", [])]  # 'nan' in JSON
        self.fit_report_ = pl.DataFrame(rows, schema=_REPORT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_REPORT_SCHEMA)

    # -- prediction helpers ------------------------------------------------------------------------
    def _finish(self, names: list[str], cols: dict[str, tuple[np.ndarray, ...]], n: int, intervals: bool,
                level: float) -> Prediction:
        mean = np.full((n, len(names)), np.nan)
        lower = np.full((n, len(names)), np.nan) if intervals else None
        upper = np.full((n, len(names)), np.nan) if intervals else None
        std = np.full((n, len(names)), np.nan) if intervals else None
        for j, name in enumerate(names):
            if name not in cols:
                continue
            c = cols[name]
            mean[:, j] = c[0]
            if intervals:
                lower[:, j], upper[:, j], std[:, j] = c[1], c[2], c[3]  # type: ignore[index]
        return Prediction(names=tuple(names), mean=mean, lower=lower, upper=upper, std=std, level=level,
                          unpredictable=dict(self.unpredictable_))


_REPORT_SCHEMA = {
    "quantity": pl.String,
    "law": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "n_points": pl.Int64,
    "n_runs": pl.Int64,
    "params": pl.String,
    "residual_scale": pl.Float64,
    "bootstrap_failed": pl.Int64,
}


def _report_row(quantity: str, law: str, status: str, reason: str = "", n_points: int = 0, n_runs: int = 0,
                params: dict[str, float] | None = None, scale: float = math.nan, failed: int = 0) -> dict[str, Any]:
    return {"quantity": quantity, "law": law, "status": status, "reason": reason, "n_points": n_points,
            "n_runs": n_runs, "params": json.dumps(params or {}), "residual_scale": scale, "bootstrap_failed": failed}


def _chunks(n: int, n_draws: int) -> list[slice]:
    size = max(1, _CHUNK_CELLS // max(n_draws, 1))
    return [slice(i, min(i + size, n)) for i in range(0, max(n, 1), size)] if n else [slice(0, 0)]


# -- FLP -----------------------------------------------------------------------------------------------
@register
class FLP(_ComputeSurrogate):
    """FLP: FLOPs -> loss -> score (Chen et al. 2024), with joint by-run bootstrap intervals.

    Args:
        loss_column: loss to model: ``"loss"`` or ``"loss:<domain>"``; None = the overall
            ``loss`` column (error if the table only has per-domain losses).
        stage1: FLOPs -> loss form: ``"power_offset"`` (default), ``"pure_power"`` (paper),
            ``"chinchilla"`` (``L(N, D)``, targets need params and tokens).
        stage2: loss -> score form: ``"linear"`` (paper, default) or ``"sigmoid"``.
        emergence_margin: distance from chance for a checkpoint to count as emerged (0.05).
        emergence: ``"checkpoint"`` (paper) or ``"first_crossing"``.
        min_emerged: fewest emerged checkpoints for a benchmark to be predictable (3).
        min_runs: fewest distinct runs among them (2).
        stage2_points: ``"emerged"``, ``"all"`` (every evaluated checkpoint) or ``"auto"``
            (emerged for linear, all for sigmoid).
        stage1_loss: ``"huber"`` (Epoch's practice, default) or ``"squared"``.
        stage2_loss: ``"squared"`` (paper: least squares, default) or ``"huber"``.
        huber_delta: Huber threshold of stage 1, log-loss units (1e-3).
        stage2_huber_delta: Huber threshold of stage 2, score units (0.01).
        flops_reference: reference compute of the stage-1 law, FLOPs; None = power of ten
            nearest the training FLOPs' geometric mean (conditioning only).
        n_starts: L-BFGS-B starts for nonlinear laws (None: the law's grid, up to 64).
        n_bootstrap: joint bootstrap draws by run (200; 0 = noise-only intervals).
        seed: seed of the draws and start order.
        include_noise: add residual noise to the intervals (predictive intervals); False
            gives parameter-uncertainty intervals.

    Attributes (after fit):
        loss_name_: the loss column modelled (the first output).
        laws_: ``{output name: FittedLaw}`` for every fitted quantity.
        fit_report_: polars frame, one row per output (law, status, reason, points, runs,
            parameters as JSON, residual scale, failed bootstrap draws).
        unpredictable_: ``{"score:<b>": reason}``.
    """

    kind: ClassVar[str] = "flp"

    def __init__(
        self,
        *,
        loss_column: str | None = None,
        stage1: Stage1 = "power_offset",
        stage2: Stage2 = "linear",
        emergence_margin: float = 0.05,
        emergence: str = "checkpoint",
        min_emerged: int = 3,
        min_runs: int = 2,
        stage2_points: str = "auto",
        stage1_loss: str = "huber",
        stage2_loss: str = "squared",
        huber_delta: float = 1e-3,
        stage2_huber_delta: float = 0.01,
        flops_reference: float | None = None,
        n_starts: int | None = None,
        n_bootstrap: int = 200,
        seed: int = 0,
        include_noise: bool = True,
    ) -> None:
        self.loss_column = loss_column
        self.stage1 = stage1
        self.stage2 = stage2
        self.emergence_margin = emergence_margin
        self.emergence = emergence
        self.min_emerged = min_emerged
        self.min_runs = min_runs
        self.stage2_points = stage2_points
        self.stage1_loss = stage1_loss
        self.stage2_loss = stage2_loss
        self.huber_delta = huber_delta
        self.stage2_huber_delta = stage2_huber_delta
        self.flops_reference = flops_reference
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.include_noise = include_noise

    def _check_settings(self) -> None:
        problems = self._check_common()
        if self.stage1 not in STAGE1_FORMS:
            problems.append(f"stage1 must be one of {list(STAGE1_FORMS)}, got {self.stage1!r}")
        if self.stage2 not in STAGE2_FORMS:
            problems.append(f"stage2 must be one of {list(STAGE2_FORMS)}, got {self.stage2!r}")
        if self.stage2_points not in ("auto", "emerged", "all"):
            problems.append(f"stage2_points must be 'auto', 'emerged' or 'all', got {self.stage2_points!r}")
        for name in ("stage1_loss", "stage2_loss"):
            if getattr(self, name) not in ("huber", "squared"):
                problems.append(f"{name} must be 'huber' or 'squared', got {getattr(self, name)!r}")
        if self.flops_reference is not None and not (isinstance(self.flops_reference, (int, float))
                                                     and math.isfinite(self.flops_reference) and self.flops_reference > 0):
            problems.append(f"flops_reference must be None or a positive number of FLOPs, got {self.flops_reference!r}")
        if problems:
            raise ConfigError("Invalid FLP settings: " + "; ".join(problems) + ".")

    # -- fit ---------------------------------------------------------------------------------
    def _resolve_loss(self, runs: RunTable) -> str:
        options = ([LOSS] if runs.has_overall_loss else []) + [LOSS_PREFIX + d for d in runs.loss_domains]
        if self.loss_column is not None:
            if self.loss_column not in options:
                raise SchemaError(
                    f"loss_column={self.loss_column!r} is not a loss column of this table; its loss columns are "
                    f"{options or 'none'}. Pick one of those."
                )
            return self.loss_column
        if runs.has_overall_loss:
            return LOSS
        if options:
            raise SchemaError(
                f"FLP models one loss, and the table has no overall '{LOSS}' column but per-domain losses {options}. "
                f"Pass loss_column= one of them (e.g. FLP(loss_column={options[0]!r})), or use FLP-M (kind 'flpm') "
                "to model every domain."
            )
        raise SchemaError(
            "FLP needs a validation loss (column 'loss' or 'loss:<domain>'), and the table has none. Add losses, "
            "or use the FP baseline (kind 'fp'), which maps FLOPs straight to scores."
        )

    def _stage1_law(self, runs: RunTable) -> Law:
        ref = self.flops_reference if self.flops_reference is not None else reference_for(runs.flops())
        if self.stage1 == "power_offset":
            return PowerLawWithOffset(reference=ref)
        if self.stage1 == "pure_power":
            return PurePowerLaw(reference=ref)
        return ChinchillaLaw(params_reference=reference_for(runs.params()), tokens_reference=reference_for(runs.tokens()))

    def _stage1_x(self, flops: np.ndarray, params: np.ndarray | None, tokens: np.ndarray | None) -> np.ndarray:
        if self.stage1 == "chinchilla":
            if params is None or tokens is None:
                raise SchemaError(
                    "FLP(stage1='chinchilla') predicts loss from parameters and tokens, but the targets give only "
                    "compute. Build them with Targets.from_params_tokens(params, tokens)."
                )
            return np.column_stack([params, tokens])
        return np.asarray(flops, dtype=np.float64)[:, None]

    def _stage2_law(self, b: Benchmark, scores: np.ndarray) -> Law:
        if self.stage2 == "linear":
            return Linear()
        fin = scores[np.isfinite(scores)]
        top = float(np.max(fin)) if fin.size else 1.0
        bottom = float(np.min(fin)) if fin.size else 0.0
        scale_hi = 1.0 if top <= 1.0 else (100.0 if top <= 100.0 else math.inf)
        scale_lo = 0.0 if bottom >= 0.0 else -math.inf
        if b.chance is None:
            return Sigmoid(floor=None, ceiling_bounds=(scale_lo, scale_hi) if scale_lo < scale_hi else (-math.inf, math.inf))
        c = float(b.chance)
        bounds = (c, max(scale_hi, c + 1e-6)) if b.higher_is_better else (min(scale_lo, c - 1e-6), c)
        return Sigmoid(floor=c, ceiling_bounds=bounds)

    def _fit(self, runs: RunTable) -> None:
        t0 = time.perf_counter()
        self._check_settings()
        loss_name = self._resolve_loss(runs)
        final = runs.final()
        law1 = self._stage1_law(runs)
        x1 = self._stage1_x(final.flops(), final.params(), final.tokens())
        y1 = final.column(loss_name)
        resample = self._resample(runs)
        fitter1 = LawFitter(law1, loss=self.stage1_loss, huber_delta=self.huber_delta, n_starts=self.n_starts,
                            n_bootstrap=0, seed=self.seed)
        try:
            fitter1.fit(x1, y1, groups=self._group_ids(final.run_ids()), resample=resample)
        except FitError as e:
            raise FitError(
                f"FLP stage 1 ({self.stage1}: compute -> {loss_name}) failed on the final checkpoints of "
                f"{final.n_runs} run(s): {e}", starts=e.starts
            ) from None
        laws: dict[str, FittedLaw] = {loss_name: FittedLaw.from_fitter(fitter1)}
        report = [_report_row(loss_name, law1.name, "fitted", "", fitter1.n_samples_, fitter1.n_groups_,
                              law1.as_dict(fitter1.params_), fitter1.residual_scale_, fitter1.bootstrap_failed_)]
        unpredictable: dict[str, str] = {}

        loss_all = runs.column(loss_name)
        run_ids = self._group_ids(runs.run_ids())
        scores = runs.scores()
        use_all = self.stage2_points == "all" or (self.stage2_points == "auto" and self.stage2 == "sigmoid")
        for j, b in enumerate(runs.benchmarks):
            name = SCORE_PREFIX + b.name
            s = scores[:, j]
            evaluated = np.isfinite(s)
            emerged = self._emergence(runs, b, s)
            reason = self._predictability(b, emerged, run_ids, int(evaluated.sum()))
            if reason is None:
                rows = evaluated if use_all else emerged
                law2 = self._stage2_law(b, s[rows])
                fitter2 = LawFitter(law2, loss=self.stage2_loss, huber_delta=self.stage2_huber_delta,
                                    n_starts=self.n_starts, n_bootstrap=0, seed=self.seed)
                try:
                    fitter2.fit(loss_all[rows], s[rows], groups=run_ids[rows], resample=resample)
                except FitError as e:
                    reason = f"not predictable: the {law2.name} loss -> score fit failed: {e}"
                else:
                    laws[name] = FittedLaw.from_fitter(fitter2)
                    note = ""
                    if self.stage2 == "linear":
                        slope = float(fitter2.params_[1])
                        if slope != 0 and (slope > 0) == b.higher_is_better:
                            note = (f"note: the score improves as loss grows (slope {slope:.3g} per nat/token); "
                                    "the emerged points carry no usable trend")
                            logger.info("FLP: %s %s", name, note)
                    report.append(_report_row(name, law2.name, "fitted", note, fitter2.n_samples_, fitter2.n_groups_,
                                              law2.as_dict(fitter2.params_), fitter2.residual_scale_,
                                              fitter2.bootstrap_failed_))
            if reason is not None:
                unpredictable[name] = reason
                report.append(_report_row(name, self.stage2, "unpredictable", reason, int(emerged.sum()),
                                          int(np.unique(run_ids[emerged]).shape[0]) if emerged.any() else 0))
                logger.info("FLP: %s %s", name, reason)
        if len(unpredictable) == len(runs.benchmarks) and runs.benchmarks:
            logger.warning("FLP: no benchmark is predictable from these runs; only %s is predicted.", loss_name)

        self.loss_name_ = loss_name
        self.laws_ = laws
        self.fit_report_ = pl.DataFrame(report, schema=_REPORT_SCHEMA, orient="row")
        self.outputs_ = (loss_name, *(SCORE_PREFIX + b.name for b in runs.benchmarks))
        self.domains_ = ()
        self.benchmarks_ = tuple(runs.benchmarks)
        self.unpredictable_ = unpredictable
        self.fit_seconds_ = time.perf_counter() - t0
        logger.debug("FLP fit on %d runs / %d checkpoints in %.3fs", runs.n_runs, len(runs), self.fit_seconds_)

    # -- predict ---------------------------------------------------------------------------------
    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        n = len(targets)
        x1 = self._stage1_x(targets.flops, targets.params, targets.tokens)
        s1 = self.laws_[self.loss_name_]
        names = list(self.outputs_)
        score_laws = [(nm, self.laws_[nm]) for nm in names[1:] if nm in self.laws_]
        fitted = [names[0]] + [nm for nm, _ in score_laws]
        out: dict[str, list[np.ndarray]] = {nm: [np.empty(n) for _ in range(4)] for nm in fitted}
        n_draws = s1.boot.shape[0] if intervals else 0
        noise1 = s1.scale if self.include_noise else 0.0
        for sl in _chunks(n, n_draws):
            xc = x1[sl]
            with np.errstate(all="ignore"):
                loss = s1.law.predict(xc, s1.params)
                loss_b = s1.law.predict(xc, s1.boot) if n_draws else None
            col = out[names[0]]
            col[0][sl] = loss
            if intervals:
                col[1][sl], col[2][sl] = combine_interval(loss, loss_b, noise1, level, log_space=True)
                col[3][sl] = predictive_std(loss, loss_b, noise1, log_space=True)
            for nm, s2 in score_laws:
                with np.errstate(all="ignore"):
                    p = s2.law.predict(loss[:, None], s2.params)
                col = out[nm]
                col[0][sl] = p
                if not intervals:
                    continue
                with np.errstate(all="ignore"):
                    p_b = s2.law.predict(loss_b[..., None], s2.boot) if loss_b is not None else None
                noise = 0.0
                if self.include_noise:
                    h = 1e-4 * np.maximum(np.abs(loss), 1.0)
                    up = s2.law.predict((loss + h)[:, None], s2.params)
                    down = s2.law.predict((loss - h)[:, None], s2.params)
                    slope = (up - down) / (2 * h)  # dP/dL, score per nat/token
                    noise = np.sqrt(s2.scale**2 + (slope * loss * s1.scale) ** 2)
                col[1][sl], col[2][sl] = combine_interval(p, p_b, noise, level, log_space=False)
                col[3][sl] = predictive_std(p, p_b, noise, log_space=False)
        cols = {nm: tuple(v) for nm, v in out.items()}
        return self._finish(names, cols, n, intervals, level)

    # -- state ---------------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = self._laws_state()
        state["loss_name"] = self.loss_name_
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._set_laws_state(state, arrays)
        self.loss_name_ = str(state["loss_name"])


# -- FP ------------------------------------------------------------------------------------------------
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

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return self._laws_state()

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._set_laws_state(state, arrays)


__all__ = ["EMERGENCE_MODES", "FLP", "FP", "STAGE1_FORMS", "STAGE2_FORMS", "FittedLaw", "emerged_mask"]
