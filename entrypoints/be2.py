"""be2: verifies the caller's service account token and authorizes it by subject."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import HttpMethod, Litestar, Request, get, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, OpenAPIType, Operation, Schema

from adapters.prometheus_statistics import ValidationMetrics
from adapters.token_review import TokenReviewVerifier
from domain.errors import AuthError
from domain.identity import Identity
from domain.ports import KeyProvider, TokenSource
from entrypoints.be2_examples import examples
from entrypoints.caller_answer import CallerAnswer, identity_of
from entrypoints.container import Container
from entrypoints.middleware import RETRY_AFTER_SECONDS
from entrypoints.plugin import ServiceAccountAuth, require_subjects
from entrypoints.settings import Settings
from entrypoints.web import assemble, container_from_environment, health_routes

__all__ = ["AuthFailure", "Authenticated", "Protected", "create_app"]

logger = logging.getLogger("ksa.be2")


class Authenticated(msgspec.Struct, frozen=True, kw_only=True):
    """The verified caller, as /validate-auth answers."""

    authenticated: bool = True
    subject: str
    namespace: str
    service_account: str
    service_account_uid: str | None
    pod: str | None
    pod_uid: str | None
    node: str | None
    issuer: str
    audiences: tuple[str, ...]
    expires_at: int | None
    stale: bool

    @classmethod
    def of(cls, identity: Identity) -> Authenticated:
        return cls(
            subject=identity.subject,
            namespace=identity.namespace,
            service_account=identity.service_account,
            service_account_uid=identity.service_account_uid,
            pod=identity.pod,
            pod_uid=identity.pod_uid,
            node=identity.node,
            issuer=identity.issuer,
            audiences=identity.audiences,
            expires_at=identity.expires_at,
            stale=identity.stale,
        )


class Protected(msgspec.Struct, frozen=True):
    """The answer of a route guarded by KSA_ALLOWED_SUBJECTS."""

    message: str
    subject: str


class AuthFailure(msgspec.Struct, frozen=True):
    """401/403/503 body: `reason` is a stable code, `detail` human text."""

    authenticated: bool
    reason: str
    detail: str


def _answer(container: Any, description: str, status: int) -> ResponseSpec:
    # Named examples of what be2 really answers, not ones generated from the field types.
    return ResponseSpec(
        container, description=description, generate_examples=False, examples=examples(status)
    )


_FAILURES = {
    401: _answer(AuthFailure, "No, or an invalid, Bearer token; one example per reason", 401),
    503: _answer(AuthFailure, "Keys or TokenReview unavailable; retry after Retry-After", 503),
}


@dataclass
class _RetryAfterOn503(Operation):
    """An operation whose 503 answer documents the Retry-After header it always carries."""

    def __post_init__(self) -> None:
        unavailable = (self.responses or {}).get("503")
        if isinstance(unavailable, OpenAPIResponse):
            unavailable.headers = {
                **(unavailable.headers or {}),
                "Retry-After": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.INTEGER, examples=[RETRY_AFTER_SECONDS]),
                    description="Seconds to wait before asking again",
                ),
            }


def _routes(settings: Settings) -> list[HTTPRouteHandler]:
    # Built per app: a handler object belongs to the app it is registered on.
    answer = CallerAnswer(lambda identity: msgspec.json.encode(Authenticated.of(identity)))

    @route(
        "/validate-auth",
        http_method=[HttpMethod.GET, HttpMethod.POST],
        status_code=200,
        summary="Verify the Bearer token and return the caller's identity",
        responses={200: _answer(Authenticated, "The caller", 200), **_FAILURES},
        operation_class=_RetryAfterOn503,
        sync_to_thread=False,
    )
    def validate_auth() -> CallerAnswer:
        return answer

    @get(
        "/protected",
        summary="Only for the subjects in KSA_ALLOWED_SUBJECTS",
        guards=[require_subjects(settings.policy)],
        responses={
            **_FAILURES,
            403: _answer(AuthFailure, "A valid token whose subject is not allowed", 403),
        },
        operation_class=_RetryAfterOn503,
        sync_to_thread=False,
    )
    def protected(request: Request[Any, Any, Any]) -> Protected:
        identity = identity_of(request.scope)
        return Protected(f"hello, {identity.subject}", identity.subject)

    return [validate_auth, protected]


def _readiness(
    settings: Settings,
    key_provider: KeyProvider | None,
    token_source: TokenSource,
    token_reviewer: TokenReviewVerifier | None = None,
) -> Callable[[], tuple[bool, dict[str, Any]]]:
    def readiness() -> tuple[bool, dict[str, Any]]:
        if token_reviewer is not None and token_reviewer.access_error is not None:
            # The API server refuses our TokenReviews (RBAC): every request would be a 503.
            return False, {"verifier": settings.verifier, "reason": "review_unavailable"}
        if key_provider is not None:
            kids = key_provider.known_kids()
            if kids:
                return True, {"verifier": settings.verifier, "keys": len(kids)}
            return False, {"verifier": settings.verifier, "reason": "keys_unavailable"}
        try:
            token_source.current_token()
        except AuthError as exc:
            return False, {"verifier": settings.verifier, "reason": exc.reason}
        return True, {"verifier": settings.verifier}

    return readiness


def create_app(container: Container | None = None) -> Litestar:
    """The be2 ASGI app. Without a container, settings come from the environment.

    Raises:
        SettingsError: a bad setting, or a file be2 cannot work without (one line).
    """
    if container is None:
        container = container_from_environment("be2")
    container.check_dependencies()
    settings = container.settings()
    metrics = ValidationMetrics()
    auth = ServiceAccountAuth(container, metrics=metrics)
    readiness = _readiness(
        settings, auth.key_provider, container.token_source(), auth.token_reviewer
    )
    return assemble(
        service="be2",
        description="Verifies Kubernetes service account tokens (Bearer) and authorizes "
        "callers by subject.",
        route_handlers=[*_routes(settings), *health_routes(readiness, metrics.registry)],
        plugins=[auth],
    )
