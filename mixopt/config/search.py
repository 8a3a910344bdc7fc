"""The search sections of the project config: frozen dataclasses and their parsers.

A config file describes one mixture search (see ``configs/example.toml``)::

    [data]                      # the sampling runs the surrogate is fitted on
    runs = "../mixopt/examples/runs_3domain.csv"

    [surrogate]
    method = "flpm"             # or model = "path/to/saved/model" (from `mixopt fit`)

    [compute]
    flops = [1e21, 1e22]        # log-uniform; a single number fixes it
    tokens_per_param = 20       # D = sqrt(tokens_per_param * C / 6)

    [domains.web]               # optional bounds per domain (ratios in [0, 1])
    floor = 0.3
    [domains.code]
    cap = 0.4
    [domains.math]
    pin = 0.05

    [domains.changes]           # optional: the domain set changed since these old runs
    runs = "old_runs.csv"       # read with the [data] options, mapped, added to [data] runs
    added = ["math"]            # also: removed, split = { web = { web_hq = 0.3, web_lq = 0.7 } },
                                # merged = { code = { python = 0.6, java = 0.4 } }, refiltered

    [tokens]                    # optional data limits
    available = { code = 2e11 } # unique tokens per domain (others unlimited)
    max_epochs = 4

    [objectives]
    optimize = ["score:hellaswag", "score:humaneval"]
    constraints = ["score:arc_easy >= 0.45"]
    risk_kappa = 0.0
    epsilon = 0.005             # "within epsilon of the best": the robust region's tolerance

    [search]
    trials = 4000
    sampler = "nsga2"
    storage = "../out/example.log"     # journal file (default "<study_name>.log"); .db = SQLite; a URL; "memory"
    output = "../out/example_pareto.csv"

Relative paths (``data.runs``, ``data.ratios``, ``surrogate.model``, ``search.storage``,
``search.output``) are resolved against the config file's directory; paths given as
overrides (the command line) against the current directory. Every problem found is
reported at once, naming the key, the value received and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixopt.config._parse import (
    _bool,
    _is_num,
    _names,
    _num_map,
    _number,
    _path,
    _Problems,
    _range,
    _string,
    _table,
    _unknown_keys,
)
from mixopt.config.phases import PhasesConfig, parse_phases
from mixopt.data.changes import DomainChanges
from mixopt.data.long import LongLayout
from mixopt.errors import SchemaError, SearchError

#: The key of ``[domains]`` that states a domain-set change (so no domain may be named so).
CHANGES = "changes"

#: Top-level tables of the search sections.
SECTIONS = ("data", "surrogate", "domains", "tokens", "compute", "objectives", "search", "plan", "phases")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the sampling runs come from (``[data]``)."""

    runs: Path | None = None  # run table (CSV/Parquet/JSONL); needed unless surrogate.model is given
    ratios: Path | None = None  # optional second file with one mixture per run (RegMix/Olmix style)
    format: str = "auto"  # "auto", "mixopt", "regmix", "olmix" or "long" (one row per checkpoint x domain)
    params: float | None = None  # parameter count N for files without a params column
    tokens: float | None = None  # training tokens D for files without a tokens column
    chance: Mapping[str, float | None] = field(default_factory=dict)  # chance level per benchmark (overrides)
    columns: Mapping[str, str] = field(default_factory=dict)  # {file column or pattern: canonical column}, e.g. { "weight_{d}" = "mix:{d}" }
    run_id: tuple[str, ...] = ()  # build run ids from these columns when the file has none, e.g. ["params", "mix"]
    tokens_per_step: float | None = None  # tokens = step x this, for files with a step column and no tokens
    on: str | None = None  # join column of runs and ratios (default: index for RegMix, run otherwise)
    join: str = "exact"  # "exact": both files must list the same runs; "inner": keep the runs found in both
    long: Mapping[str, Any] = field(default_factory=dict)  # [data.long]: checkpoint_pattern, name_pattern, mix_domains, columns, kind

    def read_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`mixopt.data.read_runs` for this section (all but the path)."""
        return {
            "ratios": self.ratios,
            "format": self.format,
            "params": self.params,
            "tokens": self.tokens,
            "chance": dict(self.chance) or None,
            "columns": dict(self.columns) or None,
            "run_id": list(self.run_id) or None,
            "tokens_per_step": self.tokens_per_step,
            "on": self.on,
            "how": self.join,
            "long": dict(self.long) or None,
        }


@dataclass(frozen=True, kw_only=True)
class SurrogateConfig:
    """Which surrogate predicts the scores (``[surrogate]``)."""

    method: str = "flpm"  # surrogate kind: flp, fp, flpm, dml, regmix (see mixopt.surrogate)
    settings: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the method
    model: Path | None = None  # a saved model directory (`mixopt fit --out`), used instead of fitting


@dataclass(frozen=True, kw_only=True)
class DomainConfig:
    """Bounds of one domain's ratio (``[domains.<name>]``)."""

    floor: float = 0.0  # lowest ratio, in [0, 1]
    cap: float = 1.0  # highest ratio, in [0, 1]; 0 excludes the domain
    pin: float | None = None  # fixed ratio (then no floor or cap)


@dataclass(frozen=True, kw_only=True)
class TokensConfig:
    """Data limits (``[tokens]``): a mixture must not over-use any domain's data."""

    available: Mapping[str, float] = field(default_factory=dict)  # unique tokens per domain; unlisted = unlimited
    max_epochs: float = 4.0  # most passes over a domain's unique tokens
    epochs: Mapping[str, float] = field(default_factory=dict)  # per-domain overrides of max_epochs


@dataclass(frozen=True, kw_only=True)
class ComputeConfig:
    """The compute budget (``[compute]``): flops (+ tokens_per_param) or params and tokens."""

    flops: tuple[float, float] | None = None  # FLOPs [low, high], log-uniform; one number = fixed
    tokens_per_param: tuple[float, float] = (20.0, 20.0)  # D/N for deriving tokens from FLOPs; a range = searched
    params: tuple[float, float] | None = None  # parameter counts [low, high], log-uniform (with tokens)
    tokens: tuple[float, float] | None = None  # training tokens [low, high], log-uniform (with params)


@dataclass(frozen=True, kw_only=True)
class ObjectivesConfig:
    """What to optimise (``[objectives]``)."""

    optimize: tuple[Any, ...] = ()  # objectives: "score:<b>", "loss:<d>", "loss", "compute", "mean(score:*)", tables
    constraints: tuple[str, ...] = ()  # e.g. "score:mmlu >= 0.45", "loss:code <= 1.2", "compute <= 1e21"
    risk_kappa: float = 0.0  # optimise mean - kappa*std (pessimistic bound) instead of the mean; 0 = mean
    penalty: float = 0.0  # > 0: also worsen infeasible models' objectives by penalty*violation (random/qmc)
    weights: Mapping[str, float] = field(default_factory=dict)  # scalarisation weights for the single best mixture
    reference_point: Mapping[str, float] = field(default_factory=dict)  # hypervolume reference per objective
    shortlist: int = 5  # rows on the shortlist of diverse knee-region recommendations (mixopt.search.shortlist)
    epsilon: float = 0.005  # "within epsilon of the best" (P(within eps), robust region), objectives' units (= search.decision.DEFAULT_EPSILON)


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    """How to search (``[search]``)."""

    trials: int = 2000  # total finished trials of the study (a resumed study runs the rest)
    batch_size: int = 128  # trials asked, evaluated and told together (one surrogate call)
    population_size: int | None = None  # NSGA-II/III parents per generation (default batch_size)
    sampler: str = "nsga2"  # nsga2, nsga2-optuna, nsga3, tpe, gp, random, qmc, cmaes
    sampler_options: Mapping[str, Any] = field(default_factory=dict)  # extra sampler arguments
    seed: int = 0  # seeds the sampler (and everything random in the search)
    storage: str | None = None  # journal file (.log), SQLite file (.db), SQLAlchemy URL or "memory"; default "<study_name>.log" by the config
    study_name: str = "mixopt"  # study name inside the storage (same name + storage = resume)
    executor: str = "local"  # "local" or "ray" (a local Ray starts only when the search is big enough)
    ray_dashboard: bool = False  # start the Ray dashboard with a local Ray (off: no port 8265, no agent noise)
    ray_address: str | None = None  # Ray cluster to connect to (implies executor "ray"); empty = start a local Ray
    workers: int | None = None  # chunks per batch (Ray: default the cluster's CPUs)
    output: Path | None = None  # Pareto table file (.parquet, .csv, .json); None = do not write
    warm_start: tuple[Mapping[str, float], ...] = ()  # mixtures to evaluate first, {domain = ratio, flops = C}
    max_failed_batches: int = 5  # stop after this many batches in a row without a completed trial


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """A whole mixture search, as read from a TOML file."""

    path: Path | None = None  # the config file (relative paths were resolved against its folder)
    data: DataConfig = field(default_factory=DataConfig)  # [data]
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig)  # [surrogate]
    domains: Mapping[str, DomainConfig] = field(default_factory=dict)  # [domains.<name>]
    tokens: TokensConfig = field(default_factory=TokensConfig)  # [tokens]
    compute: ComputeConfig = field(default_factory=ComputeConfig)  # [compute]
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)  # [objectives]
    search: SearchSettings = field(default_factory=SearchSettings)  # [search]
    plan: Any = None  # [plan]: a mixopt.search.plan.PlanSettings, None when the section is absent
    changes: DomainChanges | None = None  # [domains.changes]: how the domain set changed since its old runs (mixopt.data.changes)
    phases: PhasesConfig | None = None  # [phases]: search schedules of K phases (mixopt.config.phases); None = constant mixtures

    @property
    def output(self) -> Path | None:
        """The Pareto table file (``search.output``)."""
        return self.search.output


def _data_long(t: Mapping[str, Any], p: _Problems) -> dict[str, Any]:
    """``[data.long]``: checked by building the reader's LongLayout."""
    v = t.get("long", {})
    if not isinstance(v, Mapping):
        p.add("data.long", v, "must be a table like [data.long] with checkpoint_pattern, name_pattern, mix_domains, columns, kind")
        return {}
    if not v:
        return {}
    _unknown_keys(v, _names(LongLayout), "data.long", p)
    if (t.get("format") or "auto") != "long":
        p.add("data.format", t.get("format", "auto"), 'must be "long" when [data.long] is given')
    try:
        LongLayout.from_mapping({k: x for k, x in v.items() if k in _names(LongLayout)})
    except (SchemaError, TypeError) as e:
        p.add("data.long", dict(v), str(e).replace("\n", " "))
        return {}
    return dict(v)


def _parse_data(raw: Mapping[str, Any], p: _Problems, base_for: Any) -> DataConfig:
    """``[data]``."""
    t = _table(raw, "data", p)
    _unknown_keys(t, _names(DataConfig), "data", p)
    chance = {}
    if "chance" in t:
        chance = _num_map(t, "chance", "data", p, positive=False, lo=0.0, hi=1.0, allow_none=True)
    columns = t.get("columns", {})
    if not isinstance(columns, Mapping) or not all(isinstance(a, str) and isinstance(b, str) for a, b in columns.items()):
        p.add("data.columns", columns, 'must be a table of {file column or pattern = canonical column} strings, e.g. { "weight_{d}" = "mix:{d}" }')
        columns = {}
    run_id = t.get("run_id", [])
    if isinstance(run_id, str):
        run_id = [run_id]
    if not isinstance(run_id, list) or not all(isinstance(x, str) and x for x in run_id):
        p.add("data.run_id", run_id, 'must be a list of column names, e.g. ["params", "mix"]')
        run_id = []
    return DataConfig(
        runs=_path(t, "runs", "data", p, base_for("data.runs"), must_exist=True, file=True),
        ratios=_path(t, "ratios", "data", p, base_for("data.ratios"), must_exist=True, file=True),
        format=_string(t, "format", "data", p, "auto", choices=["auto", "mixopt", "regmix", "olmix", "long"]),
        params=_number(t, "params", "data", p, None, lo=0, strict_lo=True, optional=True),
        tokens=_number(t, "tokens", "data", p, None, lo=0, strict_lo=True, optional=True),
        chance=chance,
        columns=dict(columns),
        run_id=tuple(run_id),
        tokens_per_step=_number(t, "tokens_per_step", "data", p, None, lo=0, strict_lo=True, optional=True),
        on=_string(t, "on", "data", p, None, optional=True),
        join=_string(t, "join", "data", p, "exact", choices=["exact", "inner"]),
        long=_data_long(t, p),
    )


def _parse_surrogate(raw: Mapping[str, Any], p: _Problems, base_for: Any) -> SurrogateConfig:
    """``[surrogate]``."""
    t = _table(raw, "surrogate", p)
    _unknown_keys(t, _names(SurrogateConfig), "surrogate", p)
    settings = t.get("settings", {})
    if not isinstance(settings, Mapping):
        p.add("surrogate.settings", settings, 'must be a table of keyword arguments, e.g. { stage1 = "pure_power" }')
        settings = {}
    model = _path(t, "model", "surrogate", p, base_for("surrogate.model"), must_exist=True)
    return SurrogateConfig(method=_string(t, "method", "surrogate", p, "flpm"), settings=dict(settings), model=model)


def _parse_domains(raw: Mapping[str, Any], p: _Problems) -> dict[str, DomainConfig]:
    """``[domains.<name>]``: floor/cap/pin per domain; floors and pins must leave room (sum <= 1)."""
    t = _table(raw, "domains", p)
    domains: dict[str, DomainConfig] = {}
    for name, dt in t.items():
        if name == CHANGES:
            continue
        where = f"domains.{name}"
        if not isinstance(dt, Mapping):
            p.add(where, dt, "must be a table like [domains.web] with floor/cap/pin (put defaults under [tokens])")
            continue
        _unknown_keys(dt, _names(DomainConfig), where, p)
        floor = _number(dt, "floor", where, p, 0.0, lo=0.0, hi=1.0)
        cap = _number(dt, "cap", where, p, 1.0, lo=0.0, hi=1.0)
        pin = _number(dt, "pin", where, p, None, lo=0.0, hi=1.0, optional=True)
        if pin is not None and ("floor" in dt or "cap" in dt):
            p.add(where, dict(dt), "give either pin or floor/cap, not both")
        if floor > cap:
            p.add(where, dict(dt), f"floor {floor:g} > cap {cap:g}: lower the floor or raise the cap")
        domains[str(name)] = DomainConfig(floor=floor, cap=cap, pin=pin)
    lows = {d: (c.pin if c.pin is not None else c.floor) for d, c in domains.items()}
    if sum(lows.values()) > 1 + 1e-9:
        named = ", ".join(d for d, v in lows.items() if v > 0)
        p.items.append(f"sum(floors and pins) <= 1 must hold, but got {sum(lows.values()):.4g} for domains ({named}); lower the floors")
    return domains


def _parse_changes(raw: Mapping[str, Any], p: _Problems, base_for: Any) -> DomainChanges | None:
    """``[domains.changes]``: a :class:`~mixopt.data.changes.DomainChanges` (None when absent)."""
    t = raw.get("domains", {})
    if not isinstance(t, Mapping) or CHANGES not in t:
        return None
    v = t[CHANGES]
    where = f"domains.{CHANGES}"
    if not isinstance(v, Mapping):
        p.add(where, v, "must be a table like [domains.changes] with added, removed, split, merged, refiltered")
        return None
    bounds = sorted(set(v) & set(_names(DomainConfig)))
    if bounds:
        p.add(
            where,
            dict(v),
            (
                f"the name 'changes' is reserved under [domains] for the domain-set change (added, removed, split, "
                f"merged, refiltered, renamed, runs), but this table has domain bounds ({', '.join(bounds)}); a domain "
                "cannot be called 'changes' in a config: rename it in the run table with [data] columns, e.g. "
                'columns = { "mix:changes" = "mix:changes_data" } (use your file\'s ratio column), '
                "then give its bounds under [domains.changes_data]"
            ),
        )
        return None
    _unknown_keys(v, _names(DomainChanges), where, p)
    kw: dict[str, Any] = {k: x for k, x in v.items() if k in _names(DomainChanges) and k != "runs"}
    kw["runs"] = _path(v, "runs", where, p, base_for(f"{where}.runs"), must_exist=True, file=True)
    try:
        return DomainChanges(**kw)
    except (SchemaError, TypeError) as e:
        p.add(where, dict(v), str(e).replace("\n", " "))
        return None


def _parse_tokens(raw: Mapping[str, Any], p: _Problems) -> TokensConfig:
    """``[tokens]``."""
    t = _table(raw, "tokens", p)
    _unknown_keys(t, _names(TokensConfig), "tokens", p)
    tokens = TokensConfig(
        available=_num_map(t, "available", "tokens", p),
        max_epochs=_number(t, "max_epochs", "tokens", p, 4.0, lo=0.0, strict_lo=True),
        epochs=_num_map(t, "epochs", "tokens", p),
    )
    extra = sorted(set(tokens.epochs) - set(tokens.available))
    if extra:
        p.items.append(f"tokens.epochs names {extra} without tokens.available for them; add their unique token counts")
    return tokens


def _parse_compute(raw: Mapping[str, Any], p: _Problems) -> ComputeConfig:
    """``[compute]``: flops (+ tokens_per_param) or params and tokens."""
    t = _table(raw, "compute", p)
    _unknown_keys(t, _names(ComputeConfig), "compute", p)
    compute = ComputeConfig(
        flops=_range(t, "flops", "compute", p, None),
        tokens_per_param=_range(t, "tokens_per_param", "compute", p, (20.0, 20.0)),
        params=_range(t, "params", "compute", p, None),
        tokens=_range(t, "tokens", "compute", p, None),
    )
    if compute.flops is not None and (compute.params is not None or compute.tokens is not None):
        p.items.append("[compute]: give flops (with tokens_per_param) or params and tokens, not both")
    elif compute.flops is None and (compute.params is None or compute.tokens is None):
        if not any(k in t for k in ("flops", "params", "tokens")):
            p.items.append("[compute] needs flops = [low, high] (or one number), or params = [..] and tokens = [..]")
        elif "flops" not in t and ("params" in t) != ("tokens" in t):
            p.items.append("[compute]: params and tokens must be given together (or give flops instead)")
    if "tokens_per_param" in t and compute.params is not None:
        p.items.append("[compute]: tokens_per_param applies only with flops; with params and tokens it is implied")
    return compute


def _parse_objectives(raw: Mapping[str, Any], p: _Problems) -> ObjectivesConfig:
    """``[objectives]``: every objective and constraint is parsed here, so a typo fails at load time."""
    t = _table(raw, "objectives", p)
    _unknown_keys(t, _names(ObjectivesConfig), "objectives", p)
    opt = t.get("optimize", [])
    if isinstance(opt, (str, Mapping)):
        opt = [opt]
    if not isinstance(opt, list) or not opt:
        p.add("objectives.optimize", opt, 'must be a non-empty list, e.g. ["score:hellaswag", "score:humaneval"]')
        opt = []
    cons = t.get("constraints", [])
    if isinstance(cons, str):
        cons = [cons]
    if not isinstance(cons, list) or not all(isinstance(c, str) for c in cons):
        p.add("objectives.constraints", cons, 'must be a list of strings like "score:mmlu >= 0.45"')
        cons = []
    # mixopt.search is imported here, not at the top: its package loads optuna (slow to import)
    from mixopt.search.objectives import parse_constraint, parse_objective

    for i, o in enumerate(opt):
        try:
            parse_objective(o)
        except SearchError as e:
            p.add(f"objectives.optimize[{i}]", o, str(e))
    for i, c in enumerate(cons):
        try:
            parse_constraint(c)
        except SearchError as e:
            p.add(f"objectives.constraints[{i}]", c, str(e))
    return ObjectivesConfig(
        optimize=tuple(opt),
        constraints=tuple(cons),
        risk_kappa=_number(t, "risk_kappa", "objectives", p, 0.0, lo=0.0),
        penalty=_number(t, "penalty", "objectives", p, 0.0, lo=0.0),
        weights=_num_map(t, "weights", "objectives", p, positive=False, lo=0.0, hi=math.inf),
        reference_point=_num_map(t, "reference_point", "objectives", p, positive=False),
        shortlist=_number(t, "shortlist", "objectives", p, 5, lo=1, integer=True),
        epsilon=_number(t, "epsilon", "objectives", p, 0.005, lo=0.0),
    )


def _parse_search(raw: Mapping[str, Any], p: _Problems, base_for: Any) -> SearchSettings:
    """``[search]``."""
    t = _table(raw, "search", p)
    _unknown_keys(t, _names(SearchSettings), "search", p)
    from mixopt.search.sampler_names import SAMPLERS  # imported here, not at the top: see _parse_objectives

    study_name = _string(t, "study_name", "search", p, "mixopt")
    storage = t.get("storage", f"{study_name}.log")
    if storage is not None and not isinstance(storage, str):
        p.add("search.storage", storage, 'must be a journal (.log) or SQLite file path, an SQLAlchemy URL or "memory"')
        storage = None
    if isinstance(storage, str) and storage.strip() and "://" not in storage and storage.strip() not in ("memory", ":memory:", "none"):
        journal = storage.strip().startswith("journal:")
        sp = Path(storage.strip()[len("journal:") :] if journal else storage.strip()).expanduser()
        sp = sp if sp.is_absolute() else (base_for("search.storage") / sp).resolve()
        storage = f"journal:{sp}" if journal else str(sp)
    warm = t.get("warm_start", [])
    if not isinstance(warm, list) or not all(isinstance(w, Mapping) and all(_is_num(x) for x in w.values()) for w in warm):
        p.add("search.warm_start", warm, "must be a list of tables like { web = 0.7, code = 0.3 }")
        warm = []
    sopts = t.get("sampler_options", {})
    if not isinstance(sopts, Mapping):
        p.add("search.sampler_options", sopts, "must be a table of sampler keyword arguments")
        sopts = {}
    ray_address = _string(t, "ray_address", "search", p, None, optional=True)
    executor = _string(t, "executor", "search", p, "local", choices=["local", "ray"])
    output = _path(t, "output", "search", p, base_for("search.output"))
    if output is not None and output.suffix.lower() not in (".parquet", ".csv", ".json"):
        p.add("search.output", t["output"], "must end in .parquet, .csv or .json")
    return SearchSettings(
        trials=_number(t, "trials", "search", p, 2000, lo=1, integer=True),
        batch_size=_number(t, "batch_size", "search", p, 128, lo=1, integer=True),
        population_size=_number(t, "population_size", "search", p, None, lo=2, integer=True, optional=True),
        sampler=_string(t, "sampler", "search", p, "nsga2", choices=list(SAMPLERS)),
        sampler_options=dict(sopts),
        seed=_number(t, "seed", "search", p, 0, lo=0, integer=True),
        storage=storage,
        study_name=study_name,
        executor=executor,
        ray_address=ray_address,
        workers=_number(t, "workers", "search", p, None, lo=1, integer=True, optional=True),
        output=output,
        warm_start=tuple(dict(w) for w in warm),
        max_failed_batches=_number(t, "max_failed_batches", "search", p, 5, lo=1, integer=True),
        ray_dashboard=_bool(t, "ray_dashboard", "search", p, False),
    )


def parse_search_sections(raw: Mapping[str, Any], base: Path, source: str, *, cli_base: Path | None = None, cli_keys: frozenset[str] = frozenset(), known: Sequence[str] = ()) -> SearchConfig:
    """The search sections of a parsed TOML dict (``known``: the other top-level keys allowed).

    Raises:
        ConfigError: every invalid setting at once.
    """
    p = _Problems(source)
    _unknown_keys(raw, [*SECTIONS, *known], "", p)

    def base_for(key: str) -> Path:
        return cli_base if cli_base is not None and key in cli_keys else base

    data = _parse_data(raw, p, base_for)
    surrogate = _parse_surrogate(raw, p, base_for)
    if data.runs is None and surrogate.model is None:
        p.items.append('no data: set [data] runs = "path/to/runs.csv" (a run table) or [surrogate] model = "path/to/model"')
    domains = _parse_domains(raw, p)
    changes = _parse_changes(raw, p, base_for)
    tokens = _parse_tokens(raw, p)
    compute = _parse_compute(raw, p)
    objectives = _parse_objectives(raw, p)
    search = _parse_search(raw, p, base_for)
    plan = _parse_plan(raw, p) if "plan" in raw else None
    phases = parse_phases(raw, p)
    p.raise_if_any()
    return SearchConfig(
        path=None,
        data=data,
        surrogate=surrogate,
        domains=domains,
        tokens=tokens,
        compute=compute,
        objectives=objectives,
        search=search,
        plan=plan,
        changes=changes,
        phases=phases,
    )


def _parse_plan(raw: Mapping[str, Any], p: _Problems) -> Any:
    """``[plan]`` (``mixopt plan``): a :class:`mixopt.search.plan.PlanSettings`."""
    from mixopt.search.plan import PlanSettings

    t = _table(raw, "plan", p)
    _unknown_keys(t, _names(PlanSettings), "plan", p)
    kw: dict[str, Any] = {k: v for k, v in t.items() if k in _names(PlanSettings)}
    if "sizes" in kw:
        if not isinstance(kw["sizes"], list) or not all(_is_num(x) for x in kw["sizes"]):
            p.add("plan.sizes", kw.pop("sizes"), "must be a list of parameter counts, e.g. [1e6, 4e6]")
        else:
            kw["sizes"] = tuple(float(x) for x in kw["sizes"])
    for key in ("flops", "tokens_per_param", "noise"):
        if key in kw and _is_num(kw[key]):
            kw[key] = float(kw[key])
    try:
        return PlanSettings(**kw)
    except (SearchError, TypeError) as e:
        p.items.append(f"[plan]: {e} Fix these keys under [plan].")
        return None


__all__ = [
    "SECTIONS",
    "ComputeConfig",
    "DataConfig",
    "DomainConfig",
    "ObjectivesConfig",
    "SearchConfig",
    "SearchSettings",
    "SurrogateConfig",
    "TokensConfig",
    "parse_search_sections",
]
