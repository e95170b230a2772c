"""CachingVerifier: hits and misses, expiry against an injected clock, key retirement, bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from adapters.fake_keyset import ISSUER, FakeKeySet
from adapters.jose_verifier import JoseVerifier
from adapters.verified_cache import CachingVerifier
from domain.claims import ObjectRef
from domain.errors import Expired, UnknownKey
from domain.identity import Identity
from domain.ports import Verifier
from domain.rules import Expectations

NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingVerifier(Verifier):
    """Delegates to a real verifier and counts the calls that reach it."""

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        self.calls = 0

    async def verify(self, token: str) -> Identity:
        self.calls += 1
        return await self.inner.verify(token)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keyset(clock: FakeClock) -> FakeKeySet:
    return FakeKeySet(clock=clock)


def _stack(
    keyset: FakeKeySet, clock: FakeClock, ttl_seconds: float = 60.0, max_entries: int = 10_000
) -> tuple[CachingVerifier, CountingVerifier]:
    inner = CountingVerifier(JoseVerifier(keyset, Expectations.of([ISSUER], [ISSUER]), clock))
    cache = CachingVerifier(inner, clock, keyset, ttl_seconds, max_entries)
    return cache, inner


def run(coro: Coroutine[Any, Any, Identity]) -> Identity:
    return asyncio.run(coro)


def test_a_second_verification_is_a_hit(keyset: FakeKeySet, clock: FakeClock) -> None:
    cache, inner = _stack(keyset, clock)
    token = keyset.mint(service_account="be-sa")
    first = run(cache.verify(token))
    second = run(cache.verify(token))
    assert first == second
    assert first.subject == "system:serviceaccount:default:be-sa"
    assert (cache.hits, cache.misses, inner.calls) == (1, 1, 1)


def test_an_entry_ends_at_the_ttl(keyset: FakeKeySet, clock: FakeClock) -> None:
    cache, inner = _stack(keyset, clock, ttl_seconds=30)
    token = keyset.mint(expiration_seconds=3600)
    run(cache.verify(token))
    clock.now += 29.9
    run(cache.verify(token))
    assert inner.calls == 1
    clock.now += 0.1
    run(cache.verify(token))
    assert inner.calls == 2


def test_an_entry_ends_at_the_token_expiry_and_is_not_served_after(
    keyset: FakeKeySet, clock: FakeClock
) -> None:
    cache, inner = _stack(keyset, clock, ttl_seconds=3600)
    token = keyset.mint(expiration_seconds=600)
    run(cache.verify(token))
    clock.now += 599
    run(cache.verify(token))
    assert inner.calls == 1
    # Past exp the cache misses; the verifier (60 s leeway) decides, and then rejects.
    clock.now += 1 + 61
    with pytest.raises(Expired):
        run(cache.verify(token))
    assert inner.calls == 2
    with pytest.raises(Expired):
        run(cache.verify(token))
    assert inner.calls == 3, "failures are not cached"


def test_a_stale_flag_is_not_served_from_before_warnafter(
    keyset: FakeKeySet, clock: FakeClock
) -> None:
    cache, inner = _stack(keyset, clock, ttl_seconds=3600)
    token = keyset.mint(
        expiration_seconds=3607, pod=ObjectRef("be-1", "uid-1"), node=ObjectRef("n", "u")
    )
    assert run(cache.verify(token)).stale is False
    clock.now += 3607 + 1
    assert run(cache.verify(token)).stale is True
    assert inner.calls == 2


def test_an_entry_whose_key_left_the_jwks_is_dropped(keyset: FakeKeySet, clock: FakeClock) -> None:
    cache, inner = _stack(keyset, clock)
    old_kid = keyset.signing_kid
    token = keyset.mint()
    run(cache.verify(token))
    keyset.rotate()
    run(cache.verify(token))
    assert inner.calls == 1, "the old key is still published: a hit"
    keyset.retire(old_kid)
    with pytest.raises(UnknownKey):
        run(cache.verify(token))
    assert inner.calls == 2
    assert len(cache) == 0


def test_failures_are_never_cached(keyset: FakeKeySet, clock: FakeClock) -> None:
    cache, inner = _stack(keyset, clock)
    token = keyset.mint(audiences=["someone-else"])
    for _ in range(3):
        with pytest.raises(Exception, match="audiences"):
            run(cache.verify(token))
    assert (inner.calls, cache.hits, cache.misses, len(cache)) == (3, 0, 3, 0)


def test_the_cache_is_bounded_least_recently_used_first(
    keyset: FakeKeySet, clock: FakeClock
) -> None:
    cache, inner = _stack(keyset, clock, max_entries=3)
    tokens = [keyset.mint(service_account=f"sa-{i}") for i in range(4)]
    for token in tokens[:3]:
        run(cache.verify(token))
    run(cache.verify(tokens[0]))  # now the most recently used
    run(cache.verify(tokens[3]))  # evicts tokens[1]
    assert len(cache) == 3
    calls = inner.calls
    run(cache.verify(tokens[0]))
    run(cache.verify(tokens[2]))
    assert inner.calls == calls
    run(cache.verify(tokens[1]))
    assert inner.calls == calls + 1


def test_zero_ttl_disables_caching(keyset: FakeKeySet, clock: FakeClock) -> None:
    cache, inner = _stack(keyset, clock, ttl_seconds=0)
    token = keyset.mint()
    run(cache.verify(token))
    run(cache.verify(token))
    assert (inner.calls, len(cache)) == (2, 0)


def test_entries_are_keyed_by_digest_not_by_token(keyset: FakeKeySet, clock: FakeClock) -> None:
    cache, _ = _stack(keyset, clock)
    token = keyset.mint()
    run(cache.verify(token))
    assert all(isinstance(key, bytes) and len(key) == 32 for key in cache._entries)
