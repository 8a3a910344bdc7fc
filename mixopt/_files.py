"""Files written whole or not at all: the one way mixopt writes results, models, reports and uploads.

Every writer goes through :func:`atomic_path`: the content is written to a temporary file in
the target's own folder (same file system, so the rename cannot copy) and moved over the target
with :func:`os.replace` only once it is complete. A full disk, a kill or an exception half-way
leaves the target as it was (absent, or the previous complete version) and no temporary file.

:func:`check_writable` is the early check of commands that work for minutes before writing:
it refuses a folder, a missing or read-only place before the work starts.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mixopt.errors import OutputError


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


#: How Rust-backed writers (polars) report the operating system's error: "... (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def os_error_code(e: BaseException) -> int | None:
    """The ``errno`` of an I/O failure: an ``OSError``'s, or the one a polars error quotes; else None."""
    code = getattr(e, "errno", None)
    if isinstance(code, int):
        return code
    m = _RUST_OS_ERROR.search(str(e))
    return int(m.group(1)) if m else None


def describe_os_error(e: BaseException) -> str:
    """An I/O failure as a person reads it: the reason and what to do."""
    code = os_error_code(e)
    if code == errno.ENOSPC:
        return "no space left on the device; free some space or write somewhere else"
    if code == errno.EDQUOT:
        return "disk quota exceeded; free some space or write somewhere else"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (read-only place); choose a folder you can write to"
    if code == errno.EISDIR:
        return "it is a folder; give a file name"
    if code in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST):
        return ("its folder does not exist and cannot be created there (or a file is in its way); "
                "choose a folder you can write to")
    return getattr(e, "strerror", None) or str(e)


@contextmanager
def atomic_path(path: str | Path, *, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Write the whole content to the yielded path. If the block raises, the temporary file is
    removed and ``path`` is untouched; an ``OSError`` becomes :class:`OutputError` naming
    ``path`` (a full disk is said as such).

    Args:
        path: the target file; its parent folders are created.
        what: what the file is, for the message ("Pareto table", "report").
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise OutputError(f"Cannot write the {what} to {path}: it is a folder; give a file name.", errno.EISDIR)
        yield tmp
        os.replace(tmp, path)
    except OutputError:
        raise
    except Exception as e:
        code = os_error_code(e)  # polars reports a full disk as ComputeError("... (os error 28)")
        if not isinstance(e, OSError) and code is None:
            raise
        why = describe_os_error(e).replace(str(tmp), str(path))  # name the target, not the temporary file
        raise OutputError(f"Cannot write the {what} to {path}: {why}.", code or errno.EIO) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str, *, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with atomic_path(path, what=what) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes, *, what: str = "output") -> Path:
    """Write ``data`` to ``path`` whole or not at all."""
    with atomic_path(path, what=what) as tmp:
        tmp.write_bytes(data)
    return Path(path)


#: Free space below which :func:`check_writable` calls a place full before any work, bytes.
MIN_FREE_BYTES = 1 << 20


def check_writable(path: str | Path, *, what: str = "output", folder: bool = False,
                   min_free: int = MIN_FREE_BYTES) -> Path:
    """Refuse, before any work, a target that cannot be written; creates nothing that stays.

    Args:
        path: the file (or, with ``folder=True``, the folder) to be written later.
        what: what will be written, for the message.
        folder: ``path`` is a folder of files (e.g. figures) rather than one file.
        min_free: a place with less free space than this is called full now, before the work
            (the write itself is atomic anyway: a disk that fills later leaves nothing partial).

    Raises:
        OutputError: ``path`` is a folder (a file was expected), a file (a folder was
            expected), or its place cannot be written (read-only, missing permission, full).
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise OutputError(f"Cannot write the {what} to {path}: it is a folder; give a file name "
                          f"(e.g. {path / 'report.html'}).", errno.EISDIR)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"Cannot write the {what} into {path}: it is a file, not a folder.", errno.ENOTDIR)
    place = path if folder else path.parent
    existing = place
    while not existing.exists():  # the nearest folder that exists; the rest is created later
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"Cannot write the {what} to {path}: {existing} is a file, not a folder.", errno.ENOTDIR)
    probe = existing / f".mixopt-probe.{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
    except OSError as e:
        raise OutputError(f"Cannot write the {what} to {path}: {describe_os_error(e)}.", e.errno or errno.EACCES) from None
    finally:
        if probe.exists():
            probe.unlink()
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        free = None
    if free is not None and free < min_free:
        raise OutputError(f"Cannot write the {what} to {path}: the disk is full ({free} bytes free); "
                          "free some space or write somewhere else.", errno.ENOSPC)
    if path.exists() and not folder and not os.access(path, os.W_OK):
        raise OutputError(f"Cannot write the {what} to {path}: the file is read-only; "
                          "choose another name or make it writable.", errno.EACCES)
    return path


__all__ = ["OutputError", "atomic_path", "check_writable", "describe_os_error", "os_error_code", "write_bytes", "write_text"]
