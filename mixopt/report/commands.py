"""What the ``mixopt report`` command and the ``--report`` options of ``optimize`` and
``backtest`` do, kept out of :mod:`mixopt.cli` (which only parses options and prints).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from mixopt.errors import SchemaError
from mixopt.report.build import build_report
from mixopt.report.document import FIGURE_FORMATS, Report
from mixopt.report.figures import Target

logger = logging.getLogger(__name__)

#: output formats of ``mixopt report --format``: one HTML file, or a folder of figures
OUTPUT_FORMATS = ("html", *FIGURE_FORMATS)


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
    def conv(x: Any) -> Any:
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return {f.name: conv(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, Mapping):
            return {str(k): conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        if isinstance(x, Path):
            return str(x)
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)

    return conv(config)


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
    """The run table a search config names (None when it only names a saved model)."""
    d = config.data
    if d.runs is None:
        return None
    from mixopt.data.readers import read_runs

    return read_runs(d.runs, ratios=d.ratios, format=d.format, params=d.params, tokens=d.tokens,
                     chance=dict(d.chance) or None, columns=dict(d.columns) or None)


def search_surrogate(config: Any) -> Any:
    """The surrogate a search used: the study's model cache when there is one (no refit), else the
    saved model or the same seeded fit as ``mixopt optimize``."""
    try:
        from mixopt.search.api import fit_surrogate, model_cache_dir, surrogate_key
    except ImportError:  # a mixopt without the search's model cache
        from mixopt.search import fit_surrogate

        return fit_surrogate(config)
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
    p.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".json":
        from mixopt.report.document import _jsonable

        payload = {"results": [r.to_json() for r in results], "comparison": table.to_dicts()}
        p.write_text(json.dumps(_jsonable(payload), indent=1) + "\n")
    else:
        frames = [r.rows.with_columns(pl.lit(r.method).alias("method"), pl.lit(r.level).alias("level"),
                                      pl.lit(r.split).alias("split")) for r in results if r.rows.height]
        rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame({"method": []})
        first = [c for c in ("method", "run", "quantity") if c in rows.columns]
        rows.select([*first, *[c for c in rows.columns if c not in first]]).write_csv(p)
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
        flops = 6.0 * params * tokens
    label = "target from the command line"
    return Target(flops=float(flops), mixture=dict(mix) if mix else None, params=params, tokens=tokens, label=label)




# -- the `mixopt report` command ---------------------------------------------------------------
def add_report_arguments(r: Any) -> None:
    """The options of ``mixopt report`` (an ``argparse`` parser)."""
    r.add_argument("--model", help="model directory written by `mixopt fit`")
    r.add_argument("--config", help="search config (TOML): fits or loads its surrogate, reads its runs and its Pareto table")
    r.add_argument("--runs", help="the sampling runs the model was fitted on (draws the fitted laws through them)")
    r.add_argument("--ratios", help="mixture-ratios file to join with --runs (RegMix/Olmix style)")
    r.add_argument("--runs-format", default="auto", choices=["auto", "mixopt", "regmix", "olmix"], help="layout of --runs")
    r.add_argument("--params-default", type=float, default=None, help="parameter count N for run files without a params column")
    r.add_argument("--tokens-default", type=float, default=None, help="training tokens D for run files without a tokens column")
    r.add_argument("--chance", default=None, help="chance level per benchmark, e.g. mybench=0.25")
    r.add_argument("--backtest", help="backtest results from `mixopt backtest --out FILE.json|csv` (or its --json output)")
    r.add_argument("--pareto", help="Pareto table written by `mixopt optimize` (its .summary.json is read from next to it)")
    r.add_argument("--validation", help="predicted vs measured table of trained mixtures (quantity, predicted, measured)")
    r.add_argument("--target-flops", type=float,
                   help="extrapolate the fits to this compute (default: the search's best row, else 10x the largest sampling run)")
    r.add_argument("--target-params", type=float, help="target parameter count N (with --target-tokens)")
    r.add_argument("--target-tokens", type=float, help="target training tokens D (with --target-params)")
    r.add_argument("--mix", help="target mixture, e.g. web=0.6,code=0.3,math=0.1 (mixture-aware models)")
    r.add_argument("--level", type=float, default=0.9, help="interval coverage of the model's predictions (default 0.9)")
    r.add_argument("--title", default="mixopt report", help="report title")
    r.add_argument("--format", default="html", choices=list(OUTPUT_FORMATS),
                   help="html: one self-contained file; png/svg: one file per figure in the --out folder")
    r.add_argument("--out", required=True, help="report file (html) or folder (png/svg)")


def run_report(args: Any, *, mix: Mapping[str, float] | None, chance: Mapping[str, float] | None,
               command: Sequence[str] | None) -> dict[str, Any]:
    """Do ``mixopt report`` for parsed options; returns what was written."""
    model = runs = None
    files: dict[str, Any] = {}
    settings = None
    pareto = args.pareto
    if args.config:
        from mixopt.config import load_config

        cfg = load_config(args.config)
        if args.model is None:
            model = search_surrogate(cfg)  # the study's cached model, the saved model, or the same seeded fit
        if args.runs is None:
            runs = read_config_runs(cfg)
        if pareto is None and cfg.output is not None and Path(cfg.output).is_file():
            pareto = cfg.output
        files.update(_config_files(cfg))
        settings = config_settings(cfg)
    if args.model:
        from mixopt.surrogate import load_surrogate

        model = load_surrogate(args.model)
        files["model"] = args.model
    if args.runs:
        from mixopt.data.readers import read_runs

        runs = read_runs(args.runs, ratios=args.ratios, format=args.runs_format, params=args.params_default,
                         tokens=args.tokens_default, chance=dict(chance) if chance else None)
        files.update({"runs": args.runs, "ratios": args.ratios})
    if model is not None and runs is None:
        logger.warning("no --runs: the report shows predictions but cannot draw the fitted laws through the sampling runs")
    files.update({"backtest": args.backtest, "pareto": pareto, "validation": args.validation})
    target = target_from_options(args.target_flops, args.target_params, args.target_tokens, mix)
    rep = build_report(model=model, runs=runs, target=target, backtest=args.backtest, search=pareto,
                       validation=args.validation, level=args.level, title=args.title,
                       files={k: v for k, v in files.items() if v is not None}, settings=settings, command=command)
    written = write(rep, args.out, args.format)
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


__all__ = ["OUTPUT_FORMATS", "add_report_arguments", "backtest_outputs", "config_settings", "read_config_runs", "run_report",
           "search_report", "target_from_options", "write", "write_backtest"]
