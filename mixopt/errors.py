"""One exception tree for mixopt.

Every error raised on purpose by the library derives from :class:`MixoptError` and
also from the builtin it specialises, so callers can catch either. Messages state
the requirement, the value received and the fix.
"""

from __future__ import annotations

from typing import Any


class MixoptError(Exception):
    """Root of every error mixopt raises on purpose."""


class SchemaError(MixoptError, ValueError):
    """A table, file or value does not satisfy its declared schema.

    Attributes:
        problems: every problem found, one human-readable line each (all are
            collected before raising, so one run of validation reports them all).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            shown = self.problems[:25]
            more = len(self.problems) - len(shown)
            message = message + "\n" + "\n".join(f"  - {p}" for p in shown)
            if more > 0:
                message += f"\n  ... and {more} more problem(s)"
        super().__init__(message)


class ConfigError(MixoptError, ValueError):
    """A configuration file or option is invalid."""


class NotFittedError(MixoptError, AttributeError):
    """An estimator was used before ``fit``."""


class FitError(MixoptError, RuntimeError):
    """Fitting failed; ``starts`` holds the record of every optimiser start (may be None)."""

    def __init__(self, message: str, starts: Any = None) -> None:
        self.starts = starts
        super().__init__(message)


class NotPredictableError(MixoptError, ValueError):
    """A quantity cannot be predicted from the data at hand (reason in the message)."""


class ModelFileError(MixoptError, ValueError):
    """A saved model is missing, from another format version, or was altered."""


class SearchError(MixoptError, ValueError):
    """A search problem is infeasible or mis-specified."""


class ClusterError(MixoptError, RuntimeError):
    """Ray could not be started, or the Ray cluster at the given address could not be reached."""


class OutputError(MixoptError, OSError):
    """An output file cannot be written: an unwritable place, a full disk, a folder in the way.

    Raised by :mod:`mixopt._files`, which writes every result, model, report and upload whole
    or not at all; the message names the file and says what to do. ``code`` is the
    ``errno`` of the failure (``errno.ENOSPC`` for a full disk), or None.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TrainerError(MixoptError, RuntimeError):
    """A validation training job failed; ``run_id`` names it."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)


__all__ = [
    "ClusterError",
    "ConfigError",
    "FitError",
    "MixoptError",
    "ModelFileError",
    "NotFittedError",
    "NotPredictableError",
    "OutputError",
    "SchemaError",
    "SearchError",
    "TrainerError",
]
