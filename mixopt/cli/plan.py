"""``mixopt plan``: the next sampling runs, chosen by what they teach about the decision."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from mixopt._terminal import params_text, sci
from mixopt.cli._output import common, emit_json
from mixopt.config import load_config


def cmd_plan(args: argparse.Namespace) -> int:
    from mixopt.search.plan import PlanSettings
    from mixopt.workflows.plan import plan, write_plan

    cfg = load_config(args.config)
    st = getattr(cfg, "plan", None) or PlanSettings()
    changes: dict[str, Any] = {}
    if args.runs is not None:
        changes["runs"] = args.runs
    if args.flops is not None:
        changes["flops"] = args.flops
        if args.runs is None:
            changes["runs"] = 10_000  # the FLOPs budget decides
    if args.criterion is not None:
        changes["criterion"] = args.criterion
    if args.seed is not None:
        changes["seed"] = args.seed
    st = replace(st, **changes) if changes else st
    p = plan(cfg, st)
    csv, js = write_plan(p, Path(args.out), settings=st)
    if args.json:
        emit_json({"out": str(csv), "summary_file": str(js), "criterion": p.criterion, "draws": p.draws,
                   "summary": p.summary})
        return 0
    print(f"plan ({p.criterion}, {p.draws} draws): {len(p)} runs, {sci(float(p.flops.sum()))} FLOPs")
    for i in range(len(p)):
        mix = ", ".join(f"{d} {x:.3f}" for d, x in zip(p.domains, p.mixture[i], strict=True))
        print(f"  N={params_text(float(p.params[i]))} D={sci(float(p.tokens[i]))}  {mix}  gain {p.value[i]:.3g}")
    if "pick" in p.summary:
        print(f"current pick P(best) {p.summary['p_best_of_pick']:.2f}, expected regret {p.summary['expected_regret']:.3g}")
    print(f"wrote {csv} (train it: mixopt ladder TRAIN_CONFIG --jobs {csv}) and {js}")
    return 0


def register(sub: Any) -> None:
    sp = sub.add_parser("plan", help="plan the next sampling runs by what they teach about the decision")
    sp.add_argument("config", help="the search config (objectives, constraints, target compute, [data] runs)")
    sp.add_argument("--runs", type=int, help="most runs in the batch (default [plan] runs)")
    sp.add_argument("--flops", type=float, help="most FLOPs of the batch, 6*N*D summed")
    sp.add_argument("--criterion", choices=("decision", "ranking", "prediction", "doptimal"), help="decision (default), ranking, prediction or doptimal")
    sp.add_argument("--seed", type=int, help="seed of candidates, targets and draws")
    sp.add_argument("--out", default="plan.csv", help="jobs CSV to write (default plan.csv; the summary goes to .json)")
    common(sp)
    sp.set_defaults(func=cmd_plan)
