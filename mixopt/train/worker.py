"""Run one training job in this process: ``python -m mixopt.train.worker JOB_DIR``.

``JOB_DIR/job.json`` holds ``{"trainer": {"kind": ..., "settings": {...}}, "spec": {...}}``
(written by an executor, never by a user); the run's rows go to ``JOB_DIR/rows.csv`` (with
``rows.benchmarks.json``), written then renamed. Logs go to stderr, which the executor
captures as the job's log. Exit status: 0 ok, 3 the trainer failed, 1 a bug. A job server
(:mod:`mixopt.train.forkserver`) runs the same :func:`main` in a forked child instead.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from mixopt.errors import MixoptError
from mixopt.train.spec import JobSpec, make_trainer
from mixopt.train.store import atomic_write_runs

JOB_FILE = "job.json"
ROWS_FILE = "rows.csv"


def run_job_dir(job_dir: Path) -> Path:
    """Train the job described in ``job_dir`` and write its rows; returns the rows file."""
    job = json.loads((job_dir / JOB_FILE).read_text())
    spec = JobSpec.from_dict(job["spec"])
    trainer = make_trainer(job["trainer"]["kind"], **job["trainer"].get("settings", {}))
    table = trainer.train(spec, job_dir)
    return atomic_write_runs(table, job_dir / ROWS_FILE)


def configure_logging() -> None:
    """A job's logging: INFO and up to stderr (the job's log), time-stamped (also the job server's, whose children inherit it)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    configure_logging()
    if len(argv) != 1:
        print("usage: python -m mixopt.train.worker JOB_DIR", file=sys.stderr)
        return 2
    try:
        run_job_dir(Path(argv[0]))
    except MixoptError as e:
        print(f"job failed: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
