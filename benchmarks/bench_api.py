"""Load test of the HTTP API's predict route on loopback: 16 concurrent clients, 100-mixture batches.

Starts a real server (``python -m mixopt serve``, loopback only, a temporary data dir),
uploads the example runs, fits a model, then sends predict requests from ``--clients``
concurrent clients (a closed loop: each sends its next request when its last one is
answered) until ``--requests`` have been sent or ``--duration`` seconds have passed,
whichever comes first. Prints a table of requests/s, p50/p90/p99/max latency, the error
count and the CPU milliseconds per request of the server and of the load generator, for
the default server and, measured in the same run, a server without the garbage-collector
freeze (``MIXOPT_GC_FREEZE=0``: the default before it) and a server that makes one model
call per request (``MIXOPT_PREDICT_MERGE=0``) instead of merging concurrent requests; the
library's own ``predict`` on the same batch (in this process) and one client alone too.

The load generator runs on the same CPUs as the server, so what it costs limits the
server: by default it is a lean one (raw asyncio connections, keep-alive HTTP/1.1, the
request's bytes encoded once, responses framed by status line and ``Content-Length``, and
the first response of each connection parsed and checked), which costs ~0.07 ms CPU per
request where the httpx ``AsyncClient`` (``--client httpx``, the generator before) costs ~1.2 ms.

    python benchmarks/bench_api.py                       # flpm, 16 clients, <= 3000 requests / 30 s
    python benchmarks/bench_api.py --requests 1000 --duration 15 --compare-clients
    python benchmarks/bench_api.py --baseline-root DIR   # also the server of DIR's mixopt (before/after)

Target (issue 21): p99 <= 25 ms with 16 concurrent clients on a quiet machine, zero errors (issue 16's
was 50 ms). The CPU milliseconds per request are printed too: unlike the latencies they
hardly depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "mixopt" / "examples" / "runs_3domain.csv"
KEY = "bench-key-0123456789"
#: p99 latency target of the default server, ms (issue 21)
P99_TARGET_MS = 25.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


async def _load_httpx(url: str, path: str, body: bytes, clients: int, n_max: int, duration: float) -> tuple[list[float], int, float]:
    """The httpx load generator (``--client httpx``): one ``httpx.AsyncClient``, ``clients`` keep-alive connections."""
    import httpx

    lat: list[float] = []
    errors = 0
    sent = 0
    t_end = time.perf_counter() + duration
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, errors
        while sent < n_max and time.perf_counter() < t_end:
            sent += 1
            t0 = time.perf_counter()
            try:
                r = await client.post(path, content=body, headers=headers)
                ok = r.status_code == 200 and len(r.content) > 0
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - t0)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return lat, errors, wall


class LeanError(Exception):
    """A response the lean client cannot accept (status, framing, or the verified body)."""


class _LeanConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a pre-encoded request and frames the response.

    Framing reads the status line and ``Content-Length`` only, then waits for exactly that many body
    bytes (a response without ``Content-Length``, or with chunked encoding, is an error: the server
    under test always sends one). The arrival time of the body's last byte is recorded in
    ``data_received``, as wrk does, so the event loop's scheduling after it is not counted.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1  # total bytes of the response being read (headers + body), -1 until the headers are complete
        self.head = b""
        self.waiter: asyncio.Future[tuple[bytes, bytes, float]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(LeanError(f"connection closed mid-response ({exc or 'by the server'})"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = bytes(self.buf[:end])
            i = self.head.lower().find(b"\r\ncontent-length:")
            if i < 0:
                self._fail("response without Content-Length")
                return
            j = self.head.find(b"\r\n", i + 2)
            self.need = end + 4 + int(self.head[i + 17 : j if j > 0 else len(self.head)])
        if len(self.buf) >= self.need:
            t = time.perf_counter()
            if len(self.buf) > self.need:
                self._fail(f"{len(self.buf) - self.need} bytes beyond Content-Length (no pipelining was asked for)")
                return
            body = bytes(self.buf[len(self.head) + 4 :])
            self.buf.clear()
            self.need = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result((self.head, body, t))

    def _fail(self, why: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(LeanError(why))
        if self.transport is not None:
            self.transport.close()

    async def request(self, raw: bytes, timeout: float) -> tuple[bytes, bytes, float]:
        """Send ``raw`` and return ``(status line and headers, body, arrival time of the last byte)``."""
        if self.closed or self.transport is None:
            raise LeanError("connection closed")
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.transport.write(raw)
        timer = loop.call_later(timeout, self._fail, f"no complete response within {timeout:g} s")
        try:
            return await self.waiter
        finally:
            timer.cancel()


def _verify(body: bytes, batch: int) -> None:
    """Parse one predict response fully: ``rows`` = the batch, every column of every quantity ``batch`` long."""
    obj = json.loads(body)
    if obj.get("rows") != batch or len(obj.get("flops", ())) != batch or not obj.get("predictions"):
        raise LeanError(f"predict response with rows={obj.get('rows')!r} and {len(obj.get('flops', ()))} flops; expected {batch}")
    for q, cols in obj["predictions"].items():
        for name, col in cols.items():
            if len(col) != batch:
                raise LeanError(f"predictions[{q!r}][{name!r}] has {len(col)} values; expected {batch}")


async def _load_lean(url: str, path: str, body: bytes, clients: int, n_max: int, duration: float, batch: int) -> tuple[list[float], int, float]:
    """The lean load generator (default): raw asyncio connections, keep-alive HTTP/1.1, pre-encoded request bytes.

    Each response's status must be 200 and its whole body (``Content-Length`` bytes) must arrive; the
    first response on each connection is also parsed as JSON and checked (:func:`_verify`). Any other
    outcome counts as an error; a connection that fails is replaced by a new one.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    raw = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    errors = 0
    sent = 0
    t_end = time.perf_counter() + duration

    async def connect() -> _LeanConnection:
        _, proto = await loop.create_connection(_LeanConnection, host, int(port))
        return proto

    async def worker() -> None:
        nonlocal sent, errors
        conn, verified = await connect(), False
        while sent < n_max and time.perf_counter() < t_end:
            sent += 1
            t0 = time.perf_counter()
            try:
                head, payload, t1 = await conn.request(raw, 30.0)
                if not head.startswith(b"HTTP/1.1 200 "):
                    raise LeanError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                if not verified:
                    _verify(payload, batch)
                    verified = True
                lat.append(t1 - t0)
            except (LeanError, OSError, ValueError):
                lat.append(time.perf_counter() - t0)
                errors += 1
                if conn.transport is not None:
                    conn.transport.close()
                conn, verified = await connect(), False
        if conn.transport is not None:
            conn.transport.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return lat, errors, time.perf_counter() - t0


def _load(client: str, url: str, path: str, body: bytes, clients: int, n_max: int, duration: float, batch: int) -> tuple[list[float], int, float]:
    """``(latencies in s, errors, wall s)`` of a closed loop: ``clients`` workers, each one request at a time."""
    if client == "httpx":
        return asyncio.run(_load_httpx(url, path, body, clients, n_max, duration))
    return asyncio.run(_load_lean(url, path, body, clients, n_max, duration, batch))


def _serve(data: Path, port: int, env: dict[str, str], root: Path = ROOT) -> subprocess.Popen[bytes]:
    """``mixopt serve`` from the checkout ``root`` (its working directory: ``python -m`` puts it first on the path)."""
    import httpx

    log = (data / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mixopt", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data / "srv")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=root,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start; see {log.name}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _phase(url: str, pid: int, path: str, body: bytes, args: argparse.Namespace, client: str) -> dict[str, float]:
    import httpx

    load = functools.partial(_load, client, url, path, body, batch=args.batch)
    single, serr, _ = load(1, 100, args.duration)  # also warms the model cache
    # concurrent warm-up, not measured: the first concurrent second of a fresh server stalls (~1 s seen in every
    # first phase: first calls at new batch shapes, allocator growth), which would otherwise decide the p99
    load(args.clients, 300, args.duration)
    h0, srv0, cli0 = httpx.get(url + "/health").json(), _cpu_s(pid), time.process_time()
    lat, errors, wall = load(args.clients, args.requests, args.duration)
    srv_cpu, cli_cpu, h1 = _cpu_s(pid) - srv0, time.process_time() - cli0, httpx.get(url + "/health").json()
    ms, n = 1000.0, max(len(lat), 1)
    calls = h1["predict"]["calls"] - h0["predict"]["calls"]
    return {
        "requests": len(lat),
        "errors": errors + serr,
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(_pct(lat, 50) * ms, 2),
        "p90_ms": round(_pct(lat, 90) * ms, 2),
        "p99_ms": round(_pct(lat, 99) * ms, 2),
        "max_ms": round(max(lat) * ms, 2),
        "single_client_p50_ms": round(_pct(single, 50) * ms, 2),
        "single_client_p99_ms": round(_pct(single, 99) * ms, 2),
        "server_cpu_ms_per_request": round(srv_cpu / n * ms, 2),
        "client_cpu_ms_per_request": round(cli_cpu / n * ms, 2),
        "requests_per_model_call": round(len(lat) / calls, 1) if calls else 1.0,
    }


async def _asgi_direct(data_dir: str, model_id: str, body: bytes, n: int, clients: int) -> dict[str, float]:
    """CPU per predict request of the app itself, without HTTP: its ASGI callable awaited with a prepared scope.

    Runs the app's lifespan on ``data_dir`` (a stopped server's folder), warms up with 50 requests, then
    ``n`` requests from ``clients`` concurrent tasks; returns the process's CPU ms per request and the
    event-loop thread's (the model calls run in the server's predict threads).
    """
    from mixopt.api.app import create_app
    from mixopt.api.settings import Settings

    app = create_app(Settings.from_env({"MIXOPT_DATA_DIR": data_dir, "MIXOPT_API_KEYS": KEY, "MIXOPT_EXECUTOR": "thread"}))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    if (await outbox.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the app did not start")
    path = f"/v1/models/{model_id}/predict"
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # never: the body was read whole
            return {"type": "http.disconnect"}

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status.append(msg["status"])

        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"predict answered {status}")

    import threading

    for t in threading.enumerate():  # the app opens its study storage in a thread (imports optuna): not a request's cost
        if t.name == "mixopt-open-studies":
            t.join(60)
    for _ in range(50):
        await one()

    async def worker(k: int) -> None:
        for _ in range(k):
            await one()

    c0, t0 = time.process_time(), time.thread_time()
    await asyncio.gather(*(worker(n // clients) for _ in range(clients)))
    c1, t1 = time.process_time(), time.thread_time()
    done = n // clients * clients
    await inbox.put({"type": "lifespan.shutdown"})
    await life
    return {"process_cpu_ms_per_request": (c1 - c0) / done * 1000, "loop_thread_cpu_ms_per_request": (t1 - t0) / done * 1000}


def _asgi_phase(root: Path, data: Path, model_id: str, body: bytes, n: int, clients: int, env: dict[str, str]) -> dict[str, float]:
    """:func:`_asgi_direct` in a fresh process running the checkout ``root``'s mixopt."""
    (data / "body.json").write_bytes(body)
    code = (
        f"import asyncio, json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench_api; "
        f"print(json.dumps(asyncio.run(bench_api._asgi_direct({str(data / 'srv')!r}, {model_id!r}, "
        f"open({str(data / 'body.json')!r}, 'rb').read(), {n}, {clients}))))"
    )
    run_env = {**env, "PYTHONPATH": str(root) + os.pathsep + env.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=run_env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the in-process measurement of {root} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="flpm", help="surrogate to serve (default flpm)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients")
    ap.add_argument("--batch", type=int, default=100, help="mixtures per request")
    ap.add_argument("--requests", type=int, default=3000, help="most requests of each concurrent phase")
    ap.add_argument("--duration", type=float, default=30.0, help="most seconds of each concurrent phase")
    ap.add_argument("--client", choices=("lean", "httpx"), default="lean", help="load generator: lean (raw asyncio HTTP/1.1, default) or httpx (the AsyncClient, ~10x the client CPU)")
    ap.add_argument("--compare-clients", action="store_true", help="also measure the default server with the other load generator")
    ap.add_argument(
        "--baseline-root", type=Path, default=None, help="also measure the default server run from this checkout's mixopt (e.g. `git archive COMMIT mixopt | tar -x -C DIR`): before/after in one run"
    )
    ap.add_argument("--asgi-pairs", type=int, default=0, help="also measure the app without HTTP (its ASGI callable, 1600 requests, 16 at a time) this many times, alternating with --baseline-root's")
    ap.add_argument("--blas-threads", type=int, default=1, help="BLAS threads of the server (1: no oversubscription; 0: library default)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline servers (no gc freeze; one model call per request)")
    ap.add_argument("--baseline-first", action="store_true", help="measure the baseline servers first, in reverse order (checks order effects)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    from mixopt.client import Client
    from mixopt.surrogate import Targets, load_surrogate

    load0 = os.getloadavg()[0]
    data = Path(tempfile.mkdtemp(prefix="mixopt-bench-api-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "MIXOPT_API_KEYS": KEY, "MIXOPT_EXECUTOR": "thread"}
    if args.blas_threads > 0:
        env.update({v: str(args.blas_threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    rng = np.random.default_rng(args.seed)
    mix = rng.dirichlet(np.ones(3), args.batch)
    flops = np.exp(rng.uniform(np.log(1e20), np.log(1e22), args.batch))
    body = json.dumps({"mixtures": mix.tolist(), "flops": flops.tolist()}).encode()
    phases: dict[str, dict[str, float]] = {}
    # the model is fitted by a server that is then stopped: the measured servers only load it (a server that
    # has just fitted stalls once for ~1 s later, which decided the p99 of whichever phase came first)
    port = _port()
    proc = _serve(data, port, env)
    try:
        with Client(f"http://127.0.0.1:{port}", api_key=KEY) as c:
            m = c.fit(c.upload(RUNS), method=args.method)
    finally:
        _stop(proc)
    other = "httpx" if args.client == "lean" else "lean"
    # (phase name, server environment, load generator, checkout the server runs from)
    servers = [("default", {}, args.client, ROOT)]
    if args.compare_clients:
        servers.append((f"default, {other} client", {}, other, ROOT))
    if args.baseline_root is not None:
        if not (args.baseline_root / "mixopt" / "__init__.py").is_file():
            ap.error(f"--baseline-root must be a folder holding a mixopt package (mixopt/__init__.py), got {args.baseline_root}")
        base_path = str(args.baseline_root.resolve()) + os.pathsep + os.environ.get("PYTHONPATH", "")
        servers.append((f"default at {args.baseline_root}", {"PYTHONPATH": base_path}, args.client, args.baseline_root.resolve()))
    if not args.no_baseline:
        servers += [("without_gc_freeze", {"MIXOPT_GC_FREEZE": "0"}, args.client, ROOT), ("one_call_per_request", {"MIXOPT_PREDICT_MERGE": "0"}, args.client, ROOT)]
    for name, extra, client, root in servers[::-1] if args.baseline_first else servers:
        port = _port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve(data, port, {**env, **extra}, root)
        try:
            phases[name] = {**_phase(url, proc.pid, f"/v1/models/{m['id']}/predict", body, args, client), "client": client}
        finally:
            _stop(proc)

    asgi: dict[str, list[dict[str, float]]] = {}
    roots = [("this checkout", ROOT)] + ([(f"at {args.baseline_root}", args.baseline_root.resolve())] if args.baseline_root is not None else [])
    for _ in range(args.asgi_pairs):
        for label, root in roots:
            asgi.setdefault(label, []).append(_asgi_phase(root, data, m["id"], body, 1600, args.clients, env))

    # baseline: the library's predict on the same batch, in this process
    model = load_surrogate(data / "srv" / "models" / m["id"])
    targets = Targets(flops=flops, mixture=mix, domains=("web", "code", "math"))
    model.predict(targets)
    lib = []
    for _ in range(50):
        t0 = time.process_time()
        model.predict(targets)
        lib.append(time.process_time() - t0)
    lib_ms = statistics.median(lib) * 1000
    cpus = len(os.sched_getaffinity(0))
    out = {
        "method": args.method,
        "batch": args.batch,
        "clients": args.clients,
        "library_predict_median_cpu_ms": round(lib_ms, 2),
        "cpus": cpus,
        "load_avg_1m_start": round(load0, 2),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
        **phases,
        "asgi_direct": asgi,
    }
    main_phase = phases["default"]
    out["target_met"] = bool(main_phase["p99_ms"] <= P99_TARGET_MS and main_phase["errors"] == 0)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(
        f"predict, {args.batch} mixtures/request, {args.method}, {args.clients} concurrent clients on loopback "
        f"({cpus} CPUs, 1-min load average {out['load_avg_1m_start']} at the start, {out['load_avg_1m_end']} at the end); "
        f"library predict alone {out['library_predict_median_cpu_ms']} CPU ms (median, in process)"
    )
    cols = ("server", "client", "requests", "req/s", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "server CPU ms/req", "client CPU ms/req", "req/model call", "1 client p50 ms", "1 client p99 ms")
    rows = [
        (
            name,
            f["client"],
            f["requests"],
            f["requests_per_s"],
            f["errors"],
            f["p50_ms"],
            f["p90_ms"],
            f["p99_ms"],
            f["max_ms"],
            f["server_cpu_ms_per_request"],
            f["client_cpu_ms_per_request"],
            f["requests_per_model_call"],
            f["single_client_p50_ms"],
            f["single_client_p99_ms"],
        )
        for name, f in phases.items()
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    # closed loop: the clients keep `clients` requests outstanding, so mean latency = clients / throughput (Little's law),
    # and server and load generator share the CPUs: throughput <= cpus / (server + client CPU per request)
    cpu_ms = main_phase["server_cpu_ms_per_request"] + main_phase["client_cpu_ms_per_request"]
    if cpu_ms > 0:
        bound = cpus / cpu_ms * 1000.0
        print(
            f"  default server: server + client CPU {cpu_ms:.2f} ms/request on {cpus} CPUs -> at most {bound:.0f} req/s, "
            f"so mean latency >= {args.clients / bound * 1000:.1f} ms (Little's law; measured mean-equivalent "
            f"{args.clients / main_phase['requests_per_s'] * 1000:.1f} ms)"
        )
    for label, runs in asgi.items():
        loop_ms = [r["loop_thread_cpu_ms_per_request"] for r in runs]
        proc_ms = [r["process_cpu_ms_per_request"] for r in runs]
        print(
            f"  app without HTTP ({label}, {len(runs)} runs of 1600 requests, {args.clients} at a time): CPU ms/request "
            f"event-loop thread mean {statistics.mean(loop_ms):.3f} (runs {', '.join(f'{x:.3f}' for x in loop_ms)}), "
            f"whole process mean {statistics.mean(proc_ms):.3f} (runs {', '.join(f'{x:.3f}' for x in proc_ms)})"
        )
    for name, what in (("without_gc_freeze", "without gc.freeze (MIXOPT_GC_FREEZE=0)"), ("one_call_per_request", "one call per request")):
        if name in phases:
            b = phases[name]
            print(
                f"  default / {what}, same run: throughput x{main_phase['requests_per_s'] / b['requests_per_s']:.2f}, "
                f"p50 x{main_phase['p50_ms'] / b['p50_ms']:.2f}, p99 x{main_phase['p99_ms'] / b['p99_ms']:.2f}, "
                f"server CPU/request x{main_phase['server_cpu_ms_per_request'] / b['server_cpu_ms_per_request']:.2f}"
            )
    print(f"  target p99 <= {P99_TARGET_MS:g} ms, 0 errors (default server, {args.client} client): {'met' if out['target_met'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
