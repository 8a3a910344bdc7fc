"""Against a real server process: end to end with the Python client (jobs on Ray), limits, restart mid-job."""

from __future__ import annotations

import re
import socket
import time

import numpy as np
import pytest

from mixopt.client import APIError, Client
from tests.api.conftest import KEY_A, KEY_B, MERGE_RTOL, RUNS, SEARCH


def test_end_to_end_on_ray(ray_server) -> None:
    """upload -> fit -> predict -> optimise job (default executor: a local Ray) -> Pareto, via the client."""
    srv = ray_server
    with Client(srv.url, api_key=KEY_A) as c:
        assert c.health()["executor"].startswith("ray")
        ds = c.upload(RUNS)
        assert ds["domains"] == ["web", "code", "math"] and ds["runs"] == 60
        m = c.fit(ds, method="regmix")
        assert m["status"] == "ready" and "score:humaneval" in m["summary"]["outputs"]
        mix = np.random.default_rng(0).dirichlet(np.ones(3), 100)
        p = c.predict(m, mixtures=mix, flops=1e21)
        assert p["rows"] == 100
        hv = p["predictions"]["score:humaneval"]
        assert len(hv["mean"]) == 100 and all(lo <= mu <= hi for lo, mu, hi in zip(hv["lower"], hv["mean"], hv["upper"], strict=True))
        job = c.optimize(SEARCH, model=m)
        job = c.wait(job, timeout=120)
        assert job["status"] == "done", job
        assert job["progress"] == {"done": 48, "target": 48, "fraction": 1.0}
        front = c.pareto(job)
        assert front.height == job["summary"]["n_pareto"] >= 1
        mixcols = front.select("mix:web", "mix:code", "mix:math").to_numpy()
        np.testing.assert_allclose(mixcols.sum(axis=1), 1.0, rtol=0, atol=1e-9)
        assert (front["mix:web"] >= 0.3 - 1e-9).all() and (front["mix:math"] <= 0.3 + 1e-9).all()
        assert c.trials(job).height == 48
        short = c.shortlist(job)
        assert 1 <= short.height <= front.height and short["rank"].to_list() == list(range(1, short.height + 1))
        # concurrent predicts (merged into shared model calls under load) give each client its own numbers
        from concurrent.futures import ThreadPoolExecutor

        batches = [np.random.default_rng(s).dirichlet(np.ones(3), 100) for s in range(16)]
        alone = [c.predict(m, mixtures=b, flops=1e21)["predictions"]["score:hellaswag"]["mean"] for b in batches]
        with ThreadPoolExecutor(16) as pool:
            together = list(pool.map(lambda b: c.predict(m, mixtures=b, flops=1e21)["predictions"]["score:hellaswag"]["mean"], batches))
        for a, t in zip(alone, together, strict=True):
            np.testing.assert_allclose(t, a, rtol=MERGE_RTOL, atol=0)
    with Client(srv.url, api_key=KEY_B) as other:  # another key sees none of it
        with pytest.raises(APIError) as e:
            other.job(job)
        assert e.value.status == 404
        assert other.jobs() == [] and other.datasets() == []


def _read_response(s: socket.socket) -> bytes:
    """The whole HTTP response: headers and body can arrive in separate packets, so read to Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_oversized_upload_refused_before_reading(ray_server) -> None:
    """A 1 GB upload is answered 413 from its Content-Length header; the body is never sent."""
    srv = ray_server
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY_A.encode()
                  + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000000\r\n\r\n")
        s.sendall(b"--b\r\n" + b"x" * 65536)
        head = _read_response(s)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"exceeds this server's limit" in head
    with Client(srv.url, api_key=KEY_A) as c:  # and the service is still fine
        assert c.health()["status"] == "ok"


def test_restart_mid_job_loses_no_trial(server_factory, tmp_path) -> None:
    """SIGKILL the server mid-job: the restarted service reports it interrupted with every finished trial, and resumes it."""
    import optuna

    data = tmp_path / "srv"
    env = {"MIXOPT_EXECUTOR": "thread"}
    srv = server_factory(env, data)
    slow = {**SEARCH, "search": {"trials": 100_000, "batch_size": 4, "seed": 1}}  # far more than will run before the kill
    with Client(srv.url, api_key=KEY_A) as c:
        m = c.fit(c.upload(RUNS), method="regmix")
        job = c.optimize(slow, model=m)
        t0 = time.monotonic()
        while c.job(job)["progress"]["done"] < 12:
            assert time.monotonic() - t0 < 60
            time.sleep(0.05)
        srv.kill()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    def study():
        return optuna.load_study(study_name=job["id"], storage=JournalStorage(JournalFileBackend(str(data / "jobs" / job["id"] / "study.log"))))

    before = {t.number: (t.params, t.values) for t in study().trials if t.state.is_finished()}
    assert len(before) >= 12

    srv2 = server_factory(env, data)
    with Client(srv2.url, api_key=KEY_A) as c:
        j = c.job(job)
        assert j["status"] == "interrupted" and j["resumable"]
        assert j["progress"]["done"] == len(before)
        with pytest.raises(APIError) as e:  # results only once done
            c.pareto(job)
        assert e.value.status == 409
        target = len(before) + 16
        c.resume(job, trials=target)
        j = c.wait(job, timeout=60)
        assert j["status"] == "done" and j["attempts"] == 2, j
        assert j["progress"]["done"] == target
    after = {t.number: (t.params, t.values) for t in study().trials}
    for n, (params, values) in before.items():  # every trial finished before the kill is still there, unchanged
        assert after[n] == (params, values)
