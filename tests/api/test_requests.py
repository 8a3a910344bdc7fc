"""In-process (TestClient) checks of every route's answers to good and hostile requests."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from mixopt.api import Settings
from mixopt.errors import ConfigError
from tests.api.conftest import KEY_A, KEY_B, MERGE_RTOL, RUNS, SEARCH, A, B, fitted_model, upload, wait_for


# -- service --------------------------------------------------------------------------------------
def test_health_and_docs_need_no_key(client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/datasets", "/v1/models/{model_id}/predict", "/v1/jobs/{job_id}/pareto"} <= set(spec["paths"])


#: near misses of a valid key: a prefix, a suffix, one character more or less at either end, another case,
#: two keys run together, a key with a space inside (a comparison by prefix, substring or case would let one in)
NEAR_KEYS = [KEY_A[:-1], KEY_A[:8], KEY_A[1:], KEY_A[-8:], KEY_A + "0", "x" + KEY_A, KEY_A.upper(), KEY_A + KEY_B,
             KEY_A[:5] + " " + KEY_A[5:]]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-123"}, {"Authorization": KEY_A},
                                     {"Authorization": "Basic " + KEY_A}, {"Authorization": "Bearer "},
                                     *({"Authorization": f"Bearer {k}"} for k in NEAR_KEYS)])
def test_every_v1_route_needs_a_valid_key(client, headers) -> None:
    for method, path in [("GET", "/v1/datasets"), ("GET", "/v1/models/m_x"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/job_x/pareto")]:
        r = client.request(method, path, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == "AuthError"


def test_unknown_route_and_method(client) -> None:
    assert client.get("/v2/nothing").status_code == 404
    assert client.put("/v1/datasets", headers=A).status_code == 405


# -- datasets -------------------------------------------------------------------------------------
def test_upload_lists_every_problem_without_server_paths(client, settings) -> None:
    bad = b"run,params,tokens,mix:web,mix:code,loss\nr1,-5,1e9,0.7,0.7,3.1\nr2,1e8,1e9,0.5,0.5,nan\n"
    r = client.post("/v1/datasets", files={"runs": ("mine.csv", io.BytesIO(bad))}, headers=A)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "SchemaError" and len(body["problems"]) >= 2
    text = r.text
    assert str(settings.data_dir) not in text and "mine.csv" in text


@pytest.mark.parametrize("files, data, needle", [
    ({"runs": ("runs.exe", b"a,b\n1,2\n")}, {}, "extension"),
    ({"runs": ("runs.csv", b"")}, {}, "empty"),
    ({"runs": ("runs.csv", b"\x00\xff\xfe garbage")}, {}, "run file"),
    ({"runs": ("runs.csv", RUNS.read_bytes())}, {"format": "excel"}, "format"),
    ({"runs": ("runs.csv", RUNS.read_bytes())}, {"params": "nan"}, "params"),
    ({"runs": ("runs.csv", RUNS.read_bytes())}, {"chance": "{not json"}, "chance"),
])
def test_upload_bad_input(client, files, data, needle) -> None:
    r = client.post("/v1/datasets", files={k: (n, io.BytesIO(b)) for k, (n, b) in files.items()}, data=data, headers=A)
    assert r.status_code == 422, r.text
    assert needle in r.text


def test_upload_without_file_is_422(client) -> None:
    r = client.post("/v1/datasets", data={"format": "auto"}, headers=A)
    assert r.status_code == 422 and "runs" in r.text


def test_upload_size_limit_refused_early(client) -> None:
    """A streamed (chunked) body over the limit is cut off after the limit: the rest is never read."""
    import asyncio

    limit = client.app.state.ctx.settings.max_upload_bytes
    received = 0
    head = b'--bnd\r\nContent-Disposition: form-data; name="runs"; filename="big.csv"\r\n\r\n'

    async def receive() -> dict:
        nonlocal received
        chunk = head if received == 0 else b"x" * 65536
        received += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": received < 10**9}  # a 1 GB stream

    sent: list[dict] = []

    async def send(msg: dict) -> None:
        sent.append(msg)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": "/v1/datasets",
             "raw_path": b"/v1/datasets", "query_string": b"", "root_path": "", "scheme": "http", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80), "app": client.app,
             "headers": [(b"authorization", f"Bearer {KEY_A}".encode()), (b"content-type", b"multipart/form-data; boundary=bnd"),
                         (b"transfer-encoding", b"chunked")]}
    asyncio.run(client.app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert received <= limit + 2 * 65536  # stopped right after the limit, not at 1 GB
    r = client.post("/v1/datasets", content=b"x", headers={**A, "Content-Length": str(10**9)})
    assert r.status_code == 413 and r.json()["error"] == "LimitError"
    r = client.post("/v1/models/m_x/predict", content=b"[" + b"1," * 600_000 + b"1]", headers={**A, "Content-Type": "application/json"})
    assert r.status_code == 413  # other routes: max_request_bytes


def test_dataset_round_trip_and_ownership(client) -> None:
    ds = upload(client)
    assert client.get(f"/v1/datasets/{ds['id']}", headers=A).json() == ds
    assert ds["id"] in [d["id"] for d in client.get("/v1/datasets", headers=A).json()]
    assert ds["id"] not in [d["id"] for d in client.get("/v1/datasets", headers=B).json()]
    other = client.get(f"/v1/datasets/{ds['id']}", headers=B)
    unknown = client.get("/v1/datasets/ds_0000000000000000", headers=B)
    assert other.status_code == unknown.status_code == 404
    assert other.json()["message"].replace(ds["id"], "X") == unknown.json()["message"].replace("ds_0000000000000000", "X")
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=B).status_code == 404
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=A).status_code == 204
    assert client.get(f"/v1/datasets/{ds['id']}", headers=A).status_code == 404


# -- models and predict ----------------------------------------------------------------------------
def test_fit_predict_and_errors(client) -> None:
    m = fitted_model(client)
    url = f"/v1/models/{m['id']}/predict"
    mix = np.random.default_rng(1).dirichlet(np.ones(3), 20).tolist()
    r = client.post(url, json={"mixtures": mix, "flops": 1e21}, headers=A)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rows"] == 20 and set(out["predictions"]) == set(m["summary"]["outputs"])
    by_name = client.post(url, json={"mixtures": [dict(zip(["web", "code", "math"], row, strict=True)) for row in mix],
                                     "params": 1e9, "tokens": 1e21 / 6e9}, headers=A).json()
    for q, col in out["predictions"].items():
        np.testing.assert_allclose(by_name["predictions"][q]["mean"], col["mean"], rtol=1e-9, atol=0)
    cases = [
        ({"mixtures": [{"web": 0.5, "code": 0.2}], "flops": 1e21}, 422, "sum to 1"),
        ({"mixtures": [{"web": 0.5, "cobol": 0.5}], "flops": 1e21}, 422, "cobol"),
        ({"mixtures": [[0.5, 0.5]], "flops": 1e21}, 422, "expected 3 ratios"),
        ({"mixtures": [[0.5, 0.5, 0.0]], "flops": -1}, 422, "flops"),
        ({"mixtures": [[0.5, 0.5, 0.0]], "flops": "lots"}, 422, "flops"),
        ({"mixtures": [[0.5, 0.5, 0.0]]}, 422, "compute"),
        ({"mixtures": [[0.5, 0.5, 0.0]], "flops": [1e21, 1e22]}, 422, "one number or 1"),
        ({"mixtures": [[0.5, 0.5, 0.0]], "flops": 1e21, "params": 1e9, "tokens": 1e10}, 422, "not both"),
        ({"mixtures": [[0.5, 0.5, 0.0]], "flops": 1e21, "colour": "red"}, 422, "colour"),
        ({"mixtures": [[0.5, 0.5, 0.0]] * 501, "flops": 1e21}, 413, "at most 500"),
        ({"mixtures": [], "flops": 1e21}, 422, "at least one"),
    ]
    for body, status, needle in cases:
        r = client.post(url, json=body, headers=A)
        assert r.status_code == status, (body, r.text)
        assert needle in r.text, (needle, r.text)
    for raw in (b'{"mixtures": [[NaN, 0.5, 0.5]], "flops": 1e21}', b'{"mixtures": [[0.5, 0.5, 0]], "flops": Infinity}'):
        r = client.post(url, content=raw, headers={**A, "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert "finite" in r.text
    r = client.post(url, content=b'{"mixtures": [[0.5, 0.5', headers={**A, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "MalformedJSON"
    assert client.post(url, json={"mixtures": mix[:1], "flops": 1e21}, headers=B).status_code == 404
    assert client.post("/v1/models/m_nope/predict", json={"flops": 1e21}, headers=A).status_code == 404


def test_model_create_errors(client) -> None:
    ds = upload(client)
    for body, status in [({"dataset": ds["id"], "method": "magic"}, 422), ({"dataset": ds["id"], "settings": {"bogus": 1}}, 422),
                         ({"dataset": "ds_missing"}, 404), ({"dataset": "../../etc/passwd"}, 422), ({"method": "flp"}, 422)]:
        r = client.post("/v1/models", json=body, headers=A)
        assert r.status_code == status, (body, r.text)
    r = client.post("/v1/models", json={"dataset": ds["id"], "method": "flp", "backtest": {"holdout_min_params": 3e8}}, headers=A)
    m = wait_for(client, f"/v1/models/{r.json()['id']}", ("ready", "failed"))
    assert m["status"] == "ready", m
    assert m["summary"]["laws"] and m["summary"]["backtest"]["summary"]
    bt = client.get(f"/v1/models/{m['id']}/backtest", headers=A).json()
    assert bt["method"] == "flp" and bt["rows"]


# -- jobs -----------------------------------------------------------------------------------------
def test_job_config_problems_listed_at_once(client) -> None:
    m = fitted_model(client)
    bad = {**SEARCH, "data": {"runs": "/etc/passwd"}, "search": {"storage": "/tmp/x.db", "output": "/tmp/p.csv", "executor": "ray"}}
    r = client.post("/v1/jobs", json={"config": bad, "model": m["id"]}, headers=A)
    assert r.status_code == 422
    probs = r.json()["problems"]
    assert len(probs) == 4 and any("data.runs" in p for p in probs) and any("search.executor" in p for p in probs)
    r = client.post("/v1/jobs", json={"config": {**SEARCH, "objectives": {"optimize": ["score:nope"]}}, "model": m["id"]}, headers=A)
    assert r.status_code == 422 and "nope" in r.text
    r = client.post("/v1/jobs", json={"config": "[search\ntrials = ", "model": m["id"]}, headers=A)
    assert r.status_code == 422 and "TOML" in r.text
    r = client.post("/v1/jobs", json={"config": SEARCH}, headers=A)
    assert r.status_code == 422 and "exactly one" in r.text
    r = client.post("/v1/jobs", json={"config": {**SEARCH, "search": {"trials": 10**6}}, "model": m["id"]}, headers=A)
    assert r.status_code == 413
    r = client.post("/v1/jobs", json={"config": {**SEARCH, "surrogate": {"model": "/srv/models/x"}}}, headers=A)
    assert r.status_code == 422 and "paths are not accepted" in r.text
    r = client.post("/v1/jobs", json={"config": SEARCH, "model": m["id"]}, headers=B)
    assert r.status_code == 404


def test_job_lifecycle_cancel_resume_and_limits(client) -> None:
    m = fitted_model(client)
    long = {**SEARCH, "search": {"trials": 4000, "batch_size": 4, "seed": 0}}
    j1 = client.post("/v1/jobs", json={"config": long, "model": m["id"]}, headers=A).json()
    j2 = client.post("/v1/jobs", json={"config": long, "model": m["id"]}, headers=A).json()
    r = client.post("/v1/jobs", json={"config": long, "model": m["id"]}, headers=A)
    assert r.status_code == 429 and "limit 2" in r.text  # max_jobs_per_key = 2
    assert client.post(f"/v1/jobs/{j1['id']}/cancel", headers=B).status_code == 404
    for j in (j1, j2):
        assert client.post(f"/v1/jobs/{j['id']}/cancel", headers=A).status_code == 202
    for j in (j1, j2):
        done = wait_for(client, f"/v1/jobs/{j['id']}", ("cancelled", "failed", "done"))
        assert done["status"] == "cancelled" and done["resumable"], done
    assert client.post(f"/v1/jobs/{j1['id']}/cancel", headers=A).status_code == 409
    assert client.get(f"/v1/jobs/{j1['id']}/pareto", headers=A).status_code == 409
    kept = done_trials = client.get(f"/v1/jobs/{j1['id']}", headers=A).json()["progress"]["done"]
    r = client.post(f"/v1/jobs/{j1['id']}/resume", json={"trials": kept + 8}, headers=A)
    assert r.status_code == 202, r.text
    j = wait_for(client, f"/v1/jobs/{j1['id']}", ("done", "failed"))
    assert j["status"] == "done" and j["progress"]["done"] == done_trials + 8 and j["attempts"] == 2
    for fmt, kind in (("json", "application/json"), ("csv", "text/csv"), ("parquet", "application/vnd.apache.parquet")):
        r = client.get(f"/v1/jobs/{j1['id']}/pareto", params={"format": fmt}, headers=A)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
    assert client.get(f"/v1/jobs/{j1['id']}/pareto", params={"format": "xlsx"}, headers=A).status_code == 422
    assert client.post(f"/v1/jobs/{j1['id']}/resume", json={"trials": 0}, headers=A).status_code == 422


def test_validation_jobs_need_server_trainers(client) -> None:
    r = client.post("/v1/validations", json={"trainer": "ref", "job": "job_x"}, headers=A)
    assert r.status_code == 404  # unknown job first
    m = fitted_model(client)
    j = client.post("/v1/jobs", json={"config": SEARCH, "model": m["id"]}, headers=A).json()
    r = client.post("/v1/validations", json={"trainer": "ref", "job": j["id"]}, headers=A)
    assert r.status_code == 501 and "no trainers" in r.text
    r = client.post("/v1/validations", json={"trainer": "ref", "job": j["id"], "command": "rm -rf /"}, headers=A)
    assert r.status_code == 422


def test_settings_from_env_report_every_problem(tmp_path) -> None:
    from mixopt.errors import ConfigError

    s = Settings.from_env({"MIXOPT_DATA_DIR": str(tmp_path), "MIXOPT_API_KEYS": "abcdefgh1, ijklmnop2", "MIXOPT_MAX_BATCH": "1e3",
                           "MIXOPT_PREDICT_MERGE": "off"})
    assert s.api_keys == ("abcdefgh1", "ijklmnop2") and s.max_batch == 1000 and s.data_dir == tmp_path and not s.predict_merge
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"MIXOPT_PORT": "http", "MIXOPT_MAX_BATCH": "1.5", "MIXOPT_TRAINERS": "[1]"})
    assert str(e.value).count("MIXOPT_") >= 3
    with pytest.raises(ConfigError):
        Settings(executor="slurm", api_keys=("short",))


def test_gc_freeze_setting(tmp_path) -> None:
    """The served heap is frozen at start-up (no full-collection pauses over it); MIXOPT_GC_FREEZE=0 keeps the collector as is."""
    import subprocess
    import sys

    code = ("import gc, sys; from fastapi.testclient import TestClient; from mixopt.api.app import create_app; "
            "from mixopt.api.settings import Settings\n"
            "with TestClient(create_app(Settings.from_env(data_dir=sys.argv[1]))) as c:\n"
            "    assert c.get('/health').status_code == 200; print(gc.get_freeze_count())")
    counts = []
    for value in ("1", "0"):
        env = {**os.environ, "MIXOPT_GC_FREEZE": value}
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / value)], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        counts.append(int(out.stdout.split()[-1]))
    assert counts[0] > 10_000 and counts[1] == 0, counts
    assert not Settings.from_env({"MIXOPT_GC_FREEZE": "false"}).gc_freeze
    with pytest.raises(ConfigError):
        Settings.from_env({"MIXOPT_GC_FREEZE": "maybe"})


@pytest.mark.parametrize("method", ["regmix", "flp"])
def test_merged_predictions_equal_separate_ones(client, method) -> None:
    """The batcher's merged model call gives every request exactly what it would get alone."""
    from mixopt.api.predict import build_targets, predict_many

    m = fitted_model(client, method=method)
    model = client.app.state.ctx.models.get(m["id"], client.app.state.ctx.model_dir(m["id"]))
    rng = np.random.default_rng(3)
    parts = [build_targets(model, mixtures=rng.dirichlet(np.ones(3), n).tolist(), flops=rng.uniform(1e20, 1e22, n).tolist(),
                           params=None, tokens=None, max_batch=500) for n in (1, 7, 50)]
    merged = predict_many(model, parts, 0.8, True)
    for t, p in zip(parts, merged, strict=True):
        alone = model.predict(t, level=0.8)
        assert p.names == alone.names and len(p) == len(t)
        for a, b in ((p.mean, alone.mean), (p.lower, alone.lower), (p.upper, alone.upper)):
            np.testing.assert_allclose(a, b, rtol=MERGE_RTOL, atol=0, equal_nan=True)


def test_client_submits_a_local_config_file(client, tmp_path) -> None:
    """A TOML file as written for `mixopt optimize`: its runs are uploaded, server-owned keys dropped, the job fits on the dataset."""
    import shutil

    from mixopt.client import APIError, Client

    shutil.copy(RUNS, tmp_path / "runs.csv")
    shutil.copy(RUNS.with_name("runs_3domain.benchmarks.json"), tmp_path / "runs.benchmarks.json")
    (tmp_path / "search.toml").write_text("""
[data]
runs = "runs.csv"
[surrogate]
method = "regmix"
[compute]
flops = [1e21, 1e22]
[objectives]
optimize = ["score:humaneval", "score:hellaswag"]
shortlist = 3
[search]
trials = 16
batch_size = 8
storage = "out/study.log"
output = "out/pareto.csv"
executor = "ray"
""")
    c = Client("http://testserver", api_key=KEY_A, transport=client._transport)
    job = c.wait(c.optimize(tmp_path / "search.toml"), timeout=120)
    assert job["status"] == "done" and job["dataset"] and job["model"] is None, job
    short, front = c.shortlist(job), c.pareto(job)
    assert 1 <= short.height <= min(3, front.height) and "rank" in short.columns
    assert (client.app.state.ctx.job_dir(job["id"]) / "model" / "model.json").is_file()  # fitted once, kept for resumes
    with pytest.raises(APIError) as e:
        c.predict("m_missing", mixtures=[[1, 0, 0]], flops=1e21)
    assert e.value.status == 404 and e.value.error == "NotFoundError"
