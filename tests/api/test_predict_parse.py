"""The predict route's fast paths give what the general paths give: JSON parsing (orjson, else ``json.loads``) and mixture rows."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from mixopt.api.predict import _mixture_array, build_targets
from mixopt.api.routes.models import loads
from mixopt.errors import SchemaError
from tests.api.conftest import A, fitted_model

DOMAINS = ("web", "code", "math")


@pytest.mark.parametrize(
    "body",
    [
        b'{"mixtures": [[0.2, 0.3, 0.5]], "flops": 1e21}',
        b'{"mixtures": [{"web": 0.5, "code": 0.5}], "params": 1000000000, "tokens": 2.5e10, "level": 0.5}',
        b'{"flops": 1000000000000000000000, "level": 123456789012345678901234567890}',  # ints past 64 bits stay ints
        b'{"mixtures": [[NaN, 0.5, 0.5]], "flops": Infinity}',  # json.loads's extensions stay accepted (then refused by the schema)
        b'{"a": 1, "a": [1e400, -0.0, 4.9e-324, 0.1]}',
        b'\xef\xbb\xbf{"a": 1}',  # a byte-order mark
        b'{"s": "\\ud800"}',  # a lone surrogate
        '{"a": "ü"}'.encode("utf-16"),
    ],
)
def test_loads_is_json_loads(body: bytes) -> None:
    got, want = loads(body), json.loads(body)
    assert repr(got) == repr(want)  # repr: the same types too (int vs float, -0.0, nan)


@pytest.mark.parametrize("body", [b'{"mixtures": [[0.5, 0.5', b"", b"{", b'{"a": 1} x', b"[1,]"])
def test_loads_malformed_raises_json_loads_error(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(body)
    with pytest.raises(json.JSONDecodeError) as got:
        loads(body)
    assert type(got.value) is json.JSONDecodeError and (got.value.msg, got.value.pos) == (want.value.msg, want.value.pos)


def _slow(rows: list, domains: tuple[str, ...] = DOMAINS) -> tuple[np.ndarray, list[str]]:
    """The row-by-row conversion (what every input took before the fast paths)."""
    problems: list[str] = []
    # a tuple row forces the general loop for every row; it is then removed from the result
    mix = _mixture_array([*rows, (0.0,) * len(domains)], domains, problems)
    return mix[:-1], problems


@pytest.mark.parametrize(
    "rows",
    [
        np.random.default_rng(0).dirichlet(np.ones(3), 100).tolist(),
        [dict(zip(DOMAINS, r, strict=True)) for r in np.random.default_rng(1).dirichlet(np.ones(3), 50).tolist()],
        [{"web": 0.25, "math": 0.75}, {"code": 1}, {}],
        [[1, 0, 0], [0.5, 0.5, 0.0]],
        [],
    ],
)
def test_mixture_fast_paths_equal_the_loop(rows: list) -> None:
    problems: list[str] = []
    fast = _mixture_array(rows, DOMAINS, problems)
    slow, slow_problems = _slow(rows)
    assert fast.dtype == np.float64 and fast.shape == (len(rows), 3) and not problems and not slow_problems
    np.testing.assert_array_equal(fast, slow)


def test_mixture_bad_rows_reported_as_before() -> None:
    rows = [[0.5, 0.5, 0.0], [0.5, 0.5], {"web": 1.0, "wiki": 0.0}, {"code": 1.0}]
    model = SimpleNamespace(domains_=DOMAINS, uses_mixture=True, kind="flpm")
    with pytest.raises(SchemaError) as e:
        build_targets(model, mixtures=rows, flops=1e21, params=None, tokens=None, max_batch=500)
    assert e.value.problems == ["mixtures[1]: expected 3 ratios over ['web', 'code', 'math'], got 2", "mixtures[2]: unknown domain(s) ['wiki']; the model's domains are ['web', 'code', 'math']"]


def test_predict_route_parses_like_json_loads(client) -> None:
    """Through the route: orjson's refusals fall back to json.loads, so the answers are the schema's, as before."""
    m = fitted_model(client)
    url = f"/v1/models/{m['id']}/predict"
    h = {**A, "Content-Type": "application/json"}
    r = client.post(url, content=b'{"mixtures": [[0.2, 0.3, 0.5]], "flops": 1000000000000000000000}', headers=h)
    assert r.status_code == 200 and r.json()["flops"] == [1e21], r.text
    r = client.post(url, content=b'{"mixtures": [[0.2, 0.3, 0.5]], "flops": 1e21, "level": 123456789012345678901234567890}', headers=h)
    assert r.status_code == 422 and "got 123456789012345678901234567890" in r.text, r.text  # the int as received
    r = client.post(url, content=b'{"mixtures": [[0.2, 0.3, 0.5]], "flops": NaN}', headers=h)
    assert r.status_code == 422 and "finite" in r.text, r.text
    r = client.post(url, content=b'\xef\xbb\xbf{"mixtures": [[0.2, 0.3, 0.5]], "flops": 1e21}', headers=h)
    assert r.status_code == 200, r.text
    r = client.post(url, content=b'{"mixtures": [[0.2, 0.3, 0.5]], "flops": 1e21', headers=h)
    assert r.status_code == 400 and r.json()["error"] == "MalformedJSON", r.text
    assert "Expecting" in r.json()["message"]  # json.loads's message, not orjson's
