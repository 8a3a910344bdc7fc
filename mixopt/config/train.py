"""The training sections of the project config: ``[trainer]``, ``[ladder]`` and ``[validate]``.

They live in the same TOML file as a search config (``mixopt optimize`` reads the other
sections) or alone (``configs/ladder.toml``)::

    [trainer]
    kind = "reference"          # built-in byte-level GPT; "command" = your own command
    executor = "local"          # or "ray" (jobs as Ray tasks)
    max_parallel = 2            # jobs at once
    timeout_s = 1800            # wall-clock budget per job; a job past it is stopped and reported
    workdir = "../out/jobs"     # one folder per job (job file, log, rows)
    [trainer.options]           # the trainer's own settings (reference: corpus, threads, lr, ...)
    corpus = "../out/corpus"

    [ladder]                    # mixopt ladder CONFIG
    sizes = [4e4, 1e5, 2.5e5, 6e5]
    tokens = 1.6e6              # or tokens_per_param = 20
    seeds = [0]
    checkpoints = 4
    output = "../mixopt/examples/ladder_runs.csv"
    [ladder.mixtures]
    uniform = { prose = 0.25, code = 0.25, docs = 0.25, math = 0.25 }
    [ladder.schedules.anneal_math]  # optional: phased runs (mixtures that change during training)
    ends = [0.8, 1.0]               # phase_end@k: fraction of the run's tokens where phase k ends
    mixtures = [{ prose = 0.25, code = 0.25, docs = 0.25, math = 0.25 },
                { prose = 0.1, code = 0.1, docs = 0.1, math = 0.7 }]

    [validate]                  # mixopt validate / the loop of mixopt optimize
    rounds = 2
    top = 3
    runs = "../out/validated_runs.csv"
    output = "../out/loop"

The ``command`` trainer's template comes from ``[trainer.options] command = "..."`` in the
user's own file only: nothing else (API input, a job spec) can set it. Relative paths are
resolved against the config file's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixopt.config._parse import _number, _Problems, _unknown_keys
from mixopt.errors import ConfigError, SchemaError
from mixopt.train.executors import TrainerRef

#: Top-level tables of the training sections.
SECTIONS = ("trainer", "ladder", "validate")


@dataclass(frozen=True, kw_only=True)
class TrainerSection:
    """Which trainer runs jobs and how (``[trainer]``)."""

    kind: str = "reference"  # "reference" (built in) or "command" (your command template)
    options: Mapping[str, Any] = field(default_factory=dict)  # the trainer's settings ([trainer.options])
    executor: str = "local"  # "local" or "ray"
    max_parallel: int = 1  # jobs at once (local) / in flight (Ray)
    timeout_s: float | None = 3600.0  # wall-clock budget per job, seconds; None = no limit
    cpus_per_job: float = 1.0  # Ray resource request per job
    gpus_per_job: float | None = None  # Ray GPU request per job; None = 1 when the cluster has GPUs, else 0
    ray_address: str | None = None  # Ray cluster to connect to; None = start a local one
    workdir: Path = Path("out/jobs")  # one folder per job: job file, log, rows

    def ref(self) -> TrainerRef:
        return TrainerRef(kind=self.kind, settings=dict(self.options))


@dataclass(frozen=True, kw_only=True)
class LadderSection:
    """A ladder of sampling runs (``[ladder]``): sizes x mixtures x seeds."""

    sizes: tuple[float, ...] = ()  # parameter counts N (non-embedding)
    mixtures: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # {name: {domain: ratio}}
    schedules: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)  # {name: ({"end": e_k, "mixture": {...}}, ...)}
    tokens: float | None = None  # training tokens D of every run
    tokens_per_param: float | None = None  # or D = tokens_per_param * N
    seeds: tuple[int, ...] = (0,)  # one run per seed
    checkpoints: int = 4  # evaluated checkpoints per run
    output: Path | None = None  # the run table to write (appended, no duplicates)


@dataclass(frozen=True, kw_only=True)
class ValidateSection:
    """Validation training and the optimise -> validate -> refit loop (``[validate]``)."""

    rounds: int = 0  # loop rounds of `mixopt optimize` (0 = plain search)
    top: int = 3  # mixtures trained per round (a diverse K from the Pareto set)
    seed: int = 0  # seeds the trained models
    checkpoints: int = 4  # evaluated checkpoints per validation run
    runs: Path | None = None  # where validated runs are appended (default <output>/validated_runs.csv)
    output: Path | None = None  # folder for every round's surrogate, study, Pareto set and comparison
    propose_next: bool = True  # also propose the next sampling run
    next: str = "plan"  # how: "plan" (mixopt plan's decision criterion) or "uncertainty" (widest Pareto interval)
    train_next: bool = False  # also train the proposal each round (later rounds refit on it)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The three sections, parsed (``path`` is the file they came from)."""

    path: Path | None = None
    trainer: TrainerSection = field(default_factory=TrainerSection)
    ladder: LadderSection | None = None
    validate: ValidateSection | None = None


def _resolve(v: Any, base: Path, key: str, p: _Problems) -> Path | None:
    """A path value resolved against ``base`` (None when not given)."""
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        p.add(key, v, "must be a path string")
        return None
    path = Path(v).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _num(t: Mapping[str, Any], key: str, where: str, p: _Problems, default: Any, *, lo: float | None = None,
         integer: bool = False, optional: bool = False) -> Any:
    """A number of a training section (a whole float such as ``2.0`` counts as an integer here)."""
    v = t.get(key)
    if integer and isinstance(v, float) and v.is_integer():
        t = {**t, key: int(v)}
    return _number(t, key, where, p, default, lo=lo, integer=integer, optional=optional)


_TRAINER_KEYS = ("kind", "options", "executor", "max_parallel", "timeout_s", "cpus_per_job", "gpus_per_job", "ray_address", "workdir")


def _parse_trainer(raw: Mapping[str, Any], base: Path, p: _Problems, *, in_file: bool) -> TrainerSection:
    """``[trainer]``: the command trainer's template may come from the user's own file only."""
    t = raw.get("trainer", {}) or {}
    if not isinstance(t, Mapping):
        raise ConfigError(f"Invalid config {p.source}: [trainer] must be a table.")
    _unknown_keys(t, _TRAINER_KEYS, "trainer", p)
    kind = t.get("kind", "reference")
    if kind not in ("reference", "command"):
        p.add("trainer.kind", kind, "must be \"reference\" or \"command\"")
    options = dict(t.get("options", {}) or {})
    if kind == "reference" and "corpus" in options and options["corpus"]:
        options["corpus"] = str(_resolve(options["corpus"], base, "trainer.options.corpus", p))
    if kind == "command":
        if not isinstance(options.get("command"), (str, list)) or not options.get("command"):
            p.items.append("trainer.options.command: the command trainer needs a command template, e.g. "
                           "command = \"python train.py --mix {mix_json} --params {params} --tokens {tokens} --out {out}\"")
        options["cwd"] = str(_resolve(options.get("cwd", "."), base, "trainer.options.cwd", p))
    executor = t.get("executor", "local")
    if executor not in ("local", "ray"):
        p.add("trainer.executor", executor, "must be \"local\" or \"ray\"")
    timeout = t.get("timeout_s", 3600.0)
    if timeout is not None and timeout != 0:
        timeout = _num(t, "timeout_s", "trainer", p, 3600.0, lo=0)
    workdir = _resolve(t.get("workdir", "../out/jobs" if in_file else "out/jobs"), base, "trainer.workdir", p)
    return TrainerSection(
        kind=kind, options=options, executor=executor,
        max_parallel=_num(t, "max_parallel", "trainer", p, 1, lo=1, integer=True),
        timeout_s=None if not timeout else float(timeout),
        cpus_per_job=_num(t, "cpus_per_job", "trainer", p, 1.0, lo=0),
        gpus_per_job=_num(t, "gpus_per_job", "trainer", p, None, lo=0, optional=True),
        ray_address=t.get("ray_address"),
        workdir=workdir or Path("out/jobs"),
    )


def _parse_ladder(L: Mapping[str, Any], base: Path, p: _Problems) -> LadderSection:
    """``[ladder]``: sizes x mixtures x seeds, one of tokens or tokens_per_param."""
    _unknown_keys(L, ("sizes", "mixtures", "schedules", "tokens", "tokens_per_param", "seeds", "checkpoints", "output"), "ladder", p)
    sizes = L.get("sizes", [])
    if not isinstance(sizes, list) or not sizes or not all(isinstance(s, (int, float)) and s > 0 for s in sizes):
        p.add("ladder.sizes", sizes, "must be a list of parameter counts > 0, e.g. [4e4, 1e5]")
        sizes = []
    mixes = L.get("mixtures", {})
    schedules = _parse_schedules(L.get("schedules", {}), p)
    if not isinstance(mixes, Mapping) or (not mixes and not schedules):
        p.items.append("ladder.mixtures: give named mixtures, e.g. [ladder.mixtures] uniform = { prose = 0.5, code = 0.5 } "
                       "(or schedules under [ladder.schedules.<name>])")
        mixes = {}
    for name, m in mixes.items():
        if not isinstance(m, Mapping) or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in m.values()):
            p.add(f"ladder.mixtures.{name}", m, "must be {domain = ratio} with ratios in [0, 1]")
        elif abs(sum(m.values()) - 1) > 1e-6:
            p.items.append(f"ladder.mixtures.{name}: ratios sum to {sum(m.values()):.6g}, not 1")
    doms = {tuple(m) for m in mixes.values() if isinstance(m, Mapping)}
    doms |= {tuple(ph[0]["mixture"]) for ph in schedules.values()}
    if len(doms) > 1:
        p.items.append(f"ladder.mixtures: every mixture (and schedule phase) must name the same domains in the same order, got {sorted(doms)}")
    clash = sorted(set(schedules) & set(mixes))
    if clash:
        p.items.append(f"ladder: {clash} name both a mixture and a schedule; give each run name once")
    tokens = _num(L, "tokens", "ladder", p, None, lo=1, optional=True)
    tpp = _num(L, "tokens_per_param", "ladder", p, None, lo=0, optional=True)
    if (tokens is None) == (tpp is None):
        p.items.append("ladder: give exactly one of tokens = D or tokens_per_param = D/N")
    seeds = L.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        p.add("ladder.seeds", seeds, "must be a list of integers >= 0")
        seeds = [0]
    return LadderSection(
        sizes=tuple(float(s) for s in sizes),
        mixtures={k: {d: float(r) for d, r in v.items()} for k, v in mixes.items() if isinstance(v, Mapping)},
        schedules=schedules,
        tokens=tokens, tokens_per_param=tpp, seeds=tuple(seeds),
        checkpoints=_num(L, "checkpoints", "ladder", p, 4, lo=1, integer=True),
        output=_resolve(L.get("output"), base, "ladder.output", p),
    )


def _parse_schedules(S: Any, p: _Problems) -> dict[str, tuple[dict[str, Any], ...]]:
    """``[ladder.schedules.<name>]``: ``ends`` (phase ends, fractions of the run; the trailing 1 may be left out) and one
    mixture per phase; checked as a training job checks them."""
    from mixopt.train.spec import JobSpec

    if not isinstance(S, Mapping):
        p.add("ladder.schedules", S, "must be a table of named schedules, e.g. [ladder.schedules.anneal] ends = [0.8, 1.0] "
              "mixtures = [{ web = 0.7, code = 0.3 }, { web = 0.3, code = 0.7 }]")
        return {}
    out: dict[str, tuple[dict[str, Any], ...]] = {}
    for name, t in S.items():
        where = f"ladder.schedules.{name}"
        if not isinstance(t, Mapping):
            p.add(where, t, "must be a table with ends = [...] and mixtures = [{...}, ...]")
            continue
        _unknown_keys(t, ("ends", "mixtures"), where, p)
        ends, mixes = t.get("ends"), t.get("mixtures")
        if not isinstance(mixes, list) or len(mixes) < 2 or not all(isinstance(m, Mapping) for m in mixes):
            p.add(f"{where}.mixtures", mixes, "must list one {domain = ratio} table per phase, at least two phases "
                  "(a constant mixture goes under [ladder.mixtures])")
            continue
        if not isinstance(ends, list) or not all(isinstance(e, (int, float)) for e in ends):
            p.add(f"{where}.ends", ends, "must be a list of phase ends, fractions of the run's tokens, e.g. [0.8, 1.0]")
            continue
        ends = [float(e) for e in ends]
        if len(ends) == len(mixes) - 1:
            ends.append(1.0)
        if len(ends) != len(mixes):
            p.add(f"{where}.ends", ends, f"must give one end per phase ({len(mixes)} mixtures), the last 1.0")
            continue
        phases = [{"end": e, "mixture": dict(m)} for e, m in zip(ends, mixes, strict=True)]
        try:
            job = JobSpec(run_id="schedule", params=1.0, tokens=1.0, phases=phases)
        except SchemaError as e:
            p.add(where, {"ends": ends, "mixtures": mixes}, "; ".join(getattr(e, "problems", None) or [str(e)]))
            continue
        out[str(name)] = tuple(job.phases)
    return out


def _parse_validate(V: Mapping[str, Any], base: Path, p: _Problems) -> ValidateSection:
    """``[validate]``."""
    _unknown_keys(V, ("rounds", "top", "seed", "checkpoints", "runs", "output", "propose_next", "next", "train_next"), "validate", p)
    return ValidateSection(
        rounds=_num(V, "rounds", "validate", p, 0, lo=0, integer=True),
        top=_num(V, "top", "validate", p, 3, lo=1, integer=True),
        seed=_num(V, "seed", "validate", p, 0, lo=0, integer=True),
        checkpoints=_num(V, "checkpoints", "validate", p, 4, lo=1, integer=True),
        runs=_resolve(V.get("runs"), base, "validate.runs", p),
        output=_resolve(V.get("output"), base, "validate.output", p),
        propose_next=bool(V.get("propose_next", True)),
        next=_next_rule(V, p),
        train_next=_bool(V, "train_next", p),
    )


def _bool(V: Mapping[str, Any], key: str, p: _Problems, default: bool = False) -> bool:
    v = V.get(key, default)
    if not isinstance(v, bool):
        p.add(f"validate.{key}", v, "must be true or false")
        return default
    if key == "train_next" and v and V.get("propose_next") is False:
        p.add("validate.train_next", v, "trains the proposal, so it needs propose_next = true (or drop train_next)")
    return v


def _next_rule(V: Mapping[str, Any], p: _Problems) -> str:
    v = V.get("next", "plan")
    if v not in ("plan", "uncertainty"):
        p.add("validate.next", v, 'must be "plan" (the decision criterion of mixopt plan) or "uncertainty"')
        return "plan"
    return str(v)


def parse_train_sections(raw: Mapping[str, Any], base: str | Path, *, path: Path | None = None, source: str = "<dict>") -> TrainConfig:
    """Parse ``[trainer]``, ``[ladder]`` and ``[validate]`` from a parsed TOML dict (other keys are ignored).

    Raises:
        ConfigError: every invalid setting at once.
    """
    base = Path(base)
    p = _Problems(source)
    trainer = _parse_trainer(raw, base, p, in_file=path is not None)
    ladder = _parse_ladder(raw["ladder"], base, p) if "ladder" in raw else None
    validate = _parse_validate(raw["validate"], base, p) if "validate" in raw else None
    p.raise_if_any()
    return TrainConfig(path=path, trainer=trainer, ladder=ladder, validate=validate)


__all__ = ["SECTIONS", "LadderSection", "TrainConfig", "TrainerSection", "ValidateSection", "parse_train_sections"]
