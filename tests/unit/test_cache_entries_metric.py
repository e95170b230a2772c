"""be2 exposes the verified cache's size as a gauge (the bench checks it stays within its bound)."""

from __future__ import annotations

import asyncio

from adapters.fake_keyset import FakeKeySet
from adapters.jose_verifier import JoseVerifier
from adapters.prometheus_statistics import ValidationMetrics, render
from adapters.verified_cache import CachingVerifier
from domain.rules import Expectations

ISSUER = "https://kubernetes.default.svc.cluster.local"


def test_cache_entries_is_a_gauge_read_at_scrape_time() -> None:
    keyset = FakeKeySet()
    metrics = ValidationMetrics()
    inner = JoseVerifier(keyset, Expectations.of([ISSUER], [ISSUER]))
    cache = CachingVerifier(inner, statistics=metrics)
    metrics.watch_cache(cache)
    assert b"# TYPE ksa_verified_cache_entries gauge\nksa_verified_cache_entries 0.0\n" in (
        render(metrics.registry)
    )

    async def verify_three_twice() -> None:
        tokens = [keyset.mint(namespace="default", service_account=n) for n in ("a", "b", "c")]
        for token in tokens * 2:
            await cache.verify(token)

    asyncio.run(verify_three_twice())
    text = render(metrics.registry)
    assert b"\nksa_verified_cache_entries 3.0\n" in text
    # Counted by the cache as it happened, through the statistics port.
    assert b"\nksa_verified_cache_misses_total 3.0\n" in text
    assert b"\nksa_verified_cache_hits_total 3.0\n" in text


def test_without_a_watched_cache_there_is_no_entries_series() -> None:
    assert b"ksa_verified_cache_entries" not in render(ValidationMetrics().registry)
