"""POST /v1/datasets/{id}/changes: a dataset's runs mapped into a new domain set, stored as a dataset."""

from __future__ import annotations

from tests.api.conftest import SEARCH, A, B, upload


def test_map_a_dataset_and_refuse_unmappable_changes(client) -> None:
    ds = upload(client)
    r = client.post(f"/v1/datasets/{ds['id']}/changes", json={"changes": {"added": ["wiki"], "refiltered": ["web"]}},
                    headers=A)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["domains"] == ["web", "code", "math", "wiki"] and out["runs"] == ds["runs"]
    assert sum(out["mapping"]["evidence"].values()) == ds["runs"]
    assert all(k.startswith("mapped:") and "added" in k for k in out["mapping"]["evidence"])
    assert client.get(f"/v1/datasets/{out['id']}", headers=A).status_code == 200
    # unmappable: the reason comes back as a 422
    r = client.post(f"/v1/datasets/{ds['id']}/changes", json={"changes": {"removed": ["music"]}}, headers=A)
    assert r.status_code == 422 and "unknown domain(s) ['music']" in r.text
    r = client.post(f"/v1/datasets/{ds['id']}/changes", json={"changes": {"runs": "/etc/passwd"}}, headers=A)
    assert r.status_code == 422 and "not accepted over the API" in r.text
    r = client.post(f"/v1/datasets/{ds['id']}/changes", json={"changes": {"addd": ["x"]}}, headers=A)
    assert r.status_code == 422 and "Allowed keys" in r.text
    # another key's dataset is not found
    assert client.post(f"/v1/datasets/{ds['id']}/changes", json={"changes": {}}, headers=B).status_code == 404
    # a job config may not carry the change itself
    r = client.post("/v1/jobs", json={"dataset": ds["id"], "config": {**SEARCH, "domains": {"changes": {"added": ["x"]}}}},
                    headers=A)
    assert r.status_code == 422 and "domains.changes" in r.text
