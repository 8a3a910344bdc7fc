"""One JSON sanitiser for everything mixopt writes or serves as JSON.

The rule, everywhere (CLI ``--json``, reports, result summaries, API responses, configs):

- mappings become dicts with string keys; lists, tuples and sets become lists;
- dataclass instances become dicts of their fields;
- numpy scalars become Python numbers, numpy arrays nested lists;
- non-finite floats (NaN, +-inf) become ``None`` (JSON has no NaN; ``null`` = "no value");
- paths become their full text (``str(path)``); a caller that must not reveal a path (the
  HTTP API and its server folders) leaves paths out instead of shortening them.

Anything else is returned unchanged, so an unexpected type fails loudly in ``json.dumps``
rather than being written as garbage.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON values (see the module docstring for the rule)."""
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return [jsonable(v) for v in sorted(x, key=str)]
    if isinstance(x, PurePath):
        return str(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    np = sys.modules.get("numpy")  # no numpy object can exist unless numpy was imported
    if np is not None:
        if isinstance(x, np.ndarray):
            return jsonable(x.tolist())
        if isinstance(x, np.generic):
            return jsonable(x.item())
    return x


__all__ = ["jsonable"]
