"""``mixopt simulate`` (a synthetic run table from a seeded world) and ``mixopt inspect`` (what a run table holds)."""

from __future__ import annotations

import argparse
from typing import Any

from mixopt._terminal import params_text, sci
from mixopt.cli._output import common, emit_json, floats, nonnegative_int, print_frame
from mixopt.cli.data_args import add_data_args, data_info, read_quiet


def cmd_simulate(args: argparse.Namespace) -> int:
    from mixopt.data.readers import write_runs
    from mixopt.testing import mixture_world, random_mixtures, single_domain_world, two_domain_code_world

    if args.world == "single":
        world = single_domain_world(seed=args.seed)
        mixtures = None
    elif args.world == "phases":
        from mixopt.testing.phases_world import phases_world

        world = phases_world(n_domains=args.domains, n_benchmarks=args.benchmarks, seed=args.seed)
        mixtures = world.random_schedules(args.mixtures, seed=args.seed)  # 1- and 2-phase schedules
    else:
        world = two_domain_code_world() if args.world == "code" else mixture_world(
            n_domains=args.domains, n_benchmarks=args.benchmarks, seed=args.seed
        )
        mixtures = random_mixtures(args.mixtures, len(world.domains), seed=args.seed)
    params = floats(args.sizes, "--sizes")
    table = world.sample_runs(
        params,
        mixtures,
        tokens_per_param=args.tokens_per_param,
        n_checkpoints=args.checkpoints,
        loss_noise=args.loss_noise,
        score_noise=args.score_noise,
        seed=args.seed,
    )
    path = write_runs(table, args.out)
    info = {"out": str(path), "runs": table.n_runs, "checkpoints": len(table), "domains": list(table.domains),
            "loss_domains": list(table.loss_domains), "benchmarks": list(table.benchmark_names)}
    if args.json:
        emit_json(info)
    else:
        print(f"wrote {info['runs']} runs / {info['checkpoints']} checkpoints to {path}")
        print(f"  domains: {info['domains'] or '(single domain)'}; benchmarks: {info['benchmarks']}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    runs = read_quiet(args)
    info = data_info(runs)
    f = runs.frame
    info |= {
        "params": [float(f["params"].min()), float(f["params"].max())],
        "tokens": [float(f["tokens"].min()), float(f["tokens"].max())],
        "run_ids": list(runs.runs[: args.show]),
    }
    if args.json:
        emit_json(info)
        return 0
    print(f"read {info['runs']} runs / {info['checkpoints']} checkpoints from {args.runs}" + (f" + {args.ratios}" if args.ratios else ""))
    print(f"  params {params_text(info['params'][0])} .. {params_text(info['params'][1])}; "
          f"tokens {sci(info['tokens'][0])} .. {sci(info['tokens'][1])}")
    print(f"  mixture domains ({len(runs.domains)}): {', '.join(runs.domains) or '(none)'}")
    print(f"  loss domains ({len(runs.loss_domains)}): {', '.join(runs.loss_domains) or '(none)'}" + ("; overall loss" if runs.has_overall_loss else ""))
    print(f"  benchmarks ({len(runs.benchmarks)}): {', '.join(runs.benchmark_names) or '(none)'}")
    if runs.missing_summary():
        print(f"  missing values: {runs.missing_summary()}; each value is used where present")
    print_frame(f.head(args.show), f"first {min(args.show, len(runs))} checkpoint(s):")
    return 0


def register(sub: Any) -> None:
    """Add ``simulate`` and ``inspect`` to the CLI's subparsers."""
    s = sub.add_parser("simulate", help="write a synthetic run table from a seeded ground-truth world")
    s.add_argument("--out", required=True, help="output file (.parquet, .csv or .jsonl)")
    s.add_argument("--world", default="mixture", choices=["single", "mixture", "code", "phases"],
                   help="single-domain, k-domain mixture world, the paper's web+code world, or a k-domain world of 1- and "
                        "2-phase schedules whose late tokens count more (docs/phases.md)")
    s.add_argument("--domains", type=int, default=3, help="number of domains of a mixture world")
    s.add_argument("--benchmarks", type=int, default=4, help="number of benchmarks of a mixture world")
    s.add_argument("--mixtures", type=int, default=12, help="number of random mixtures (mixture worlds) or schedules (phases)")
    s.add_argument("--sizes", default="2e7,5e7,1e8,2e8,4e8", help="parameter counts of the sampling runs")
    s.add_argument("--tokens-per-param", type=float, default=20.0, help="training tokens per parameter")
    s.add_argument("--checkpoints", type=int, default=10, help="evaluated checkpoints per run")
    s.add_argument("--loss-noise", type=float, default=0.005, help="relative noise on losses")
    s.add_argument("--score-noise", type=float, default=0.005, help="absolute noise on scores")
    s.add_argument("--seed", type=int, default=0)
    common(s)
    s.set_defaults(func=cmd_simulate)

    i = sub.add_parser("inspect", help="read a run table as fit/backtest would and show what was read (runs, domains, missing cells)")
    add_data_args(i)
    i.add_argument("--show", type=nonnegative_int, default=5, help="checkpoints (rows) and run ids to show")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)
