"""The training commands: ``mixopt corpus build``, ``ladder`` and ``validate`` (:mod:`mixopt.train`,
:mod:`mixopt.workflows.validate`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mixopt._files import atomic_path, check_writable
from mixopt.cli._output import EXIT_JOBS_FAILED, common, emit_json, print_frame
from mixopt.config import load_project
from mixopt.errors import ConfigError


def print_batch(batch: Any) -> None:
    """One line per job of a training batch (and the last log line of a failed one)."""
    for r in batch.results:
        print(f"  {r.spec.run_id}: {r.status} in {r.wall_s:.1f} s" + ("" if r.ok else f"\n    {r.message.splitlines()[0]}"))
        if not r.ok and r.log_tail:
            print("    log tail: " + r.log_tail.strip().splitlines()[-1][:300] if r.log_tail.strip() else "")


def cmd_corpus_build(args: argparse.Namespace) -> int:
    from mixopt.train.corpus import DOMAINS, SOURCES, build_corpus, load_corpus, prepare_corpus, read_fixture

    t0 = time.perf_counter()
    if args.fixture:
        out = prepare_corpus({d: read_fixture(d) for d in DOMAINS}, args.out, sources={d: SOURCES[d] for d in DOMAINS})
    else:
        out = build_corpus(args.out, max_bytes=int(args.max_bytes), install=not args.no_install)
    c = load_corpus(out)
    info = {"out": str(out), "domains": {d: {"train_bytes": int(len(c.train[d])), "valid_bytes": int(len(c.valid[d]))} for d in c.domains},
            "seconds": time.perf_counter() - t0}
    if args.json:
        emit_json(info)
    else:
        print(f"prepared corpus at {out} in {info['seconds']:.1f} s (provenance and licenses: {out}/manifest.json)")
        for d, v in info["domains"].items():
            print(f"  {d}: {v['train_bytes'] / 1e6:.2f} MB train, {v['valid_bytes'] / 1e6:.3f} MB held out")
    return 0


def cmd_ladder(args: argparse.Namespace) -> int:
    from mixopt.train.ladder import ladder_jobs, read_jobs, run_ladder, train_jobs

    cfg = load_project(args.config, search=False).train
    out = Path(args.out) if args.out else None
    if args.jobs:
        target = out or (cfg.ladder.output if cfg.ladder else None)
        if target is None:
            raise ConfigError("No output table for the jobs: pass --out runs.csv or set [ladder] output.")
        jobs = read_jobs(Path(args.jobs))
        if not args.json:
            print(f"ladder: {len(jobs)} runs from {args.jobs}, trainer {cfg.trainer.kind}, {cfg.trainer.executor} executor")
        return _ladder_done(args, train_jobs(jobs, cfg.trainer, Path(target)), target)
    jobs = ladder_jobs(cfg)
    if not args.json:
        print(f"ladder: {len(jobs)} runs ({len(cfg.ladder.sizes)} sizes x "  # type: ignore[union-attr]
              f"{len(cfg.ladder.mixtures) + len(cfg.ladder.schedules)} mixtures and schedules x "  # type: ignore[union-attr]
              f"{len(cfg.ladder.seeds)} seeds), trainer {cfg.trainer.kind}, {cfg.trainer.executor} executor")  # type: ignore[union-attr]
    rep = run_ladder(cfg, output=out)
    return _ladder_done(args, rep, out or cfg.ladder.output)  # type: ignore[union-attr]


def _ladder_done(args: argparse.Namespace, rep: Any, target: Any) -> int:
    info = {"out": str(target), "added": list(rep.added), "skipped": list(rep.skipped), "wall_s": rep.wall_s,
            "failed": [{"run": r.spec.run_id, "status": r.status, "message": r.message} for r in rep.failed]}
    if args.json:
        emit_json(info)
    else:
        print_batch(rep)
        print(f"{len(rep.added)} runs added, {len(rep.skipped)} already there, {len(rep.failed)} failed; "
              f"{rep.wall_s:.0f} s; table: {target}")
    return 0 if not rep.failed else EXIT_JOBS_FAILED


def cmd_validate(args: argparse.Namespace) -> int:
    from mixopt.train.validate import summarize
    from mixopt.workflows.validate import run_validate

    project = load_project(args.config)
    assert project.search is not None
    if args.out:
        check_writable(args.out, what="comparison table")  # before any training
    chosen, batch, comp = run_validate(project.search, project.train, args.pareto, args.top, level=args.level)
    if args.out and comp.height:
        with atomic_path(args.out, what="comparison table") as tmp:
            comp.write_csv(tmp)
    if args.json:
        emit_json({"trained": [r.spec.run_id for r in batch.results], "added": list(batch.added),
                           "failed": [{"run": r.spec.run_id, "status": r.status, "message": r.message} for r in batch.failed],
                           "comparison": comp.to_dicts(), "summary": summarize(comp).to_dicts()})
        return 0 if not batch.failed else EXIT_JOBS_FAILED
    mix_cols = [c for c in chosen.columns if c.startswith("mix:")]
    print_frame(chosen.select([c for c in ("trial", *mix_cols, "params", "tokens") if c in chosen.columns]),
                        f"trained {chosen.height} diverse Pareto mixtures:")
    print_batch(batch)
    if comp.height:
        print_frame(comp.drop("params", "tokens"), f"\npredicted ({args.level:.0%} interval) vs measured, final checkpoints:")
        print_frame(summarize(comp), "\nsummary:")
    return 0 if not batch.failed else EXIT_JOBS_FAILED


def register(sub: Any) -> None:
    """Register ``corpus``, ``ladder`` and ``validate`` on the CLI's subparsers."""
    c = sub.add_parser("corpus", help="prepare the reference trainer's text corpus")
    csub = c.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    b = csub.add_parser("build", help="fetch (apt-get, pip) and prepare prose/code/docs/math text, split by CRC-32")
    b.add_argument("out", help="corpus folder to write (e.g. out/corpus)")
    b.add_argument("--max-bytes", type=float, default=8e6, help="training bytes kept per domain (default 8e6)")
    b.add_argument("--no-install", action="store_true", help="do not run apt-get/pip (the sources must be installed)")
    b.add_argument("--fixture", action="store_true", help="prepare the small shipped fixture text instead (no network, no root)")
    common(b)
    b.set_defaults(func=cmd_corpus_build)

    ld = sub.add_parser("ladder", help="train a ladder of sampling runs (sizes x mixtures x seeds) into a run table")
    ld.add_argument("config", help="TOML config with [trainer] and [ladder] (see configs/ladder.toml)")
    ld.add_argument("--out", help="run table to write (default [ladder] output)")
    ld.add_argument("--jobs", help="train the runs of this jobs CSV (written by `mixopt plan`) instead of the [ladder] grid")
    common(ld)
    ld.set_defaults(func=cmd_ladder)

    v = sub.add_parser("validate", help="train a diverse top-K of a Pareto set and report predicted vs measured")
    v.add_argument("config", help="the search config (with [trainer]; [validate] runs = where trained runs go)")
    v.add_argument("--pareto", required=True, help="Pareto table written by `mixopt optimize`")
    v.add_argument("--top", type=int, default=3, help="mixtures to train (a diverse K)")
    v.add_argument("--level", type=float, default=0.9, help="interval coverage (default 0.9)")
    v.add_argument("--out", help="also write the comparison table (.csv)")
    common(v)
    v.set_defaults(func=cmd_validate)
