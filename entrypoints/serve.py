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
from entrypoints.settings import (
    SettingsError,
    check_service_files,
    check_tls_files,
    load_settings,
)

__all__ = ["DEFAULT_SERVER", "free_port", "run"]

logger = logging.getLogger("ksa.serve")

# The faster of the two on `make bench` (docs/PERFORMANCE.md); `--server uvicorn` stays available.
DEFAULT_SERVER = "granian"
# Requests whose headers exceed this are refused by the server (400) before reaching the app.
# Larger than a 64 KiB token, so an oversized token still gets be2's own 401 `malformed`.
MAX_HEADER_BYTES = 80 * 1024
CERTIFICATE_HANDOVER_SECONDS = 8.0


def run(args: argparse.Namespace) -> int:
    """Serve `args.service` on `args.host:args.port`; a bad setting exits 2 with one line."""
    service: str = args.service
    server: str = args.server or DEFAULT_SERVER
    try:
        settings = load_settings(os.environ)
        check_service_files(settings, "be2" if service == "be2" else "be")
        tls = check_tls_files(settings)
        configure_logging(settings.log_level, settings.log_format)
        # Port 0 is chosen here, so the address logged is the one served.
        port = args.port or free_port(args.host)
        scheme = "https" if tls else "http"
        logger.info(
            "serving %s on %s://%s:%d", service, scheme, args.host, port, extra={"port": port}
        )
        if server == "granian":
            return _granian(service, args.host, port, settings.log_format, tls)
        module = importlib.import_module(f"entrypoints.{service}")
        app = module.create_app()
    except SettingsError as exc:
        print(f"ksa-auth serve {service}: {exc}", file=sys.stderr)
        return 2
    return _uvicorn(app, args.host, port, tls)


def free_port(host: str) -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _uvicorn(app: Any, host: str, port: int, tls: ServingCertificate | None) -> int:
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
        **ssl_options,
    )
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns normally after a signal; a failed start-up (port taken) exits itself.
    return 0 if server.started else 1


def _granian(
    service: str,
    host: str,
    port: int,
    log_format: Literal["json", "text"],
    tls: ServingCertificate | None,
) -> int:
    try:
        from granian.constants import Interfaces, SSLProtocols
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
