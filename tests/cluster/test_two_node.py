"""A real two-node Ray cluster and a real PostgreSQL study, all on this machine.

The test starts a PostgreSQL server (``initdb`` / ``pg_ctl``, as the ``postgres`` user when run as
root), a Ray head (``ray start --head``) and a second Ray node (``ray start --address``) as separate
processes, each with its own ports, temp dir and ``--num-cpus 1``, with token authentication
on (one token for the cluster, as a real cluster is run). A driver process
(:mod:`tests.cluster.driver`) connects through ``ray_address``, trains a two-run ladder and runs a
search whose study lives in PostgreSQL. The test asserts that ladder jobs and search batches ran on
both nodes (node ids), kills the worker node in the middle of the search, and checks that the study
still finishes with every trial complete and stored. Without ray or PostgreSQL the test skips,
except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._postgres import postgres_missing, postgres_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the two-node cluster test needs {what} (CI is set, so this is a failure, not a skip)")
    pytest.skip(f"needs {what}")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _free_range(width: int) -> int:
    """The first port of ``width`` consecutive free ports (Ray's worker port range)."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - width)
        try:
            socks = []
            for p in range(base, base + width):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    missing = postgres_missing()
    if missing:
        _missing(missing)
    with postgres_server() as address:
        yield f"postgresql+psycopg://{address}"


def _node_args(ports: list[int], worker_base: int) -> list[str]:
    names = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
    args = [x for name, p in zip(names, ports, strict=False) for x in (name, str(p))]
    return [*args, "--min-worker-port", str(worker_base), "--max-worker-port", str(worker_base + 39),
            "--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--disable-usage-stats"]


def _processes_under(marker: str) -> list[int]:
    """Pids of this machine's processes whose command line names ``marker`` (a node's own temp dir)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def _kill_node(marker: str, popen: subprocess.Popen | None = None) -> None:
    if popen is not None and popen.poll() is None:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in _processes_under(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    if shutil.which("ray") is None:
        _missing("Ray's `ray` command (pip install 'ray[default]')")
    root = Path(tempfile.mkdtemp(prefix="mixopt-cluster-"))
    head_dir, worker_dir = root / "head", root / "worker"
    head_dir.mkdir()
    worker_dir.mkdir()
    gcs, *head_ports = _free_ports(7)
    worker_ports = _free_ports(6)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    address = f"127.0.0.1:{gcs}"
    worker = None
    try:
        out = subprocess.run(["ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
                              "--temp-dir", str(head_dir), "--include-dashboard", "false",
                              *_node_args(head_ports, _free_range(40))],
                             env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        worker = subprocess.Popen(["ray", "start", "--address", address, "--node-ip-address", "127.0.0.1",
                                   "--temp-dir", str(worker_dir), *_node_args(worker_ports, _free_range(40)), "--block"],
                                  env=env, stdout=open(root / "worker.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        yield {"address": address, "env": env, "root": root, "worker": worker, "worker_dir": str(worker_dir)}
    finally:
        _kill_node(str(worker_dir), worker)
        _kill_node(str(head_dir))
        shutil.rmtree(root, ignore_errors=True)


def test_search_and_ladder_on_two_nodes_survive_losing_one(cluster, postgres_url, tmp_path) -> None:
    record = tmp_path / "batches.txt"
    record.touch()
    trials, batch = 512, 16
    driver = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.driver", "--address", cluster["address"], "--storage", postgres_url,
         "--record", str(record), "--workdir", str(tmp_path), "--trials", str(trials), "--batch", str(batch)],
        env=cluster["env"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until search batches ran on two nodes, then kill the worker node (raylet and its workers)
    deadline = time.time() + 180
    seen: dict[str, int] = {}
    while time.time() < deadline and driver.poll() is None:
        seen = {}
        for line in record.read_text().splitlines():
            seen[line.split()[0]] = seen.get(line.split()[0], 0) + 1
        if len(seen) >= 2 and min(seen.values()) >= 2:
            break
        time.sleep(0.2)
    if driver.poll() is not None:
        out, err = driver.communicate()
        pytest.fail(f"the driver ended before the worker node was killed (batches seen: {seen}):\n{out[-3000:]}\n{err[-4000:]}")
    assert len(seen) == 2, f"search batches ran on {seen} only; worker log: {(cluster['root'] / 'worker.log').read_text()[-2000:]}"
    killed_at = time.time()
    _kill_node(cluster["worker_dir"], cluster["worker"])
    out, err = driver.communicate(timeout=240)
    assert driver.returncode == 0, err[-4000:]
    res = json.loads(out.strip().splitlines()[-1])

    head = res["head"]
    assert len(res["nodes_at_start"]) == 2 and head in res["nodes_at_start"]
    worker_node = next(n for n in res["nodes_at_start"] if n != head)
    # the ladder: both runs trained, one on each node
    assert [r["status"] for r in res["ladder"]] == ["ok", "ok"], res["ladder"]
    assert {r["node"] for r in res["ladder"]} == {head, worker_node}, res["ladder"]
    # the search: batches on both nodes before the kill, only the head after it
    rows = [line.split() for line in record.read_text().splitlines()]
    assert {n for n, t, _ in rows if float(t) < killed_at} == {head, worker_node}
    assert {n for n, t, _ in rows if float(t) > killed_at + 5} == {head}
    # nothing lost: every trial complete, and all of them in the PostgreSQL study
    assert (res["n_trials"], res["n_complete"], res["n_failed"]) == (trials, trials, 0), res
    import optuna

    stored = optuna.load_study(study_name="two-node", storage=postgres_url).trials
    assert len(stored) == trials
    assert sorted(t.number for t in stored) == list(range(trials))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in stored)
