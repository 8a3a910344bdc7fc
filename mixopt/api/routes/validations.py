"""``/v1/validations``: train shortlisted mixtures with a trainer of the server's own config.

Only trainers defined by the server (``MIXOPT_TRAINERS``) may run, never a command from the
request. Until this server has both trainers configured and mixopt's trainer package, the
route answers 501 with the reason.
"""

from __future__ import annotations

from fastapi import APIRouter

from mixopt.api.deps import CtxDep, OwnerDep
from mixopt.api.errors import NotAvailableError
from mixopt.api.schemas import ValidationCreate

router = APIRouter(prefix="/validations", tags=["validations"])


@router.post("", status_code=202, summary="Validate a job's shortlist with a server-defined trainer")
def create_validation(body: ValidationCreate, ctx: CtxDep, owner: OwnerDep) -> None:
    ctx.store.get("job", body.job, owner)
    trainers = dict(ctx.settings.trainers)
    if not trainers:
        raise NotAvailableError("This server defines no trainers, so it runs no validation jobs. "
                                "An operator can define them in MIXOPT_TRAINERS (the server's own config).")
    if body.trainer not in trainers:
        from mixopt.api.errors import NotFoundError

        raise NotFoundError(f"No trainer {body.trainer!r} on this server; it defines {sorted(trainers)}.")
    raise NotAvailableError("Validation jobs need mixopt's trainer package (mixopt.train), which this installation lacks.")
