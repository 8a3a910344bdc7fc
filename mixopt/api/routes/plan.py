"""``/v1/plan``: the next sampling runs for a decision (``mixopt plan`` over HTTP).

Synchronous: the request names a ready model and the decision (a search config: objectives,
constraints, target compute, bounds; optional ``[plan]`` section), and gets the planned runs
(size, tokens, FLOPs, mixture, the criterion's gain) and the decision's summary back. The
work is :func:`mixopt.workflows.plan.plan` on the model and its dataset's run table (which
gives the candidate sizes and tokens when ``[plan]`` does not), in a worker thread. Sample
sizes are bounded (:data:`PLAN_LIMITS`, 413 beyond), so every request ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from mixopt.api.deps import Context, CtxDep, OwnerDep
from mixopt.api.errors import LimitError
from mixopt.api.routes.jobs import _parse_config
from mixopt.api.routes.models import ready_model
from mixopt.api.schemas import PlanCreate, PlannedRun, PlanPublic
from mixopt.api.tasks import job_config, load_dataset
from mixopt.errors import ConfigError

router = APIRouter(prefix="/plan", tags=["plan"])

#: Most of each [plan] sample size a request may ask for (the work grows with their products).
PLAN_LIMITS: dict[str, int] = {"runs": 256, "n_candidates": 2048, "n_targets": 2048, "n_draws": 1024, "sizes": 8}


def _settings(raw: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """The config with ``override`` merged into its ``[plan]`` section (the request's keys win)."""
    if override:
        base = raw.get("plan", {})
        if not isinstance(base, dict):
            raise ConfigError(f"[plan] must be a table of settings, got {type(base).__name__}.")
        raw = {**raw, "plan": {**base, **override}}
    return raw


def _check_limits(st: Any) -> None:
    over = [f"plan.{k} = {getattr(st, k)} exceeds this server's limit of {lim}" for k, lim in PLAN_LIMITS.items()
            if k != "sizes" and getattr(st, k) > lim]
    if len(st.sizes) > PLAN_LIMITS["sizes"]:
        over.append(f"plan.sizes has {len(st.sizes)} sizes; this server's limit is {PLAN_LIMITS['sizes']}")
    if over:
        raise LimitError("The plan's settings exceed this server's limits; lower them: " + "; ".join(over) + ".")


def _plan(ctx: Context, body: PlanCreate, owner: str) -> PlanPublic:
    from mixopt.search.plan import PlanSettings
    from mixopt.workflows.plan import plan, plan_jobs

    model = ready_model(ctx, body.model, owner)
    row = ctx.store.get("model", body.model, owner)
    raw = _settings(_parse_config(body.config), body.plan)
    cfg = job_config(raw, model_path=str(ctx.model_dir(body.model)), dataset_path=None, storage="memory", study_name="plan")
    st = cfg.plan or PlanSettings()
    _check_limits(st)
    runs = load_dataset(ctx.dataset_dir(row["dataset_id"])) if row.get("dataset_id") else None
    p = plan(cfg, st, surrogate=model, runs=runs)
    out = [PlannedRun(run_id=j.run_id, params=j.params, tokens=j.tokens, flops=float(f), gain=float(g), mixture=j.mixture)
           for j, f, g in zip(plan_jobs(p), p.flops, p.value, strict=True)]
    return PlanPublic(model=body.model, criterion=p.criterion, draws=p.draws, runs=out, summary=dict(p.summary),
                      settings={**st.__dict__, "sizes": list(st.sizes)})


@router.post("", response_model=PlanPublic, summary="Plan the next sampling runs for a decision")
async def create_plan(body: PlanCreate, ctx: CtxDep, owner: OwnerDep) -> PlanPublic:
    """Synchronous. ``config`` is the decision (the TOML of ``mixopt optimize``, as an object or text, minus
    server-owned keys); ``plan`` overrides its ``[plan]`` keys (``runs``, ``flops``, ``criterion``, ``sizes``,
    ``tokens_per_param``, ``n_candidates``, ``n_targets``, ``n_draws``, ``noise``, ``seed``, ``duplicate_l1``, ``coverage``, ``fill``). The runs come in
    the columns ``mixopt ladder --jobs`` reads."""
    return await asyncio.to_thread(_plan, ctx, body, owner)
