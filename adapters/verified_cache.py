"""A bounded cache of verified tokens in front of any Verifier (failures are never cached)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

import msgspec

from domain.identity import Identity
from domain.ports import NO_STATISTICS, Clock, KeyProvider, Statistics, Verifier

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_TTL_SECONDS", "CachingVerifier"]

DEFAULT_TTL_SECONDS = 60.0
DEFAULT_MAX_ENTRIES = 10_000


class _Entry(msgspec.Struct, gc=False):
    # An identity and a number: no cycle, so not one more object for the collector per entry.
    identity: Identity
    until: float


class CachingVerifier(Verifier):
    """Remembers tokens `inner` accepted, keyed by their SHA-256 (the token itself is not kept
    as a key), until min(token exp, `warnafter` if still ahead, now + ttl).

    With a `key_provider`, a hit whose signing kid has left the JWKS is dropped and verified
    again, so retiring a key takes effect at once rather than after the TTL.
    """

    __slots__ = (
        "_clock",
        "_entries",
        "_inner",
        "_keys",
        "_max",
        "_statistics",
        "_ttl",
        "hits",
        "misses",
    )

    def __init__(
        self,
        inner: Verifier,
        clock: Clock = time.time,
        key_provider: KeyProvider | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        statistics: Statistics = NO_STATISTICS,
    ) -> None:
        if ttl_seconds < 0 or max_entries < 0:
            raise ValueError("ttl_seconds and max_entries must not be negative")
        self._inner = inner
        self._clock = clock
        self._keys = key_provider
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._statistics = statistics
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def verify(self, token: str) -> Identity:
        """Return the cached identity while valid, else ask `inner` (and remember success)."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        entry = self._entries.get(digest)
        if entry is not None:
            if self._clock() < entry.until and (
                self._keys is None
                or entry.identity.key_id is None
                or entry.identity.key_id in self._keys.known_kids()
            ):
                self._entries.move_to_end(digest)
                self.hits += 1
                self._statistics.cache_hit()
                return entry.identity
            del self._entries[digest]
        self.misses += 1
        self._statistics.cache_miss()
        identity = await self._inner.verify(token)
        if self._max and self._ttl > 0:
            self._remember(digest, identity)
        return identity

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def _remember(self, digest: bytes, identity: Identity) -> None:
        now = self._clock()
        until = now + self._ttl
        if identity.expires_at is not None:
            until = min(until, identity.expires_at)
        warn_after = identity.warn_after
        if warn_after is not None and not identity.stale and warn_after > now:
            # Past `warnafter` the same token is reported stale: verify it again then.
            until = min(until, warn_after)
        if until <= now:
            return
        self._entries[digest] = _Entry(identity, until)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
