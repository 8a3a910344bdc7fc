"""The API at its edges: duplicated columns, a full disk on upload, bounded and cancellable fits,
refused config sections, resume targets, and /docs without internet (headless Chromium)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mixopt.api import create_app
from tests.api.conftest import RUNS, SEARCH, A, fitted_model, make_settings, upload, wait_for


def _csv(text: str) -> dict:
    return {"runs": ("runs.csv", io.BytesIO(text.encode()))}


def test_upload_with_a_duplicated_column_is_refused_naming_it(client) -> None:
    text = RUNS.read_text()
    header, rest = text.split("\n", 1)
    first = header.split(",")
    dup = next(c for c in first if c.startswith("loss:"))
    r = client.post("/v1/datasets", files=_csv(f"{header},{dup}\n" + "\n".join(
        f"{line},{line.split(',')[first.index(dup)]}" for line in rest.splitlines() if line)), headers=A)
    assert r.status_code == 422, r.text
    assert dup in r.text and "more than once" in r.text
    assert "_duplicated_" not in r.text


def test_upload_on_a_full_disk_is_507_and_leaves_nothing(tmp_path, full_disk) -> None:
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        full_disk(settings.data_dir, room=1024)
        with RUNS.open("rb") as fh:
            r = c.post("/v1/datasets", files={"runs": ("runs.csv", fh)}, headers=A)
        assert r.status_code == 507, r.text
        assert r.json()["error"] == "OutputError" and "no space left" in r.json()["message"]
        assert str(settings.data_dir) not in r.text  # no server paths in answers
        assert c.get("/v1/datasets", headers=A).json() == []
    datasets = settings.data_dir / "datasets"
    assert not datasets.exists() or not any(datasets.iterdir())
    leftovers = [p for p in settings.data_dir.rglob("*") if p.is_file() and p.suffix in (".csv", ".parquet", ".tmp")]
    assert leftovers == []


def test_fit_settings_beyond_the_server_limits_are_422(client) -> None:
    ds = upload(client)
    for settings, needle in (({"maxiter": 10**12, "n_members": 100000}, "n_members = 100000"),
                             ({"maxiter": None}, "maxiter = null"),
                             ({"n_bootstrap": 10**7}, "n_bootstrap")):
        r = client.post("/v1/models", json={"dataset": ds["id"], "method": "flpm", "settings": settings}, headers=A)
        assert r.status_code == 422, r.text
        assert needle in r.text and "limit" in r.text
    assert "maxiter = 1e+12" in client.post("/v1/models", json={
        "dataset": ds["id"], "method": "flpm", "settings": {"maxiter": 10**12}}, headers=A).text


def test_fit_limits_setting_from_env(tmp_path) -> None:
    from mixopt.api import Settings
    from mixopt.errors import ConfigError

    s = Settings.from_env({"MIXOPT_FIT_LIMITS": '{"n_members": 8}'}, data_dir=tmp_path)
    assert s.fit_limits["n_members"] == 8 and s.fit_limits["maxiter"] == 100_000
    with pytest.raises(ConfigError, match="MIXOPT_FIT_LIMITS"):
        Settings.from_env({"MIXOPT_FIT_LIMITS": "[1]"}, data_dir=tmp_path)


def test_a_fitting_model_can_be_cancelled_and_deleted(client) -> None:
    ds = upload(client)
    r = client.post("/v1/models", json={"dataset": ds["id"], "method": "flp"}, headers=A)
    assert r.status_code == 202, r.text
    m = r.json()
    r = client.post(f"/v1/models/{m['id']}/cancel", headers=A)
    if r.status_code == 409:  # the fit finished first (a fast machine): nothing left to cancel
        assert "not fitting" in r.text
    else:
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "cancelled"
        # the slot is free at once, and the late result is dropped (the model stays cancelled)
        got = wait_for(client, f"/v1/models/{m['id']}", ("cancelled", "ready", "failed"))
        assert got["status"] == "cancelled"
        assert client.post(f"/v1/models/{m['id']}/predict", json={"flops": 1e21, "mixtures": [[1, 0, 0]]},
                           headers=A).status_code == 409
    # DELETE of a fitting model cancels it (no 409)
    r = client.post("/v1/models", json={"dataset": ds["id"], "method": "flp"}, headers=A)
    assert client.delete(f"/v1/models/{r.json()['id']}", headers=A).status_code == 204
    assert client.get(f"/v1/models/{r.json()['id']}", headers=A).status_code == 404
    assert client.post("/v1/models/m_nope/cancel", headers=A).status_code == 404


@pytest.mark.parametrize("section, needle", [
    ({"trainer": {"kind": "command", "options": {"command": "touch /tmp/pwned"}}}, "[trainer]"),
    ({"validate": {"rounds": 1}}, "[validate]"),
    ({"ladder": {"sizes": [1e6]}}, "[ladder]"),
    ({"data": {"long": {"kind": "loss"}}}, "data.long"),
    ({"data": {"tokens_per_step": 4096}}, "data.tokens_per_step"),
])
def test_job_config_with_server_only_sections_is_422(client, section, needle) -> None:
    m = fitted_model(client)
    r = client.post("/v1/jobs", json={"config": {**SEARCH, **section}, "model": m["id"]}, headers=A)
    assert r.status_code == 422, r.text
    assert any(needle in p for p in r.json()["problems"]), r.text


def test_resume_needs_a_target_above_the_finished_trials(client) -> None:
    m = fitted_model(client)
    j = client.post("/v1/jobs", json={"config": SEARCH, "model": m["id"]}, headers=A).json()
    done = wait_for(client, f"/v1/jobs/{j['id']}", ("done", "failed"))
    assert done["status"] == "done", done
    n = done["progress"]["done"]
    for trials in (n, n - 1):
        r = client.post(f"/v1/jobs/{j['id']}/resume", json={"trials": trials}, headers=A)
        assert r.status_code == 422, r.text
        assert "already finished" in r.text and f"trials > {n}" in r.text
    assert client.post(f"/v1/jobs/{j['id']}/resume", headers=A).status_code == 422  # same target: nothing to do


# -- /docs offline ----------------------------------------------------------------------------------
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_refer_only_to_the_server_itself(client, page) -> None:
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls and all(u.startswith("/") for u in urls), urls
    for u in urls:
        r = client.get(u)
        assert r.status_code == 200 and len(r.content) > 1000, u


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_docs_render_in_headless_chromium_without_internet(server_factory, tmp_path) -> None:
    srv = server_factory()
    # every host but the server's loopback address resolves to nothing: a CDN fetch would fail
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
    p = subprocess.run([CHROMIUM, *flags, srv.url + "/docs"], capture_output=True, text=True, timeout=120)
    dom = p.stdout
    # Swagger UI ran: it fetched /openapi.json and drew one block per route
    assert "swagger-ui" in dom and "opblock" in dom, (dom[-2000:], p.stderr[-2000:])
    assert "/v1/datasets" in dom and "/v1/models/{model_id}/predict" in dom
    assert "Failed to load API definition" not in dom
