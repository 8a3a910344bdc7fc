"""Start local training jobs by forking one process that has imported the trainer already.

A job started as ``python -m mixopt.train.worker JOB_DIR`` pays, before its first training step, for a fresh
interpreter and the trainer's imports: for the reference trainer about 2.1 CPU-s, ~1.9 of them ``import torch`` and
``torch._dynamo`` (which torch's AdamW imports). A :class:`JobServer` is one process per batch of jobs
(``python -m mixopt.train.forkserver``, started by :class:`~mixopt.train.executors.LocalJobExecutor`) that imports
once what the trainer's jobs import (:meth:`~mixopt.train.spec.Trainer.preload`), prepares what they only read
(:meth:`~mixopt.train.spec.Trainer.warm`: the reference trainer's evaluation sets), and then forks one child per job.

Every job still runs in its own process, in its own process group (and session), with its log in ``JOB_DIR/log.txt``
and its exit status reported as before, so a job that fails, crashes or is killed at its budget is that job's
failure and the other jobs go on. Nothing a job changes reaches another job: the server never trains, never runs a
torch operation and never sets torch's threads or RNGs, so every child starts from the same state, the one the
server had after its imports; what one child changes dies with it. The children start with the signal handlers of a
fresh interpreter.

Forking is safe here because the server stays idle between forks: its only threads are the allocator's background
threads and polars' idle spill cleaner (polars' compute pool, whose threads a child would wait on forever, must not
exist: the server checks before every fork and starts the job as a fresh interpreter when it does).

Protocol, one JSON object per line: the executor writes ``{"trainer": {...}}`` once, then ``{"run": JOB_DIR}`` per
job, and closes the pipe at the end; the server answers ``{"ready": ...}``, then ``{"started": JOB_DIR, "pid": PID}``
for each job and ``{"exit": PID, "returncode": RC}`` as each ends (``RC`` as :attr:`subprocess.Popen.returncode`:
negative for a signal). When its input closes (the executor finished, was interrupted or died) the server kills the
jobs still running, waits for them and exits.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError

logger = logging.getLogger(__name__)

#: the server's own log (its start-up, its CPU-s at the end, a traceback should it fail), in the executor's workdir
SERVER_LOG = "job_server.log"
#: seconds the executor waits for the server to start, to fork a job, or to finish after its input closed
SERVER_WAIT_S = 120.0


def _polars_pool_started() -> bool:
    """Whether polars' compute threads exist in this process (their names are ``polars-<n>``)."""
    try:
        names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
    except OSError:
        return True  # cannot tell: do not fork
    return any(n.startswith("polars-") and n[7:].isdigit() for n in names)


def fork_supported() -> bool:
    """Jobs are forked on Linux only (elsewhere, e.g. macOS, forking a process that has imported torch is not safe)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


# -- the server ------------------------------------------------------------------------------------------------------
def _child(job_dir: str, protocol_fds: tuple[int, ...]) -> None:
    """In a forked child: become a job process as ``python -m mixopt.train.worker JOB_DIR`` would be, run, exit."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log = os.open(os.path.join(job_dir, "log.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in {log, null, *protocol_fds} - {0, 1, 2}:
            os.close(fd)
        os.chdir(job_dir)
        from mixopt.train.worker import main

        code = main([job_dir])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # a bug, as in a fresh worker: the traceback goes to the job's log
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


class _Server:
    """The server's state: its trainer, its running children, its pipes."""

    def __init__(self) -> None:
        self.children: set[int] = set()
        self.buf = b""
        self.trainer: Any = None
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.forked = 0
        self.private_fds: tuple[int, ...] = (self.wake_r, self.wake_w)

    def send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(1, data):]

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                self.send({"exit": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def start(self, job_dir: str) -> None:
        if self.trainer is not None:
            try:
                from mixopt.train.spec import JobSpec
                from mixopt.train.worker import JOB_FILE

                spec = JobSpec.from_dict(json.loads(Path(job_dir, JOB_FILE).read_text())["spec"])
                self.trainer.warm(spec)
            except Exception as e:  # noqa: BLE001  the job meets the same problem and reports it
                logger.info("not warmed for %s: %s: %s", job_dir, type(e).__name__, e)
        if _polars_pool_started():
            self.send({"started": job_dir, "pid": None, "why": "polars' compute threads exist in the job server"})
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(job_dir, self.private_fds)
        self.forked += 1
        self.children.add(pid)
        self.send({"started": job_dir, "pid": pid})

    def lines(self) -> list[dict[str, Any]] | None:
        """The messages read from the executor (None: its pipe closed)."""
        data = os.read(0, 65536)
        if not data:
            return None
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in done if x.strip()]

    def stop(self) -> None:
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.children.clear()


def serve() -> int:
    """The server's loop (``python -m mixopt.train.forkserver``, stdin and stdout are the executor's pipes)."""
    from mixopt.train.worker import configure_logging

    configure_logging()
    srv = _Server()
    signal.set_wakeup_fd(srv.wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(srv.wake_r, selectors.EVENT_READ)
    srv.private_fds = (srv.wake_r, srv.wake_w, sel.fileno())
    try:
        while True:
            for key, _ in sel.select():
                if key.fd == srv.wake_r:
                    try:
                        os.read(srv.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    srv.reap()
                    continue
                msgs = srv.lines()
                if msgs is None:
                    return 0
                for m in msgs:
                    if "trainer" in m:
                        from mixopt.train.spec import make_trainer

                        try:
                            srv.trainer = make_trainer(m["trainer"]["kind"], **m["trainer"].get("settings", {}))
                            srv.trainer.preload()
                        except Exception as e:  # noqa: BLE001  every job meets it and reports it
                            logger.info("trainer not preloaded: %s: %s", type(e).__name__, e)
                            srv.trainer = None
                        logger.info("job server ready: %.2f CPU-s of start-up and imports", time.process_time())
                        srv.send({"ready": True, "cpu_s": time.process_time()})
                    elif "run" in m:
                        srv.start(str(m["run"]))
                srv.reap()
    finally:
        srv.stop()
        ch = os.times()
        logger.info("job server done: %d job(s) forked; %.2f CPU-s of its own (start-up, imports, shared evaluation sets), "
                    "the jobs %.1f CPU-s", srv.forked, time.process_time(), ch.children_user + ch.children_system)


# -- the executor's side -------------------------------------------------------------------------------------------
class JobServerError(MixoptError, RuntimeError):
    """The job server could not start a job or exited while jobs ran."""


class JobServer:
    """The executor's handle of one job server (see the module docstring).

    Args:
        trainer: the trainer's ``{"kind": ..., "settings": {...}}`` (as in a job file).
        log_path: where the server's own log goes.
    """

    def __init__(self, trainer: dict[str, Any], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "mixopt.train.forkserver"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        finally:
            log.close()
        self.log_path = log_path
        self.returncodes: dict[int, int] = {}
        self._buf = b""
        self._pending: list[dict[str, Any]] = []
        self._out = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._out, selectors.EVENT_READ)
        try:
            self._send({"trainer": trainer})
            self._expect("ready")
        except BaseException:
            self.close(wait_s=0.0)
            raise

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self._out >= 0

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError) as e:
            raise JobServerError(f"the job server is gone ({e}); its log: {self.log_path}") from None

    def _read(self, timeout: float | None) -> bool:
        """Read what the server wrote within ``timeout`` seconds; False when its output closed."""
        if self._out < 0:
            return False
        if not self._sel.select(timeout):
            return True
        data = os.read(self._out, 65536)
        if not data:
            self._sel.unregister(self._out)
            self._out = -1
            return False
        self._buf += data
        *done, self._buf = self._buf.split(b"\n")
        for line in done:
            if line.strip():
                m = json.loads(line)
                if "exit" in m:
                    self.returncodes[int(m["exit"])] = int(m["returncode"])
                else:
                    self._pending.append(m)
        return True

    def _expect(self, key: str) -> dict[str, Any]:
        deadline = time.perf_counter() + SERVER_WAIT_S
        while True:
            for i, m in enumerate(self._pending):
                if key in m:
                    return self._pending.pop(i)
            left = deadline - time.perf_counter()
            if left <= 0 or not self._read(left):
                raise JobServerError(f"the job server did not answer ({key!r}; exit {self.proc.poll()}); its log: {self.log_path}")

    def start(self, job_dir: Path) -> int | None:
        """Fork the job of a prepared job folder; its process id (also its process group's), or None when the
        server declines to fork (the reason is logged) and the job is to be started as a fresh interpreter."""
        self._send({"run": str(job_dir)})
        m = self._expect("started")
        if m.get("pid") is None:
            logger.warning("job %s not forked: %s; starting it as a fresh interpreter", job_dir, m.get("why"))
            return None
        return int(m["pid"])

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for news (a job's exit); False when the server's output closed."""
        return self._read(timeout)

    def close(self, wait_s: float = SERVER_WAIT_S) -> None:
        """Close the server's input (it kills the jobs still running) and wait for it to exit (killed after ``wait_s``)."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._sel.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve())
