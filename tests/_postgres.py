"""A throw-away PostgreSQL server for the tests that need a real one (API persistence, the two-node cluster).

``initdb`` in a temporary folder, ``pg_ctl start`` on a free loopback port (as the ``postgres``
user when the tests run as root, since PostgreSQL refuses to run as root), stopped with
``-m immediate`` and deleted afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (on PATH, else Debian's newest ``/usr/lib/postgresql/*/bin``), or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(cands[-1]).parent if cands else None


def postgres_missing() -> str | None:
    """What a PostgreSQL test lacks here (the server binaries or the psycopg driver), or None when nothing."""
    if pg_bindir() is None:
        return "PostgreSQL (initdb, pg_ctl: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver (pip install 'psycopg[binary]')"
    return None


@contextmanager
def postgres_server(*, timeout: float = 180) -> Iterator[str]:
    """Start a server; yields its address ``mixopt@127.0.0.1:<port>/postgres`` (prefix a driver scheme).

    Call only when :func:`postgres_missing` is None. ``timeout``: seconds for ``initdb`` and for start-up.
    """
    bindir = pg_bindir()
    assert bindir is not None, postgres_missing()
    root = Path(tempfile.mkdtemp(prefix="mixopt-pg-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    pgdata = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    run = {"check": True, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "timeout": timeout}
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(pgdata), "-U", "mixopt", "--auth=trust", "-E", "UTF8",
                        "--no-sync"], **run)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(pgdata), "-o", opts, "-l", str(root / "log"), "-w",
                        "start"], **run)
        yield f"mixopt@127.0.0.1:{port}/postgres"
    finally:
        if (pgdata / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
