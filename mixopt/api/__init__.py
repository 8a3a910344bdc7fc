"""mixopt's HTTP API: FastAPI app factory, settings, schemas, routes (the only package importing FastAPI).

``create_app(Settings(...))`` builds the app; ``mixopt serve`` runs it with uvicorn. The
Python client (:mod:`mixopt.client`) does not need this package.
"""

from mixopt.api.settings import Settings


def create_app(settings: Settings | None = None):  # noqa: ANN201 - FastAPI imported lazily
    """Build the FastAPI app (see :func:`mixopt.api.app.create_app`)."""
    from mixopt.api.app import create_app as _create

    return _create(settings)


__all__ = ["Settings", "create_app"]
