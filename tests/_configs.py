"""The one builder of search configs (TOML) the tests write: a run table, a surrogate, a compute
target, objectives and a ``[search]`` section, each part overridable; and the tiny
optimise -> validate -> refit loop config the loop tests share."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def search_config_text(
    runs: str | Path,
    *,
    method: str = "test-linear",
    flops: str = "1e21",
    optimize: Sequence[str] = ("score:hellaswag", "score:humaneval"),
    objectives: str = "",
    search: str = "",
    sections: str = "",
    **search_defaults: object,
) -> str:
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


#: the stand-in cluster job: its "trained models" report a known synthetic world's losses
JOB_SCRIPT = Path(__file__).resolve().parent / "train" / "scripts" / "job.py"


def job_command(mode: str) -> str:
    """Command template of the stand-in cluster job (``tests/train/scripts/job.py``) in ``mode``."""
    return f"{sys.executable} {JOB_SCRIPT} {mode} --mix {{mix_json}} --params {{params}} --tokens {{tokens}} --out {{out}} --checkpoints {{checkpoints}} --seed {{seed}}"


def write_loop_config(folder: Path, command: str, *, rounds: int = 2, method: str = "regmix", extra: str = "", name: str = "loop") -> Path:
    """A tiny optimise -> validate -> refit loop config in ``folder`` (returns ``folder/<name>.toml``).

    Writes ``folder/base_runs.csv`` (32 runs of a seeded 3-domain world: 8 mixtures x 4 sizes);
    the trainer runs ``command`` (e.g. :func:`job_command`). ``method``: regmix (fast) predicts
    at the runs' largest size, any other method at 2x it (FLP-M extrapolates); ``extra``: more
    ``[validate]`` lines; ``name``: the config's stem and the study's name.
    """
    from mixopt.data.readers import write_runs
    from mixopt.testing import mixture_world

    w = mixture_world(n_domains=3, n_benchmarks=4, seed=0)
    runs = w.sample_runs([5e7, 1e8, 2e8, 4e8], w.random_mixtures(8, seed=2), n_checkpoints=3, loss_noise=0.002, seed=0)
    write_runs(runs, folder / "base_runs.csv")
    params, tokens = (4e8, 8e9) if method == "regmix" else (8e8, 1.6e10)
    escaped = command.replace("\\", "\\\\")  # a TOML basic string
    path = folder / f"{name}.toml"
    path.write_text(f"""
[data]
runs = "base_runs.csv"
[surrogate]
method = "{method}"
[compute]
params = {params}
tokens = {tokens}
[objectives]
optimize = ["loss:web", "loss:code"]
[search]
trials = 64
batch_size = 32
sampler = "nsga2"
seed = 0
study_name = "{name}"
output = "out/pareto.csv"
[trainer]
kind = "command"
max_parallel = 2
timeout_s = 300
workdir = "out/jobs"
[trainer.options]
command = "{escaped}"
[validate]
rounds = {rounds}
top = 2
runs = "out/validated.csv"
output = "out/loop"
{extra}
""")
    return path
