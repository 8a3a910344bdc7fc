"""Errors of the HTTP service, in mixopt's error tree (no FastAPI here).

:func:`status_for` maps every :class:`~mixopt.errors.MixoptError` to an HTTP status; the
app installs one handler that uses it (see :mod:`mixopt.api.app`).
"""

from __future__ import annotations

import errno

from mixopt.errors import (
    ClusterError,
    ConfigError,
    FitError,
    MixoptError,
    ModelFileError,
    NotFittedError,
    NotPredictableError,
    OutputError,
    SchemaError,
    SearchError,
    TrainerError,
)


class NotFoundError(MixoptError, LookupError):
    """No such dataset, model or job for this API key (another key's ids are not found either)."""


class AuthError(MixoptError, PermissionError):
    """Missing or wrong API key."""


class LimitError(MixoptError, ValueError):
    """A request exceeds a service limit (upload size, batch size); ``status`` is 413."""


class TooManyJobsError(MixoptError, RuntimeError):
    """This key already has the allowed number of unfinished jobs."""


class ConflictError(MixoptError, RuntimeError):
    """The resource is not in a state that allows the request (e.g. predict on a model still fitting)."""


class NotAvailableError(MixoptError, RuntimeError):
    """The service does not offer this (e.g. validation jobs without configured trainers)."""


#: Most specific first: the first matching class decides.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (LimitError, 413),
    (TooManyJobsError, 429),
    (NotAvailableError, 501),
    (ModelFileError, 500),  # the server's own artefact is damaged: not the client's fault
    (TrainerError, 502),
    (ClusterError, 503),  # the service's Ray could not be started or reached
    (SchemaError, 422),
    (ConfigError, 422),
    (SearchError, 422),
    (NotPredictableError, 422),
    (FitError, 422),
    (NotFittedError, 409),
    (MixoptError, 400),
)


def status_for(exc: BaseException) -> int:
    """The HTTP status of a mixopt error (500 for anything else).

    A file the server cannot write is the server's problem: 507 (Insufficient Storage) for a
    full disk or quota, 500 otherwise.
    """
    if isinstance(exc, OutputError):
        return 507 if exc.code in (errno.ENOSPC, errno.EDQUOT) else 500
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problems_of(exc: BaseException) -> list[str]:
    """Every problem an error lists: ``SchemaError.problems``, or its ``  - `` message lines."""
    probs = list(getattr(exc, "problems", []) or [])
    if probs:
        return [str(p) for p in probs]
    lines = str(exc).splitlines()
    return [ln.strip()[2:] for ln in lines[1:] if ln.strip().startswith("- ")]


__all__ = [
    "AuthError",
    "ConflictError",
    "LimitError",
    "NotAvailableError",
    "NotFoundError",
    "TooManyJobsError",
    "problems_of",
    "status_for",
]
