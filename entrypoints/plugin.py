"""The public Litestar face: service-account Bearer authentication for any app, as one plugin."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence, Sized
from contextlib import asynccontextmanager, suppress
from copy import copy

from dependency_injector import providers
from litestar import Litestar, Request
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.plugins import InitPluginProtocol

from adapters.prometheus_statistics import ValidationMetrics
from adapters.token_review import TokenReviewVerifier
from domain.errors import AuthError
from domain.identity import Identity
from domain.ports import KeyProvider, Lifecycle, Verifier
from entrypoints.container import Container, build_container, close_all
from entrypoints.middleware import (
    AUTH_EXCLUDE,
    BearerAuthenticationMiddleware,
    auth_error_response,
    require_subjects,
)
from entrypoints.settings import check_service_files, load_settings

__all__ = [
    "BEARER_SCHEME",
    "AuthenticatedRequest",
    "Identity",
    "ServiceAccountAuth",
    "require_subjects",
]

logger = logging.getLogger("ksa.auth")

BEARER_SCHEME = "BearerAuth"

AuthenticatedRequest = Request[Identity, None, State]
"""A request behind `ServiceAccountAuth`: `request.user` is the verified caller."""


class ServiceAccountAuth(InitPluginProtocol):
    """Verifies the Bearer token on every route, as be2 does, for the app it is added to.

    ```
    auth = ServiceAccountAuth.from_environment()  # KSA_* settings, as be2 reads them
    app = Litestar([...], plugins=[auth])
    ```

    It installs the authentication middleware, answers our own errors only (401, 403, 503 with
    a reason code; the app's other errors stay its own), adds the OpenAPI Bearer scheme, and
    loads the cluster's keys before the app serves, closing what it opened at shutdown. A route
    opts out with `opt={"exclude_from_auth": True}`; `require_subjects(...)` guards by subject.
    """

    __slots__ = (
        "_container",
        "exclude",
        "key_provider",
        "metrics",
        "token_reviewer",
        "verifier",
    )

    def __init__(
        self,
        container: Container,
        *,
        metrics: ValidationMetrics | None = None,
        exclude: Sequence[str] = AUTH_EXCLUDE,
    ) -> None:
        self._container = container
        settings = container.settings()
        if metrics is not None:
            container.statistics.override(providers.Object(metrics))
        # Built now, not on the first request: a bad CA file stops start-up with one line.
        self.verifier: Verifier = container.verifier()
        self.key_provider: KeyProvider | None = (
            container.key_provider() if settings.verifier == "jwks" else None
        )
        self.token_reviewer: TokenReviewVerifier | None = (
            container.token_reviewer() if settings.verifier == "tokenreview" else None
        )
        self.metrics = metrics
        self.exclude = list(exclude)
        if metrics is not None and isinstance(self.verifier, Sized):
            metrics.watch_cache(self.verifier)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ServiceAccountAuth:
        """Read the KSA_* settings as be2 does (see the README's table).

        Raises:
            SettingsError: a bad setting, or a file the verifier cannot work without (one line).
        """
        settings = load_settings(environ)
        check_service_files(settings, "be2")
        return cls(build_container(settings))

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        middleware = DefineMiddleware(
            BearerAuthenticationMiddleware,
            verifier=self.verifier,
            metrics=self.metrics,
            exclude=self.exclude,
        )
        app_config.middleware.insert(0, middleware)
        app_config.exception_handlers = {
            **app_config.exception_handlers,
            AuthError: auth_error_response,
        }
        if app_config.openapi_config is not None:
            openapi = copy(app_config.openapi_config)
            scheme = SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="JWT",
                description="A Kubernetes service account token, audience-bound to this service.",
            )
            components = Components(security_schemes={BEARER_SCHEME: scheme})
            existing = openapi.components
            openapi.components = [
                components,
                *(existing if isinstance(existing, list) else [existing]),
            ]
            requirement: SecurityRequirement = {BEARER_SCHEME: []}
            openapi.security = [*(openapi.security or []), requirement]
            app_config.openapi_config = openapi
        app_config.lifespan = [*app_config.lifespan, self._lifespan]
        metrics = self.metrics
        if metrics is not None:
            # With several workers, each copies its counts for /metrics every second.
            app_config.lifespan.append(lambda _: metrics.sharing())
        return app_config

    @asynccontextmanager
    async def _lifespan(self, _: Litestar) -> AsyncIterator[None]:
        await self._load_keys()
        access = None
        if self.token_reviewer is not None:
            await _review_access(self.token_reviewer)
            # While the API server refuses our reviews (RBAC), /readyz says 503; look again
            # now and then, so a binding added later makes us ready.
            access = asyncio.get_running_loop().create_task(_watch_access(self.token_reviewer))
        try:
            yield
        finally:
            if access is not None:
                access.cancel()
                with suppress(asyncio.CancelledError):
                    await access
            await close_all(self._container.closers())

    async def _load_keys(self) -> None:
        provider = self.key_provider
        if provider is None:
            return
        # Load the keys before the server accepts traffic; if the key server is down, start
        # anyway: /readyz says 503 and requests get keys_unavailable until a refresh works.
        try:
            await provider.start() if isinstance(provider, Lifecycle) else await provider.refresh()
        except AuthError as exc:
            logger.warning("keys not loaded at start-up: %s", exc.detail)
        kids = provider.known_kids()
        if kids:
            logger.info("keys loaded at start-up", extra={"keys": len(kids)})
        else:
            logger.warning("no keys at start-up; /readyz answers 503 until they load")


ACCESS_RETRY_SECONDS = 5.0


async def _review_access(reviewer: TokenReviewVerifier) -> bool:
    """One TokenReview of our own token; a refusal is logged with what permission is missing."""
    try:
        await reviewer.check_access()
    except AuthError as exc:
        logger.warning("TokenReview not usable: %s", exc.detail)
        return False
    logger.info("TokenReview usable")
    return True


async def _watch_access(reviewer: TokenReviewVerifier) -> None:
    while True:
        await asyncio.sleep(ACCESS_RETRY_SECONDS)
        if reviewer.access_error is not None:
            await _review_access(reviewer)
