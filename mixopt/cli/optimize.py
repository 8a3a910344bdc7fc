"""``mixopt optimize CONFIG``: a mixture search, or with ``[validate] rounds >= 1`` the
optimise -> validate -> refit loop (:mod:`mixopt.workflows.optimize`, :mod:`mixopt.workflows.loop`).

The terminal output starts with the headline (:mod:`mixopt.search.summary`): what to pick,
how sure it is, the robust region, what binds and how far it extrapolates. Exit codes: 0,
2 (bad input or an unwritable output), 5 (no feasible mixture: headed, empty result files
are written and the binding constraint is named)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mixopt._terminal import params_text, sci
from mixopt.cli._output import EXIT_BAD_INPUT, EXIT_INFEASIBLE, command_line, common, emit_json, print_frame
from mixopt.config import OVERRIDES, ProjectConfig, load_project


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line overrides given (the keys of :data:`mixopt.config.OVERRIDES`, and
    ``--constraint``, which replaces the config's ``[objectives] constraints``)."""
    out: dict[str, Any] = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k, None) is not None}
    if getattr(args, "constraint", None):
        out["objectives.constraints"] = list(args.constraint)
    return out


def cmd_optimize(args: argparse.Namespace) -> int:
    project = load_project(args.config, overrides=overrides(args))  # the file is read and parsed once
    if project.rounds >= 1:
        return _loop(args, project)
    from mixopt.workflows.optimize import optimize

    cfg = project.search
    assert cfg is not None
    done = optimize(cfg, progress=not args.no_progress and not args.json)
    result, written, failed = done.result, list(done.written), done.write_error
    if args.report:  # the report of this run, with the surrogate the search used
        from mixopt.workflows.report import search_report, write

        rep = search_report(cfg, done.surrogate, result, command=command_line(args))
        written = [*written, *write(rep, args.report)]
    if args.json:
        emit_json(result.to_json() | {"written": [str(p) for p in written], "write_error": failed})
    else:
        print(result.report())
        for p in written:
            print(f"wrote {p}")
    if failed:
        print(f"mixopt optimize: error: could not write {cfg.output} ({failed}); the results were saved to "
              f"{written[0].parent} instead (the study itself is in {result.storage or 'memory only'}).", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.infeasible:
        reason = (result.decision.get("infeasible") or {}).get("reason", "no trial meets every constraint")
        print(f"mixopt optimize: no feasible mixture ({reason}); exit code {EXIT_INFEASIBLE}.", file=sys.stderr)
        return EXIT_INFEASIBLE
    return 0


def _loop(args: argparse.Namespace, project: ProjectConfig) -> int:
    """``[validate] rounds >= 1``: the optimise -> validate -> refit loop."""
    from mixopt.workflows.loop import run_loop

    assert project.search is not None
    reports = run_loop(project.search, project.train, progress=not args.no_progress and not args.json)
    written = []
    if args.report and reports:
        from mixopt.report import build_report
        from mixopt.workflows.report import write

        last = reports[-1].folder
        rep = build_report(search=last / "pareto.csv", loop=last.parent, command=command_line(args),
                           files={"config": project.search.path} if project.search.path else None,
                           title="mixopt report: optimise -> validate -> refit loop")
        written = [str(p) for p in write(rep, args.report)]
    if args.json:
        emit_json({"rounds": [{"round": r.round, "folder": str(r.folder), "runs": r.n_runs, "added": list(r.batch.added),
                               "failed": [x.spec.run_id for x in r.batch.failed], "summary": r.summary.to_dicts(),
                               "proposal": r.proposal, "best": r.best, "decision": r.decision, "next_trained": r.next_trained}
                              for r in reports], "written": written})
        return 0
    for r in reports:
        print(f"round {r.round}: surrogate fitted on {r.n_runs} runs; trained {len(r.batch.results)} mixtures "
              f"({len(r.batch.added)} new, {len(r.batch.failed)} failed); files in {r.folder}")
        if r.summary.height:
            print_frame(r.summary, "  predicted vs measured:")
        d = r.decision or {}
        if d.get("pick"):
            mix = ", ".join(f"{k}={v:.2f}" for k, v in d["pick"]["mixture"].items())
            moved = "" if "changed" not in d else (f"; {'changed' if d['changed'] else 'unchanged'} from round {r.round - 1} "
                                                   f"(L1 {d['l1']:.3f})")
            print(f"  rank-1 mixture: {mix}{moved}")
        if r.proposal and r.proposal.get("mixture"):
            mix = ", ".join(f"{k}={v:.2f}" for k, v in r.proposal["mixture"].items())
            why = (f"widest {r.proposal['quantity']} interval" if r.proposal.get("rule") == "uncertainty" and r.proposal.get("quantity")
                   else f"{r.proposal.get('rule', 'plan')}: {r.proposal.get('criterion', '')}".rstrip(": "))
            done = " (trained: " + r.next_trained["run"] + ")" if r.next_trained and r.next_trained.get("comparison") else ""
            print(f"  next sampling run ({why}): {mix} at N={params_text(r.proposal['params'])}, "
                  f"D={sci(r.proposal['tokens'])} tokens{done}")
    for p in written:
        print(f"wrote {p}")
    return 0


def register(sub: Any) -> None:
    """Add ``optimize`` to the CLI's subparsers."""
    o = sub.add_parser("optimize", help="run a mixture search from a config file (see configs/)")
    o.add_argument("config", help="TOML config file")
    o.add_argument("--trials", type=int, help="override the number of trials")
    o.add_argument("--seed", type=int, help="override the seed")
    o.add_argument("--storage", help="override the study storage (journal .log file, SQLite .db file, SQLAlchemy URL, or memory)")
    o.add_argument("--study-name", dest="study_name", help="override the study name")
    o.add_argument("--sampler", help="override the sampler (nsga2, tpe, gp, random, qmc)")
    o.add_argument("--executor", choices=["local", "ray"], help="override the executor")
    o.add_argument("--ray-address", dest="ray_address", help="connect to this Ray cluster instead of starting a local one")
    o.add_argument("--output", help="override the output file for the Pareto table")
    o.add_argument("--batch-size", dest="batch_size", type=int, help="override the batch size")
    o.add_argument("--constraint", action="append", metavar="SPEC",
                   help="a constraint, replacing the config's (repeat for several), e.g. 'score:gsm8k >= 0.71 @ 0.9' "
                        "(the '@ p' makes it a chance constraint that must hold with probability p)")
    o.add_argument("--shortlist", type=int, help="rows on the shortlist of diverse knee-region recommendations (default 5)")
    o.add_argument("--epsilon", type=float, help="tolerance of \"within epsilon of the best\" (P(within eps), the robust region), "
                                                "in the objectives' units (default 0.005, half a score point)")
    o.add_argument("--ray-dashboard", dest="ray_dashboard", action="store_true", default=None,
                   help="start the Ray dashboard (port 8265) with a local Ray; off by default")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--report", help="also write an HTML report (fits at the best mixture, Pareto front, shortlist, history) to this file")
    common(o)
    o.set_defaults(func=cmd_optimize)
