"""Validation jobs: a finished search's shortlist trained by a server-defined trainer (the reference micro-GPT)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from mixopt.api import create_app
from tests.api.conftest import A, B, make_settings, wait_for

LADDER = Path(__file__).resolve().parents[2] / "mixopt" / "examples" / "ladder_runs.csv"
# a micro model on the shipped fixture text: seconds per run
MICRO = {"context": 64, "batch": 4, "eval_windows": 4, "cloze_items": 12, "cloze_context": 32, "threads": 1}
SEARCH = {"compute": {"params": 2.5e4, "tokens": 3072}, "objectives": {"optimize": ["loss:prose", "loss:code"]},
          "search": {"trials": 16, "batch_size": 16, "seed": 0}}


@pytest.fixture(scope="module")
def vclient(tmp_path_factory: pytest.TempPathFactory):
    from mixopt.train.corpus import fixture_corpus

    corpus = fixture_corpus(tmp_path_factory.mktemp("corpus") / "fixture")
    trainers = {"micro": {"kind": "reference", "options": {**MICRO, "corpus": str(corpus)}, "timeout_s": 300, "checkpoints": 2}}
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("vsrv"), trainers=trainers))) as c:
        yield c


def _make_done_job(c: TestClient) -> dict:
    with LADDER.open("rb") as f:
        r = c.post("/v1/datasets", files={"runs": ("ladder_runs.csv", f, "text/csv")}, headers=A,
                   data={"chance": json.dumps({f"cloze_{d}": 0.25 for d in ("prose", "code", "docs", "math")})})
    assert r.status_code == 201, r.text
    m = c.post("/v1/models", json={"dataset": r.json()["id"], "method": "regmix"}, headers=A).json()
    assert wait_for(c, f"/v1/models/{m['id']}", ("ready", "failed"))["status"] == "ready"
    j = c.post("/v1/jobs", json={"config": SEARCH, "model": m["id"]}, headers=A)
    assert j.status_code == 202, j.text
    j = wait_for(c, f"/v1/jobs/{j.json()['id']}", ("done", "failed"))
    assert j["status"] == "done", j
    return j


@pytest.fixture(scope="module")
def done_job(vclient) -> dict:
    """A finished search job of key A, made here so that every test of this file stands alone."""
    return _make_done_job(vclient)


def test_validation_trains_the_shortlist_and_compares(vclient, done_job) -> None:
    c, j = vclient, done_job
    r = c.post("/v1/validations", json={"trainer": "micro", "job": j["id"], "k": 2}, headers=A)
    assert r.status_code == 202, r.text
    v = r.json()
    assert v["trainer"] == "micro" and v["progress"]["target"] == 2
    assert c.get(f"/v1/validations/{v['id']}", headers=B).status_code == 404  # another key's
    assert c.get(f"/v1/jobs/{v['id']}", headers=A).status_code == 404  # not a search job
    v = wait_for(c, f"/v1/validations/{v['id']}", ("done", "failed", "cancelled"), timeout=240)
    assert v["status"] == "done", v
    assert v["progress"] == {"done": 2, "target": 2, "fraction": 1.0}
    assert len(v["summary"]["trained"]) == 2 and not v["summary"]["failed"]
    rows = c.get(f"/v1/validations/{v['id']}/results", headers=A).json()
    quantities = {x["quantity"] for x in rows}
    assert {"loss:prose", "loss:code"} <= quantities and len({x["run"] for x in rows}) == 2
    for x in rows:  # a real measurement next to a real prediction with its interval
        assert 0.5 < x["measured"] < 8.0 or x["quantity"].startswith("score:")
        assert x["lower"] <= x["predicted"] <= x["upper"]
    csv = pl.read_csv(io.BytesIO(c.get(f"/v1/validations/{v['id']}/results", params={"format": "csv"}, headers=A).content))
    assert csv.height == len(rows)
    assert v["id"] in [x["id"] for x in c.get("/v1/validations", headers=A).json()]
    assert v["id"] not in [x["id"] for x in c.get("/v1/validations", headers=B).json()]
    assert all(x["id"] != v["id"] for x in c.get("/v1/jobs", headers=A).json())
    assert c.post(f"/v1/validations/{v['id']}/cancel", headers=A).status_code == 409  # already done


def test_a_client_cannot_inject_a_trainer_or_command(vclient, done_job) -> None:
    c, job = vclient, done_job["id"]
    for extra in ({"command": "touch /tmp/pwned"}, {"trainer_spec": {"kind": "command", "options": {"command": "touch /tmp/pwned"}}},
                  {"options": {"corpus": "/etc"}}):
        r = c.post("/v1/validations", json={"trainer": "micro", "job": job, **extra}, headers=A)
        assert r.status_code == 422, r.text
    r = c.post("/v1/validations", json={"trainer": {"kind": "command", "options": {"command": "touch /tmp/pwned"}}, "job": job}, headers=A)
    assert r.status_code == 422
    r = c.post("/v1/validations", json={"trainer": "sh -c id", "job": job}, headers=A)
    assert r.status_code == 404 and "micro" in r.text  # only the server's names


def test_cancel_stops_before_the_next_mixture(vclient, done_job) -> None:
    c, job = vclient, done_job
    v = c.post("/v1/validations", json={"trainer": "micro", "job": job["id"], "k": 4, "level": 0.8}, headers=A).json()
    r = c.post(f"/v1/validations/{v['id']}/cancel", headers=A)
    assert r.status_code == 202
    v = wait_for(c, f"/v1/validations/{v['id']}", ("done", "failed", "cancelled"), timeout=240)
    assert v["status"] == "cancelled" and v["progress"]["done"] < 4 and "trained runs are kept" in v["error"]
    assert c.get(f"/v1/validations/{v['id']}/results", headers=A).status_code == 409


def test_a_bad_server_trainer_stops_the_start_up(tmp_path) -> None:
    from mixopt.errors import ConfigError

    bad = {"x": {"kind": "slurm", "timeout_s": -1}, "y": "python train.py"}
    with pytest.raises(ConfigError, match="trainer"), TestClient(create_app(make_settings(tmp_path, trainers=bad))):
        pass
