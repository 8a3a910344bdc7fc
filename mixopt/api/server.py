"""Run the service with uvicorn (what ``mixopt serve`` calls)."""

from __future__ import annotations

import logging

from mixopt.api.settings import Settings

logger = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Serve the API on ``settings.host:settings.port`` until interrupted (one process: jobs are tracked in it)."""
    import uvicorn

    from mixopt.api.app import create_app

    if not settings.api_keys and settings.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("Serving on %s without API keys: anyone who can reach it can use it. Set MIXOPT_API_KEYS.", settings.host)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                workers=1, access_log=False)


__all__ = ["serve"]
