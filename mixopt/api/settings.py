"""Service settings: one frozen object, read from ``MIXOPT_``-prefixed environment variables.

Every field ``name`` is read from the variable ``MIXOPT_<NAME>`` (e.g. ``MIXOPT_DATA_DIR``,
``MIXOPT_API_KEYS``); ``mixopt serve`` flags override the environment. Every invalid
variable is reported at once in one :class:`~mixopt.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mixopt.errors import ConfigError

ENV_PREFIX = "MIXOPT_"
EXECUTORS = ("ray", "thread")

#: Largest value of each size or budget setting of a model fit (``POST /v1/models`` ``settings``):
#: a fit beyond them is refused with 422, so every fit ends in bounded time (fits count
#: iterations, never seconds: ``maxiter`` bounds every law fit). ``MIXOPT_FIT_LIMITS``
#: (a JSON object) changes single entries.
FIT_LIMITS: dict[str, float] = {
    "n_bootstrap": 2000,  # bootstrap refits
    "n_starts": 64,  # optimiser starts per law
    "maxiter": 100_000,  # optimiser iterations per start
    "n_members": 64,  # ensemble members of FLP-M's score nets
    "max_epochs": 20_000,  # training epochs per score net
    "patience": 20_000,  # early-stopping patience, epochs
    "hidden": 512,  # hidden units of a score net
    "selection_folds": 20,  # internal backtest folds of FLP's auto choices
    "min_rows": 100_000,  # baselines: rows needed to fit
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Settings of the HTTP service (``mixopt serve``)."""

    host: str = "127.0.0.1"  # interface to listen on (loopback by default)
    port: int = 8000  # TCP port
    data_dir: Path = field(default_factory=lambda: Path("mixopt-data"))  # the server's own folder: database, uploads, models, job results
    database_url: str | None = None  # SQLAlchemy URL of the metadata database; None = SQLite file <data_dir>/mixopt.db
    study_storage: str | None = None  # database URL for every job's Optuna study; None = a journal file per job (SQLite metadata) or database_url
    api_keys: tuple[str, ...] = ()  # bearer tokens (MIXOPT_API_KEYS, comma-separated); empty = no authentication
    executor: str = "ray"  # where jobs run: "ray" (local Ray, or the cluster at ray_address) or "thread" (in-process)
    ray_address: str | None = None  # Ray cluster address; None = start a local Ray on the first job
    ray_num_cpus: int | None = None  # CPUs of a locally started Ray (None = all this process may use)
    job_workers: int = 2  # jobs run at once by the "thread" executor (Ray schedules by CPU)
    max_upload_bytes: int = 100 * 2**20  # largest dataset upload, bytes (refused early, while streaming)
    max_request_bytes: int = 8 * 2**20  # largest body of any other request, bytes
    max_batch: int = 10_000  # most rows (mixtures x compute) in one predict request
    max_jobs_per_key: int = 4  # unfinished jobs (queued, running, fitting models) per API key
    max_trials: int = 200_000  # most trials one optimisation job may ask for
    model_cache: int = 16  # fitted models kept in memory for predict
    predict_merge: bool = True  # merge predict requests that arrive while a model is busy into one model call (measured: 1.6x throughput)
    gc_freeze: bool = True  # after start-up and after each model load, move the live heap out of the garbage collector's sight (gc.freeze): measured p99 132 -> 53 ms
    fit_limits: Mapping[str, float] = field(default_factory=lambda: dict(FIT_LIMITS))  # largest value of each fit setting (422 beyond); MIXOPT_FIT_LIMITS changes entries
    trainers: Mapping[str, Any] = field(default_factory=dict)  # validation trainers of this server (name -> settings); empty = no validation jobs
    log_level: str = "info"  # uvicorn/mixopt log level

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            problems.append(f"port must be an integer in [0, 65535], got {self.port!r}")
        if self.executor not in EXECUTORS:
            problems.append(f"executor must be one of {list(EXECUTORS)}, got {self.executor!r}")
        for name in ("job_workers", "max_upload_bytes", "max_request_bytes", "max_batch", "max_jobs_per_key", "max_trials", "model_cache"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                problems.append(f"{name} must be an integer >= 1, got {v!r}")
        if self.study_storage and "://" not in self.study_storage:
            problems.append(f"study_storage must be a database URL (e.g. postgresql://u@host/db), got {self.study_storage!r}; "
                            "leave it unset for a journal file per job")
        if any(not k or len(k) < 8 or any(c.isspace() or c == "," for c in k) for k in self.api_keys):
            problems.append("api_keys must be tokens of at least 8 characters without spaces or commas")
        if not isinstance(self.fit_limits, Mapping) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in self.fit_limits.values()):
            problems.append(f"fit_limits must map setting names to numbers > 0, got {self.fit_limits!r}")
        if problems:
            raise ConfigError("Invalid service settings:\n" + "\n".join(f"  - {p}" for p in problems))
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        object.__setattr__(self, "fit_limits", {**FIT_LIMITS, **dict(self.fit_limits)})

    # -- derived -----------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        """The metadata database URL (SQLite under ``data_dir`` by default)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'mixopt.db'}"

    @property
    def studies_url(self) -> str | None:
        """The database URL shared by every job's Optuna study, or None: one journal file per job.

        Per-job journal files (the default with SQLite metadata) cost nothing to create, are
        written in batches by the search runner, and are locked by one runner each (the runner
        locks a study file, so jobs must not share one).
        """
        if self.study_storage:
            return self.study_storage
        if self.database_url and not self.database_url.startswith("sqlite"):
            return self.database_url
        return None

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (None values are ignored: "not given")."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``MIXOPT_<NAME>`` variables of ``env`` (default ``os.environ``), then ``overrides``.

        Raises:
            ConfigError: every malformed variable, naming it, the value and the expected form.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            if var not in env:
                continue
            raw = env[var].strip()
            try:
                values[f.name] = _parse(f.name, raw)
            except ValueError as e:
                problems.append(f"{var}={raw!r}: {e}")
        if problems:
            raise ConfigError("Invalid MIXOPT_ environment variables:\n" + "\n".join(f"  - {p}" for p in problems))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


_INTS = {"port", "ray_num_cpus", "job_workers", "max_upload_bytes", "max_request_bytes", "max_batch", "max_jobs_per_key",
         "max_trials", "model_cache"}
_OPTIONAL = {"database_url", "study_storage", "ray_address", "ray_num_cpus"}


def _parse(name: str, raw: str) -> Any:
    if name in _OPTIONAL and raw == "":
        return None
    if name in _INTS:
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            v = float(raw)  # allow 1e8
        except ValueError:
            v = float("nan")
        if not v.is_integer():
            raise ValueError("expected an integer, e.g. 1000000")
        return int(v)
    if name in ("predict_merge", "gc_freeze"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if name == "api_keys":
        return tuple(k.strip() for k in raw.split(",") if k.strip())
    if name == "data_dir":
        if not raw:
            raise ValueError("expected a folder path")
        return Path(raw)
    if name == "fit_limits":
        import json

        try:
            v = json.loads(raw) if raw else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"expected a JSON object of limits, e.g. {{\"n_members\": 16}} ({e})") from None
        if not isinstance(v, dict):
            raise ValueError("expected a JSON object {setting: largest value}")
        return v
    if name == "trainers":
        import json

        try:
            v = json.loads(raw) if raw else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"expected a JSON object of trainer settings ({e})") from None
        if not isinstance(v, dict):
            raise ValueError("expected a JSON object {name: settings}")
        return v
    return raw


__all__ = ["ENV_PREFIX", "EXECUTORS", "FIT_LIMITS", "Settings"]
