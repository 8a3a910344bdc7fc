"""Shared parse helpers of the TOML project config: every problem is collected, then raised at once.

Each helper reads one key of a table, checks it, and on a bad value records a line naming the
key, the value received and what is needed (:class:`_Problems`), returning the default so that
parsing goes on and every problem is reported together.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from mixopt.errors import ConfigError


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, key: str, value: Any, need: str) -> None:
        self.items.append(f"{key} = {value!r}: {need}")

    def raise_if_any(self) -> None:
        if self.items:
            head = f"Invalid config {self.source}: {len(self.items)} problem(s):"
            raise ConfigError(head + "\n" + "\n".join(f"  - {p}" for p in self.items))


def _suggest(key: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str, p: _Problems) -> None:
    for k in table:
        if k not in allowed:
            p.items.append(
                f"unknown key {where + '.' if where else ''}{k}: {_suggest(k, allowed)}allowed keys are {sorted(allowed)}"
                + (" (top-level keys must come before the first [table])" if not where else "")
            )


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _number(t: Mapping[str, Any], key: str, where: str, p: _Problems, default: Any, *, lo: float | None = None,
            hi: float | None = None, strict_lo: bool = False, integer: bool = False, optional: bool = False) -> Any:
    if key not in t:
        return default
    v = t[key]
    name = f"{where}.{key}"
    if optional and (v is None or v == ""):
        return None
    if integer:
        if not isinstance(v, int) or isinstance(v, bool):
            p.add(name, v, "must be an integer" + (f" >= {lo:g}" if lo is not None else ""))
            return default
    elif not _is_num(v):
        p.add(name, v, "must be a finite number")
        return default
    kind = "an integer" if integer else "a number"
    if lo is not None and (v <= lo if strict_lo else v < lo):
        p.add(name, v, f"must be {kind} {'>' if strict_lo else '>='} {lo:g}")
        return default
    if hi is not None and v > hi:
        p.add(name, v, f"must be {kind} <= {hi:g}")
        return default
    return int(v) if integer else float(v)


def _string(t: Mapping[str, Any], key: str, where: str, p: _Problems, default: Any, *,
            choices: Sequence[str] | None = None, optional: bool = False) -> Any:
    if key not in t:
        return default
    v = t[key]
    if optional and v in (None, ""):
        return None
    if not isinstance(v, str) or not v.strip():
        p.add(f"{where}.{key}", v, "must be a non-empty string")
        return default
    if choices is not None and v not in choices:
        p.add(f"{where}.{key}", v, f"{_suggest(v, choices)}must be one of {list(choices)}")
        return default
    return v.strip()


def _bool(t: Mapping[str, Any], key: str, where: str, p: _Problems, default: bool) -> bool:
    if key not in t:
        return default
    v = t[key]
    if not isinstance(v, bool):
        p.add(f"{where}.{key}", v, "must be true or false")
        return default
    return v


def _range(t: Mapping[str, Any], key: str, where: str, p: _Problems, default: Any) -> Any:
    if key not in t:
        return default
    v = t[key]
    name = f"{where}.{key}"
    vals = [v] if _is_num(v) else v
    if not isinstance(vals, list) or not 1 <= len(vals) <= 2 or not all(_is_num(x) for x in vals):
        p.add(name, v, "must be a number or a [low, high] pair of numbers, e.g. [1e21, 1e22]")
        return default
    lo, hi = float(vals[0]), float(vals[-1])
    if not 0 < lo <= hi:
        p.add(name, v, "needs 0 < low <= high")
        return default
    return (lo, hi)


def _num_map(t: Mapping[str, Any], key: str, where: str, p: _Problems, *, positive: bool = True,
             lo: float | None = None, hi: float | None = None, allow_none: bool = False) -> dict[str, Any]:
    if key not in t:
        return {}
    v = t[key]
    if not isinstance(v, Mapping):
        p.add(f"{where}.{key}", v, "must be a table like { name = 1.0 }")
        return {}
    out: dict[str, Any] = {}
    for k, x in v.items():
        if allow_none and (x is None or x == "none"):
            out[str(k)] = None
            continue
        bad = not _is_num(x) or (positive and x <= 0) or (lo is not None and x < lo) or (hi is not None and x > hi)
        if bad:
            need = "must be a number" + (" > 0" if positive else "") + (f" in [{lo:g}, {hi:g}]" if lo is not None and hi is not None else "")
            p.add(f"{where}.{key}.{k}", x, need)
            continue
        out[str(k)] = float(x)
    return out


def _path(t: Mapping[str, Any], key: str, where: str, p: _Problems, base: Path, *, must_exist: bool = False,
          file: bool = False) -> Path | None:
    """A path of the config, relative to its folder; ``must_exist``: it must be there; ``file``: a file, not a folder."""
    if key not in t or t[key] in (None, ""):
        return None
    v = t[key]
    if not isinstance(v, str):
        p.add(f"{where}.{key}", v, "must be a path string")
        return None
    path = Path(v).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    if must_exist and not path.exists():
        p.add(f"{where}.{key}", v, f"file not found (looked for {path}); paths are relative to the config file's folder")
    elif file and path.is_dir():
        p.add(f"{where}.{key}", v, f"is a folder ({path}), not a file; name the run table file in it, e.g. {path / 'runs.csv'}")
    return path


def _table(raw: Mapping[str, Any], key: str, p: _Problems) -> dict[str, Any]:
    v = raw.get(key, {})
    if not isinstance(v, Mapping):
        p.items.append(f"[{key}] must be a table, got {v!r}")
        return {}
    return dict(v)


def _names(dc: type) -> list[str]:
    return [f.name for f in fields(dc)]


def read_toml(path: str | Path, *, example: str = "configs/example.toml") -> dict[str, Any]:
    """The parsed TOML of a config file.

    Raises:
        ConfigError: a missing file, invalid TOML or text that is not UTF-8.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} not found; give the path to a .toml file (see {example}).")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}. Fix the syntax (strings need quotes, tables look like [search]).") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text ({e}).") from None


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = raw
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {} if nxt is None else nxt
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value

