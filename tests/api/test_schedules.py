"""POST /v1/models/{id}/predict with schedules (phased mixtures, docs/phases.md)."""

from __future__ import annotations

import numpy as np

from tests.api.conftest import A, fitted_model


def test_predict_schedules(client) -> None:
    m = fitted_model(client)
    url = f"/v1/models/{m['id']}/predict"
    two = {"phases": [{"web": 0.8, "code": 0.2}, {"web": 0.2, "code": 0.3, "math": 0.5}], "phase_end": [0.75]}
    one = {"phases": [{"web": 0.5, "code": 0.25, "math": 0.25}]}
    r = client.post(url, json={"schedules": [two, one], "flops": 1e21}, headers=A)
    assert r.status_code == 200, r.text
    got = r.json()
    # a model fitted on constant mixtures reads a schedule's whole-run mixture
    overall = [[0.65, 0.225, 0.125], [0.5, 0.25, 0.25]]
    ref = client.post(url, json={"mixtures": overall, "flops": 1e21}, headers=A).json()
    for q, col in ref["predictions"].items():
        np.testing.assert_allclose(got["predictions"][q]["mean"], col["mean"], rtol=1e-9, atol=0)
    cases = [
        ({"schedules": [{"phases": [{"web": 0.5}, {"web": 1.0}], "phase_end": [0.5]}], "flops": 1e21}, 422, "sum to 1"),
        ({"schedules": [{"phases": [{"web": 1.0}, {"code": 1.0}], "phase_end": [1.0]}], "flops": 1e21}, 422, "phase_end"),
        ({"schedules": [{"phases": [{"web": 1.0}, {"code": 1.0}]}], "flops": 1e21}, 422, "phase_end"),
        ({"schedules": [{"phases": [{"cobol": 1.0}]}], "flops": 1e21}, 422, "cobol"),
        ({"schedules": [one], "mixtures": [[1, 0, 0]], "flops": 1e21}, 422, "not both"),
        ({"schedules": [one]}, 422, "compute"),
    ]
    for body, status, needle in cases:
        r = client.post(url, json=body, headers=A)
        assert r.status_code == status, (body, r.text)
        assert needle in r.text, (needle, r.text)
