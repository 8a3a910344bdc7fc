"""``/v1/jobs``: optimisation jobs (a search config -> a job on Ray), progress, results, cancel, resume."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from mixopt.api.deps import Context, CtxDep, OwnerDep
from mixopt.api.errors import ConflictError, LimitError, NotFoundError
from mixopt.api.routes.models import _dumps, check_capacity, error_text, ready_model
from mixopt.api.schemas import JobCreate, JobPublic, JobResume, Progress
from mixopt.api.store import ACTIVE_JOB, new_id
from mixopt.api.tasks import CANCEL_FILE, PARETO_FILE, JobCancelled, job_config
from mixopt.errors import ConfigError, MixoptError

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/jobs", tags=["jobs"])

_ID = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
#: Seconds a cancelled job gets to stop at its next batch before its task is interrupted.
CANCEL_GRACE_S = 10.0
RESUMABLE = ("interrupted", "cancelled", "failed", "done")


def _search_row(ctx: Context, job_id: str, owner: str) -> dict[str, Any]:
    """An optimisation job of ``owner`` (validations share the table but live under /v1/validations)."""
    row = ctx.store.get("job", job_id, owner)
    if row["kind"] != "optimize":
        raise NotFoundError(f"No job with id {job_id!r} for this API key ({job_id!r} is a validation: GET /v1/validations/{job_id}).")
    return row


def _progress(ctx: Context, row: dict[str, Any]) -> Progress:
    if row["status"] == "done" and row["result"]:
        done = int(row["result"].get("n_trials", 0))
    else:
        done = ctx.progress.count(ctx.study_url(row["id"]), row["id"])
    target = int(row["trials"])
    return Progress(done=done, target=target, fraction=min(done / target, 1.0) if target else 1.0)


def _public(ctx: Context, row: dict[str, Any]) -> JobPublic:
    return JobPublic(
        id=row["id"], kind=row["kind"], status=row["status"], model=row["model_id"], dataset=row["dataset_id"],
        progress=_progress(ctx, row), attempts=row["attempts"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], error=row["error"], resumable=row["status"] in RESUMABLE, summary=row["result"],
    )


def _parse_config(config: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(config, str):
        try:
            return tomllib.loads(config)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config is not valid TOML: {e}. Send the file's text, or the parsed object.") from None
    return dict(config)


def _take_ref(raw: dict[str, Any], section: str, key: str, what: str, problems: list[str]) -> str | None:
    sec = raw.get(section)
    if not isinstance(sec, Mapping) or key not in sec:
        return None
    v = sec[key]
    if not isinstance(v, str) or not _ID.match(v):
        problems.append(f"{section}.{key} = {v!r}: expected a {what} id like {'m_' if what == 'model' else 'ds_'}0123abcd (paths are not accepted)")
        return None
    raw[section] = {k: x for k, x in sec.items() if k != key}
    return v


def _start(ctx: Context, row: dict[str, Any]) -> dict[str, Any]:
    job_dir = ctx.job_dir(row["id"])
    return {
        "config": row["config"],
        "model_path": str(ctx.model_dir(row["model_id"])) if row["model_id"] else None,
        "dataset_path": str(ctx.dataset_dir(row["dataset_id"]) / "runs.parquet") if row["dataset_id"] else None,
        "job_dir": str(job_dir), "storage": ctx.study_url(row["id"]), "study_name": row["id"], "trials": row["trials"],
    }


async def _submit(ctx: Context, job_id: str, spec: dict[str, Any]) -> None:
    async def done(result: Any, err: BaseException | None) -> None:
        now = time.time()
        flag = ctx.job_dir(job_id) / CANCEL_FILE
        if err is None:
            await asyncio.to_thread(ctx.store.update, "job", job_id, status="done", result=result, finished_at=now, error=None)
        elif flag.exists() or isinstance(err, JobCancelled):
            n = await asyncio.to_thread(ctx.progress.count, ctx.study_url(job_id), job_id)
            await asyncio.to_thread(ctx.store.update, "job", job_id, status="cancelled", finished_at=now,
                                    error=f"cancelled by its owner after {n} finished trials (kept; POST /v1/jobs/{job_id}/resume continues)")
        else:
            if not isinstance(err, MixoptError):
                logger.error("job %s failed", job_id, exc_info=err)
            await asyncio.to_thread(ctx.store.update, "job", job_id, status="failed", error=error_text(ctx, err), finished_at=now)

    await ctx.runner.submit(job_id, "optimize", spec, done, before=ctx.progress.open)


@router.post("", status_code=202, response_model=JobPublic, summary="Submit a mixture search")
async def create_job(body: JobCreate, ctx: CtxDep, owner: OwnerDep) -> JobPublic:
    """The config is validated (every problem listed in one 422) before the job starts."""
    raw = _parse_config(body.config)
    problems: list[str] = []
    model_id = body.model or _take_ref(raw, "surrogate", "model", "model", problems)
    dataset_id = body.dataset or _take_ref(raw, "data", "dataset", "dataset", problems)
    if problems:
        raise ConfigError("Invalid search config:\n" + "\n".join(f"  - {p}" for p in problems))
    if (model_id is None) == (dataset_id is None):
        raise ConfigError("Give exactly one of \"model\" (a fitted model id) or \"dataset\" (a dataset id, fitted with "
                          "config surrogate.method), in the request or as surrogate.model / data.dataset in the config.")
    model = None
    if model_id is not None:
        model = await asyncio.to_thread(ready_model, ctx, model_id, owner)
    else:
        await asyncio.to_thread(ctx.store.get, "dataset", dataset_id, owner)  # type: ignore[arg-type]
    id_ = new_id("job")
    spec_row = {"id": id_, "config": raw, "model_id": model_id, "dataset_id": dataset_id, "trials": 0}

    def validate() -> int:
        cfg = job_config(raw, model_path=_start(ctx, spec_row)["model_path"], dataset_path=_start(ctx, spec_row)["dataset_path"],
                         storage="memory", study_name=id_)
        if cfg.search.trials > ctx.settings.max_trials:
            raise LimitError(f"search.trials = {cfg.search.trials} exceeds this server's limit of {ctx.settings.max_trials} trials per job.")
        if model is not None:  # space, objectives and constraints against the model: 422 now, not a failed job later
            from mixopt.workflows.optimize import build_problem

            build_problem(cfg, model)
        return cfg.search.trials

    trials = await asyncio.to_thread(validate)
    await asyncio.to_thread(check_capacity, ctx, owner)
    now = time.time()
    row = await asyncio.to_thread(ctx.store.insert, "job", {
        "id": id_, "owner": owner, "kind": "optimize", "status": "running", "model_id": model_id, "dataset_id": dataset_id,
        "trials": trials, "created_at": now, "started_at": now, "attempts": 1, "config": raw}, limit=ctx.settings.max_jobs_per_key)
    await _submit(ctx, id_, _start(ctx, row))
    return _public(ctx, row)


@router.get("", response_model=list[JobPublic], summary="List your jobs")
def list_jobs(ctx: CtxDep, owner: OwnerDep) -> list[JobPublic]:
    return [_public(ctx, r) for r in ctx.store.list("job", owner) if r["kind"] == "optimize"]


@router.get("/{job_id}", response_model=JobPublic, summary="Job status and progress (trials done / target)")
def get_job(job_id: str, ctx: CtxDep, owner: OwnerDep) -> JobPublic:
    return _public(ctx, _search_row(ctx, job_id, owner))


@router.post("/{job_id}/cancel", status_code=202, response_model=JobPublic, summary="Cancel a job (its finished trials are kept)")
async def cancel_job(job_id: str, ctx: CtxDep, owner: OwnerDep) -> JobPublic:
    row = await asyncio.to_thread(_search_row, ctx, job_id, owner)
    if row["status"] not in ACTIVE_JOB:
        raise ConflictError(f"Job {job_id!r} is {row['status']}, not running; nothing to cancel.")
    job_dir = ctx.job_dir(job_id)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / CANCEL_FILE).touch()
    if not ctx.runner.is_running(job_id):  # not running in this process (should not happen): record it now
        await asyncio.to_thread(ctx.store.update, "job", job_id, status="cancelled", finished_at=time.time(), error="cancelled by its owner")
    else:
        asyncio.get_running_loop().call_later(CANCEL_GRACE_S, ctx.runner.force_cancel, job_id)
    return _public(ctx, await asyncio.to_thread(_search_row, ctx, job_id, owner))


@router.post("/{job_id}/resume", status_code=202, response_model=JobPublic, summary="Resume a job from its study")
async def resume_job(job_id: str, ctx: CtxDep, owner: OwnerDep, body: JobResume | None = None) -> JobPublic:
    """Continues an interrupted, cancelled or failed job (or a done one with a higher ``trials``); finished trials are kept.

    ``trials`` is the new total target: higher than the job's to continue a done job, or lower to end
    a long job sooner; it must exceed the trials already finished (else 422: nothing to do).
    """
    row = await asyncio.to_thread(_search_row, ctx, job_id, owner)
    if row["status"] not in RESUMABLE or ctx.runner.is_running(job_id):
        raise ConflictError(f"Job {job_id!r} is {row['status']}; only {list(RESUMABLE)} jobs can be resumed.")
    trials = int(body.trials) if body is not None and body.trials is not None else int(row["trials"])
    finished = await asyncio.to_thread(ctx.progress.count, ctx.study_url(job_id), job_id)
    if trials <= finished:
        raise ConfigError(f"trials = {trials} is not above the {finished} trials this job has already finished, so the "
                          f"resumed job would have nothing to do; give trials > {finished} (the new total target; "
                          f"the job's target was {row['trials']}).")
    if trials > ctx.settings.max_trials:
        raise LimitError(f"trials = {trials} exceeds this server's limit of {ctx.settings.max_trials} trials per job.")
    if row["model_id"]:
        await asyncio.to_thread(ready_model, ctx, row["model_id"], owner)
    await asyncio.to_thread(check_capacity, ctx, owner)
    job_dir = ctx.job_dir(job_id)
    for f in (CANCEL_FILE, PARETO_FILE, "pareto.trials.parquet", "pareto.shortlist.parquet", "pareto.summary.json"):
        (job_dir / f).unlink(missing_ok=True)
    now = time.time()
    await asyncio.to_thread(ctx.store.update, "job", job_id, status="running", trials=trials, started_at=now, finished_at=None,
                            error=None, result=None, attempts=int(row["attempts"]) + 1, limit=(owner, ctx.settings.max_jobs_per_key))
    row = await asyncio.to_thread(_search_row, ctx, job_id, owner)
    await _submit(ctx, job_id, _start(ctx, row))
    return _public(ctx, row)


Fmt = Annotated[Literal["json", "csv", "parquet"], Query(description="json (rows as objects), csv or parquet")]


def _table(ctx: Context, job_id: str, owner: str, file: str, fmt: str) -> Response:
    import polars as pl

    row = _search_row(ctx, job_id, owner)
    path = ctx.job_dir(job_id) / file
    if row["status"] != "done" or not path.is_file():
        p = _progress(ctx, row)
        raise ConflictError(f"Job {job_id!r} is {row['status']} ({p.done}/{p.target} trials); its results are served once it is done.")
    if fmt == "parquet":
        return Response(path.read_bytes(), media_type="application/vnd.apache.parquet",
                        headers={"Content-Disposition": f'attachment; filename="{job_id}-{file}"'})
    frame = pl.read_parquet(path)
    if fmt == "csv":
        buf = io.BytesIO()
        frame.write_csv(buf)
        return Response(buf.getvalue(), media_type="text/csv")

    return Response(_dumps({"job": job_id, "columns": frame.columns, "rows": frame.to_dicts()}), media_type="application/json")


@router.get("/{job_id}/pareto", summary="The Pareto table of a finished job")
def get_pareto(job_id: str, ctx: CtxDep, owner: OwnerDep, format: Fmt = "json") -> Response:  # noqa: A002
    """One row per Pareto-optimal mixture: ``mix:<d>``, compute, objectives, every predicted quantity with its interval."""
    return _table(ctx, job_id, owner, PARETO_FILE, format)


@router.get("/{job_id}/shortlist", summary="The shortlist of a finished job: diverse knee-region mixtures of the front")
def get_shortlist(job_id: str, ctx: CtxDep, owner: OwnerDep, format: Fmt = "json") -> Response:  # noqa: A002
    """The Pareto columns plus ``rank`` (1 = best knee) and ``knee_distance``; size from ``[objectives] shortlist``."""
    return _table(ctx, job_id, owner, "pareto.shortlist.parquet", format)


@router.get("/{job_id}/trials", summary="Every finished trial of a finished job")
def get_trials(job_id: str, ctx: CtxDep, owner: OwnerDep, format: Fmt = "json") -> Response:  # noqa: A002
    return _table(ctx, job_id, owner, "pareto.trials.parquet", format)
