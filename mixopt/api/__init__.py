"""mixopt's HTTP API: FastAPI app factory, settings, schemas, routes (the only package importing FastAPI).

``create_app(Settings(...))`` builds the app; ``mixopt serve`` runs it with uvicorn. The
Python client (:mod:`mixopt.client`) does not need this package.

Package rule: ``mixopt.api`` may import every library package and :mod:`mixopt.workflows` (its
long-running jobs call the same workflows as the CLI, :mod:`mixopt.api.tasks`); nothing in
mixopt imports it except the CLI's ``serve`` command. It is the only package that imports
FastAPI and raises HTTP errors (one handler maps the error tree to status codes).
"""

from mixopt.api.settings import Settings


def create_app(settings: Settings | None = None):  # noqa: ANN201 - FastAPI imported lazily
    """Build the FastAPI app (see :func:`mixopt.api.app.create_app`)."""
    from mixopt.api.app import create_app as _create

    return _create(settings)


__all__ = ["Settings", "create_app"]
