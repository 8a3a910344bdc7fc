"""Shared fixtures of the training-job tests."""

import pytest

from tests import _configs


@pytest.fixture(scope="session")
def fixture_corpus_dir(tmp_path_factory):
    """The shipped fixture text, prepared once per session."""
    from mixopt.train.corpus import fixture_corpus

    return fixture_corpus(tmp_path_factory.mktemp("corpus") / "fixture")


@pytest.fixture
def job_command():
    """Command template of the stand-in cluster job (tests/train/scripts/job.py) for a mode."""
    return _configs.job_command
