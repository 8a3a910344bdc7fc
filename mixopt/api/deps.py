"""Shared state of the service and the dependency aliases the routes use.

``CtxDep`` gives the :class:`Context` (settings, store, job runner, model cache);
``OwnerDep`` authenticates the request and gives its owner (a hash of the API key, never
the key). Keys are compared with :func:`hmac.compare_digest` against every configured
key, so the time taken does not tell which key (or how much of one) matched.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from mixopt.api.errors import AuthError
from mixopt.api.jobs import JobRunner, StudyProgress, study_url
from mixopt.api.predict import ModelCache, PredictBatcher
from mixopt.api.settings import Settings
from mixopt.api.store import Store

#: Owner of every resource when the server runs without API keys.
PUBLIC_OWNER = "public"


class Context:
    """Everything a request needs, created once per app (in its lifespan)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        d = settings.data_dir
        for sub in ("datasets", "models", "jobs", "uploads"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for stale in (d / "uploads").iterdir():  # uploads cut short by a previous process
            shutil.rmtree(stale, ignore_errors=True)
        if settings.trainers:  # a bad trainer definition stops the start-up with every problem, not a validation later
            from mixopt.api.tasks import train_config
            from mixopt.errors import ConfigError

            for name, t in settings.trainers.items():
                if not isinstance(t, dict):
                    raise ConfigError(f"MIXOPT_TRAINERS[{name!r}] must be a [trainer] table (a JSON object), got {t!r}.")
                train_config(t, base=d, workdir=d / "jobs", name=name)
        self.store = Store(settings.db_url)
        self.runner = JobRunner(settings)
        self.progress = StudyProgress(settings.studies_url)
        # open (create) the study storage in the background: importing optuna takes a second or two, and every
        # user of the storage (progress, a job's start) waits for this under its lock, so no two create it at once
        threading.Thread(target=self.progress.open_quietly, name="mixopt-open-studies", daemon=True).start()
        self.models = ModelCache(settings.model_cache, freeze=settings.gc_freeze)
        self.predict_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="mixopt-predict")
        # merged calls are capped at 1000 rows: past that a call's own time (~30 ms for flpm) outweighs the saving
        self.batcher = PredictBatcher(self.predict_pool, max_rows=1000)
        self.ready: dict[str, tuple[str, Path, tuple[str, ...]]] = {}  # model id -> (owner, folder, domains) of ready models
        self._keys = [(k.encode(), _owner_of(k)) for k in settings.api_keys]
        self._path_re = re.compile(re.escape(str(d)) + r"[^\s'\"]*/")

    # -- folders owned by the server --------------------------------------------------------
    def dataset_dir(self, id_: str) -> Path:
        return self.settings.data_dir / "datasets" / id_

    def model_dir(self, id_: str) -> Path:
        return self.settings.data_dir / "models" / id_

    def job_dir(self, id_: str) -> Path:
        return self.settings.data_dir / "jobs" / id_

    def study_url(self, job_id: str) -> str:
        """Where a job's Optuna study lives: its own journal file, or the shared database."""
        shared = self.settings.studies_url
        return study_url(shared) if shared else f"journal:{self.job_dir(job_id) / 'study.log'}"

    def upload_dir(self) -> Path:
        p = self.settings.data_dir / "uploads" / secrets.token_hex(8)
        p.mkdir(parents=True)
        return p

    def scrub(self, text: str) -> str:
        """A message without the server's folders (``/srv/data/uploads/ab12/runs.csv`` -> ``runs.csv``)."""
        return self._path_re.sub("", text).replace(str(self.settings.data_dir), "<data>")

    # -- authentication ---------------------------------------------------------------------
    def owner(self, authorization: str | None) -> str:
        if not self._keys:
            return PUBLIC_OWNER
        if not authorization:
            raise AuthError("This server requires an API key: send the header 'Authorization: Bearer <key>'.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Malformed Authorization header: expected 'Authorization: Bearer <key>'.")
        given = token.strip().encode()
        found = None
        for key, owner in self._keys:  # compare with every key: no early exit
            if hmac.compare_digest(given, key):
                found = owner
        if found is None:
            raise AuthError("The API key is not valid for this server. Check the key (MIXOPT_API_KEYS on the server).")
        return found


def _owner_of(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]


# ``async`` on purpose: FastAPI runs plain ``def`` dependencies in its thread pool, a hop that
# costs more than these cheap functions themselves (and most of a fast predict's time under load).
async def get_ctx(request: Request) -> Context:
    return request.app.state.ctx


async def get_owner(request: Request) -> str:
    return request.app.state.ctx.owner(request.headers.get("authorization"))


CtxDep = Annotated[Context, Depends(get_ctx)]
OwnerDep = Annotated[str, Depends(get_owner)]

__all__ = ["PUBLIC_OWNER", "Context", "CtxDep", "OwnerDep", "get_ctx", "get_owner"]
