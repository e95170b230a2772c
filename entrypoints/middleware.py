"""be2's Bearer authentication, the subject guard, and the one mapping of errors to HTTP."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.exceptions.responses import create_exception_response
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, ExceptionHandlersMap, Scope

from adapters.prometheus_statistics import ValidationMetrics
from domain.bearer import bearer_challenge, bearer_token
from domain.errors import (
    AuthError,
    Forbidden,
    InternalError,
    Malformed,
    MissingToken,
    TokenUnavailable,
    Unavailable,
)
from domain.identity import Identity
from domain.policy import SubjectPolicy
from domain.ports import Verifier
from domain.redaction import scrub
from entrypoints.access_log import record_of

__all__ = [
    "AUTH_EXCLUDE",
    "REALM",
    "RETRY_AFTER_SECONDS",
    "UNAVAILABLE_DETAIL",
    "BearerAuthenticationMiddleware",
    "auth_error_response",
    "exception_handlers",
    "require_subjects",
    "status_for",
    "token_unavailable_response",
]

logger = logging.getLogger("ksa.auth")

REALM = "be2"
# Anchored: litestar searches these anywhere in the path, and `/x/healthz` must not skip auth.
AUTH_EXCLUDE = [r"^/(healthz|readyz|metrics)/?$", r"^/schema(/.*)?$"]
# The key provider retries a failed fetch after a short cooldown; callers should wait as long.
RETRY_AFTER_SECONDS = 5


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Verifies the Bearer token on every route but health, metrics and the schema.

    On success `request.user` is the caller's `Identity` (`request.auth` stays None: the token
    is not kept past verification). Failures raise domain errors; `exception_handlers` turns
    them into responses.
    """

    __slots__ = ("metrics", "verifier")

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        metrics: ValidationMetrics | None = None,
        exclude: list[str] | None = None,
    ) -> None:
        super().__init__(app, exclude=AUTH_EXCLUDE if exclude is None else exclude)
        self.verifier = verifier
        self.metrics = metrics

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        started = time.perf_counter()
        metrics = self.metrics
        try:
            token = bearer_token(connection.scope.get("headers", ()))
            identity = await self.verifier.verify(token)
        except AuthError as exc:
            if metrics is not None:
                metrics.observe(exc.reason, time.perf_counter() - started)
            raise
        except Exception as exc:
            # A verifier bug triggered by this input: fail closed for this token, keep serving.
            _log_unexpected("verifier raised", connection.scope, exc)
            if metrics is not None:
                metrics.observe(Malformed.reason, time.perf_counter() - started)
            raise Malformed("the token could not be verified") from None
        if metrics is not None:
            metrics.observe("ok", time.perf_counter() - started, stale=identity.stale)
        record = record_of(connection.scope)
        if record is not None:
            record.subject = identity.subject
            record.outcome = "authenticated"
        return AuthenticationResult(user=identity, auth=None)


def require_subjects(
    policy: SubjectPolicy | Iterable[str],
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """A guard allowing only the subjects the policy allows (an empty policy allows nobody).

    Use on any route behind the authentication middleware: `guards=[require_subjects(p)]`,
    with a SubjectPolicy or its entries (`system:serviceaccount:<ns>:<name>` or `...:<ns>:*`).

    Raises:
        ValueError: an entry that is neither form.
    """
    allowed = policy if isinstance(policy, SubjectPolicy) else SubjectPolicy.parse(policy)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        user = connection.scope.get("user")
        if not isinstance(user, Identity):
            raise MissingToken("this route needs a verified service account token")
        if not allowed.allows(user.subject):
            raise Forbidden(f"{user.subject} is not allowed to use this route")

    return guard


def status_for(exc: AuthError) -> int:
    """The HTTP status of a domain error: 403 forbidden, 503 unavailable, else 401 rejected."""
    return 403 if isinstance(exc, Forbidden) else 503 if isinstance(exc, Unavailable) else 401


def _answer(
    request: Request[Any, Any, Any],
    status: int,
    body: dict[str, Any],
    reason: str,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """An error answer that is never cached, with its outcome noted for the access line."""
    record = record_of(request.scope)
    if record is not None:
        record.outcome = _OUTCOMES.get(status, "unavailable")
        record.reason = reason
    if status == 503:
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_SECONDS)}
    return Response(
        body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )


_OUTCOMES = {401: "rejected", 403: "forbidden"}
# What a caller is told when no decision can be made now: the reason code says which part is
# missing; the specifics (internal URLs, TLS errors) go to the log only.
UNAVAILABLE_DETAIL = "the service cannot decide on this token right now; retry after Retry-After"


def auth_error_response(request: Request[Any, Any, Any], exc: AuthError) -> Response[Any]:
    """The one place a domain error becomes an HTTP answer."""
    status = status_for(exc)
    detail = scrub(exc.detail)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = bearer_challenge(REALM, exc, detail)
    elif status == 503:
        logger.warning("%s: %s", exc.reason, detail)
        detail = UNAVAILABLE_DETAIL
    user = request.scope.get("user")
    record = record_of(request.scope)
    if status == 403 and record is not None and isinstance(user, Identity):
        record.subject = user.subject
    body = {"authenticated": status == 403, "reason": exc.reason, "detail": detail}
    return _answer(request, status, body, exc.reason, headers)


def token_unavailable_response(
    request: Request[Any, Any, Any], exc: TokenUnavailable
) -> Response[Any]:
    """be's answer when its own token cannot be read: 503 token_unavailable."""
    return _answer(request, 503, {"error": exc.reason, "detail": scrub(exc.detail)}, exc.reason)


def _http_exception_response(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return _unexpected_response(request, exc)
    return create_exception_response(request, exc)


def _unexpected_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Never a 500: whatever broke is ours, so the caller is told to retry, and the log (scrubbed)
    # says what broke.
    _log_unexpected("request failed", request.scope, exc)
    detail = "the service could not answer this request; try again later"
    body = {"authenticated": False, "reason": InternalError.reason, "detail": detail}
    return _answer(request, 503, body, InternalError.reason)


def _log_unexpected(what: str, scope: Scope, exc: BaseException) -> None:
    logger.error(
        "%s: %s",
        what,
        type(exc).__name__,
        extra={
            "path": scrub(str(scope.get("path", ""))[:512]),
            "exc": scrub("".join(traceback.format_exception(exc))[-8000:]),
        },
    )


def exception_handlers() -> ExceptionHandlersMap:
    """Domain errors -> 401/403/503; litestar's 4xx unchanged; anything else -> 503, never 500."""
    handlers: Mapping[Any, Any] = {
        AuthError: auth_error_response,
        HTTPException: _http_exception_response,
        Exception: _unexpected_response,
        500: _unexpected_response,
    }
    return dict(handlers)
