"""Load test of the HTTP API's predict route on loopback: 16 concurrent clients, 100-mixture batches.

Starts a real server (``python -m mixopt serve``, loopback only, a temporary data dir),
uploads the example runs, fits a model, then sends predict requests from ``--clients``
concurrent clients (asyncio + httpx, keep-alive connections) until ``--requests`` have
been sent or ``--duration`` seconds have passed, whichever comes first. Prints
requests/s, p50/p90/p99/max latency and the error count, next to two baselines measured
in the same run: the library's own ``predict`` on the same batch (in this process) and a
single client sending one request at a time.

    python benchmarks/bench_api.py                       # flpm, 16 clients, <= 3000 requests / 30 s
    python benchmarks/bench_api.py --method regmix --requests 1000 --duration 10

Target (issue 16): p99 <= 50 ms with 16 concurrent clients, zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "mixopt" / "examples" / "runs_3domain.csv"
KEY = "bench-key-0123456789"


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


async def _load(url: str, path: str, body: bytes, clients: int, n_max: int, duration: float) -> tuple[list[float], int, float]:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="flpm", help="surrogate to serve (default flpm)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients")
    ap.add_argument("--batch", type=int, default=100, help="mixtures per request")
    ap.add_argument("--requests", type=int, default=3000, help="most requests of the concurrent phase")
    ap.add_argument("--duration", type=float, default=30.0, help="most seconds of the concurrent phase")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    import httpx

    from mixopt.client import Client

    data = Path(tempfile.mkdtemp(prefix="mixopt-bench-api-"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "MIXOPT_API_KEYS": KEY,
           "MIXOPT_EXECUTOR": "thread"}
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mixopt", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                             str(data / "srv")], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        with Client(url, api_key=KEY) as c:
            m = c.fit(c.upload(RUNS), method=args.method)
        rng = np.random.default_rng(args.seed)
        mix = rng.dirichlet(np.ones(3), args.batch)
        flops = np.exp(rng.uniform(np.log(1e20), np.log(1e22), args.batch))
        body = json.dumps({"mixtures": mix.tolist(), "flops": flops.tolist()}).encode()
        path = f"/v1/models/{m['id']}/predict"

        # baseline 1: the library's predict on the same batch, in this process
        from mixopt.surrogate import Targets, load_surrogate

        model = load_surrogate(data / "srv" / "models" / m["id"])
        targets = Targets(flops=flops, mixture=mix, domains=("web", "code", "math"))
        model.predict(targets)
        lib = []
        for _ in range(50):
            t0 = time.perf_counter()
            model.predict(targets)
            lib.append(time.perf_counter() - t0)
        # baseline 2: one client, one request at a time (also warms the server's model cache)
        single, serr, _ = asyncio.run(_load(url, path, body, 1, 100, args.duration))
        # the load test (server and client CPU time measured around it: figures that the machine's load does not inflate)
        h0, srv0, cli0 = httpx.get(url + "/health").json(), _cpu_s(proc.pid), time.process_time()
        lat, errors, wall = asyncio.run(_load(url, path, body, args.clients, args.requests, args.duration))
        srv_cpu, cli_cpu, h1 = _cpu_s(proc.pid) - srv0, time.process_time() - cli0, httpx.get(url + "/health").json()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    ms = 1000.0
    out = {
        "method": args.method, "batch": args.batch, "clients": args.clients, "requests": len(lat), "errors": errors + serr,
        "wall_s": round(wall, 2), "requests_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(_pct(lat, 50) * ms, 2), "p90_ms": round(_pct(lat, 90) * ms, 2), "p99_ms": round(_pct(lat, 99) * ms, 2),
        "max_ms": round(max(lat) * ms, 2),
        "single_client_p50_ms": round(_pct(single, 50) * ms, 2), "single_client_p99_ms": round(_pct(single, 99) * ms, 2),
        "library_predict_median_ms": round(statistics.median(lib) * ms, 2),
        "server_cpu_ms_per_request": round(srv_cpu / max(len(lat), 1) * ms, 2),
        "client_cpu_ms_per_request": round(cli_cpu / max(len(lat), 1) * ms, 2),
        "predict_calls": h1["predict"]["calls"] - h0["predict"]["calls"],
        "cpus": len(os.sched_getaffinity(0)), "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    out["requests_per_predict_call"] = round(len(lat) / max(out["predict_calls"], 1), 1)
    out["p99_over_library"] = round(out["p99_ms"] / out["library_predict_median_ms"], 1)
    out["target_met"] = bool(out["p99_ms"] <= 50.0 and out["errors"] == 0)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"predict, {args.batch} mixtures/request, {args.method}, {args.clients} concurrent clients on loopback "
              f"({out['cpus']} CPUs, 1-min load average {out['load_avg_1m']}: a shared machine)")
        print(f"  {out['requests']} requests in {out['wall_s']} s: {out['requests_per_s']} req/s, {out['errors']} errors")
        print(f"  latency p50 {out['p50_ms']} ms, p90 {out['p90_ms']} ms, p99 {out['p99_ms']} ms, max {out['max_ms']} ms")
        print(f"  baselines: library predict {out['library_predict_median_ms']} ms (median, in process); "
              f"one client alone p50 {out['single_client_p50_ms']} ms, p99 {out['single_client_p99_ms']} ms")
        print(f"  CPU per request: server {out['server_cpu_ms_per_request']} ms, client {out['client_cpu_ms_per_request']} ms; "
              f"{out['requests_per_predict_call']} requests merged per predict call")
        print(f"  p99 / library predict = {out['p99_over_library']}x; target p99 <= 50 ms, 0 errors: "
              f"{'met' if out['target_met'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
