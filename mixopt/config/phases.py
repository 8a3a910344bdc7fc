"""The ``[phases]`` section of a search config: search over schedules instead of constant mixtures.

::

    [phases]
    count = 2                   # phases K of every schedule (>= 2)
    ends = [[0.7, 0.9]]         # K-1 boundaries, fractions of the run's tokens: a number fixes one, [low, high] searches it
    [phases.floor]              # per domain, one floor per phase (or one number for every phase)
    math = [0.0, 0.3]
    [phases.cap]                # per domain, one cap per phase (or one number)
    math = [0.4, 1.0]

``[domains.<d>]`` bounds apply to every phase unless ``[phases.floor]``/``[phases.cap]`` name the
domain (a pinned domain keeps its pin in every phase and takes no per-phase bounds). The data
limits of ``[tokens]`` count the whole run: a domain's tokens in every phase add up. Without
``[phases]`` a search is over constant mixtures, exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mixopt.config._parse import _is_num, _Problems, _unknown_keys


@dataclass(frozen=True, kw_only=True)
class PhasesConfig:
    """Schedules to search (``[phases]``)."""

    count: int = 2  # phases K of every schedule (>= 2)
    ends: tuple[float | tuple[float, float], ...] = ()  # K-1 boundaries in (0, 1): a number is fixed, (low, high) is searched
    floor: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # {domain: one floor per phase}
    cap: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # {domain: one cap per phase}


def _per_phase(t: Mapping[str, Any], key: str, K: int, p: _Problems) -> dict[str, tuple[float, ...]]:
    """``[phases.floor]`` / ``[phases.cap]``: one ratio in [0, 1] per phase for each domain named."""
    v = t.get(key, {})
    where = f"phases.{key}"
    if not isinstance(v, Mapping):
        p.add(where, v, f"must be a table like [{where}] math = [0.0, 0.3] (one ratio per phase)")
        return {}
    out: dict[str, tuple[float, ...]] = {}
    for d, x in v.items():
        vals = [x] * K if _is_num(x) else x
        if not (isinstance(vals, list) and len(vals) == K and all(_is_num(y) and 0.0 <= float(y) <= 1.0 for y in vals)):
            p.add(f"{where}.{d}", x, f"must be {K} ratios in [0, 1], one per phase (or one number for every phase)")
            continue
        out[str(d)] = tuple(float(y) for y in vals)
    return out


def parse_phases(raw: Mapping[str, Any], p: _Problems) -> PhasesConfig | None:
    """``[phases]`` (None when absent); shapes, ranges and per-phase floor/cap order are checked here,
    the bounds against the surrogate's domains when the search space is built."""
    if "phases" not in raw:
        return None
    t = raw["phases"]
    if not isinstance(t, Mapping):
        p.add("phases", t, "must be a table: [phases] count = 2, ends = [[0.7, 0.9]]")
        return None
    _unknown_keys(t, ("count", "ends", "floor", "cap"), "phases", p)
    K = t.get("count", 2)
    if not (isinstance(K, int) and not isinstance(K, bool) and K >= 2):
        p.add("phases.count", K, "must be an integer >= 2 (a one-phase search is a constant mixture: drop [phases])")
        return None
    if "ends" not in t:
        p.items.append(f"phases.ends: give the {K - 1} phase boundaries as fractions of the run's tokens, a number to fix one "
                       "or [low, high] to search it, e.g. ends = [[0.7, 0.9]]")
        return None
    raw_ends = t["ends"]
    if not isinstance(raw_ends, list) or len(raw_ends) != K - 1:
        p.add("phases.ends", raw_ends, f"must list {K - 1} boundaries for {K} phases (phase {K} ends at 1)")
        return None
    ends: list[float | tuple[float, float]] = []
    for k, e in enumerate(raw_ends, start=1):
        pair = isinstance(e, list) and len(e) == 2 and all(_is_num(x) for x in e)
        if not (_is_num(e) or pair):
            p.add(f"phases.ends[{k - 1}]", e, "must be a number (fixed) or a [low, high] pair (searched)")
            return None
        lo, hi = (float(e[0]), float(e[1])) if pair else (float(e), float(e))
        if not 0.0 < lo <= hi < 1.0:
            p.add(f"phases.ends[{k - 1}]", e, "must lie strictly inside (0, 1) with low <= high: the fraction of the run's "
                  "tokens where the phase ends, e.g. 0.8")
            return None
        ends.append((lo, hi) if pair else lo)
    spans = [(e, e) if isinstance(e, float) else e for e in ends]
    for k in range(1, len(spans)):
        if not spans[k - 1][1] < spans[k][0]:
            p.add("phases.ends", raw_ends, f"boundaries must increase and searched ranges may not overlap (boundary {k} "
                  f"reaches {spans[k - 1][1]:g}, boundary {k + 1} starts at {spans[k][0]:g})")
            return None
    floor, cap = _per_phase(t, "floor", K, p), _per_phase(t, "cap", K, p)
    for d in sorted(set(floor) & set(cap)):
        bad = [k + 1 for k in range(K) if floor[d][k] > cap[d][k]]
        if bad:
            p.add(f"phases.{d}", {"floor": list(floor[d]), "cap": list(cap[d])}, f"floor > cap in phase(s) {bad}")
    for k in range(K):
        s = sum(f[k] for f in floor.values())
        if s > 1 + 1e-9:
            p.items.append(f"phases.floor: the floors of phase {k + 1} sum to {s:.4g} > 1; lower them")
    return PhasesConfig(count=K, ends=tuple(ends), floor=floor, cap=cap)


__all__ = ["PhasesConfig", "parse_phases"]
