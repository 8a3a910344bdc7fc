"""The data options (``--runs``, ``--ratios``, ``--format``, ...) of every command that reads a run table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mixopt.cli._output import UsageError, mapping, names, pairs
from mixopt.data.options import cli_option_names
from mixopt.data.readers import read_runs


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data", "how to read the run table (README: 'Bring your own data')")
    g.add_argument("--runs", required=True, help="run table: CSV/TSV/TXT/Parquet/JSONL (mixopt wide format), the metrics/loss file of a two-file RegMix/Olmix table, or a long-format file")
    g.add_argument("--ratios", help="mixture-ratios file to join with --runs on the run id (RegMix/Olmix style)")
    g.add_argument("--format", default="auto", choices=["auto", "mixopt", "regmix", "olmix", "long"], help="input layout (default: detect; 'long' = one row per checkpoint x domain)")
    g.add_argument("--params-default", type=float, default=None, help="parameter count N for files without a params column")
    g.add_argument("--tokens-default", type=float, default=None, help="training tokens D for files without a tokens column")
    g.add_argument("--chance", default=None, help="chance level per benchmark, e.g. mybench=0.25,gen=0")
    g.add_argument("--columns", default=None, help="rename columns: old=new,... with {field} or * patterns, e.g. 'weight_{d}=mix:{d},{d}_loss=loss:{d},model_size=params'")
    g.add_argument("--run-id", dest="run_id", default=None, help="build run ids from these columns when the file has none, e.g. params,mix (mix = all mix:<d> columns)")
    g.add_argument("--tokens-per-step", dest="tokens_per_step", type=float, default=None, help="tokens = step x this (batch size x sequence length), for files with a step column and no tokens")
    g.add_argument("--on", default=None, help="join column of --runs and --ratios (default: index for RegMix, run otherwise)")
    g.add_argument("--join", default="exact", choices=["exact", "inner"], help="exact (default): both files must list the same runs; inner: keep the runs found in both")
    g.add_argument("--checkpoint-pattern", dest="checkpoint_pattern", default=None, help="long format: parse checkpoint paths, e.g. '{run}/step{step}' or '{params}_{_}-{mix}/{step}'")
    g.add_argument("--name-pattern", dest="name_pattern", default=None, help="long format: parse domain names, e.g. 'pythia-pile.valid.{name}.bin'")
    g.add_argument("--mix-domains", dest="mix_domains", default=None, help="long format: domain names of a {mix} field, in order, e.g. Github,Books3,Pile-CC")
    g.add_argument("--long-columns", dest="long_columns", default=None, help="long format: role=column for run, step, name, value, checkpoint (default: found by usual names)")
    g.add_argument("--long-kind", dest="long_kind", default=None, choices=["loss", "score", "raw"], help="long format: names become loss:<name> (default), score:<name>, or stay raw")

def read_runs_args(args: argparse.Namespace):
    """Read the run table of a command; say how many cells are empty (stdout, or stderr with --json)."""
    runs = read_quiet(args)
    line = runs.missing_summary()
    if line:
        json_out = bool(getattr(args, "json", False))
        print(f"{'mixopt: ' if json_out else ''}missing values: {line}; each value is used where present "
              "(README: 'Bring your own data')", file=sys.stderr if json_out else sys.stdout)
    return runs


def read_quiet(args: argparse.Namespace):
    long = {
        k: v
        for k, v in {
            "checkpoint_pattern": args.checkpoint_pattern,
            "name_pattern": args.name_pattern,
            "mix_domains": names(args.mix_domains),
            "columns": mapping(args.long_columns, "--long-columns") or None,
            "kind": args.long_kind,
        }.items()
        if v is not None
    }
    run_id = names(args.run_id)
    if args.run_id is not None and not run_id:
        raise UsageError("--run-id needs column names, e.g. --run-id params,mix.")
    with cli_option_names():  # messages name --params-default, not params=
        return read_runs(
            args.runs,
            ratios=args.ratios,
            format=args.format,
            params=args.params_default,
            tokens=args.tokens_default,
            chance=pairs(args.chance, "--chance") or None,
            columns=mapping(args.columns, "--columns") or None,
            run_id=run_id,
            tokens_per_step=args.tokens_per_step,
            on=args.on,
            how=args.join,
            long=long or None,
        )


def data_info(runs: Any) -> dict[str, Any]:
    """What was read: sizes, domains, benchmarks and the empty cells (``mixopt inspect``)."""
    return {
        "runs": runs.n_runs,
        "checkpoints": len(runs),
        "domains": list(runs.domains),
        "loss_domains": list(runs.loss_domains),
        "benchmarks": list(runs.benchmark_names),
        "missing": runs.missing_counts(),
        "final_missing": {c: list(r) for c, r in runs.final_missing().items()},
    }
