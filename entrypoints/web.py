"""What be and be2 share: OpenAPI with a Bearer scheme, health and metrics routes, app assembly."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.plugins import PluginProtocol
from litestar.types import ExceptionHandlersMap
from prometheus_client import CollectorRegistry

from adapters.prometheus_statistics import CONTENT_TYPE, render
from entrypoints.access_log import RequestLog, record_of
from entrypoints.container import Container, build_container, close_all
from entrypoints.docs_page import assets_router, swagger_plugin
from entrypoints.logs import configure_logging
from entrypoints.middleware import RETRY_AFTER_SECONDS
from entrypoints.middleware import exception_handlers as default_exception_handlers
from entrypoints.settings import check_service_files, load_settings

__all__ = [
    "Readiness",
    "assemble",
    "container_from_environment",
    "health_routes",
    "lifespan",
]

Readiness = Callable[[], tuple[bool, dict[str, Any]]]
"""No I/O beyond a file read: returns (ready, details) for /readyz."""


def lifespan(
    container: Container, start: Callable[[], Awaitable[None]]
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Run `start` before the app serves, and close what the container built after it stops."""

    @asynccontextmanager
    async def run(_: Litestar) -> AsyncIterator[None]:
        await start()
        try:
            yield
        finally:
            await close_all(container.closers())

    return run


def container_from_environment(service: Literal["be", "be2"]) -> Container:
    """Settings from the environment, logging configured, files checked, adapters wired.

    Raises:
        SettingsError: a bad setting, or a file the service cannot work without (one line).
    """
    settings = load_settings(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    check_service_files(settings, service)
    return build_container(settings)


class Health(msgspec.Struct, frozen=True):
    status: str


def health_routes(readiness: Readiness, registry: CollectorRegistry) -> list[HTTPRouteHandler]:
    """`/healthz` (process alive), `/readyz` (the service can do its job), `/metrics`."""

    # `security=[{}]`: no credentials needed, whatever the app's global requirement says.
    @get("/healthz", summary="Liveness: the process answers", security=[{}], sync_to_thread=False)
    def healthz() -> Health:
        return Health("ok")

    @get(
        "/readyz",
        summary="Readiness: the service can do its job",
        security=[{}],
        sync_to_thread=False,
    )
    def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        ready, details = readiness()
        if ready:
            return Response({"ready": True, **details}, headers={"Cache-Control": "no-store"})
        record = record_of(request.scope)
        if record is not None:
            record.outcome = "not_ready"
            record.reason = str(details.get("reason", "")) or None
        return Response(
            {"ready": False, **details},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
        )

    @get(
        "/metrics",
        security=[{}],
        summary="Prometheus metrics (text exposition)",
        media_type=CONTENT_TYPE,
        sync_to_thread=False,
    )
    def metrics() -> Response[bytes]:
        return Response(render(registry), media_type=CONTENT_TYPE)

    return [healthz, readyz, metrics]


def assemble(
    *,
    service: str,
    description: str,
    route_handlers: Sequence[HTTPRouteHandler],
    middleware: Sequence[DefineMiddleware] = (),
    lifespan: Sequence[Callable[[Litestar], AbstractAsyncContextManager[None]]] = (),
    exception_handlers: ExceptionHandlersMap | None = None,
    plugins: Sequence[PluginProtocol] = (),
) -> Litestar:
    """A Litestar app with our exception handlers, OpenAPI at /schema and one log line a request."""
    app = Litestar(
        route_handlers=[*route_handlers, assets_router()],
        middleware=list(middleware),
        exception_handlers={**default_exception_handlers(), **(exception_handlers or {})},
        lifespan=list(lifespan),
        plugins=list(plugins),
        openapi_config=OpenAPIConfig(
            title=service,
            version="1.0.0",
            description=description,
            path="/schema",
            render_plugins=[swagger_plugin(), JsonRenderPlugin()],
        ),
        # Our handlers log (scrubbed) what they catch; litestar's own exception logging would
        # print full tracebacks outside our formatter.
        logging_config=None,
        debug=False,
    )
    # Outermost, so 404s, 405s and errors raised before routing get their line too; litestar
    # has no hook that sees both the request start and the final status for unmatched paths.
    app.asgi_handler = RequestLog(app.asgi_handler, service)  # type: ignore[arg-type,assignment]
    return app
