"""be: holds its pod's projected service account token, shows it, and calls be2 with it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
from litestar import Litestar, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import Counter

from adapters.httpx_auth import ServiceAccountTokenAuth
from adapters.kube_http import tls_reason
from adapters.prometheus_statistics import new_registry, series_registry
from domain.claims import decode_claims
from domain.errors import AuthError, Malformed, TokenUnavailable
from domain.jws import parse_compact
from domain.ports import TokenSource
from entrypoints.container import Container
from entrypoints.middleware import token_unavailable_response
from entrypoints.settings import Settings
from entrypoints.web import assemble, container_from_environment, health_routes, lifespan

__all__ = ["Be2Answer", "TokenView", "create_app"]

logger = logging.getLogger("ksa.be")

# be2's answers are a few hundred bytes; anything past this is not an answer we relay.
MAX_BE2_BODY_BYTES = 64 * 1024
# Bounds the whole call (connect, send, the full body), not just each read.
BE2_TOTAL_SECONDS = 6.0


class TokenView(msgspec.Struct, frozen=True):
    """be's own token and what it says about itself (/get-jwt), UNVERIFIED."""

    token: str
    subject: str
    audiences: tuple[str, ...]
    expires_at: int | None


class Be2Answer(msgspec.Struct, frozen=True, omit_defaults=True):
    """What be2 answered to `GET /validate-auth` with be's token (/call-be2)."""

    be2_status: int
    be2: Any
    error: str | None = None
    detail: str | None = None


class _Error(msgspec.Struct, frozen=True):
    error: str
    detail: str


def _view(token: str) -> TokenView:
    # The token is our own, from the kubelet; it is shown, not trusted, so no signature check.
    try:
        claims = decode_claims(parse_compact(token).payload)
    except Malformed:
        return TokenView(token, "", (), None)
    expires = int(claims.exp) if claims.exp is not None else None
    return TokenView(token, claims.sub, claims.audiences, expires)


class _CountedReads(TokenSource):
    """be's own token, each read counted by outcome for /metrics."""

    def __init__(self, inner: TokenSource, reads: Counter) -> None:
        self._inner = inner
        self._reads = reads

    def current_token(self) -> str:
        # Re-read on every call: the kubelet rotates the file (ProjectedTokenFile re-checks it).
        try:
            token = self._inner.current_token()
        except TokenUnavailable:
            self._reads.labels("unavailable").inc()
            raise
        self._reads.labels("ok").inc()
        return token


def _routes(
    settings: Settings,
    token_source: TokenSource,
    client: httpx.AsyncClient,
    calls: Counter,
) -> list[HTTPRouteHandler]:
    # Our token goes to be2's origin only, whatever a redirect or a proxy would say.
    auth = ServiceAccountTokenAuth(token_source, origins=[settings.be2_url])

    @get(
        "/get-jwt",
        summary="be's current service account token (the seed's flow; off in production)",
        responses={503: ResponseSpec(_Error, description="The token file cannot be read")},
        sync_to_thread=False,
    )
    def get_jwt() -> Response[TokenView]:
        return Response(_view(token_source.current_token()), headers={"Cache-Control": "no-store"})

    @get(
        "/call-be2",
        summary="Call be2's /validate-auth with be's current token; relay its status and JSON",
        responses={503: ResponseSpec(_Error, description="The token file cannot be read")},
    )
    async def call_be2() -> Response[Be2Answer]:
        url = f"{settings.be2_url}/validate-auth"
        try:
            async with asyncio.timeout(BE2_TOTAL_SECONDS):
                status, body = await _get_json(client, url, auth)
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            answer = _unreachable(settings.be2_url, exc)
            calls.labels("unreachable" if answer.error == "be2_unreachable" else "tls_failed").inc()
            return Response(answer, status_code=502, headers={"Cache-Control": "no-store"})
        calls.labels(str(status)).inc()
        return Response(Be2Answer(status, body), headers={"Cache-Control": "no-store"})

    routes: list[HTTPRouteHandler] = [call_be2]
    if settings.expose_token:
        routes.append(get_jwt)
    return routes


def _unreachable(be2_url: str, exc: BaseException) -> Be2Answer:
    """The 502 answer for a call that never got an answer; the reason goes to the log."""
    reason = tls_reason(exc)
    if reason is None:
        detail = f"be2 at {be2_url} could not be reached: {type(exc).__name__}"
        logger.warning(detail)
        return Be2Answer(0, None, error="be2_unreachable", detail=detail)
    # No request was sent: the token only follows a handshake that verified be2's certificate.
    logger.warning("be2 at %s refused: TLS handshake failed: %s", be2_url, reason)
    detail = (
        f"the TLS handshake with be2 at {be2_url} failed (be's log says why: a certificate "
        "not from KSA_BE2_CA_FILE or not for this host name, say); no token was sent"
    )
    return Be2Answer(0, None, error="be2_tls_failed", detail=detail)


async def _get_json(client: httpx.AsyncClient, url: str, auth: httpx.Auth) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    async with client.stream("GET", url, headers=headers, auth=auth) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BE2_BODY_BYTES:
                return response.status_code, {"error": "be2's answer is too large to relay"}
    try:
        return response.status_code, msgspec.json.decode(bytes(body))
    except msgspec.DecodeError:
        return response.status_code, {"error": "be2's answer is not JSON"}


def _readiness(token_source: TokenSource) -> Callable[[], tuple[bool, dict[str, Any]]]:
    def readiness() -> tuple[bool, dict[str, Any]]:
        try:
            token_source.current_token()
        except AuthError as exc:
            return False, {"reason": exc.reason, "detail": exc.detail}
        return True, {}

    return readiness


def _starter(container: Container) -> Callable[[], Awaitable[None]]:
    async def start() -> None:
        # Only a hint in the log: be starts without its token (readyz says 503 until it is there).
        try:
            container.token_source().current_token()
        except AuthError as exc:
            logger.warning("token not readable at start-up: %s", exc.detail)
        except Exception as exc:
            logger.error("token source failed at start-up: %s", type(exc).__name__)

    return start


def create_app(container: Container | None = None) -> Litestar:
    """The be ASGI app. Without a container, settings come from the environment.

    Raises:
        SettingsError: a bad setting (one line naming it).
    """
    if container is None:
        container = container_from_environment("be")
    container.check_dependencies()
    settings = container.settings()
    token_source = container.token_source()
    client = container.be2_client()
    registry = new_registry()
    # With several workers these go to each worker's file, and the registry sums the files.
    own = series_registry(registry)
    reads = Counter(
        "ksa_token_reads", "Reads of be's own token by outcome.", ["outcome"], registry=own
    )
    reads.labels("ok")  # the series exists before the first read
    calls = Counter(
        "ksa_be2_calls",
        "Calls to be2's /validate-auth by be2's status.",
        ["status"],
        registry=own,
    )
    app = assemble(
        service="be",
        description="Holds its pod's service account token; shows it and calls be2 with it.",
        route_handlers=[
            *_routes(settings, _CountedReads(token_source, reads), client, calls),
            *health_routes(_readiness(token_source), registry),
        ],
        lifespan=[lifespan(container, _starter(container))],
        exception_handlers={TokenUnavailable: token_unavailable_response},
    )
    return app
