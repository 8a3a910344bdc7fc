"""The lean load generator of benchmarks/bench_api.py frames responses correctly and counts every bad one as an error."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_api", ROOT / "benchmarks" / "bench_api.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _response(status: str, body: bytes, length: bool = True) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n" + (f"Content-Length: {len(body)}\r\n" if length else "")
    return head.encode() + b"\r\n" + body


def _good(batch: int) -> bytes:
    col = {"mean": [0.5] * batch, "lower": [0.4] * batch, "upper": [0.6] * batch}
    return json.dumps({"model": "m", "rows": batch, "flops": [1e21] * batch, "predictions": {"loss": col}}).encode()


async def _serve_and_load(answers: list[bytes], n: int, clients: int, batch: int) -> tuple[list[float], int, list[bytes]]:
    """A server that answers the k-th request it reads with ``answers[k % len]`` (sent in two pieces)."""
    bench = _bench()
    got: list[bytes] = []
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                got.append(head + await reader.readexactly(length))
                raw = answers[count % len(answers)]
                count += 1
                writer.write(raw[:40])
                await writer.drain()
                await asyncio.sleep(0.001)
                writer.write(raw[40:])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        lat, errors, _ = await bench._load_lean(f"http://127.0.0.1:{port}", "/v1/models/m/predict", b'{"x": 1}', clients, n, 30.0, batch)
    return lat, errors, got


def test_lean_client_accepts_good_responses_and_sends_the_request() -> None:
    lat, errors, got = asyncio.run(_serve_and_load([_response("200 OK", _good(5))], 40, 4, 5))
    assert len(lat) == 40 and errors == 0 and all(x > 0 for x in lat)
    assert len(got) == 40 and all(g.startswith(b"POST /v1/models/m/predict HTTP/1.1\r\n") and g.endswith(b'{"x": 1}') for g in got)
    assert b"Authorization: Bearer " in got[0]


@pytest.mark.parametrize(
    "bad",
    [
        _response("500 Internal Server Error", _good(5)),  # status
        _response("200 OK", _good(5), length=False),  # no Content-Length
        _response("200 OK", _good(4)),  # parses, but the wrong number of rows
        _response("200 OK", b'{"rows": 5'),  # not JSON
    ],
)
def test_lean_client_counts_bad_responses(bad: bytes) -> None:
    # every connection's first response is parsed, so a wrong body on the first request of a connection is an error
    lat, errors, _ = asyncio.run(_serve_and_load([bad], 12, 3, 5))
    assert len(lat) == 12 and errors == 12
