"""The one dependency-injector container: settings in, adapters out (tests override providers)."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable

import httpx
from dependency_injector import containers, providers

from adapters import kube_http
from adapters.cluster_jwks import ClusterJwksConfig, ClusterJwksKeyProvider
from adapters.jose_verifier import JoseVerifier
from adapters.projected_token_file import ProjectedTokenFile
from adapters.static_jwks_file import StaticJwksFile
from adapters.token_review import TokenReviewConfig, TokenReviewVerifier
from adapters.verified_cache import CachingVerifier
from domain.ports import NO_STATISTICS, Clock, KeyProvider, Statistics, TokenSource, Verifier
from domain.rules import Expectations
from entrypoints.settings import Settings, SettingsError

__all__ = [
    "BE2_CALL_TIMEOUT",
    "REVIEW_CACHE_MAX_ENTRIES",
    "REVIEW_CACHE_TTL_SECONDS",
    "Closers",
    "Container",
    "build_container",
    "close_all",
]

logger = logging.getLogger("ksa.container")

Closers = list[Callable[[], Awaitable[None]]]
"""What was actually built and must be closed on shutdown, in creation order."""

# How long a TokenReview's yes is reused: a deleted pod's token is refused at most this late.
REVIEW_CACHE_TTL_SECONDS = 10.0
REVIEW_CACHE_MAX_ENTRIES = 1000
# be -> be2 is one hop inside the cluster; a caller of /call-be2 should not wait longer.
BE2_CALL_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


def _expectations(settings: Settings) -> Expectations:
    return Expectations.of(
        settings.issuers, settings.audiences, leeway_seconds=settings.leeway_seconds
    )


def _api_client(settings: Settings, closers: Closers) -> httpx.AsyncClient:
    try:
        client = kube_http.api_server_client(settings.ca_file)
    except kube_http.CaFileError as exc:
        raise SettingsError(f"KSA_CA_FILE: {exc}") from None
    closers.append(client.aclose)
    return client


def _jwks_config(settings: Settings) -> ClusterJwksConfig:
    return ClusterJwksConfig(
        discovery_url=settings.discovery_url,
        issuers=frozenset(settings.issuers),
        jwks_url=settings.jwks_url,
        api_server=settings.api_server,
        max_max_age_seconds=settings.jwks_refresh_seconds,
    )


def _cluster_keys(
    config: ClusterJwksConfig,
    client: httpx.AsyncClient,
    token_source: TokenSource,
    clock: Clock,
    statistics: Statistics,
    closers: Closers,
) -> ClusterJwksKeyProvider:
    provider = ClusterJwksKeyProvider(config, client, token_source, clock, statistics)
    closers.append(provider.close)
    return provider


def _key_source(settings: Settings) -> str:
    return "file" if settings.jwks_file is not None else "cluster"


def _review_config(settings: Settings) -> TokenReviewConfig:
    return TokenReviewConfig(
        api_server=settings.api_server,
        audiences=settings.audiences,
        issuers=settings.issuers,
        leeway_seconds=settings.leeway_seconds,
    )


def _be2_client(settings: Settings, closers: Closers) -> httpx.AsyncClient:
    # https: be2's certificate must chain to KSA_BE2_CA_FILE (settings insist on one) and name
    # the URL's host; the handshake completes before a byte of the request, token included.
    verify: ssl.SSLContext | bool = True
    if settings.be2_ca_file is not None:
        try:
            verify = kube_http.pinned_context(settings.be2_ca_file)
        except kube_http.CaFileError as exc:
            raise SettingsError(f"KSA_BE2_CA_FILE: {exc}") from None
    client = httpx.AsyncClient(
        verify=verify,
        timeout=BE2_CALL_TIMEOUT,
        # Our token goes to be2 only: a redirect elsewhere must not carry it along, and neither
        # must a proxy from the environment see it.
        follow_redirects=False,
        trust_env=False,
    )
    closers.append(client.aclose)
    return client


class Container(containers.DeclarativeContainer):
    """Everything be and be2 need, built lazily from `settings` (Singletons: one per app)."""

    settings = providers.Dependency(instance_of=Settings)
    clock: providers.Provider[Clock] = providers.Object(time.time)
    # What adapters count as it happens; the app that exposes metrics overrides it.
    statistics: providers.Provider[Statistics] = providers.Object(NO_STATISTICS)
    closers: providers.Provider[Closers] = providers.Singleton(list)

    token_source: providers.Provider[TokenSource] = providers.Singleton(
        ProjectedTokenFile, settings.provided.token_file, clock=clock
    )
    api_client: providers.Provider[httpx.AsyncClient] = providers.Singleton(
        _api_client, settings, closers
    )

    # KSA_JWKS_FILE set: the keys come from that file (offline); otherwise from the cluster.
    key_provider: providers.Provider[KeyProvider] = providers.Selector(
        providers.Callable(_key_source, settings),
        cluster=providers.Singleton(
            _cluster_keys,
            providers.Singleton(_jwks_config, settings),
            api_client,
            token_source,
            clock,
            statistics,
            closers,
        ),
        file=providers.Singleton(StaticJwksFile, settings.provided.jwks_file),
    )

    expectations: providers.Provider[Expectations] = providers.Singleton(_expectations, settings)

    # A verified token is remembered (by hash) until min(exp, warnafter, 60 s), and dropped at
    # once when its kid leaves the JWKS.
    jwks_verifier: providers.Provider[Verifier] = providers.Singleton(
        CachingVerifier,
        providers.Singleton(JoseVerifier, key_provider, expectations, clock),
        clock,
        key_provider=key_provider,
        statistics=statistics,
    )
    # TokenReview is chosen to see revocations (a deleted pod), so its answers are kept briefly.
    token_reviewer: providers.Provider[TokenReviewVerifier] = providers.Singleton(
        TokenReviewVerifier,
        api_client,
        token_source,
        providers.Singleton(_review_config, settings),
        clock,
    )
    token_review_verifier: providers.Provider[Verifier] = providers.Singleton(
        CachingVerifier,
        token_reviewer,
        clock,
        ttl_seconds=REVIEW_CACHE_TTL_SECONDS,
        max_entries=REVIEW_CACHE_MAX_ENTRIES,
        statistics=statistics,
    )
    # KSA_VERIFIER: jwks (local signature check) or tokenreview (ask the API server).
    verifier: providers.Provider[Verifier] = providers.Selector(
        settings.provided.verifier,
        jwks=jwks_verifier,
        tokenreview=token_review_verifier,
    )

    be2_client: providers.Provider[httpx.AsyncClient] = providers.Singleton(
        _be2_client, settings, closers
    )


def build_container(settings: Settings) -> Container:
    """A container for these settings, its dependencies checked."""
    container = Container()
    container.settings.override(providers.Object(settings))
    container.check_dependencies()
    return container


async def close_all(closers: Closers) -> None:
    """Close what the container built, newest first; a failure is logged, the rest still closed."""
    for close in reversed(closers):
        try:
            await close()
        except Exception as exc:  # shutting down: keep closing the rest
            logger.warning("close failed: %s", type(exc).__name__)
