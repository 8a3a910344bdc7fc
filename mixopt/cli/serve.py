"""``mixopt serve``: the HTTP API (settings from ``MIXOPT_*`` environment variables; flags override)."""

from __future__ import annotations

import argparse
from typing import Any

from mixopt.cli._output import common


def cmd_serve(args: argparse.Namespace) -> int:
    from mixopt.api.server import serve
    from mixopt.api.settings import Settings

    keys = tuple(k.strip() for k in args.api_keys.split(",") if k.strip()) if args.api_keys else None
    serve(Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir, database_url=args.database_url,
                            executor=args.executor, ray_address=args.ray_address, api_keys=keys,
                            log_level="debug" if args.verbose else None))
    return 0


def register(sub: Any) -> None:
    """Add ``serve`` to the CLI's subparsers."""
    v = sub.add_parser("serve", help="run the HTTP API (settings from MIXOPT_* environment variables; flags override)")
    v.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    v.add_argument("--port", type=int, help="TCP port (default 8000)")
    v.add_argument("--data-dir", dest="data_dir", help="the server's folder for its database, uploads, models and results")
    v.add_argument("--database-url", dest="database_url", help="SQLAlchemy URL (default SQLite in the data dir), e.g. postgresql://u@host/db")
    v.add_argument("--executor", choices=["ray", "thread"], help="where jobs run (default ray)")
    v.add_argument("--ray-address", dest="ray_address", help="Ray cluster address (default: start a local Ray)")
    v.add_argument("--api-keys", dest="api_keys", help="comma-separated bearer keys (prefer MIXOPT_API_KEYS: flags show in ps)")
    common(v)
    v.set_defaults(func=cmd_serve)
