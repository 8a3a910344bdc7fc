"""The report workflow: ``mixopt report``, and the ``--report`` files of ``optimize`` and ``backtest``.

Inputs are plain values (paths, a config, fitted objects); the CLI only parses options and
prints. Figures and the HTML document are library code in :mod:`mixopt.report`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from mixopt._files import atomic_path, check_writable, write_text
from mixopt._json import jsonable
from mixopt.config import SearchConfig, load_config
from mixopt.data.readers import read_runs
from mixopt.data.table import training_flops
from mixopt.errors import SchemaError
from mixopt.report.build import build_report
from mixopt.report.document import OUTPUT_FORMATS, Report
from mixopt.report.figures import Target
from mixopt.surrogate import load_surrogate
from mixopt.workflows.optimize import _read_config_runs, fit_surrogate, model_cache_dir, surrogate_key

logger = logging.getLogger(__name__)



def write(report: Report, out: str | Path, format: str = "html") -> list[Path]:
    """Write ``report`` as one HTML file (``format="html"``) or as figure files in folder ``out``."""
    if format not in OUTPUT_FORMATS:
        raise SchemaError(f"--format must be one of {list(OUTPUT_FORMATS)}, got {format!r}.")
    if format == "html":
        p = Path(out)
        if p.is_dir():
            raise SchemaError(f"{p} is a folder; the HTML report needs a file name (e.g. {p / 'report.html'}).")
        return [report.write_html(p)]
    return report.write_figures(out, format)


def config_settings(config: Any) -> dict[str, Any]:
    """A search config as JSON-able settings for the provenance."""
    return jsonable(config)


def _config_files(config: Any) -> dict[str, Any]:
    d = getattr(config, "data", None)
    files = {
        "config": getattr(config, "path", None),
        "runs": getattr(d, "runs", None),
        "ratios": getattr(d, "ratios", None),
        "model": getattr(getattr(config, "surrogate", None), "model", None),
    }
    return {k: v for k, v in files.items() if v is not None}


def read_config_runs(config: Any):
    """The run table a search config names (None when it only names a saved model); with
    ``[domains.changes] runs``, the old runs mapped and added as the search fits them."""
    d = config.data
    if d.runs is None:
        return None
    if getattr(config, "changes", None) is not None:
        return _read_config_runs(config)
    return read_runs(d.runs, **d.read_options())


def _quantities(table: Any) -> set[str]:
    return {c for c in table.frame.columns if c == "loss" or c.startswith(("loss:", "score:"))}


def check_model_runs(fitted: Any, table: Any, *, model: Any = None, runs: Any = None) -> None:
    """Refuse to draw a model's laws through runs it was not fitted on.

    The runs must have the model's domains (when it has any) and the model's quantities,
    and every benchmark of the runs must be one the model was fitted on (a model fitted on
    these runs lists each benchmark, predictable or not).

    Raises:
        SchemaError: naming what does not match and the fix.
    """
    what_m = f"the model {model}" if model is not None else f"the {fitted.kind} model"
    what_r = f"the runs {runs}" if runs is not None else "the runs"
    problems = []
    domains = tuple(getattr(fitted, "domains_", ()) or ())
    if domains and set(domains) != set(table.domains):
        problems.append(f"{what_m} has domains {list(domains)}, {what_r} have {list(table.domains) or 'none (no mix: columns)'}")
    outputs = set(getattr(fitted, "outputs_", ()) or ())
    have = _quantities(table)
    missing = sorted(outputs - have)
    if missing:
        problems.append(f"{what_m} predicts {missing}, which {what_r} do not measure")
    unseen = sorted(q for q in have - outputs if q.startswith("score:"))
    if unseen:
        problems.append(f"{what_r} have benchmark(s) {unseen} that {what_m} was not fitted on")
    if problems:
        raise SchemaError(f"{what_r[0].upper()}{what_r[1:]} are not the data {what_m} was fitted on: give the run table it was fitted on "
                          "(--runs, and --ratios for a two-file table), or fit a model on these runs first "
                          "(mixopt fit --runs ...).", problems)


def search_surrogate(config: Any) -> Any:
    """The surrogate a search used: the study's model cache when there is one (no refit), else the
    saved model or the same seeded fit as ``mixopt optimize``."""
    return fit_surrogate(config, key=surrogate_key(config), cache=model_cache_dir(config))


def search_report(config: Any, surrogate: Any, result: Any, *, command: Sequence[str] | None = None,
                  extra_files: Mapping[str, Any] | None = None) -> Report:
    """The report of a finished ``mixopt optimize`` run (fits at the best mixture, the search, provenance)."""
    runs = read_config_runs(config)
    files = _config_files(config)
    out = getattr(config, "output", None)
    if out is not None and Path(out).is_file():
        files["pareto"] = out
    files.update(dict(extra_files or {}))
    return build_report(model=surrogate, runs=runs, search=result, files=files, settings=config_settings(config),
                        command=command, title="mixopt report: mixture search")


def write_backtest(results: Sequence[Any], table: pl.DataFrame, path: str | Path) -> Path:
    """Write backtest results: ``.json`` (the ``--json`` payload) or ``.csv`` (rows with a ``method`` column)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".json", ".csv"):
        raise SchemaError(f"Backtest results file must end in .json or .csv, got {p.name!r}.")
    if ext == ".json":
        from mixopt.backtest import compare_decisions

        payload = {"results": [r.to_json() for r in results], "comparison": table.to_dicts(),
                   "decisions": compare_decisions(results).to_dicts()}
        return write_text(p, json.dumps(jsonable(payload), indent=1) + "\n", what="backtest results")
    frames = [r.rows.with_columns(pl.lit(r.method).alias("method"), pl.lit(r.level).alias("level"),
                                  pl.lit(r.split).alias("split")) for r in results if r.rows.height]
    rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame({"method": []})
    first = [c for c in ("method", "run", "quantity") if c in rows.columns]
    with atomic_path(p, what="backtest results") as tmp:
        rows.select([*first, *[c for c in rows.columns if c not in first]]).write_csv(tmp)
    return p


def target_from_options(flops: float | None, params: float | None, tokens: float | None,
                        mix: Mapping[str, float] | None) -> Target | None:
    """A target from ``--target-flops`` or ``--target-params/--target-tokens`` and ``--mix``; None if none given."""
    if flops is None and params is None and tokens is None:
        if mix:
            raise SchemaError("--mix needs a target compute: add --target-flops C (or --target-params N --target-tokens D).")
        return None
    if flops is None:
        if params is None or tokens is None:
            raise SchemaError("Give the target as --target-flops C, or both --target-params N and --target-tokens D.")
        flops = training_flops(params, tokens)
    label = "target from the command line"
    return Target(flops=float(flops), mixture=dict(mix) if mix else None, params=params, tokens=tokens, label=label)


def run_report(*, out: str | Path, model: str | Path | None = None, config: str | Path | SearchConfig | None = None,
               runs: str | Path | None = None, ratios: str | Path | None = None, runs_format: str = "auto",
               params_default: float | None = None, tokens_default: float | None = None,
               chance: Mapping[str, float] | None = None, backtest: str | Path | None = None,
               pareto: str | Path | None = None, validation: str | Path | None = None, loop: str | Path | None = None,
               target: Target | None = None,
               level: float = 0.9, title: str = "mixopt report", format: str = "html",
               command: Sequence[str] | None = None) -> dict[str, Any]:
    """``mixopt report``: render what is given into a report; returns what was written.

    ``config`` (a file or a parsed config) supplies the surrogate (the study's cached model,
    the saved model, or the same seeded fit), the runs and the Pareto table unless ``model``,
    ``runs`` or ``pareto`` are given. ``loop`` is a loop's ``[validate] output`` folder (the
    round-by-round section).
    """
    if format not in OUTPUT_FORMATS:
        raise SchemaError(f"--format must be one of {list(OUTPUT_FORMATS)}, got {format!r}.")
    if not 0 < level < 1:
        raise SchemaError(f"--level must be in (0, 1) (an interval coverage, e.g. 0.9), got {level!r}.")
    check_writable(out, what="report" if format == "html" else "figures", folder=format != "html")  # before the work
    fitted = table = None
    files: dict[str, Any] = {}
    settings = None
    if config is not None:
        cfg = config if isinstance(config, SearchConfig) else load_config(config)
        if model is None:
            fitted = search_surrogate(cfg)
        if runs is None:
            table = read_config_runs(cfg)
        if pareto is None and cfg.output is not None and Path(cfg.output).is_file():
            pareto = cfg.output
        files.update(_config_files(cfg))
        settings = config_settings(cfg)
    if model:
        fitted = load_surrogate(model)
        files["model"] = model
    if runs:
        table = read_runs(runs, ratios=ratios, format=runs_format, params=params_default,
                          tokens=tokens_default, chance=dict(chance) if chance else None)
        files.update({"runs": runs, "ratios": ratios})
    if fitted is not None and table is not None:
        check_model_runs(fitted, table, model=model, runs=runs)
    if fitted is not None and table is None:
        logger.warning("no --runs: the report shows predictions but cannot draw the fitted laws through the sampling runs")
    files.update({"backtest": backtest, "pareto": pareto, "validation": validation})
    rep = build_report(model=fitted, runs=table, target=target, backtest=backtest, search=pareto,
                       validation=validation, loop=loop, level=level, title=title,
                       files={k: v for k, v in files.items() if v is not None}, settings=settings, command=command)
    written = write(rep, out, format)
    return {"written": [str(p) for p in written], "sections": [s.key for s in rep.sections], "figures": list(rep.figures)}


def backtest_outputs(results: Sequence[Any], table: pl.DataFrame, *, out: str | None, report: str | None,
                     runs_files: Sequence[str | None] = (), command: Sequence[str] | None = None) -> list[Path]:
    """``mixopt backtest --out FILE`` and ``--report FILE``: the files written."""
    written: list[Path] = []
    if out:
        written.append(write_backtest(results, table, out))
    if report:
        names = ("runs", "ratios")
        files = {n: f for n, f in zip(names, runs_files, strict=False) if f}
        rep = build_report(backtest=(list(results), table), files=files, command=command, title="mixopt report: backtest")
        written += write(rep, report)
    return written


__all__ = ["OUTPUT_FORMATS", "backtest_outputs", "check_model_runs", "config_settings", "read_config_runs", "run_report",
           "search_report", "target_from_options", "write", "write_backtest"]
