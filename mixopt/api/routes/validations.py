"""``/v1/validations``: train a finished job's shortlisted mixtures with a trainer of the server's own config.

Only trainers defined by the server (``MIXOPT_TRAINERS``: name -> a ``[trainer]`` table of
:mod:`mixopt.train`) may run; a request names one, it cannot define one (unknown fields are
refused with 422), so no client input becomes a command or a path. A validation runs like
every job (Ray task or thread, :func:`mixopt.api.tasks.validate_task`): the mixtures are
trained one after another (progress = mixtures trained), cancel stops before the next one,
and the result is the surrogate's prediction with its interval next to the measured value
for every trained run and quantity (JSON or CSV).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from mixopt.api.deps import Context, CtxDep, OwnerDep
from mixopt.api.errors import ConflictError, NotAvailableError, NotFoundError
from mixopt.api.routes.models import check_capacity, error_text
from mixopt.api.schemas import Progress, ValidationCreate, ValidationPublic
from mixopt.api.store import ACTIVE_JOB, new_id
from mixopt.api.tasks import CANCEL_FILE, PROGRESS_FILE, VALIDATION_FILE, JobCancelled
from mixopt.errors import MixoptError

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/validations", tags=["validations"])
KIND = "validate"


def _row(ctx: Context, validation_id: str, owner: str) -> dict[str, Any]:
    row = ctx.store.get("job", validation_id, owner)
    if row["kind"] != KIND:
        raise NotFoundError(f"No validation with id {validation_id!r} for this API key. List yours with GET /v1/validations.")
    return row


def _progress(ctx: Context, row: dict[str, Any]) -> Progress:
    target = int(row["trials"])
    done = 0
    try:
        p = json.loads((ctx.job_dir(row["id"]) / PROGRESS_FILE).read_text())
        done, target = int(p["done"]), int(p["target"]) or target
    except (OSError, ValueError, KeyError):
        pass
    return Progress(done=done, target=target, fraction=min(done / target, 1.0) if target else 1.0)


def _public(ctx: Context, row: dict[str, Any]) -> ValidationPublic:
    c = row["config"]
    return ValidationPublic(id=row["id"], job=c["job"], trainer=c["trainer"], k=int(c["k"]), status=row["status"],
                            progress=_progress(ctx, row), created_at=row["created_at"], finished_at=row["finished_at"],
                            error=row["error"], summary=row["result"])


@router.post("", status_code=202, response_model=ValidationPublic, summary="Validate a job's shortlist with a server-defined trainer")
async def create_validation(body: ValidationCreate, ctx: CtxDep, owner: OwnerDep) -> ValidationPublic:
    """Trains the finished job's shortlist first, then diverse Pareto picks, ``k`` in all; poll GET /v1/validations/{id}."""
    job = await asyncio.to_thread(ctx.store.get, "job", body.job, owner)
    trainers = dict(ctx.settings.trainers)
    if not trainers:
        raise NotAvailableError("This server defines no trainers, so it runs no validation jobs. "
                                "An operator can define them in MIXOPT_TRAINERS (the server's own config).")
    if body.trainer not in trainers:
        raise NotFoundError(f"No trainer {body.trainer!r} on this server; it defines {sorted(trainers)}.")
    if job["kind"] != "optimize" or job["status"] != "done":
        raise ConflictError(f"Job {body.job!r} is a {job['kind']} job, {job['status']}; validations train the Pareto mixtures "
                            "of a finished optimisation job (poll GET /v1/jobs/{id} until done).")
    model_path = ctx.model_dir(job["model_id"]) if job["model_id"] else ctx.job_dir(body.job) / "model"
    await asyncio.to_thread(check_capacity, ctx, owner)
    id_ = new_id("job")
    now = time.time()
    row = await asyncio.to_thread(ctx.store.insert, "job", {
        "id": id_, "owner": owner, "kind": KIND, "status": "running", "model_id": job["model_id"], "dataset_id": job["dataset_id"],
        "trials": body.k, "created_at": now, "started_at": now, "attempts": 1, "config": body.model_dump(mode="json")},
        limit=ctx.settings.max_jobs_per_key)
    spec = {"trainer": dict(trainers[body.trainer]), "trainer_name": body.trainer, "base": str(ctx.settings.data_dir),
            "job_dir": str(ctx.job_dir(body.job)), "model_path": str(model_path), "out_dir": str(ctx.job_dir(id_)),
            "k": body.k, "level": body.level, "prefix": f"val_{id_}"}

    async def done(result: Any, err: BaseException | None) -> None:
        now = time.time()
        if err is None:
            await asyncio.to_thread(ctx.store.update, "job", id_, status="done", result=result, finished_at=now, error=None)
        elif (ctx.job_dir(id_) / CANCEL_FILE).exists() or isinstance(err, JobCancelled):
            await asyncio.to_thread(ctx.store.update, "job", id_, status="cancelled", finished_at=now,
                                    error=f"cancelled by its owner ({ctx.scrub(str(err))}); trained runs are kept")
        else:
            if not isinstance(err, MixoptError):
                logger.error("validation %s failed", id_, exc_info=err)
            await asyncio.to_thread(ctx.store.update, "job", id_, status="failed", error=error_text(ctx, err), finished_at=now)

    await ctx.runner.submit(id_, KIND, spec, done)
    return _public(ctx, row)


@router.get("", response_model=list[ValidationPublic], summary="List your validations")
def list_validations(ctx: CtxDep, owner: OwnerDep) -> list[ValidationPublic]:
    return [_public(ctx, r) for r in ctx.store.list("job", owner) if r["kind"] == KIND]


@router.get("/{validation_id}", response_model=ValidationPublic, summary="Validation status and progress (mixtures trained / k)")
def get_validation(validation_id: str, ctx: CtxDep, owner: OwnerDep) -> ValidationPublic:
    return _public(ctx, _row(ctx, validation_id, owner))


@router.post("/{validation_id}/cancel", status_code=202, response_model=ValidationPublic,
             summary="Cancel a validation (stops before its next mixture; trained runs are kept)")
async def cancel_validation(validation_id: str, ctx: CtxDep, owner: OwnerDep) -> ValidationPublic:
    row = await asyncio.to_thread(_row, ctx, validation_id, owner)
    if row["status"] not in ACTIVE_JOB:
        raise ConflictError(f"Validation {validation_id!r} is {row['status']}, not running; nothing to cancel.")
    out = ctx.job_dir(validation_id)
    out.mkdir(parents=True, exist_ok=True)
    (out / CANCEL_FILE).touch()
    if not ctx.runner.is_running(validation_id):
        await asyncio.to_thread(ctx.store.update, "job", validation_id, status="cancelled", finished_at=time.time(),
                                error="cancelled by its owner")
    return _public(ctx, await asyncio.to_thread(_row, ctx, validation_id, owner))


@router.get("/{validation_id}/results", summary="Predicted (with interval) vs measured, per trained run and quantity")
def validation_results(validation_id: str, ctx: CtxDep, owner: OwnerDep,
                       format: Annotated[Literal["json", "csv"], Query(description="json (rows as objects) or csv")] = "json") -> Response:
    import polars as pl

    row = _row(ctx, validation_id, owner)
    path = ctx.job_dir(validation_id) / VALIDATION_FILE
    if row["status"] != "done" or not path.is_file():
        p = _progress(ctx, row)
        raise ConflictError(f"Validation {validation_id!r} is {row['status']} ({p.done}/{p.target} mixtures trained); "
                            "its results are served once it is done.")
    if format == "csv":
        return Response(path.read_bytes(), media_type="text/csv")
    frame = pl.read_csv(path) if path.stat().st_size else pl.DataFrame()
    buf = io.StringIO()
    frame.write_json(buf)
    return Response(buf.getvalue() if frame.height else "[]", media_type="application/json")
