"""The one builder of search configs (TOML) the tests write: a run table, a surrogate, a compute
target, objectives and a ``[search]`` section, each part overridable."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def search_config_text(runs: str | Path, *, method: str = "test-linear", flops: str = "1e21",
                       optimize: Sequence[str] = ("score:hellaswag", "score:humaneval"), objectives: str = "",
                       search: str = "", sections: str = "", **search_defaults: object) -> str:
    """A config over the table ``runs`` (``[surrogate] method``, ``[compute] flops`` as TOML text).

    ``objectives``: more lines of ``[objectives]`` (constraints, shortlist; may open further
    tables); ``search``: lines of ``[search]``; ``search_defaults``: ``[search]`` settings
    (Python values) that apply unless ``search`` sets the same key; ``sections``: more tables
    at the end. Indented (triple-quoted) parts are dedented.
    """
    given = {line.split("=", 1)[0].strip() for line in textwrap.dedent(search).splitlines() if "=" in line}
    defaults = "\n".join(f"{k} = {_toml(v)}" for k, v in search_defaults.items() if k not in given)
    parts = [
        f'[data]\nruns = "{runs}"\n[surrogate]\nmethod = "{method}"\n[compute]\nflops = {flops}',
        f"[objectives]\noptimize = {json.dumps(list(optimize))}",
        textwrap.dedent(objectives).strip(),
        "[search]",
        defaults,
        textwrap.dedent(search).strip(),
        textwrap.dedent(sections).strip(),
    ]
    return "\n".join(p for p in parts if p) + "\n"


def write_search_config(path: Path, runs: str | Path, **kw: object) -> Path:
    """Write :func:`search_config_text` ``(runs, **kw)`` at ``path``; returns ``path``."""
    path.write_text(search_config_text(runs, **kw))  # type: ignore[arg-type]
    return path
