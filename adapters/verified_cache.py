"""A bounded cache of verified tokens in front of any Verifier (failures are never cached)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from collections import OrderedDict

import msgspec

from domain.identity import Identity
from domain.ports import Clock, KeyProvider, Verifier

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_TTL_SECONDS", "CachingVerifier"]

DEFAULT_TTL_SECONDS = 60.0
DEFAULT_MAX_ENTRIES = 10_000


class _Entry:
    __slots__ = ("identity", "kid", "until")

    def __init__(self, identity: Identity, until: float, kid: str | None) -> None:
        self.identity = identity
        self.until = until
        self.kid = kid


class CachingVerifier(Verifier):
    """Remembers tokens `inner` accepted, keyed by their SHA-256 (the token itself is not kept
    as a key), until min(token exp, `warnafter` if still ahead, now + ttl).

    With a `key_provider`, a hit whose signing kid has left the JWKS is dropped and verified
    again, so retiring a key takes effect at once rather than after the TTL.
    """

    __slots__ = ("_clock", "_entries", "_inner", "_keys", "_max", "_ttl", "hits", "misses")

    def __init__(
        self,
        inner: Verifier,
        clock: Clock = time.time,
        key_provider: KeyProvider | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if ttl_seconds < 0 or max_entries < 0:
            raise ValueError("ttl_seconds and max_entries must not be negative")
        self._inner = inner
        self._clock = clock
        self._keys = key_provider
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
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
                self._keys is None or entry.kid is None or entry.kid in self._keys.known_kids()
            ):
                self._entries.move_to_end(digest)
                self.hits += 1
                return entry.identity
            del self._entries[digest]
        self.misses += 1
        identity = await self._inner.verify(token)
        if self._max and self._ttl > 0:
            self._remember(digest, token, identity)
        return identity

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def _remember(self, digest: bytes, token: str, identity: Identity) -> None:
        now = self._clock()
        until = now + self._ttl
        if identity.expires_at is not None:
            until = min(until, identity.expires_at)
        kid, warn_after = _kid_and_warn_after(token)
        if warn_after is not None and not identity.stale and warn_after > now:
            # Past `warnafter` the same token is reported stale: verify it again then.
            until = min(until, warn_after)
        if until <= now:
            return
        self._entries[digest] = _Entry(identity, until, kid)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class _Kid(msgspec.Struct):
    kid: str | None = None


class _Warn(msgspec.Struct):
    warnafter: float | None = None


class _Bookkeeping(msgspec.Struct):
    kubernetes: _Warn | None = msgspec.field(default=None, name="kubernetes.io")


# Only the two fields the cache needs: the full Claims decoder validated every claim again on
# each miss (issue 7 measures misses).
_kid_decoder = msgspec.json.Decoder(_Kid)
_bookkeeping_decoder = msgspec.json.Decoder(_Bookkeeping)


def _kid_and_warn_after(token: str) -> tuple[str | None, float | None]:
    # `inner` accepted the token, so its header and claims decode; this reads them only for
    # bookkeeping, never to decide anything about the token.
    parts = token.split(".")
    if len(parts) != 3:
        return None, None
    try:
        kid = _kid_decoder.decode(_b64decode(parts[0])).kid
        private = _bookkeeping_decoder.decode(_b64decode(parts[1])).kubernetes
    except (msgspec.DecodeError, msgspec.ValidationError, binascii.Error, ValueError):
        return None, None
    warn_after = private.warnafter if private is not None else None
    if warn_after is not None and not math.isfinite(warn_after):
        return kid, None
    return kid, warn_after


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
