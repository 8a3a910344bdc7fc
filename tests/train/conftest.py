"""Shared fixtures of the training-job tests."""

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.fixture(scope="session")
def fixture_corpus_dir(tmp_path_factory):
    """The shipped fixture text, prepared once per session."""
    from mixopt.train.corpus import fixture_corpus

    return fixture_corpus(tmp_path_factory.mktemp("corpus") / "fixture")


@pytest.fixture
def job_command():
    """Command template of the stand-in cluster job (tests/train/scripts/job.py) for a mode."""

    def make(mode: str) -> str:
        return (f"{sys.executable} {SCRIPTS / 'job.py'} {mode} --mix {{mix_json}} --params {{params}} --tokens {{tokens}} "
                "--out {out} --checkpoints {checkpoints} --seed {seed}")

    return make
