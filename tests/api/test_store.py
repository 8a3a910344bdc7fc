"""The store's per-key job limit is atomic: simultaneous submissions cannot all pass a check-then-insert."""

from __future__ import annotations

import threading
import time

import pytest

from mixopt.api.errors import TooManyJobsError
from mixopt.api.store import Store, new_id


def _job(owner: str) -> dict:
    now = time.time()
    return {"id": new_id("job"), "owner": owner, "kind": "optimize", "status": "running", "trials": 10, "created_at": now,
            "started_at": now, "attempts": 1, "config": {}}


def test_job_limit_holds_under_simultaneous_submissions(tmp_path) -> None:
    """16 threads over two Store objects (as two server processes: no shared Python lock) submit at once; limit 3."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    stores = [Store(url), Store(url)]
    start = threading.Barrier(16)
    ok, refused, other = [], [], []

    def submit(i: int) -> None:
        start.wait()
        try:
            ok.append(stores[i % 2].insert("job", _job("alice"), limit=3))
        except TooManyJobsError:
            refused.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            other.append(repr(e))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not other, other
    assert len(ok) == 3 and len(refused) == 13
    assert stores[0].count_active("alice") == 3
    # another key has its own slots; a finished job frees one
    stores[0].insert("job", _job("bob"), limit=3)
    stores[1].update("job", ok[0]["id"], status="done")
    stores[0].insert("job", _job("alice"), limit=3)
    with pytest.raises(TooManyJobsError, match="limit 3"):
        stores[1].insert("job", _job("alice"), limit=3)
    # resuming (update to running) is limited the same way
    with pytest.raises(TooManyJobsError):
        stores[1].update("job", ok[0]["id"], status="running", limit=("alice", 3))
    assert stores[0].get("job", ok[0]["id"], "alice")["status"] == "done"
    for s in stores:
        s.close()


def test_sqlite_limit_takes_the_write_lock_before_counting(tmp_path) -> None:
    """The SQLite guard's no-op write holds the database write lock: another writer cannot insert between count and insert."""
    import sqlalchemy as sa

    from mixopt.api.store import jobs

    url = f"sqlite:///{tmp_path / 'm.db'}"
    a = Store(url)
    other = sa.create_engine(url, connect_args={"timeout": 0})
    with a.engine.begin() as c:
        a._hold_below(c, "alice", 3)
        with pytest.raises(sa.exc.OperationalError, match="locked"), other.begin() as c2:
            c2.execute(jobs.insert().values(**{**_job("bob"), "config": "{}"}))
    other.dispose()
    a.close()
