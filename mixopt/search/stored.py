"""A search result stored in a folder and read back exactly: the cache of a finished study's result.

:func:`save_result` writes the result's four tables (``pareto``, ``trials``, ``shortlist``,
``candidates``) as Arrow IPC files and every other field as JSON (``result.json``), then
``manifest.json`` with the format, the caller's ``key`` and the SHA-256 of each file.
:func:`load_result` gives the result back only when the manifest names the same ``key`` and
every file matches its hash; otherwise None (the caller computes the result instead).

Exact by construction: a result is stored only when every field other than the tables is a
plain JSON value (``str``, ``int``, ``float`` including NaN, ``bool``, ``None``, and lists
and ``str``-keyed dicts of them; the tuple fields are rebuilt as tuples), so what is read
back equals what was saved, type for type; anything else (a NumPy scalar in ``decision``)
is not stored and :func:`save_result` returns False. Arrow keeps every table's dtypes,
column order and values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from mixopt.search.results import SearchResult

logger = logging.getLogger(__name__)

#: ``manifest.json`` format name and version (a change of the layout bumps the version).
FORMAT = "mixopt-search-result"
VERSION = 1
MANIFEST = "manifest.json"
#: The table fields, one ``<name>.arrow`` file each.
FRAMES = ("pareto", "trials", "shortlist", "candidates")
#: The fields that are tuples in a :class:`SearchResult` (lists in JSON).
_TUPLES = ("constraints", "domains", "notes", "hypervolume_history")


def _plain(x: object) -> bool:
    """True when ``x`` round-trips through JSON unchanged, type for type."""
    t = type(x)
    if x is None or t in (str, int, float, bool):
        return True
    if t is list:
        return all(_plain(v) for v in x)  # type: ignore[attr-defined]
    if t is dict:
        return all(type(k) is str and _plain(v) for k, v in x.items())  # type: ignore[attr-defined]
    return False


def _fields(result: SearchResult) -> dict[str, Any] | None:
    """The result's non-table fields as plain JSON values; None when one is not plain."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        if f.name in FRAMES:
            continue
        v = getattr(result, f.name)
        if f.name == "objectives":
            v = [list(o) for o in v]
        elif f.name == "hypervolume_history":
            v = [dict(h) if isinstance(h, Mapping) else h for h in v]
        elif f.name in _TUPLES:
            v = list(v)
        elif isinstance(v, Mapping):
            v = dict(v)
        out[f.name] = v
    return out if _plain(out) else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_result(result: SearchResult, folder: str | Path, key: str) -> bool:
    """Store ``result`` in ``folder`` under ``key`` (replacing what was there); False when not storable.

    Written to a temporary folder beside ``folder`` and renamed into place, so a reader sees
    the old result, no result, or the new one whole. An ``OSError`` propagates (the caller
    decides whether a cache that cannot be written matters).
    """
    fields = _fields(result)
    if fields is None:
        logger.debug("Not storing the result in %s: a field is not a plain JSON value.", folder)
        return False
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.mkdir(parents=True)
        files: dict[str, str] = {}
        for name in FRAMES:
            frame: pl.DataFrame = getattr(result, name)
            p = tmp / f"{name}.arrow"
            try:
                frame.write_ipc(p)
            except Exception as e:  # noqa: BLE001 - a column Arrow cannot hold: no cache, the caller recomputes
                logger.debug("Not storing the result in %s: table %s (%s).", folder, name, e)
                return False
            files[p.name] = _sha256(p)
        text = json.dumps(fields)  # insertion order kept: the summary and the terminal list keys as computed
        (tmp / "result.json").write_text(text, encoding="utf-8")
        files["result.json"] = _sha256(tmp / "result.json")
        manifest = {"format": FORMAT, "version": VERSION, "key": key, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def stored_key(folder: str | Path) -> str | None:
    """The key ``folder`` holds a result for (None: no readable manifest)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        return None
    key = manifest.get("key")
    return key if isinstance(key, str) else None


def load_result(folder: str | Path, key: str) -> SearchResult | None:
    """The result stored in ``folder`` under ``key``; None when there is none, it was stored
    under another key or format, or a file is missing or does not match its hash."""
    folder = Path(folder)
    if stored_key(folder) != key:
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        expected = {f"{n}.arrow" for n in FRAMES} | {"result.json"}
        if set(files) != expected:
            raise ValueError(f"the manifest lists {sorted(files)}, expected {sorted(expected)}")
        data = {name: (folder / name).read_bytes() for name in files}  # each file read once: hashed, then parsed
        for name, digest in files.items():
            if hashlib.sha256(data[name]).hexdigest() != digest:
                raise ValueError(f"{name} does not match its SHA-256 in {MANIFEST}")
        fields = json.loads(data["result.json"].decode("utf-8"))
        frames = {n: pl.read_ipc(io.BytesIO(data[f"{n}.arrow"])) for n in FRAMES}
        fields["objectives"] = tuple(tuple(o) for o in fields["objectives"])
        for name in _TUPLES:
            fields[name] = tuple(fields[name])
        return SearchResult(**fields, **frames)
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as e:  # UnicodeError is a ValueError
        logger.warning("Ignoring the damaged stored result %s (%s).", folder, e)
        return None


__all__ = ["FORMAT", "FRAMES", "MANIFEST", "VERSION", "load_result", "save_result", "stored_key"]
