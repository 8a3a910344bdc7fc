"""``mixopt report``: fits, backtests and searches as one offline HTML file, or its figures
(:mod:`mixopt.workflows.report`)."""

from __future__ import annotations

import argparse
from typing import Any

from mixopt.cli._output import command_line, common, emit_json, pairs
from mixopt.report.document import OUTPUT_FORMATS


def add_report_arguments(r: argparse.ArgumentParser) -> None:
    """The options of ``mixopt report``."""
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
    r.add_argument("--loop", help="a loop's [validate] output folder (round_<r>/round.json from `mixopt optimize`): the "
                                   "round-by-round section (gaps, coverage, the pick's change)")
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


def cmd_report(args: argparse.Namespace) -> int:
    from mixopt.workflows.report import run_report, target_from_options

    target = target_from_options(args.target_flops, args.target_params, args.target_tokens, pairs(args.mix, "--mix"))
    info = run_report(out=args.out, model=args.model, config=args.config, runs=args.runs, ratios=args.ratios,
                      runs_format=args.runs_format, params_default=args.params_default, tokens_default=args.tokens_default,
                      chance=pairs(args.chance, "--chance") or None, backtest=args.backtest, pareto=args.pareto,
                      validation=args.validation, loop=args.loop, target=target, level=args.level, title=args.title, format=args.format,
                      command=command_line(args))
    if args.json:
        emit_json(info)
    else:
        for p in info["written"]:
            print(f"wrote {p}")
    return 0


def register(sub: Any) -> None:
    """Add ``report`` to the CLI's subparsers."""
    r = sub.add_parser("report", help="write a report (fits, backtests, searches) as one offline HTML file, or its figures")
    add_report_arguments(r)
    common(r)
    r.set_defaults(func=cmd_report)
