"""`ksa-auth serve be|be2`: run one service with settings from the environment."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, Literal

from adapters.serving_certificate import ServingCertificate
from entrypoints.logs import configure_logging, server_log_config
from entrypoints.server_limits import (
    BACKLOG,
    IDLE_TIMEOUT_SECONDS,
    MAX_HEADER_BYTES,
    StrictFraming,
    connection_limit,
)
from entrypoints.settings import (
    SettingsError,
    check_service_files,
    check_tls_files,
    load_settings,
)
from entrypoints.workers import prepare_metrics_directory

__all__ = ["DEFAULT_SERVER", "free_port", "run"]

logger = logging.getLogger("ksa.serve")

# The faster of the two on `make bench` (docs/PERFORMANCE.md); `--server uvicorn` stays available.
DEFAULT_SERVER = "granian"
CERTIFICATE_HANDOVER_SECONDS = 8.0
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
        tls = check_tls_files(settings)
        if tls is not None and server == "uvicorn" and workers > 1:
            raise SettingsError(
                "--server uvicorn serves TLS with one worker; granian (the default) runs several"
            )
        # Before anything loads prometheus_client, here and in the workers (they inherit it).
        prepare_metrics_directory(os.environ, workers)
        configure_logging(settings.log_level, settings.log_format)
        # Port 0 is chosen here, so the address logged is the one served.
        port = args.port or free_port(args.host)
        scheme = "https" if tls else "http"
        logger.info(
            "serving %s on %s://%s:%d with %d worker%s",
            *(service, scheme, args.host, port, workers, "" if workers == 1 else "s"),
            extra={"port": port, "workers": workers},
        )
        if server == "granian":
            return _granian(service, args.host, port, settings.log_format, tls, workers)
        # Several uvicorn workers import the factory themselves, in the processes it starts.
        module = importlib.import_module(f"entrypoints.{service}")
        app = (
            StrictFraming(module.create_app())
            if workers == 1
            else f"entrypoints.serve:framed_{service}"
        )
    except SettingsError as exc:
        print(f"ksa-auth serve {service}: {exc}", file=sys.stderr)
        return 2
    return _uvicorn(app, args.host, port, tls, workers)


def _workers(given: int | None, setting: int) -> int:
    # --workers wins over KSA_WORKERS; both are bounded alike.
    if given is None:
        return setting
    if not 1 <= given <= MAX_WORKERS:
        raise SettingsError(f"--workers: {given} must be between 1 and {MAX_WORKERS}")
    return given


def framed_be() -> Any:
    """be as uvicorn's workers build it: behind the request-framing guard."""
    return StrictFraming(importlib.import_module("entrypoints.be").create_app())


def framed_be2() -> Any:
    """be2 as uvicorn's workers build it: behind the request-framing guard."""
    return StrictFraming(importlib.import_module("entrypoints.be2").create_app())


def free_port(host: str) -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _uvicorn(app: Any, host: str, port: int, tls: ServingCertificate | None, workers: int) -> int:
    import uvicorn

    ssl_options: dict[str, Any] = {}
    if tls is not None:
        # uvicorn keeps one context; its SNI callback (called for every handshake, with or
        # without a server name) hands each new connection the newest certificate's context.
        newest = [tls.context()]
        first = newest[0]

        def newest_certificate(connection: ssl.SSLObject, name: str | None, _: Any) -> None:
            connection.context = newest[0]

        first.sni_callback = newest_certificate
        tls.watch(lambda context: newest.__setitem__(0, context))
        ssl_options["ssl_context_factory"] = lambda config, default: first

    from entrypoints.uvicorn_protocol import HeadTimedH11Protocol

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
        # h11, with the header-read timeout uvicorn lacks (one timer with the keep-alive's).
        http=HeadTimedH11Protocol,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        # Beyond this many connections and requests, uvicorn answers 503 at once.
        limit_concurrency=connection_limit(),
        backlog=BACKLOG,
        timeout_keep_alive=IDLE_TIMEOUT_SECONDS,
        timeout_graceful_shutdown=10,
        **ssl_options,
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
    service: str,
    host: str,
    port: int,
    log_format: Literal["json", "text"],
    tls: ServingCertificate | None,
    workers: int,
) -> int:
    try:
        from granian.constants import HTTPModes, Interfaces, SSLProtocols
        from granian.http import HTTP1Settings
        from granian.server import Server
    except ImportError:
        print("ksa-auth serve: --server granian needs `pip install granian`", file=sys.stderr)
        return 2
    ssl_options: dict[str, Any] = {}
    if tls is not None:
        ssl_options = {
            "ssl_cert": Path(tls.cert_file),
            "ssl_key": Path(tls.key_file),
            "ssl_protocol_min": SSLProtocols.tls13,
            # On a new certificate each worker is replaced by a new one, and the old one stops
            # this long after: a worker needs a few seconds to start, and until it listens the
            # old one must go on answering.
            "respawn_interval": CERTIFICATE_HANDOVER_SECONDS,
        }
    # Granian imports the factory in its worker; settings were checked above, so a failure
    # there is not a settings problem.
    server = Server(
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
        # Each worker builds its own app: its own keys, caches and background refresh.
        workers=workers,
        log_access=False,
        # granian's own lines in our format, scrubbed, on stderr like ours.
        log_dictconfig=server_log_config(log_format),
        **ssl_options,
    )
    if tls is not None:
        tls.watch(lambda _: _reload_certificate(server, tls))
    server.serve()
    return 0


def _reload_certificate(server: Any, tls: ServingCertificate) -> None:
    # Granian's workers load the certificate when they start, from the paths it resolved (the
    # `..data` target of a Secret volume, gone after a rotation): resolve them again, then have
    # it respawn the workers one by one as on SIGHUP, each new one up before its old one stops.
    from granian.constants import SSLProtocols

    cert, key = Path(tls.cert_file), Path(tls.key_file)
    server.build_ssl_context(cert, key, None, SSLProtocols.tls13, None, [], False)
    server.signal_handler_reload()
