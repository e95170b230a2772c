"""`ksa-auth serve be|be2`: run one service with settings from the environment."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from entrypoints.settings import SettingsError, check_service_files, load_settings

__all__ = ["DEFAULT_SERVER", "run"]

# The faster of the two on `make bench` (docs/PERFORMANCE.md); `--server uvicorn` stays available.
DEFAULT_SERVER = "granian"
# Requests whose headers exceed this are refused by the server (400) before reaching the app.
# Larger than a 64 KiB token, so an oversized token still gets be2's own 401 `malformed`.
MAX_HEADER_BYTES = 80 * 1024


def run(args: argparse.Namespace) -> int:
    """Serve `args.service` on `args.host:args.port`; a bad setting exits 2 with one line."""
    service: str = args.service
    server: str = args.server or DEFAULT_SERVER
    try:
        settings = load_settings(os.environ)
        check_service_files(settings, "be2" if service == "be2" else "be")
        if server == "granian":
            return _granian(service, args.host, args.port)
        module = importlib.import_module(f"entrypoints.{service}")
        app = module.create_app()
    except SettingsError as exc:
        print(f"ksa-auth serve {service}: {exc}", file=sys.stderr)
        return 2
    return _uvicorn(app, args.host, args.port)


def _uvicorn(app: Any, host: str, port: int) -> int:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        # Our RequestLog writes one scrubbed line per request; uvicorn's access line would add
        # the raw query string. log_config=None keeps the logging create_app configured.
        access_log=False,
        log_config=None,
        server_header=False,
        # X-Forwarded-* is trusted from nobody: client addresses are not used for decisions.
        proxy_headers=False,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns normally after a signal; a failed start-up (port taken) exits itself.
    return 0 if server.started else 1


def _granian(service: str, host: str, port: int) -> int:
    try:
        from granian.constants import Interfaces
        from granian.server import Server
    except ImportError:
        print("ksa-auth serve: --server granian needs `pip install granian`", file=sys.stderr)
        return 2
    # Granian imports the factory in its worker; settings were checked above, so a failure
    # there is not a settings problem.
    Server(
        f"entrypoints.{service}:create_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        log_access=False,
    ).serve()
    return 0
