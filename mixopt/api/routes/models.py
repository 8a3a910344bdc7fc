"""``/v1/models``: fit a surrogate on a dataset (a job), show it, its backtest, and predict with it."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from mixopt._json import jsonable
from mixopt.api.deps import Context, CtxDep, OwnerDep
from mixopt.api.errors import ConflictError, NotFoundError, TooManyJobsError
from mixopt.api.predict import build_targets, predict_many, prediction_columns
from mixopt.api.schemas import ModelCreate, ModelPublic, PredictCreate, PredictionPublic
from mixopt.api.store import new_id
from mixopt.errors import MixoptError, SchemaError

router = APIRouter(prefix="/models", tags=["models"])

try:  # orjson writes numpy arrays directly and NaN as null (10x faster for predict batches)
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional
    _orjson = None


#: 19 or more digits in a row: an integer orjson would turn into a float (``json.loads`` keeps it an int)
_LONG_DIGITS = re.compile(rb"\d{19}")


def loads(body: bytes) -> Any:
    """``json.loads(body)``, parsed by orjson (~7x faster for a 100-mixture batch) wherever that gives the same objects.

    orjson refuses what ``json.loads`` accepts beyond strict JSON (``NaN``, ``Infinity``, lone surrogates,
    a byte-order mark, UTF-16) and parses integers past 64 bits as floats: such a body goes to ``json.loads``,
    so the schema's answers (422 for non-finite numbers, the received value in a message) and the 400 for
    malformed JSON (the ``JSONDecodeError``) are the same as with ``json.loads`` alone (tested).
    """
    if _orjson is not None and not _LONG_DIGITS.search(body):
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(body)


class _FastJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class FastJSONRoute(APIRoute):
    """An APIRoute whose JSON body is parsed by :func:`loads` (FastAPI's custom request class pattern)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(_FastJSONRequest(request.scope, request.receive))

        return route_handler


#: the predict route alone, included before every other /v1 router: routes are matched in order (~35 route
#: checks per request when it came last), and its JSON body is parsed by orjson (:class:`FastJSONRoute`)
predict_router = APIRouter(prefix="/models", tags=["models"], route_class=FastJSONRoute)


def _fallback(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def _dumps(obj: Any) -> bytes:
    if _orjson is not None:
        return _orjson.dumps(obj, option=_orjson.OPT_SERIALIZE_NUMPY, default=_fallback)
    return json.dumps(jsonable(obj)).encode()


def _public(row: dict[str, Any]) -> ModelPublic:
    return ModelPublic(
        id=row["id"], dataset=row["dataset_id"], method=row["method"], status=row["status"], error=row["error"], created_at=row["created_at"], finished_at=row["finished_at"], summary=row["info"]
    )


def error_text(ctx: Context, err: BaseException) -> str:
    """What a failed job reports: mixopt's message, or a pointer to the log for a bug."""
    if isinstance(err, MixoptError):
        return ctx.scrub(str(err))
    return f"internal error ({type(err).__name__}); the server log has the details"


def check_capacity(ctx: Context, owner: str) -> None:
    """Early refusal (before any validation work). The binding check is atomic with the insert (``Store.insert(limit=...)``)."""
    n = ctx.store.count_active(owner)
    if n >= ctx.settings.max_jobs_per_key:
        raise TooManyJobsError(f"This API key already has {n} unfinished jobs/fits (limit {ctx.settings.max_jobs_per_key}); wait for one to finish or cancel one (POST /v1/jobs/{{id}}/cancel).")


def check_fit_limits(settings: Any, limits: dict[str, float], where: str = "settings") -> list[str]:
    """Every setting of a fit (nested objects too) beyond this server's ``limits``, one line each."""
    problems: list[str] = []
    if not isinstance(settings, dict):
        return problems
    for k, v in settings.items():
        if isinstance(v, dict):
            problems += check_fit_limits(v, limits, f"{where}.{k}")
            continue
        lim = limits.get(k)
        if lim is None:
            continue
        if v is None:
            problems.append(f"{where}.{k} = null (no limit) is not allowed on this server; give a value <= {lim:g}")
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and not v <= lim:
            problems.append(f"{where}.{k} = {v:g} exceeds this server's limit of {lim:g}")
    return problems


@router.post("", status_code=202, response_model=ModelPublic, summary="Fit a surrogate on a dataset")
async def create_model(body: ModelCreate, ctx: CtxDep, owner: OwnerDep) -> ModelPublic:
    """Starts the fit as a job and returns at once (status ``fitting``); poll GET /v1/models/{id}.

    Size and budget settings (``n_members``, ``maxiter``, ``n_bootstrap``, ...) are bounded by
    the server's ``fit_limits`` (422 beyond), so every fit ends; POST /v1/models/{id}/cancel stops one.
    """
    from mixopt.surrogate import make_surrogate

    over = check_fit_limits(body.settings, dict(ctx.settings.fit_limits))
    if over:
        raise SchemaError("The fit settings exceed this server's limits (MIXOPT_FIT_LIMITS); lower them:", over)
    await asyncio.to_thread(ctx.store.get, "dataset", body.dataset, owner)
    try:  # unknown method or settings: 422 now, not a failed fit later
        make_surrogate(body.method, **body.settings)
    except MixoptError:
        raise
    except (TypeError, ValueError) as e:
        raise SchemaError(f"Invalid settings for surrogate {body.method!r}: {e}") from None
    await asyncio.to_thread(check_capacity, ctx, owner)
    id_ = new_id("model")
    row = await asyncio.to_thread(
        ctx.store.insert,
        "model",
        {"id": id_, "owner": owner, "dataset_id": body.dataset, "method": body.method, "status": "fitting", "created_at": time.time(), "request": body.model_dump(mode="json"), "info": None},
        limit=ctx.settings.max_jobs_per_key,
    )
    spec = {
        "dataset_dir": str(ctx.dataset_dir(body.dataset)),
        "method": body.method,
        "settings": body.settings,
        "out_dir": str(ctx.model_dir(id_)),
        "backtest": body.backtest.model_dump(exclude_none=True) if body.backtest else None,
    }

    async def done(result: Any, err: BaseException | None) -> None:
        try:
            row = await asyncio.to_thread(ctx.store.get, "model", id_, owner)
        except NotFoundError:  # deleted while fitting
            row = {"status": "cancelled"}
        if row["status"] == "cancelled":  # its owner cancelled it: the late result is dropped
            await asyncio.to_thread(shutil.rmtree, ctx.model_dir(id_), True)
            return
        if err is None:
            await asyncio.to_thread(ctx.store.update, "model", id_, status="ready", info=result, finished_at=time.time())
        else:
            if not isinstance(err, MixoptError):
                import logging

                logging.getLogger(__name__).error("fitting model %s failed", id_, exc_info=err)
            await asyncio.to_thread(ctx.store.update, "model", id_, status="failed", error=error_text(ctx, err), finished_at=time.time())

    await ctx.runner.submit(id_, "fit", spec, done)
    return _public(row)


@router.get("", response_model=list[ModelPublic], summary="List your models")
def list_models(ctx: CtxDep, owner: OwnerDep) -> list[ModelPublic]:
    return [_public(r) for r in ctx.store.list("model", owner)]


@router.get("/{model_id}", response_model=ModelPublic, summary="Show a model: status, outputs, fitted laws")
def get_model(model_id: str, ctx: CtxDep, owner: OwnerDep) -> ModelPublic:
    return _public(ctx.store.get("model", model_id, owner))


@router.get("/{model_id}/backtest", summary="The model's backtest (predicted vs actual on held-out runs)")
def get_backtest(model_id: str, ctx: CtxDep, owner: OwnerDep) -> dict[str, Any]:
    row = ctx.store.get("model", model_id, owner)
    path = ctx.model_dir(model_id) / "backtest.json"
    if row["status"] != "ready" or not path.is_file():
        raise NotFoundError(f'Model {model_id!r} has no backtest (status {row["status"]}); create the model with "backtest": {{...}}.')
    return json.loads(path.read_text())


def _cancel_fit(ctx: Context, model_id: str) -> None:
    """Record a fit as cancelled now (its job slot is free at once) and stop its task.

    On Ray the task's worker is stopped; a fit in a server thread cannot be interrupted, runs
    to the end of its bounded settings (``fit_limits``) and its result is then dropped.
    """
    ctx.store.update("model", model_id, status="cancelled", error="cancelled by its owner", finished_at=time.time())
    ctx.runner.force_cancel(model_id, force=True)


@router.post("/{model_id}/cancel", status_code=202, response_model=ModelPublic, summary="Cancel a fit")
async def cancel_model(model_id: str, ctx: CtxDep, owner: OwnerDep) -> ModelPublic:
    """Stops a fitting model: it becomes ``cancelled`` and stops counting against the key's job limit."""
    row = await asyncio.to_thread(ctx.store.get, "model", model_id, owner)
    if row["status"] != "fitting":
        raise ConflictError(f"Model {model_id!r} is {row['status']}, not fitting; nothing to cancel.")
    await asyncio.to_thread(_cancel_fit, ctx, model_id)
    return _public(await asyncio.to_thread(ctx.store.get, "model", model_id, owner))


@router.delete("/{model_id}", status_code=204, summary="Delete a model (a fit still running is cancelled first)")
def delete_model(model_id: str, ctx: CtxDep, owner: OwnerDep) -> None:
    row = ctx.store.get("model", model_id, owner)
    users = ctx.store.referencing("model", model_id, owner)
    if users:
        raise ConflictError(f"Model {model_id!r} is used by unfinished jobs {users}; cancel them or wait, then delete it.")
    if row["status"] == "fitting":
        _cancel_fit(ctx, model_id)
    ctx.store.delete("model", model_id, owner)
    ctx.ready.pop(model_id, None)
    ctx.models.drop(model_id)
    shutil.rmtree(ctx.model_dir(model_id), ignore_errors=True)


def ready_model(ctx: Context, model_id: str, owner: str) -> Any:
    """The loaded surrogate of a ready model of ``owner`` (cached)."""
    hit = ctx.ready.get(model_id)
    if hit is None or hit[0] != owner:
        row = ctx.store.get("model", model_id, owner)
        if row["status"] != "ready":
            why = f": {row['error']}" if row["error"] else ""
            raise ConflictError(f"Model {model_id!r} is {row['status']}{why}; predictions need a ready model (poll GET /v1/models/{model_id}).")
        ctx.ready[model_id] = hit = (owner, ctx.model_dir(model_id), ())
    return ctx.models.get(model_id, hit[1])


# The route writes its JSON itself (orjson, numpy arrays as they are): ``responses`` documents the body's
# schema in OpenAPI; a ``response_model`` would claim a validation that a raw Response never gets.
@predict_router.post("/{model_id}/predict", responses={200: {"model": PredictionPublic}}, summary="Predict every quantity for a batch of mixtures x compute")
async def predict(model_id: str, body: PredictCreate, ctx: CtxDep, owner: OwnerDep) -> Response:
    """Synchronous. The model is predicted in a worker thread, off the event loop; requests that arrive
    while it is busy are merged into its next call (see :class:`~mixopt.api.predict.PredictBatcher`)."""
    hit = ctx.ready.get(model_id)
    model = ctx.models.peek(model_id) if hit is not None and hit[0] == owner else None
    if model is None:  # first use (or evicted): database lookup and loading, in a thread
        model = await asyncio.get_running_loop().run_in_executor(ctx.predict_pool, ready_model, ctx, model_id, owner)
    targets = build_targets(
        model,
        mixtures=body.mixtures,
        flops=body.flops,
        params=body.params,
        tokens=body.tokens,
        max_batch=ctx.settings.max_batch,
        schedules=None if body.schedules is None else [s.model_dump() for s in body.schedules],
    )
    if ctx.settings.predict_merge:
        pred = await ctx.batcher.predict(model_id, model, targets, level=body.level, intervals=body.intervals)
    else:  # one model call per request (MIXOPT_PREDICT_MERGE=0; the benchmark's baseline)
        ctx.batcher.requests += 1
        ctx.batcher.calls += 1
        pred = (await asyncio.get_running_loop().run_in_executor(ctx.predict_pool, predict_many, model, [targets], body.level, body.intervals))[0]
    content = _dumps(
        {
            "model": model_id,
            "rows": len(targets),
            "level": body.level,
            "domains": list(model.domains_),
            "flops": targets.flops,
            "predictions": prediction_columns(pred),
            "unpredictable": dict(model.unpredictable_),
        }
    )
    return Response(content=content, media_type="application/json")
