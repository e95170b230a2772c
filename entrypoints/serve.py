"""`ksa-auth serve be|be2`: run one service with settings from the environment."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
from typing import Any, Literal

from entrypoints.logs import configure_logging, server_log_config
from entrypoints.server_limits import (
    BACKLOG,
    IDLE_TIMEOUT_SECONDS,
    MAX_HEADER_BYTES,
    StrictFraming,
    connection_limit,
)
from entrypoints.settings import SettingsError, check_service_files, load_settings

__all__ = ["DEFAULT_SERVER", "free_port", "run"]

logger = logging.getLogger("ksa.serve")

# The faster of the two on `make bench` (docs/PERFORMANCE.md); `--server uvicorn` stays available.
DEFAULT_SERVER = "granian"


def run(args: argparse.Namespace) -> int:
    """Serve `args.service` on `args.host:args.port`; a bad setting exits 2 with one line."""
    service: str = args.service
    server: str = args.server or DEFAULT_SERVER
    try:
        settings = load_settings(os.environ)
        check_service_files(settings, "be2" if service == "be2" else "be")
        configure_logging(settings.log_level, settings.log_format)
        # Port 0 is chosen here, so the address logged is the one served.
        port = args.port or free_port(args.host)
        logger.info("serving %s on http://%s:%d", service, args.host, port, extra={"port": port})
        if server == "granian":
            return _granian(service, args.host, port, settings.log_format)
        module = importlib.import_module(f"entrypoints.{service}")
        app = module.create_app()
    except SettingsError as exc:
        print(f"ksa-auth serve {service}: {exc}", file=sys.stderr)
        return 2
    return _uvicorn(StrictFraming(app), args.host, port)


def free_port(host: str) -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _uvicorn(app: Any, host: str, port: int) -> int:
    import uvicorn

    from entrypoints.uvicorn_protocol import HeadTimedH11Protocol

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
        # h11, with the header-read timeout uvicorn lacks (one timer with the keep-alive's).
        http=HeadTimedH11Protocol,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        # Beyond this many connections and requests, uvicorn answers 503 at once.
        limit_concurrency=connection_limit(),
        backlog=BACKLOG,
        timeout_keep_alive=IDLE_TIMEOUT_SECONDS,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns normally after a signal; a failed start-up (port taken) exits itself.
    return 0 if server.started else 1


def _granian(service: str, host: str, port: int, log_format: Literal["json", "text"]) -> int:
    try:
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings
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
        # HTTP/1 only: no cleartext HTTP/2, and the header timer then starts with the connection;
        # with `auto` protocol detection a connection that sends nothing is never closed.
        http=HTTPModes.http1,
        backlog=BACKLOG,
        # A permit per connection (server_limits.py), so this is the connection limit.
        backpressure=connection_limit(),
        http1_settings=HTTP1Settings(
            header_read_timeout=IDLE_TIMEOUT_SECONDS * 1000,
            max_buffer_size=MAX_HEADER_BYTES,
        ),
        log_access=False,
        # granian's own lines in our format, scrubbed, on stderr like ours.
        log_dictconfig=server_log_config(log_format),
    ).serve()
    return 0
