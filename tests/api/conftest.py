"""Fixtures of the API tests: in-process apps (TestClient) and real server processes (uvicorn)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient  # noqa: E402

from mixopt.api import Settings, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "mixopt" / "examples"
RUNS = EXAMPLES / "runs_3domain.csv"
KEY_A = "key-a-0123456789"
KEY_B = "key-b-9876543210"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}

#: A small search over the example's 3 domains (regmix surrogate: fits in milliseconds).
SEARCH = {
    "compute": {"flops": [1e21, 1e22]},
    "domains": {"web": {"floor": 0.3}, "math": {"cap": 0.3}},
    "objectives": {"optimize": ["score:humaneval", "score:hellaswag"], "constraints": ["score:gsm8k >= 0.2"]},
    "search": {"trials": 48, "batch_size": 16, "seed": 0},
}


#: Merged and separate predictions agree to rounding: BLAS sums in another order for another batch shape.
MERGE_RTOL = 1e-9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(data_dir: Path, **kw: object) -> Settings:
    base = dict(data_dir=data_dir, executor="thread", api_keys=(KEY_A, KEY_B), max_jobs_per_key=2,
                max_upload_bytes=2 * 2**20, max_request_bytes=2**20, max_batch=500, max_trials=5000,
                gc_freeze=False)  # in-process apps share pytest's heap: no gc.freeze there (live servers keep the default)
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One in-process app per test module (creating the databases takes a second or two)."""
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("app") / "data")), raise_server_exceptions=False) as c:
        yield c


def upload(c: TestClient, headers: dict[str, str] = A) -> dict:
    with RUNS.open("rb") as fh, RUNS.with_name("runs_3domain.benchmarks.json").open("rb") as side:
        r = c.post("/v1/datasets", files={"runs": ("runs.csv", fh), "benchmarks": ("runs.benchmarks.json", side)}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def wait_for(c: TestClient, path: str, done: tuple[str, ...], headers: dict[str, str] = A, timeout: float = 60.0) -> dict:
    t0 = time.monotonic()
    while True:
        r = c.get(path, headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] in done:
            return r.json()
        assert time.monotonic() - t0 < timeout, f"{path} still {r.json()['status']}"
        time.sleep(0.05)


def fitted_model(c: TestClient, method: str = "regmix", headers: dict[str, str] = A) -> dict:
    ds = upload(c, headers)
    r = c.post("/v1/models", json={"dataset": ds["id"], "method": method}, headers=headers)
    assert r.status_code == 202, r.text
    m = wait_for(c, f"/v1/models/{r.json()['id']}", ("ready", "failed"), headers)
    assert m["status"] == "ready", m
    return m


class Server:
    """A real ``python -m mixopt serve`` process on a free loopback port."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "MIXOPT_API_KEYS": f"{KEY_A},{KEY_B}", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> Server:
        import httpx

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mixopt", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env, cwd=str(ROOT), stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server and everything it started (its session: Ray included)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with the default executor (a local Ray, 1 CPU), shared by a module's tests."""
    s = Server(tmp_path_factory.mktemp("ray") / "srv", {"MIXOPT_RAY_NUM_CPUS": "1"}).start()
    yield s
    s.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None) -> Server:
        s = Server(data_dir or tmp_path / "srv", env)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:  # throw-away data: no need for a graceful stop (the Ray server fixture tests that path)
        s.kill()
