"""POST /v1/plan: the next sampling runs for a decision, over HTTP."""

from __future__ import annotations

import numpy as np

from tests.api.conftest import SEARCH, A, B, fitted_model

DECISION = {k: v for k, v in SEARCH.items() if k != "search"}


def test_plan_returns_runs_the_ladder_reads_within_the_bounds(client) -> None:
    m = fitted_model(client)
    body = {"model": m["id"], "config": DECISION, "plan": {"runs": 3, "n_candidates": 32, "n_targets": 32, "n_draws": 64}}
    r = client.post("/v1/plan", json=body, headers=A)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["criterion"] == "decision" and out["draws"] == "posterior" and len(out["runs"]) == 3  # regmix: its GP posterior
    for run in out["runs"]:
        mix = run["mixture"]
        assert set(mix) == {"web", "code", "math"} and abs(sum(mix.values()) - 1) < 1e-9
        assert mix["web"] >= 0.3 - 1e-9 and mix["math"] <= 0.3 + 1e-9
        assert np.isclose(run["flops"], 6 * run["params"] * run["tokens"])
        assert run["run_id"].startswith("plan_")
    assert 0 < out["summary"]["p_best_of_pick"] <= 1 and out["settings"]["runs"] == 3
    # seeded: the same request gives the same runs; another seed other runs
    assert client.post("/v1/plan", json=body, headers=A).json()["runs"] == out["runs"]
    other = client.post("/v1/plan", json={**body, "plan": {**body["plan"], "seed": 5}}, headers=A).json()
    assert other["runs"] != out["runs"]
    # the same settings in the config's own [plan] section (TOML text too), and the design criterion
    toml = '[compute]\nflops = [1e21, 1e22]\n[objectives]\noptimize = ["score:humaneval"]\n' \
           '[plan]\nruns = 2\ncriterion = "doptimal"\nn_candidates = 16\nn_draws = 32\n'
    r = client.post("/v1/plan", json={"model": m["id"], "config": toml}, headers=A)
    assert r.status_code == 200, r.text
    assert r.json()["criterion"] == "doptimal" and len(r.json()["runs"]) == 2


def test_plan_refuses_bad_settings_limits_server_keys_and_other_keys_models(client) -> None:
    m = fitted_model(client)
    base = {"model": m["id"], "config": DECISION}
    r = client.post("/v1/plan", json={**base, "plan": {"runs": 0, "critrion": "x"}}, headers=A)
    assert r.status_code == 422 and "critrion" in r.text and "runs must be an integer >= 1" in r.text
    r = client.post("/v1/plan", json={**base, "plan": {"n_draws": 10**6}}, headers=A)
    assert r.status_code == 413 and "plan.n_draws" in r.text
    r = client.post("/v1/plan", json={**base, "config": {**DECISION, "data": {"runs": "/etc/passwd"}}}, headers=A)
    assert r.status_code == 422 and "data.runs: not accepted over the API" in r.text
    assert client.post("/v1/plan", json=base, headers=B).status_code == 404
    assert client.post("/v1/plan", json={**base, "model": "m_nothing"}, headers=A).status_code == 404
    r = client.post("/v1/plan", json={**base, "config": {**DECISION, "objectives": {"optimize": ["loss:nothing"]}}}, headers=A)
    assert r.status_code == 422, r.text
