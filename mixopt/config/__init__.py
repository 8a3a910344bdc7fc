"""The project config: ONE parser for the TOML file of a search and its training jobs.

One file holds every section (see ``configs/example.toml`` and ``configs/ladder.toml``):
the search sections (``[data]``, ``[surrogate]``, ``[domains.<name>]``, ``[tokens]``,
``[compute]``, ``[objectives]``, ``[search]``: :mod:`mixopt.config.search`) and the training
sections (``[trainer]``, ``[ladder]``, ``[validate]``: :mod:`mixopt.config.train`). The file is
read and parsed once (:func:`load_project`); each section becomes a frozen dataclass; every
problem of the whole file is reported at once, naming the key, the value received and the fix.
Command-line overrides are listed once, in :data:`OVERRIDES`.

Package rule: ``mixopt.config`` may import ``mixopt.errors``, ``mixopt.data``,
``mixopt.search`` and ``mixopt.train`` (to check names such as objectives and samplers at
load time); those packages never import it (they take the sections as arguments; type-only
imports sit under ``TYPE_CHECKING``). Workflows, the API and the CLI import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mixopt._json import jsonable
from mixopt.config import search as _search_sections
from mixopt.config import train as _train_sections
from mixopt.config._parse import _set_dotted, read_toml
from mixopt.config.search import (
    ComputeConfig,
    DataConfig,
    DomainConfig,
    ObjectivesConfig,
    SearchConfig,
    SearchSettings,
    SurrogateConfig,
    TokensConfig,
    parse_search_sections,
)
from mixopt.config.train import LadderSection, TrainConfig, TrainerSection, ValidateSection, parse_train_sections
from mixopt.errors import ConfigError

#: Command-line override keys (``mixopt optimize --trials ...``) and the config keys they set.
OVERRIDES = {
    "trials": "search.trials",
    "seed": "search.seed",
    "storage": "search.storage",
    "ray_address": "search.ray_address",
    "executor": "search.executor",
    "output": "search.output",
    "study_name": "search.study_name",
    "sampler": "search.sampler",
    "batch_size": "search.batch_size",
    "workers": "search.workers",
    "ray_dashboard": "search.ray_dashboard",
    "shortlist": "objectives.shortlist",
    "epsilon": "objectives.epsilon",
}


@dataclass(frozen=True, kw_only=True)
class ProjectConfig:
    """Every section of one config file, parsed once."""

    path: Path | None = None  # the config file (relative paths were resolved against its folder)
    search: SearchConfig | None = None  # the search sections; None when they were not asked for (a ladder file)
    train: TrainConfig = field(default_factory=TrainConfig)  # [trainer], [ladder], [validate]

    @property
    def rounds(self) -> int:
        """``[validate] rounds``: loop rounds of ``mixopt optimize`` (0 = a plain search)."""
        return self.train.validate.rounds if self.train.validate is not None else 0


def _apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> tuple[dict[str, Any], frozenset[str]]:
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    keys: set[str] = set()
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        dotted = OVERRIDES.get(k, k)
        if "." not in dotted:
            raise ConfigError(f"Unknown override {k!r}; use one of {sorted(OVERRIDES)} or a dotted key like 'search.trials'.")
        _set_dotted(out, dotted, v)
        keys.add(dotted)
    return out, frozenset(keys)


def project_from_dict(raw: Mapping[str, Any], *, base_dir: str | Path = ".", source: str = "<dict>",
                      overrides: Mapping[str, Any] | None = None, path: Path | None = None,
                      search: bool = True, train: bool = True) -> ProjectConfig:
    """Validate the sections of a parsed TOML dict; see :func:`load_project`.

    ``search``/``train``: which sections to parse (the other kind's tables are then allowed
    and ignored; with ``train=False`` the result has the default :class:`TrainConfig`).
    """
    raw, cli_keys = _apply_overrides(raw, overrides)
    base = Path(base_dir)
    problems: list[str] = []
    scfg: SearchConfig | None = None
    tcfg = TrainConfig(path=path)
    if search:
        try:
            scfg = replace(parse_search_sections(raw, base, source, cli_base=Path.cwd(), cli_keys=cli_keys,
                                                 known=_train_sections.SECTIONS), path=path)
        except ConfigError as e:
            problems.append(str(e))
    if train:
        try:
            tcfg = parse_train_sections(raw, base, path=path, source=source)
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))
    return ProjectConfig(path=path, search=scfg, train=tcfg)


def load_project(path: str | Path, *, overrides: Mapping[str, Any] | None = None, search: bool = True) -> ProjectConfig:
    """Read a config file once and validate all its sections.

    Args:
        path: the TOML file.
        overrides: values that replace the file's, by short name (see :data:`OVERRIDES`) or by
            dotted key (``"search.trials"``). Relative paths in overrides are taken from the
            current directory.
        search: also parse the search sections (False for a file of training jobs only, such
            as ``configs/ladder.toml``).

    Raises:
        ConfigError: a missing or malformed file, or every invalid setting at once.
    """
    path = Path(path).expanduser()
    raw = read_toml(path, example="configs/example.toml" if search else "configs/ladder.toml")
    return project_from_dict(raw, base_dir=path.resolve().parent, source=str(path), overrides=overrides,
                             path=path.resolve(), search=search)


def load_config(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> SearchConfig:
    """The search sections of a config file (:func:`load_project` ``(path).search``)."""
    cfg = load_project(path, overrides=overrides).search
    assert cfg is not None
    return cfg


def load_train_config(path: str | Path) -> TrainConfig:
    """The training sections of a config file (:func:`load_project` with ``search=False``)."""
    return load_project(path, search=False).train


def config_from_dict(raw: Mapping[str, Any], *, base_dir: str | Path = ".", source: str = "<dict>",
                     overrides: Mapping[str, Any] | None = None, path: Path | None = None) -> SearchConfig:
    """The search sections of a config given as a dict (the parsed TOML); see :func:`load_project`."""
    cfg = project_from_dict(raw, base_dir=base_dir, source=source, overrides=overrides, path=path, train=False).search
    assert cfg is not None
    return cfg


def config_to_dict(cfg: SearchConfig | TrainConfig | ProjectConfig) -> dict[str, Any]:
    """A plain JSON-able dict of a config (paths as strings; :func:`mixopt._json.jsonable`)."""
    return jsonable(cfg)


SECTIONS = (*_search_sections.SECTIONS, *_train_sections.SECTIONS)

__all__ = [
    "OVERRIDES",
    "SECTIONS",
    "ComputeConfig",
    "DataConfig",
    "DomainConfig",
    "LadderSection",
    "ObjectivesConfig",
    "ProjectConfig",
    "SearchConfig",
    "SearchSettings",
    "SurrogateConfig",
    "TokensConfig",
    "TrainConfig",
    "TrainerSection",
    "ValidateSection",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "load_project",
    "load_train_config",
    "parse_train_sections",
    "project_from_dict",
]
