"""The work behind jobs: fitting a model and running a search, as plain functions.

These run in a Ray worker (the default) or a thread of the service, take and return
JSON-able values only, and import no FastAPI. The work is done by the same library calls and
workflows as the CLI's: :func:`~mixopt.data.readers.read_runs`,
:func:`mixopt.workflows.fit.fit_model`, :func:`~mixopt.backtest.backtest`,
:func:`~mixopt.config.config_from_dict`, :func:`mixopt.workflows.optimize.run_search` and
:func:`mixopt.workflows.validate.validate_each`; this module only wires paths owned by the
server. Results are sanitised by :func:`mixopt._json.jsonable` and carry no server paths.

A search is cancelled cooperatively: :class:`CancellableExecutor` checks the job's
``cancel`` flag file before each batch and raises :class:`JobCancelled`; the runner then
writes every trial already told to the study, so a cancelled (or killed) job keeps its
completed trials and can be resumed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mixopt._files import atomic_path, write_text
from mixopt._json import jsonable
from mixopt.backtest import backtest
from mixopt.config import config_from_dict, parse_train_sections
from mixopt.data.readers import read_runs
from mixopt.errors import ConfigError, MixoptError
from mixopt.search.executors import Executor, LocalExecutor
from mixopt.surrogate import Targets, load_surrogate, save_surrogate
from mixopt.train.validate import pick_diverse, read_pareto, read_shortlist, summarize
from mixopt.workflows.fit import fit_model, save_model
from mixopt.workflows.optimize import fit_surrogate, run_search
from mixopt.workflows.validate import validate_each

logger = logging.getLogger(__name__)

#: File name of a dataset's canonical table inside its folder (written by ``write_runs``).
DATASET_FILE = "runs.parquet"
#: File name of a job's Pareto table (plus ``pareto.trials.parquet`` and ``pareto.summary.json``).
PARETO_FILE = "pareto.parquet"
#: A job's cancel flag (its presence stops the search before the next batch).
CANCEL_FILE = "cancel"

#: Config keys a client may not set: the server owns paths, storage and executors.
SERVER_KEYS: dict[str, str] = {
    "data.runs": "the server reads no client paths: upload the table (POST /v1/datasets) and give its id as \"dataset\"",
    "data.ratios": "upload both files of a two-file table together (POST /v1/datasets with runs and ratios)",
    "data.format": "the layout is given when the table is uploaded",
    "data.params": "give params when the table is uploaded",
    "data.tokens": "give tokens when the table is uploaded",
    "data.chance": "give chance levels when the table is uploaded",
    "data.columns": "give column renames when the table is uploaded",
    "surrogate.model": "refer to a fitted model by id (\"model\" in the request), not by path",
    "search.storage": "the server stores every job's study itself",
    "search.study_name": "the study is named after the job",
    "search.output": "results are served by GET /v1/jobs/{id}/pareto",
    "search.executor": "the server decides where jobs run",
    "search.ray_address": "the server decides where jobs run",
    "search.workers": "the server decides where jobs run",
    "data.run_id": "the table's run ids are fixed when it is uploaded",
    "data.tokens_per_step": "give tokens when the table is uploaded",
    "data.on": "upload both files of a two-file table together (POST /v1/datasets with runs and ratios)",
    "data.join": "upload both files of a two-file table together (POST /v1/datasets with runs and ratios)",
    "data.long": "upload the table in the wide layout",
    "domains.changes": "map the old runs first (POST /v1/datasets/{old}/changes with the new runs' dataset as \"new\") "
                       "and search on the dataset it returns",
}

#: Whole sections of a project config that a job config may not have: only the server's own
#: trainers run (validation jobs: POST /v1/validations with a trainer the server names).
SERVER_SECTIONS: dict[str, str] = {
    "trainer": "only the server's own trainers run: start a validation job (POST /v1/validations) with a trainer "
               "this server offers",
    "validate": "validation is a separate job: POST /v1/validations after this search is done",
    "ladder": "training ladders are not run over the API",
}


class JobCancelled(MixoptError, RuntimeError):
    """The job was cancelled by its owner."""


# -- datasets -----------------------------------------------------------------------------------
def dataset_summary(runs: Any) -> dict[str, Any]:
    """What a dataset holds (for ``DatasetPublic``)."""
    return {
        "runs": runs.n_runs,
        "checkpoints": len(runs),
        "domains": list(runs.domains),
        "loss_domains": list(runs.loss_domains),
        "has_overall_loss": bool(runs.has_overall_loss),
        "benchmarks": [b.to_dict() for b in runs.benchmarks],
    }


def load_dataset(folder: str | Path) -> Any:
    """The canonical run table of a stored dataset."""
    return read_runs(Path(folder) / DATASET_FILE, format="mixopt")


# -- models -------------------------------------------------------------------------------------
def model_summary(model: Any) -> dict[str, Any]:
    """Method, settings, outputs, domains and the fitted laws' report of a fitted surrogate."""
    out: dict[str, Any] = {
        "method": model.kind,
        "settings": model.get_params(),
        "uses_mixture": bool(model.uses_mixture),
        "outputs": list(model.outputs_),
        "domains": list(model.domains_),
        "benchmarks": [b.to_dict() for b in model.benchmarks_],
        "unpredictable": dict(model.unpredictable_),
        "fit_seconds": getattr(model, "fit_seconds_", None),
    }
    report = getattr(model, "fit_report_", None)
    if report is not None and hasattr(report, "to_dicts"):
        out["laws"] = report.to_dicts()
    return jsonable(out)


def fit_task(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Fit ``spec["method"]`` on a stored dataset, save it, optionally backtest it.

    ``spec``: ``dataset_dir``, ``method``, ``settings``, ``out_dir``, ``backtest`` (None
    or the keyword arguments of :func:`mixopt.backtest.make_split` plus ``level``).
    Returns the model summary (plus ``backtest`` when asked).
    """
    runs = load_dataset(spec["dataset_dir"])
    model = fit_model(runs, spec["method"], spec.get("settings"))
    out_dir = Path(spec["out_dir"])
    save_model(model, out_dir)
    summary = model_summary(model)
    bt = spec.get("backtest")
    if bt is not None:
        bt = dict(bt)
        level = float(bt.pop("level", 0.9))
        res = backtest(runs, spec["method"], settings=spec.get("settings") or {}, level=level, **bt)
        data = jsonable(res.to_json())
        write_text(out_dir / "backtest.json", json.dumps(data), what="backtest results")
        summary["backtest"] = {"split": data["split"], "summary": data["summary"], "decisions": data["decisions"]}
    # one tiny prediction warms lazy imports (torch) in this process; harmless elsewhere
    try:
        t = Targets(flops=np.array([float(np.median(runs.flops()))]),
                    mixture=runs.mixture()[:1] if model.uses_mixture else None,
                    domains=runs.domains if model.uses_mixture else ())
        model.predict(t.align(model.domains_) if model.uses_mixture else t)
    except MixoptError:
        pass
    return summary


# -- searches -----------------------------------------------------------------------------------
def _flatten(raw: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in raw.items():
        key = f"{prefix}{k}"
        keys.append(key)
        if isinstance(v, Mapping) and prefix == "":
            keys += _flatten(v, key + ".")
    return keys


def client_config_problems(raw: Mapping[str, Any]) -> list[str]:
    """Keys of a client's search config that only the server may set (one line each)."""
    problems = [f"[{key}]: not accepted over the API: {why}" for key, why in SERVER_SECTIONS.items() if key in raw]
    present = set(_flatten(raw))
    for key, why in SERVER_KEYS.items():
        if key in present or any(p.startswith(key + ".") for p in present):
            problems.append(f"{key}: not accepted over the API: {why}")
    return problems


def job_config(
    raw: Mapping[str, Any],
    *,
    model_path: str | None,
    dataset_path: str | None,
    storage: str,
    study_name: str,
    trials: int | None = None,
) -> Any:
    """The :class:`~mixopt.config.SearchConfig` of a job: the client's settings + the server's paths.

    Raises:
        ConfigError: every problem of the client's config at once (server-only keys included).
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"The search config must be an object (the parsed TOML), got {type(raw).__name__}.")
    problems = client_config_problems(raw)
    if problems:
        raise ConfigError("Invalid search config: " + f"{len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    cfg = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    if isinstance(cfg.get("data"), dict):
        cfg["data"].pop("dataset", None)
        if not cfg["data"]:
            del cfg["data"]
    if model_path is not None and isinstance(cfg.setdefault("surrogate", {}), dict):
        cfg["surrogate"]["model"] = model_path
    elif dataset_path is not None:
        cfg["data"] = {"runs": dataset_path, "format": "mixopt"}
    if isinstance(cfg.setdefault("search", {}), dict):
        cfg["search"].update(storage=storage, study_name=study_name, executor="local")
        if trials is not None:
            cfg["search"]["trials"] = int(trials)
    return config_from_dict(cfg, base_dir=Path(dataset_path or model_path or ".").parent, source="(request)")


class _StopCheck:
    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __call__(self) -> bool:
        return self.flag.exists()


def _cancellable(inner: Any, should_stop: Any) -> Any:
    """An executor that raises :class:`JobCancelled` instead of starting a batch once ``should_stop()``."""
    class CancellableExecutor(Executor):
        def __init__(self) -> None:
            self.slots = inner.slots

        def submit(self, problem: Any, u: np.ndarray) -> Any:
            if should_stop():
                raise JobCancelled("The job was cancelled; its completed trials are kept (resume it to continue).")
            return inner.submit(problem, u)

        def result(self, handle: Any) -> Any:
            return inner.result(handle)

        def cancel(self, handle: Any) -> None:
            inner.cancel(handle)

        def close(self) -> None:
            inner.close()

        def describe(self) -> str:
            return inner.describe()

    return CancellableExecutor()


def optimize_task(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run (or resume) a job's search and write its Pareto table under ``job_dir``.

    ``spec``: ``config`` (the client's dict), ``model_path`` or ``dataset_path``,
    ``job_dir``, ``storage``, ``study_name``, ``trials`` (target; None = the config's).
    A job on a dataset fits its surrogate once and saves it in ``job_dir/model`` so a
    resumed job continues with the very same model.

    Returns:
        The search summary (``SearchResult.to_json`` without the Pareto rows) plus ``n_pareto``.
    """
    job_dir = Path(spec["job_dir"])
    job_dir.mkdir(parents=True, exist_ok=True)
    own_model = job_dir / "model"
    model_path = spec.get("model_path")
    if model_path is None and (own_model / "model.json").is_file():
        model_path = str(own_model)
    config = job_config(spec["config"], model_path=model_path, dataset_path=None if model_path else spec.get("dataset_path"),
                        storage=spec["storage"], study_name=spec["study_name"], trials=spec.get("trials"))
    if model_path is not None:
        surrogate = load_surrogate(model_path)
    else:
        surrogate = fit_surrogate(config)
        save_surrogate(surrogate, own_model)
    executor = _cancellable(LocalExecutor(), _StopCheck(job_dir / CANCEL_FILE))
    result = run_search(config, surrogate, progress=False, executor=executor)
    result.write(job_dir / PARETO_FILE, trials=True)
    summary = result.to_json()
    summary.pop("pareto", None)
    summary.pop("shortlist", None)
    summary.pop("storage", None)
    summary["n_pareto"] = int(result.pareto.height)
    return jsonable(summary)


#: A validation's files: the comparison (predicted vs measured) and its progress.
VALIDATION_FILE = "validation.csv"
PROGRESS_FILE = "progress.json"
#: Keys of a server trainer definition that belong to the ``[validate]`` section, not ``[trainer]``.
VALIDATE_KEYS = ("seed", "checkpoints")


def train_config(trainer: Mapping[str, Any], *, base: str | Path, workdir: str | Path | None = None, name: str = "") -> Any:
    """:class:`~mixopt.config.TrainConfig` of one server-defined trainer (``MIXOPT_TRAINERS`` entry).

    The entry is a ``[trainer]`` table of ``mixopt.train`` (``kind``, ``options``, ``executor``,
    ``timeout_s``, ...) plus optional ``seed``/``checkpoints`` of the validation runs.

    Raises:
        ConfigError: every invalid setting (parsed by :mod:`mixopt.config`).
    """
    t = {k: v for k, v in trainer.items() if k not in VALIDATE_KEYS}
    if workdir is not None:
        t["workdir"] = str(workdir)
    v = {k: trainer[k] for k in VALIDATE_KEYS if k in trainer}
    return parse_train_sections({"trainer": t, "validate": v}, base, source=f"MIXOPT_TRAINERS[{name!r}]")


def _write_progress(out: Path, done: int, target: int) -> None:
    tmp = out / (PROGRESS_FILE + ".tmp")
    tmp.write_text(json.dumps({"done": done, "target": target}))
    tmp.replace(out / PROGRESS_FILE)


def validate_task(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Train a finished job's diverse top ``k`` Pareto mixtures with a server trainer; compare with its surrogate.

    ``spec``: ``trainer`` (the server's definition), ``trainer_name``, ``base`` (folder for the
    trainer's relative paths), ``job_dir`` (the search job's folder: Pareto + shortlist),
    ``model_path`` (the job's surrogate), ``out_dir``, ``k``, ``level``, ``prefix`` (run ids).
    Mixtures are picked by :func:`mixopt.train.validate.pick_diverse` (the shortlist first) and
    trained one after another by :func:`mixopt.workflows.validate.validate_each` (runs appended to
    ``out_dir/runs.csv``; a run already there is not trained again, so a resume continues); the
    cancel flag is checked before each. Writes ``validation.csv`` (predicted vs measured).

    Returns:
        ``trained`` run ids, ``failed`` runs with their reasons, the ``mixtures`` chosen and ``summary`` rows.

    Raises:
        JobCancelled: the owner cancelled it (finished runs are kept).
    """
    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    tc = train_config(spec["trainer"], base=spec["base"], workdir=out / "train", name=spec.get("trainer_name", ""))
    pareto_path = Path(spec["job_dir"]) / PARETO_FILE
    chosen = pick_diverse(read_pareto(pareto_path), int(spec["k"]), shortlist=read_shortlist(pareto_path))
    surrogate = load_surrogate(spec["model_path"])
    flag = out / CANCEL_FILE

    def before_each(i: int) -> None:
        if flag.exists():
            raise JobCancelled(f"cancelled after {i} of {chosen.height} trained mixtures")

    _write_progress(out, 0, chosen.height)
    done = validate_each(chosen, surrogate, tc, out / "runs.csv", prefix=spec["prefix"], level=float(spec["level"]),
                         before_each=before_each, after_each=lambda n: _write_progress(out, n, chosen.height))
    comp = done.comparison
    with atomic_path(out / VALIDATION_FILE, what="validation table") as tmp:
        comp.write_csv(tmp)
    mix_cols = [c for c in chosen.columns if c.startswith("mix:")]
    return jsonable({"trained": done.trained, "failed": done.failed, "mixtures": chosen.select(mix_cols).to_dicts(),
                     "summary": summarize(comp).to_dicts() if comp.height else []})


def run_task(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Entry point of every job (what Ray or a thread runs)."""
    if kind == "fit":
        return fit_task(spec)
    if kind == "optimize":
        return optimize_task(spec)
    if kind == "validate":
        return validate_task(spec)
    raise ValueError(f"unknown task kind {kind!r}")


__all__ = [
    "CANCEL_FILE",
    "DATASET_FILE",
    "PARETO_FILE",
    "SERVER_KEYS",
    "JobCancelled",
    "client_config_problems",
    "dataset_summary",
    "fit_task",
    "job_config",
    "load_dataset",
    "model_summary",
    "optimize_task",
    "run_task",
    "train_config",
    "validate_task",
]
