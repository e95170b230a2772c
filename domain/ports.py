"""The ports: what the core needs from the outside world, as Protocols adapters subclass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import msgspec

from domain.identity import Identity

__all__ = [
    "NO_STATISTICS",
    "Clock",
    "KeyProvider",
    "Lifecycle",
    "PublicJwk",
    "Statistics",
    "TokenSource",
    "Verifier",
]

Clock = Callable[[], float]
"""Seconds since the epoch; injected so time is testable (`time.time` in production)."""


class PublicJwk(msgspec.Struct, frozen=True, omit_defaults=True):
    """A public signing key as published in a JWKS (RFC 7517), RSA or EC."""

    kty: str
    kid: str
    alg: str | None = None
    use: str | None = None
    n: str | None = None
    e: str | None = None
    crv: str | None = None
    x: str | None = None
    y: str | None = None


@runtime_checkable
class TokenSource(Protocol):
    """Where our own service account token comes from (the kubelet's projected file)."""

    def current_token(self) -> str:
        """Return the current token; raises TokenUnavailable when none can be had."""
        ...


@runtime_checkable
class KeyProvider(Protocol):
    """The cluster's public signing keys, by `kid`, with refresh."""

    async def get_key(self, kid: str) -> PublicJwk:
        """Return the key with this kid, refreshing once if unknown; raises UnknownKey or
        KeysUnavailable."""
        ...

    async def refresh(self) -> None:
        """Fetch the keys again now; raises KeysUnavailable if that fails and none are held."""
        ...

    def known_kids(self) -> frozenset[str]:
        """Return the kids held right now, without any I/O (empty before the first load)."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Turns a bearer token into a verified identity."""

    async def verify(self, token: str) -> Identity:
        """Return the caller's identity; raises an AuthError subclass naming the reason."""
        ...


@runtime_checkable
class Lifecycle(Protocol):
    """An adapter that holds resources (a background refresh, a connection pool)."""

    async def start(self) -> None:
        """Acquire what the adapter needs before the first call; raises an AuthError subclass
        when it cannot, and may still be used (it retries on its own)."""
        ...

    async def close(self) -> None:
        """Release what `start` or later calls acquired; safe to call more than once."""
        ...


@runtime_checkable
class Statistics(Protocol):
    """What adapters count as it happens: metrics in production, nothing by default."""

    def cache_hit(self) -> None:
        """A token was answered from the verified-token cache."""
        ...

    def cache_miss(self) -> None:
        """A token was verified in full."""
        ...

    def key_fetch(self, outcome: str) -> None:
        """A discovery/JWKS fetch ended: `ok`, `not_modified` or `error`."""
        ...


class _NoStatistics(Statistics):
    __slots__ = ()

    def cache_hit(self) -> None:
        return None

    def cache_miss(self) -> None:
        return None

    def key_fetch(self, outcome: str) -> None:
        return None


NO_STATISTICS: Statistics = _NoStatistics()
"""Counts nothing: the default of every adapter that reports statistics."""
