"""Persistence across service restarts in a real PostgreSQL server (started by the test), SQLite without one.

The PostgreSQL server is a throw-away cluster (tests/_postgres.py): ``initdb`` in a temporary folder, ``pg_ctl
start`` on a free loopback port (as the ``postgres`` user when the tests run as root,
since PostgreSQL refuses to run as root), stopped and deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mixopt.api import create_app
from tests._postgres import postgres_missing, postgres_server
from tests.api.conftest import SEARCH, A, B, fitted_model, make_settings, wait_for


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A PostgreSQL URL when the postgresql package is installed (and psycopg is), else None (SQLite)."""
    if postgres_missing():
        yield None  # type: ignore[misc]
        return
    with postgres_server(timeout=120) as address:
        yield f"postgresql://{address}"


def test_everything_persists_across_restarts(database_url, tmp_path) -> None:
    """Datasets, models, jobs and results survive a new app; a job left running is reported interrupted and resumes."""
    settings = make_settings(tmp_path / "data", database_url=database_url)
    with TestClient(create_app(settings)) as c:
        assert c.get("/health").json()["database"] == ("postgresql" if database_url else "sqlite")
        m = fitted_model(c)
        small = {**SEARCH, "search": {**SEARCH["search"], "trials": 16}}
        r = c.post("/v1/jobs", json={"config": small, "model": m["id"]}, headers=A)
        assert r.status_code == 202, r.text
        done = wait_for(c, f"/v1/jobs/{r.json()['id']}", ("done",))
        half = {**SEARCH, "search": {**SEARCH["search"], "trials": 16, "seed": 5}}
        r = c.post("/v1/jobs", json={"config": half, "model": m["id"]}, headers=A)
        cut = wait_for(c, f"/v1/jobs/{r.json()['id']}", ("done",))
        c.app.state.ctx.store.update("job", cut["id"], status="running")  # as if the service had died mid-job:
        (settings.data_dir / "jobs" / cut["id"] / "pareto.parquet").unlink()  # its results were never written
    with TestClient(create_app(settings)) as c:
        assert c.get(f"/v1/models/{m['id']}", headers=A).json()["status"] == "ready"
        assert c.get(f"/v1/models/{m['id']}", headers=B).status_code == 404
        d = c.get(f"/v1/jobs/{done['id']}", headers=A).json()
        assert d["status"] == "done" and d["progress"]["done"] == 16 and d["summary"] == done["summary"]
        assert len(c.get(f"/v1/jobs/{done['id']}/pareto", headers=A).json()["rows"]) == d["summary"]["n_pareto"]
        r = c.get(f"/v1/jobs/{cut['id']}", headers=A).json()
        assert r["status"] == "interrupted" and r["resumable"] and r["progress"]["done"] == 16
        c.post(f"/v1/jobs/{cut['id']}/resume", json={"trials": 24}, headers=A)
        r = wait_for(c, f"/v1/jobs/{cut['id']}", ("done", "failed"))
        assert r["status"] == "done" and r["progress"]["done"] == 24 and r["summary"]["n_new"] == 8, r
        p = c.post(f"/v1/models/{m['id']}/predict", json={"mixtures": [[0.4, 0.4, 0.2]], "flops": 1e21}, headers=A)
        assert p.status_code == 200
