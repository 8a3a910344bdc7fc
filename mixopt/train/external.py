"""The external-command trainer: your own training command, for real clusters.

The command template comes from the user's own config file only (``[trainer.options]
command``); a job spec carries no command and an API caller cannot set one. Placeholders
are filled from the job (values are shell-quoted when a shell is used):

================ ===========================================================================
placeholder      value
================ ===========================================================================
``{run_id}``     the run id
``{mix_json}``   the mixture as JSON, e.g. ``{"web": 0.6, "code": 0.4}`` (of a schedule: the
                 token-weighted mixture of the whole run)
``{schedule_json}`` the schedule as JSON, one entry per phase with its end (fraction of the
                 run's tokens) and mixture, e.g. ``[{"end": 0.8, "mixture": {"web": 0.7,
                 "code": 0.3}}, {"end": 1.0, "mixture": {"web": 0.4, "code": 0.6}}]``; a
                 constant mixture is one phase ending at 1.0
``{params}``     parameters N (integer)
``{tokens}``     training tokens D (integer)
``{seed}``       the seed
``{checkpoints}`` evaluated checkpoints wanted
``{out}``        the job's output folder (exists; the command writes its results there)
================ ===========================================================================

The command is split with :func:`shlex.split` and launched **without a shell** unless the
config says ``shell = true``. It is waited on with ``timeout_s`` (the executor's wall-clock
guard applies as well); its output goes to the job log. It must write ``results`` (default
``{out}/results.csv``) in the documented run-table format: one row per checkpoint with
``tokens`` and ``loss:<d>``/``score:<b>`` columns (``run``, ``params`` and ``mix:<d>`` are
filled from the job when absent, and so are a phased job's ``phase_end@k`` and ``mix@k:<d>``;
``flops`` defaults to ``6·params·tokens``); chance levels of
score columns go in ``<stem>.benchmarks.json`` or ``chance = { bench = 0.25 }``.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mixopt.data.table import Benchmark, RunTable
from mixopt.errors import ConfigError, MixoptError, TrainerError
from mixopt.train.spec import JobSpec, Trainer, register_trainer, rows_to_table

logger = logging.getLogger(__name__)

PLACEHOLDERS = ("run_id", "mix_json", "schedule_json", "params", "tokens", "seed", "checkpoints", "out")


@register_trainer
class CommandTrainer(Trainer):
    """Run a command template per job and read its results file.

    Args:
        command: the template (a string, or a list of arguments).
        shell: run through ``/bin/sh -c`` (only when the config asks for it).
        results: results file, relative to ``{out}`` (placeholders allowed).
        timeout_s: wall-clock limit of the command, seconds (None: the executor's guard only).
        cwd: working folder of the command (the config file's folder by default).
        chance: ``{benchmark: chance}`` for score columns without a sidecar.
    """

    kind = "command"

    def __init__(self, command: str | Sequence[str], shell: bool = False, results: str = "results.csv",
                 timeout_s: float | None = None, cwd: str | None = None, chance: Mapping[str, float | None] | None = None) -> None:
        self.command = command if isinstance(command, str) else [str(c) for c in command]
        self.shell = bool(shell)
        self.results = str(results)
        self.timeout_s = timeout_s
        self.cwd = cwd
        self.chance = dict(chance or {})
        template = self.command if isinstance(self.command, str) else " ".join(self.command)
        try:
            template.format(**{k: "" for k in PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"The command template {template!r} has an unknown or malformed placeholder ({e}); "
                              f"use only {{{'}, {'.join(PLACEHOLDERS)}}}.") from None

    def argv(self, spec: JobSpec, out: Path) -> list[str] | str:
        """The command for one job: a list of arguments, or one string when ``shell``."""
        values = {"run_id": spec.run_id, "mix_json": spec.mixture_json(), "schedule_json": spec.schedule_json(), "params": str(int(round(spec.params))),
                  "tokens": str(int(round(spec.tokens))), "seed": str(spec.seed), "checkpoints": str(spec.checkpoints),
                  "out": str(out)}
        if self.shell:
            template = self.command if isinstance(self.command, str) else " ".join(self.command)
            return template.format(**{k: shlex.quote(v) for k, v in values.items()})
        parts = shlex.split(self.command) if isinstance(self.command, str) else list(self.command)
        return [p.format(**values) for p in parts]

    def train(self, spec: JobSpec, workdir: Path) -> RunTable:
        out = Path(workdir).resolve() / "out"
        out.mkdir(parents=True, exist_ok=True)
        cmd = self.argv(spec, out)
        logger.info("job %s: running %s", spec.run_id, cmd if isinstance(cmd, str) else shlex.join(cmd))
        try:
            r = subprocess.run(cmd, shell=self.shell, cwd=self.cwd or None, stdin=subprocess.DEVNULL,
                               stdout=sys.stderr, stderr=sys.stderr, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise TrainerError(f"Job {spec.run_id!r}: the command ran past timeout_s = {self.timeout_s} s and was stopped.",
                               run_id=spec.run_id) from None
        except OSError as e:
            raise TrainerError(f"Job {spec.run_id!r}: could not start the command {cmd!r}: {e}. Check the path in "
                               "[trainer.options] command.", run_id=spec.run_id) from None
        if r.returncode != 0:
            raise TrainerError(f"Job {spec.run_id!r}: the command exited with status {r.returncode}.", run_id=spec.run_id)
        path = out / self.results.format(run_id=spec.run_id, seed=spec.seed)
        if not path.is_file():
            raise TrainerError(f"Job {spec.run_id!r}: the command succeeded but wrote no results file at {path}; it must "
                               "write one row per checkpoint with tokens and loss:<d>/score:<b> columns.", run_id=spec.run_id)
        import json

        import polars as pl

        from mixopt.data.readers import read_frame

        try:
            frame = read_frame(path, string_columns=["run"], what="results file")
            side = path.with_name(path.stem + ".benchmarks.json")
            declared = {b["name"]: Benchmark.from_dict(b) for b in json.loads(side.read_text())} if side.is_file() else {}
        except (MixoptError, ValueError, KeyError, TypeError) as e:
            raise TrainerError(f"Job {spec.run_id!r}: unreadable results file {path}: {e}", run_id=spec.run_id) from None
        declared.update({b: Benchmark(name=b, chance=None if c is None else float(c)) for b, c in self.chance.items()})
        benches = [declared[c[6:]] for c in frame.columns if c.startswith("score:") and c[6:] in declared]
        if "params" not in frame.columns:
            frame = frame.with_columns(pl.lit(float(spec.params)).alias("params"))
        return rows_to_table(spec, frame.to_dicts(), benches)


__all__ = ["PLACEHOLDERS", "CommandTrainer"]
