"""Persistence of datasets, models and jobs (metadata) in SQLite or PostgreSQL.

One SQLAlchemy Core schema, three tables prefixed ``mixopt_`` (so they can share a
database with Optuna's tables). Every query filters by ``owner`` (a hash of the API key):
another key's id is simply not found. JSON columns hold the resource summaries.
Artefacts (uploaded tables, model files, Pareto tables) live on disk under the data dir;
Optuna studies live in their own storage (see :class:`~mixopt.api.settings.Settings`).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from mixopt.api.errors import NotFoundError, TooManyJobsError

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

datasets = sa.Table(
    "mixopt_datasets", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(80), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("info", sa.Text, nullable=False),  # JSON summary
)

models = sa.Table(
    "mixopt_models", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(80), nullable=False, index=True),
    sa.Column("dataset_id", sa.String(40), nullable=False),
    sa.Column("method", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # fitting, ready, failed, interrupted
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("request", sa.Text, nullable=False),  # JSON: settings, backtest split
    sa.Column("info", sa.Text, nullable=True),  # JSON summary once fitted
)

jobs = sa.Table(
    "mixopt_jobs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(80), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # optimize
    sa.Column("status", sa.String(20), nullable=False),  # queued, running, done, failed, cancelled, interrupted
    sa.Column("model_id", sa.String(40), nullable=True),
    sa.Column("dataset_id", sa.String(40), nullable=True),
    sa.Column("trials", sa.Integer, nullable=False),  # target number of finished trials
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("config", sa.Text, nullable=False),  # JSON: the client's config (validated)
    sa.Column("result", sa.Text, nullable=True),  # JSON summary of the search result
)

#: Job and model states that are not final.
ACTIVE_JOB = ("queued", "running")
ACTIVE_MODEL = ("fitting",)
TABLES = {"dataset": datasets, "model": models, "job": jobs}
PREFIX = {"dataset": "ds", "model": "m", "job": "job"}


def new_id(kind: str) -> str:
    """A fresh random id like ``ds_3f9a0c1b2d4e5f60`` (unguessable, 64 random bits)."""
    return f"{PREFIX[kind]}_{secrets.token_hex(8)}"


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        eng = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]  # psycopg 3 (psycopg[binary])
    return sa.create_engine(url, pool_pre_ping=True)


def _row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    for k in ("info", "request", "config", "result"):
        if k in d and isinstance(d[k], str):
            d[k] = json.loads(d[k])
    return d


class Store:
    """Datasets, models and jobs of every owner, in one SQL database.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user@host:port/db``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = _engine(url)
            metadata.create_all(self.engine)
        except Exception as e:  # noqa: BLE001 - report the database, not a driver traceback
            from mixopt.errors import ConfigError

            raise ConfigError(
                f"Cannot open the service database {_redact(url)}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
                "Check MIXOPT_DATABASE_URL (e.g. postgresql://user@127.0.0.1:5432/mixopt) or leave it unset for SQLite."
            ) from None
        self._lock = threading.Lock()  # SQLite: one writer at a time from this process

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # -- generic -------------------------------------------------------------------------
    def insert(self, kind: str, values: Mapping[str, Any], *, limit: int | None = None) -> dict[str, Any]:
        """Insert one resource; with ``limit``, only while its owner has fewer unfinished jobs/fits (atomically).

        Raises:
            TooManyJobsError: ``limit`` given and already reached (nothing inserted).
        """
        vals = {k: (json.dumps(v) if k in ("info", "request", "config", "result") and v is not None else v) for k, v in values.items()}
        with self._lock, self.engine.begin() as c:
            if limit is not None:
                self._hold_below(c, values["owner"], limit)
            c.execute(TABLES[kind].insert().values(**vals))
        return self.get(kind, values["id"], values["owner"])

    def _hold_below(self, c: sa.Connection, owner: str, limit: int) -> None:
        """In transaction ``c``: lock ``owner``'s job slots, then refuse if ``limit`` unfinished jobs/fits exist.

        Count and write must be one atomic step, across server processes too (check-then-insert let
        simultaneous submissions all pass). PostgreSQL: a transaction-scoped advisory lock per owner
        (other owners are not blocked). SQLite: a write statement first, which takes the database's
        single write lock before the count (every other writer waits; readers do not).
        """
        if self.dialect == "postgresql":
            c.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "mixopt-jobs:" + owner})
        else:
            c.execute(jobs.update().where(sa.false()).values(status=jobs.c.status))  # begins the write transaction
        n = self._count_active(c, owner)
        if n >= limit:
            raise TooManyJobsError(
                f"This API key already has {n} unfinished jobs/fits (limit {limit}); "
                "wait for one to finish or cancel one (POST /v1/jobs/{id}/cancel)."
            )

    def get(self, kind: str, id_: str, owner: str) -> dict[str, Any]:
        """One resource of ``owner``; :class:`NotFoundError` for unknown ids and other owners' ids alike."""
        t = TABLES[kind]
        with self.engine.connect() as c:
            r = c.execute(sa.select(t).where(t.c.id == id_, t.c.owner == owner)).first()
        if r is None:
            raise NotFoundError(f"No {kind} with id {id_!r} for this API key. List yours with GET /v1/{kind}s.")
        return _row(r)

    def list(self, kind: str, owner: str, limit: int = 1000) -> list[dict[str, Any]]:
        t = TABLES[kind]
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.owner == owner).order_by(t.c.created_at.desc()).limit(limit)).all()
        return [_row(r) for r in rows]

    def update(self, kind: str, id_: str, *, limit: tuple[str, int] | None = None, **values: Any) -> None:
        """Update one resource; with ``limit=(owner, n)``, only while the owner has fewer than ``n`` unfinished jobs/fits (atomically)."""
        t = TABLES[kind]
        vals = {k: (json.dumps(v) if k in ("info", "request", "config", "result") and v is not None else v) for k, v in values.items()}
        with self._lock, self.engine.begin() as c:
            if limit is not None:
                self._hold_below(c, *limit)
            c.execute(t.update().where(t.c.id == id_).values(**vals))

    def delete(self, kind: str, id_: str, owner: str) -> None:
        t = TABLES[kind]
        with self._lock, self.engine.begin() as c:
            n = c.execute(t.delete().where(t.c.id == id_, t.c.owner == owner)).rowcount
        if not n:
            raise NotFoundError(f"No {kind} with id {id_!r} for this API key.")

    def count_active(self, owner: str) -> int:
        """Unfinished jobs and model fits of ``owner``."""
        with self.engine.connect() as c:
            return self._count_active(c, owner)

    @staticmethod
    def _count_active(c: sa.Connection, owner: str) -> int:
        nj = c.execute(sa.select(sa.func.count()).select_from(jobs).where(jobs.c.owner == owner, jobs.c.status.in_(ACTIVE_JOB))).scalar_one()
        nm = c.execute(sa.select(sa.func.count()).select_from(models).where(models.c.owner == owner, models.c.status.in_(ACTIVE_MODEL))).scalar_one()
        return int(nj) + int(nm)

    def referencing(self, kind: str, id_: str, owner: str) -> list[str]:
        """Unfinished jobs/fits that use dataset or model ``id_`` (a delete would break them)."""
        with self.engine.connect() as c:
            col = jobs.c.dataset_id if kind == "dataset" else jobs.c.model_id
            out = [r[0] for r in c.execute(sa.select(jobs.c.id).where(col == id_, jobs.c.owner == owner, jobs.c.status.in_(ACTIVE_JOB)))]
            if kind == "dataset":
                out += [r[0] for r in c.execute(sa.select(models.c.id).where(models.c.dataset_id == id_, models.c.owner == owner,
                                                                             models.c.status.in_(ACTIVE_MODEL)))]
        return out

    def mark_interrupted(self) -> tuple[list[str], list[str]]:
        """At start-up: every job/fit left unfinished by a previous process is ``interrupted``.

        Returns:
            The ids of the interrupted jobs and models.
        """
        now = time.time()
        with self._lock, self.engine.begin() as c:
            j = [r[0] for r in c.execute(sa.select(jobs.c.id).where(jobs.c.status.in_(ACTIVE_JOB)))]
            m = [r[0] for r in c.execute(sa.select(models.c.id).where(models.c.status.in_(ACTIVE_MODEL)))]
            if j:
                c.execute(jobs.update().where(jobs.c.id.in_(j)).values(
                    status="interrupted", finished_at=now,
                    error="the service stopped while this job ran; completed trials are kept in its study: POST /v1/jobs/{id}/resume"))
            if m:
                c.execute(models.update().where(models.c.id.in_(m)).values(
                    status="interrupted", finished_at=now, error="the service stopped while this model was fitted; fit it again"))
        return j, m


def _redact(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<unparseable URL>"


__all__ = ["ACTIVE_JOB", "ACTIVE_MODEL", "Store", "new_id"]
