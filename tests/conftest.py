"""Fixtures every test folder may use: a clean failure of the command line, and a full disk."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(paths: Sequence[Path]) -> dict[Path, bytes | str | None]:
    """What is at each path now: file bytes, ``"dir"`` with its listing, or None (absent)."""
    out: dict[Path, bytes | str | None] = {}
    for p in paths:
        if p.is_dir():
            out[p] = "dir:" + ",".join(sorted(x.name for x in p.iterdir()))
        elif p.exists():
            out[p] = p.read_bytes()
        else:
            out[p] = None
    return out


def _stray_temporaries(paths: Sequence[Path]) -> list[Path]:
    """Temporary files of :mod:`mixopt._files` (``.<name>.<hex>.tmp``) left next to the targets."""
    found = []
    for p in paths:
        folder = p.parent
        if folder.is_dir():
            found += [x for x in folder.iterdir() if x.name.startswith(".") and x.name.endswith(".tmp")]
    return found


@pytest.fixture
def clean_failure(capsys) -> Callable[..., dict[str, Any]]:
    """``clean_failure(argv, targets, code=2, needle=..., subprocess=False)``: the command fails cleanly.

    Asserts: the exit code is ``code`` (2 = bad input by default); no traceback and no warning
    with a source line on stderr, which starts with ``mixopt <command>: error:`` and contains
    ``needle`` (case-insensitive); with ``--json`` in ``argv``, stdout is exactly one JSON error
    object with the same exit code; and nothing was written at any of ``targets`` (each is as it
    was before: absent, or the same bytes), with no temporary file left beside them.

    ``subprocess=True`` runs ``python -m mixopt`` in a child process (the real stderr, warnings
    included); otherwise :func:`mixopt.cli.main` runs in this process (and may be combined with
    ``monkeypatch`` fault injection). Returns ``{"stderr", "stdout", "json"}``.
    """

    def check(argv: Sequence[str], targets: Sequence[str | Path] = (), *, code: int = 2, needle: str | None = None,
              subprocess_: bool = False, cwd: Path | None = None) -> dict[str, Any]:
        argv = [str(a) for a in argv]
        paths = [Path(t) if cwd is None or Path(t).is_absolute() else cwd / t for t in targets]
        before = _snapshot(paths)
        if subprocess_:
            env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            p = subprocess.run([sys.executable, "-m", "mixopt", *argv], capture_output=True, text=True, env=env,
                               cwd=cwd, timeout=600)
            rc, out, err = p.returncode, p.stdout, p.stderr
        else:
            from mixopt.cli import main

            capsys.readouterr()
            old = Path.cwd()
            try:
                if cwd is not None:
                    os.chdir(cwd)
                rc = main(argv)
            finally:
                os.chdir(old)
            captured = capsys.readouterr()
            out, err = captured.out, captured.err
        assert rc == code, f"exit {rc}, expected {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
        assert "Traceback" not in err, err
        assert "Warning:" not in err, f"a warning with a source line before the error:\n{err}"
        command = next(a for a in argv if not a.startswith("-"))
        assert f"mixopt {command}: " in err, err
        if needle is not None:
            assert needle.lower() in err.lower(), f"{needle!r} not in:\n{err}"
        obj = None
        if "--json" in argv:
            obj = json.loads(out)
            assert obj["exit_code"] == code and obj["message"] and obj["error"], obj
        after = _snapshot(paths)
        changed = [str(p) for p in paths if before[p] != after[p]]
        assert not changed, f"written although the command failed: {changed}"
        stray = _stray_temporaries(paths)
        assert not stray, f"temporary files left behind: {stray}"
        return {"stderr": err, "stdout": out, "json": obj}

    return check


class _FullFile(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails like a full disk (the bytes taken stay on disk)."""

    def __init__(self, real: Any, room: int) -> None:
        self.real, self.room = real, room

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b) if not isinstance(b, str) else b.encode()
        take = data[: max(self.room, 0)]
        if take:
            self.real.write(take if not isinstance(b, str) else take.decode(errors="ignore"))
            self.room -= len(take)
        if len(take) < len(data):
            self.real.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    def close(self) -> None:
        self.real.close()
        super().close()

    def __exit__(self, *exc: Any) -> None:
        self.close()


@pytest.fixture
def full_disk(monkeypatch) -> Callable[..., None]:
    """``full_disk(under, room=4096)``: every file written below folder ``under`` fails with ENOSPC.

    The first ``room`` bytes of each file reach the disk (a truncated file, as a real full disk
    leaves it), then ``OSError(errno.ENOSPC)`` is raised. Covers ``Path.write_text/write_bytes``,
    ``open``/``Path.open`` for writing, polars' CSV/Parquet/JSON writers and matplotlib's
    ``savefig``: every way mixopt writes a file.
    """
    import builtins

    import matplotlib.figure
    import polars as pl

    def install(under: str | Path, room: int = 4096) -> None:
        root = Path(under).resolve()

        def inside(p: Any) -> bool:
            try:
                return Path(os.fspath(p)).resolve().is_relative_to(root)
            except TypeError:
                return False

        real_open = builtins.open

        def fake_open(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
            f = real_open(file, mode, *a, **k)
            if any(c in mode for c in "wax+") and inside(file):
                return _FullFile(f, room)
            return f

        def path_open(self: Path, mode: str = "r", *a: Any, **k: Any) -> Any:
            return fake_open(self, mode, *a, **k)

        def write_text(self: Path, data: str, encoding: str | None = None, errors: str | None = None,
                       newline: str | None = None) -> int:
            with fake_open(self, "w", encoding=encoding, errors=errors, newline=newline) as f:
                return f.write(data)

        def write_bytes(self: Path, data: bytes) -> int:
            with fake_open(self, "wb") as f:
                return f.write(data)

        def frame_writer(name: str) -> Callable[..., Any]:
            real = getattr(pl.DataFrame, name)

            def write(self: pl.DataFrame, file: Any = None, *a: Any, **k: Any) -> Any:
                if file is None or not inside(file):
                    return real(self, file, *a, **k)
                buf = io.BytesIO()
                real(self, buf, *a, **k)
                with fake_open(file, "wb") as f:
                    f.write(buf.getvalue())
                return None

            return write

        real_savefig = matplotlib.figure.Figure.savefig

        def savefig(self: Any, fname: Any, *a: Any, **k: Any) -> Any:
            if isinstance(fname, (str, os.PathLike)) and inside(fname):
                buf = io.BytesIO()
                real_savefig(self, buf, *a, **k)
                with fake_open(fname, "wb") as f:
                    f.write(buf.getvalue())
                return None
            return real_savefig(self, fname, *a, **k)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(Path, "open", path_open)
        monkeypatch.setattr(Path, "write_text", write_text)
        monkeypatch.setattr(Path, "write_bytes", write_bytes)
        for name in ("write_csv", "write_parquet", "write_ndjson", "write_json"):
            monkeypatch.setattr(pl.DataFrame, name, frame_writer(name))
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)

    return install


# -- data-gated tests ----------------------------------------------------------------------------------
#: the real public data sets (README's ``../shared/data``)
SHARED_DATA = ROOT.parent / "shared" / "data"


def needs_data(path: Path | str = SHARED_DATA) -> pytest.MarkDecorator:
    """Mark a test (or module, via ``pytestmark``) that reads ``path`` under :data:`SHARED_DATA`.

    Where the data is missing the test is skipped, except in CI (``CI=1``, set by ``.ci/run``),
    where it fails: CI must run every data test, so missing data is a broken CI set-up.
    """
    return pytest.mark.needs_data(Path(path))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data(path): reads the public data at path; skipped without it, fails under CI=1")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers(name="needs_data"):
        path = Path(mark.args[0]) if mark.args else SHARED_DATA
        if path.exists():
            continue
        if os.environ.get("CI") == "1":
            pytest.fail(f"CI=1 but the public data {path} is missing: CI runs every data test. Put the data at "
                        f"{SHARED_DATA} (README: data sets) or run outside CI to skip.", pytrace=False)
        pytest.skip(f"public data not found at {path}")


@pytest.fixture(autouse=True, scope="module")
def _no_ray_left_running():
    """A Ray that a test module started (or kept for its own tests) is shut down when the module ends,
    so that a later module's search sees the machine as it would in a fresh process: the optimize
    workflow reuses an already-connected Ray, so a Ray left behind would change where it runs."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory) -> Path:
    """A mixture-world run table as CSV: 3 domains, 3 benchmarks, 16 mixtures x 4 sizes, 4 checkpoints each."""
    from mixopt.data.readers import write_runs
    from mixopt.testing import mixture_world

    w = mixture_world(n_domains=3, n_benchmarks=3, seed=0)
    runs = w.sample_runs([2e7, 6e7, 2e8, 6e8], w.random_mixtures(16, seed=1), n_checkpoints=4, seed=2)
    return write_runs(runs, tmp_path_factory.mktemp("data") / "runs.csv")
