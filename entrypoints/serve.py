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
from entrypoints.settings import SettingsError, check_service_files, load_settings
from entrypoints.workers import prepare_metrics_directory

__all__ = ["DEFAULT_SERVER", "free_port", "run"]

logger = logging.getLogger("ksa.serve")

# The faster of the two on `make bench` (docs/PERFORMANCE.md); `--server uvicorn` stays available.
DEFAULT_SERVER = "granian"
# Requests whose headers exceed this are refused by the server (400) before reaching the app.
# Larger than a 64 KiB token, so an oversized token still gets be2's own 401 `malformed`.
MAX_HEADER_BYTES = 80 * 1024
# As KSA_WORKERS allows: far beyond the cores of a pod that should rather get more replicas.
MAX_WORKERS = 64


def run(args: argparse.Namespace) -> int:
    """Serve `args.service` on `args.host:args.port`; a bad setting exits 2 with one line."""
    service: str = args.service
    server: str = args.server or DEFAULT_SERVER
    try:
        settings = load_settings(os.environ)
        workers = _workers(getattr(args, "workers", None), settings.workers)
        check_service_files(settings, "be2" if service == "be2" else "be")
        # Before anything loads prometheus_client, here and in the workers (they inherit it).
        prepare_metrics_directory(os.environ, workers)
        configure_logging(settings.log_level, settings.log_format)
        # Port 0 is chosen here, so the address logged is the one served.
        port = args.port or free_port(args.host)
        logger.info(
            "serving %s on http://%s:%d with %d worker%s",
            *(service, args.host, port, workers, "" if workers == 1 else "s"),
            extra={"port": port, "workers": workers},
        )
        if server == "granian":
            return _granian(service, args.host, port, settings.log_format, workers)
        # Several uvicorn workers import the factory themselves, in the processes it starts.
        module = importlib.import_module(f"entrypoints.{service}")
        app = module.create_app() if workers == 1 else f"entrypoints.{service}:create_app"
    except SettingsError as exc:
        print(f"ksa-auth serve {service}: {exc}", file=sys.stderr)
        return 2
    return _uvicorn(app, args.host, port, workers)


def _workers(given: int | None, setting: int) -> int:
    # --workers wins over KSA_WORKERS; both are bounded alike.
    if given is None:
        return setting
    if not 1 <= given <= MAX_WORKERS:
        raise SettingsError(f"--workers: {given} must be between 1 and {MAX_WORKERS}")
    return given


def free_port(host: str) -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _uvicorn(app: Any, host: str, port: int, workers: int) -> int:
    import uvicorn

    config = uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=workers,
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
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        # What uvicorn.run does for several workers; SIGTERM stops each one gracefully.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    server.run()
    # uvicorn returns normally after a signal; a failed start-up (port taken) exits itself.
    return 0 if server.started else 1


def _granian(
    service: str, host: str, port: int, log_format: Literal["json", "text"], workers: int
) -> int:
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
        # Each worker builds its own app: its own keys, caches and background refresh.
        workers=workers,
        log_access=False,
        # granian's own lines in our format, scrubbed, on stderr like ours.
        log_dictconfig=server_log_config(log_format),
    ).serve()
    return 0
