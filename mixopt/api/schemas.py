"""Request (``...Create``) and response (``...Public``) bodies of the HTTP API.

Numbers are finite (NaN and infinities are refused with 422); unknown fields are refused
(a typo is an error, not silently ignored). Everything deeper (mixture sums, domains,
config keys) is validated by the library, which reports every problem at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Finite = Annotated[float, Field(allow_inf_nan=False)]
Ratio = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=1.0)]
Positive = Annotated[float, Field(allow_inf_nan=False, gt=0.0)]
Id = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(_Out):
    """Every error response."""

    error: str = Field(description="error class, e.g. SchemaError, NotFoundError, AuthError")
    message: str = Field(description="what was expected, what was received, how to fix it")
    problems: list[str] = Field(default_factory=list, description="every problem found (validation errors)")


class Health(_Out):
    status: str
    version: str
    database: str
    executor: str
    auth: bool
    predict: dict[str, int] = Field(default_factory=dict, description="predict requests served and model calls made (merged batches)")


# -- datasets -----------------------------------------------------------------------------------
class DatasetPublic(_Out):
    """A stored run table."""

    id: str
    name: str
    created_at: float = Field(description="seconds since the epoch")
    runs: int = Field(description="number of sampling runs")
    checkpoints: int = Field(description="number of rows (checkpoints)")
    domains: list[str]
    loss_domains: list[str]
    has_overall_loss: bool
    benchmarks: list[dict[str, Any]]
    files: list[str] = Field(description="names of the uploaded files")


class DatasetChangesCreate(_In):
    """Map a dataset's runs into a new domain set (``[domains.changes]``, :mod:`mixopt.data.changes`)."""

    changes: dict[str, Any] = Field(description="added, removed, split, merged, refiltered, renamed, removed_tolerance, "
                                                "on_removed, merge_tolerance (as in [domains.changes], without runs)")
    new: Id | None = Field(None, description="dataset of runs on the new domain set, added to the mapped runs")
    name: str | None = Field(None, max_length=200, description="a name for the new dataset")


class DatasetChangesPublic(DatasetPublic):
    """The stored dataset of the mapped (and added) runs, with the mapping's summary."""

    mapping: dict[str, Any] = Field(description="runs mapped, dropped runs and why, evidence counts, assumptions")


# -- models -------------------------------------------------------------------------------------
class BacktestCreate(_In):
    """Hold out runs, fit on the rest, compare predicted and actual (see ``mixopt backtest``)."""

    holdout_min_params: Positive | None = Field(None, description="hold out every run with at least this many parameters")
    holdout_runs: list[str] | None = Field(None, description="run ids to hold out")
    holdout_mixtures: int | list[dict[str, Ratio]] | None = Field(None, description="a number of random mixtures, or mixtures to hold out")
    seed: int = Field(0, ge=0)
    level: float = Field(0.9, gt=0.0, lt=1.0, allow_inf_nan=False)


class ModelCreate(_In):
    """Fit a surrogate on a dataset."""

    dataset: Id = Field(description="dataset id (POST /v1/datasets)")
    method: str = Field("flp", max_length=40, description="surrogate method: flp, fp, flpm, dml, regmix")
    settings: dict[str, Any] = Field(default_factory=dict, description="keyword settings of the method")
    backtest: BacktestCreate | None = Field(None, description="also backtest the method on a held-out split")


class ModelPublic(_Out):
    id: str
    dataset: str
    method: str
    status: Literal["fitting", "ready", "failed", "cancelled", "interrupted"]
    error: str | None = None
    created_at: float
    finished_at: float | None = None
    summary: dict[str, Any] | None = Field(None, description="outputs, domains, fitted laws, backtest summary and decision metrics (when ready)")


class ScheduleCreate(_In):
    """A mixture that changes during training (docs/phases.md): the phases' mixtures and where each ends."""

    phases: list[dict[str, Ratio]] = Field(min_length=1, max_length=16, description="each phase's mixture {domain: ratio}, in order")
    phase_end: list[Annotated[float, Field(allow_inf_nan=False, gt=0.0, lt=1.0)]] = Field(
        default_factory=list, max_length=15,
        description="fraction of the run's tokens at which each phase but the last ends (strictly increasing)")


class PredictCreate(_In):
    """A batch of mixtures (or schedules) x compute to predict."""

    mixtures: list[dict[str, Ratio]] | list[list[Ratio]] | None = Field(
        None, description="one mixture per row: {domain: ratio} (missing = 0) or ratios in the model's domain order")
    schedules: list[ScheduleCreate] | None = Field(
        None, description="instead of mixtures: one schedule per row (phases and their ends; docs/phases.md)")
    flops: Positive | list[Positive] | None = Field(None, description="training compute, FLOPs: one number or one per mixture")
    params: Positive | list[Positive] | None = Field(None, description="parameter counts (with tokens, instead of flops)")
    tokens: Positive | list[Positive] | None = Field(None, description="training tokens (with params)")
    level: float = Field(0.9, gt=0.0, lt=1.0, allow_inf_nan=False, description="central interval coverage")
    intervals: bool = Field(True, description="also compute intervals (slower for some methods)")


class PredictionPublic(_Out):
    model: str
    rows: int
    level: float
    domains: list[str]
    flops: list[float]
    predictions: dict[str, dict[str, list[float | None]]] = Field(
        description="{quantity: {mean, lower, upper}}, one value per row; null = not predictable")
    unpredictable: dict[str, str]


# -- jobs ---------------------------------------------------------------------------------------
class JobCreate(_In):
    """Submit a mixture search (the TOML config of ``mixopt optimize``, as an object or as TOML text)."""

    config: dict[str, Any] | str = Field(description="search config: [compute], [domains], [objectives], [search], [surrogate] method/settings")
    model: Id | None = Field(None, description="fitted model id to search with (or surrogate.model in the config)")
    dataset: Id | None = Field(None, description="dataset id to fit config.surrogate.method on (or data.dataset in the config)")


class PlanCreate(_In):
    """Plan the next sampling runs for a decision with a fitted model (``mixopt plan``)."""

    config: dict[str, Any] | str = Field(description="the decision: search config ([compute], [domains], [objectives], "
                                                     "optional [plan]) as an object or TOML text")
    model: Id = Field(description="a ready model id (its dataset gives the candidate sizes and tokens by default)")
    plan: dict[str, Any] | None = Field(None, description="[plan] keys overriding the config's: runs, flops, criterion, "
                                                          "sizes, tokens_per_param, n_candidates, n_targets, n_draws, noise, seed, duplicate_l1, coverage, fill")


class PlannedRun(_Out):
    run_id: str
    params: float
    tokens: float
    flops: float = Field(description="6 * params * tokens")
    gain: float = Field(description="the criterion at the pick (before dividing by FLOPs)")
    mixture: dict[str, float]


class PlanPublic(_Out):
    model: str
    criterion: str
    draws: str = Field(description="'posterior' (the model's posterior over new points), 'joint' (its own joint draws) or "
                                   "'comonotone' (not to be trusted for planning)")
    runs: list[PlannedRun]
    summary: dict[str, Any] = Field(description="current pick, its P(best), expected regret, P(best) entropy, counts")
    settings: dict[str, Any]


class JobResume(_In):
    trials: int | None = Field(None, ge=1, description="new target number of finished trials (default: the job's)")


class Progress(_Out):
    done: int = Field(description="finished trials in the study")
    target: int
    fraction: float


class JobPublic(_Out):
    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    model: str | None = None
    dataset: str | None = None
    progress: Progress
    attempts: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    resumable: bool = Field(description="POST /v1/jobs/{id}/resume continues its study")
    summary: dict[str, Any] | None = Field(None, description=(
        "search summary when done: counts, hypervolume, best (= shortlist rank 1), infeasible (true when no mixture met "
        "every constraint), reason and binding (the constraints that bind and how close the search came), and decision: "
        "each pick's p_best / p_within_epsilon / p_feasible, the robust region and the extrapolation beyond the sampling "
        "runs (see mixopt.search.decision)"))


class ValidationCreate(_In):
    trainer: str = Field(max_length=80, description="a trainer defined in the server's own config (MIXOPT_TRAINERS); "
                         "a request cannot define one: unknown fields are refused")
    job: Id = Field(description="finished optimisation job whose shortlist (then diverse Pareto picks) is trained")
    k: int = Field(3, ge=1, le=100, description="mixtures to train")
    level: float = Field(0.9, gt=0, lt=1, description="level of the predicted intervals")


class ValidationPublic(_Out):
    id: str
    job: str = Field(description="the optimisation job validated")
    trainer: str
    k: int
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    progress: Progress = Field(description="mixtures trained / to train")
    created_at: float
    finished_at: float | None = None
    error: str | None = None
    summary: dict[str, Any] | None = Field(None, description="when done: trained and failed runs, the mixtures, "
                                           "median/max relative error and interval coverage per kind of quantity")


__all__ = [
    "BacktestCreate",
    "DatasetPublic",
    "Error",
    "Health",
    "JobCreate",
    "JobPublic",
    "JobResume",
    "ModelCreate",
    "ModelPublic",
    "PredictCreate",
    "PredictionPublic",
    "Progress",
    "ValidationCreate",
    "ValidationPublic",
]
