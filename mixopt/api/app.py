"""The FastAPI application: :func:`create_app` builds it from a :class:`Settings`.

Cross-cutting pieces live here: the body-size limit (a pure ASGI middleware that refuses
an oversized body from its ``Content-Length`` before reading it, and cuts off a streamed
body as soon as it passes the limit), the one exception handler that maps mixopt's error
tree to HTTP statuses, the lifespan (open the store, mark jobs left running by a previous
process ``interrupted``, close the job runner) and authentication on every ``/v1`` route.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

import mixopt
from mixopt.api.deps import Context, get_owner
from mixopt.api.errors import problems_of, status_for
from mixopt.api.schemas import Error, Health
from mixopt.api.settings import Settings
from mixopt.errors import MixoptError

logger = logging.getLogger(__name__)

#: Where the offline /docs and /redoc pages load their scripts and styles from (this server).
DOCS_ASSETS = "/docs-assets"


# -- body size --------------------------------------------------------------------------------
class _TooLarge(Exception):
    pass


def _error_body(error: str, message: str, problems: list[str] | None = None) -> bytes:
    return json.dumps({"error": error, "message": message, "problems": problems or []}).encode()


class BodyLimit:
    """Refuse request bodies over the limit with 413, without reading them into memory.

    Uploads (``POST /v1/datasets``) get ``max_upload_bytes``; every other request
    ``max_request_bytes``.
    """

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _limit(self, scope: dict[str, Any]) -> int:
        if scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == "/v1/datasets":
            return self.settings.max_upload_bytes
        return self.settings.max_request_bytes

    async def _refuse(self, send: Any, limit: int, got: str) -> None:
        body = _error_body("LimitError", f"The request body ({got}) exceeds this server's limit of {limit} bytes; send a smaller file or batch.")
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(scope)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n > limit:
                    return await self._refuse(send, limit, f"{n} bytes")
        seen = 0
        over = False
        started = False

        async def counted_receive() -> Any:
            nonlocal seen, over
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge()
            return msg

        async def guarded_send(msg: Any) -> None:
            nonlocal started
            if over and not started:
                return  # the app's reaction to the cut-off body is replaced by the 413
            started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(send, limit, f"more than {limit} bytes")


# -- errors -----------------------------------------------------------------------------------
def _install_handlers(app: FastAPI) -> None:
    def ctx_of(request: Request) -> Context | None:
        return getattr(request.app.state, "ctx", None)

    async def on_mixopt(request: Request, exc: Exception) -> JSONResponse:
        ctx = ctx_of(request)
        scrub = ctx.scrub if ctx else (lambda s: s)
        status = status_for(exc)
        text = scrub(str(exc))
        problems = [scrub(p) for p in problems_of(exc)]
        message = text.split("\n  - ")[0].strip() if problems else text
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            logger.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return JSONResponse(Error(error=type(exc).__name__, message=message, problems=problems).model_dump(), status_code=status, headers=headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            e = next(e for e in errs if e.get("type") == "json_invalid")
            ctx_err = (e.get("ctx") or {}).get("error", "")
            return JSONResponse(
                Error(error="MalformedJSON", message=f"The request body is not valid JSON ({ctx_err}); send a JSON object with Content-Type: application/json.").model_dump(), status_code=400
            )
        problems: list[str] = []
        for e in errs:
            # drop pydantic's union-branch tags ("constrained-float", "list[...]") from the location
            parts = [str(x) for x in e.get("loc", ()) if x != "body" and (isinstance(x, int) or str(x).isidentifier())]
            loc = ".".join(parts) or "body"
            got = e.get("input")
            shown = repr(got)[:80] if not isinstance(got, (dict, list)) else type(got).__name__
            line = f"{loc}: {e.get('msg', 'invalid')} (got {shown})"
            if line not in problems:
                problems.append(line)
        return JSONResponse(Error(error="ValidationError", message=f"The request is invalid: {len(problems)} problem(s).", problems=problems).model_dump(), status_code=422)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        msg = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            msg = f"No route {request.method} {request.url.path}; see /docs for the routes."
        elif exc.status_code == 405:
            msg = f"Method {request.method} is not allowed on {request.url.path}; see /docs."
        return JSONResponse(Error(error="HTTPError", message=msg).model_dump(), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def on_other(request: Request, exc: Exception) -> JSONResponse:
        logger.error("Unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(Error(error="InternalError", message="Unexpected server error; the server log has the details.").model_dump(), status_code=500)

    app.add_exception_handler(MixoptError, on_mixopt)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_other)


# -- app --------------------------------------------------------------------------------------
def _recover(ctx: Context) -> None:
    """Record the true state of work left unfinished by a previous process."""
    from mixopt.api.tasks import PARETO_FILE

    jobs, models = ctx.store.mark_interrupted()
    for job_id in jobs:
        # A journal writer killed mid-append leaves Optuna's lock file behind, and the next writer waits out
        # its 30 s grace period. Nothing can still be writing this job's own journal (its runner died with
        # the previous service), so the lock is stale: remove it.
        (ctx.job_dir(job_id) / "study.log.lock").unlink(missing_ok=True)
        # finished just before the service died: the result files are complete
        summary = ctx.job_dir(job_id) / "pareto.summary.json"
        if summary.is_file() and (ctx.job_dir(job_id) / PARETO_FILE).is_file():
            result = json.loads(summary.read_text())
            for k in ("storage", "pareto_file", "shortlist_file"):
                result.pop(k, None)
            ctx.store.update("job", job_id, status="done", error=None, result=result)
    if jobs or models:
        logger.warning("Marked %d job(s) and %d model fit(s) left unfinished by the previous service as interrupted: %s", len(jobs), len(models), jobs + models)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The mixopt HTTP API for ``settings`` (default: from the ``MIXOPT_`` environment)."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = Context(settings)
        _recover(ctx)
        app.state.ctx = ctx
        if settings.gc_freeze:
            from mixopt.api.predict import settle_heap

            settle_heap()  # the start-up heap is never scanned again (see settle_heap)
        try:
            yield
        finally:
            from mixopt.api.tasks import CANCEL_FILE

            for job_id in ctx.runner.running():  # searches in threads stop at their next batch
                if ctx.job_dir(job_id).is_dir():
                    (ctx.job_dir(job_id) / CANCEL_FILE).touch()
            await ctx.runner.close()
            _recover(ctx)  # what was still running is now truly interrupted (or done, if its results were written)
            ctx.predict_pool.shutdown(wait=False)
            ctx.store.close()

    # FastAPIOffline: a FastAPI app whose /docs (Swagger UI) and /redoc are served from files shipped
    # in the fastapi-offline package (MIT), so the pages work without internet access (no CDN)
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="mixopt",
        version=mixopt.__version__,
        description="Data-mixture optimisation as a service: upload run tables, fit FLP/FLP-M surrogates, predict, "
        "and run mixture searches as jobs. Every /v1 route needs 'Authorization: Bearer <key>' when the "
        "server has API keys.",
        lifespan=lifespan,
        responses={401: {"model": Error}, 404: {"model": Error}, 413: {"model": Error}, 422: {"model": Error}},
    )
    _install_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness and configuration")
    def health(request: Request) -> Health:
        ctx: Context = request.app.state.ctx
        return Health(
            status="ok",
            version=mixopt.__version__,
            database=ctx.store.dialect,
            executor=ctx.runner.describe(),
            auth=settings.auth_enabled,
            predict={"requests": ctx.batcher.requests, "calls": ctx.batcher.calls},
        )

    from mixopt.api.routes import datasets, jobs, models, plan, validations

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(get_owner)])
    # the predict route first: the hot path, and routes are matched in order
    for r in (models.predict_router, datasets.router, models.router, jobs.router, plan.router, validations.router):
        v1.include_router(r)
    app.include_router(v1)
    app.state.started = time.time()
    return app


__all__ = ["BodyLimit", "create_app"]
