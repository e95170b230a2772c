"""be2 exposes the verified cache's size as a gauge (the bench checks it stays within its bound)."""

from __future__ import annotations

import asyncio

from adapters.fake_keyset import FakeKeySet
from adapters.jose_verifier import JoseVerifier
from adapters.verified_cache import CachingVerifier
from domain.rules import Expectations
from entrypoints.metrics import ValidationMetrics

ISSUER = "https://kubernetes.default.svc.cluster.local"


def _verifier(keyset: FakeKeySet) -> JoseVerifier:
    return JoseVerifier(keyset, Expectations.of([ISSUER], [ISSUER]))


def test_cache_entries_is_a_gauge_read_at_scrape_time() -> None:
    keyset = FakeKeySet()
    cache = CachingVerifier(_verifier(keyset))
    metrics = ValidationMetrics(cache, keyset)
    assert b"# TYPE ksa_verified_cache_entries gauge\nksa_verified_cache_entries 0.0\n" in (
        metrics.registry.render()
    )

    async def verify_three() -> None:
        for name in ("a", "b", "c"):
            await cache.verify(keyset.mint(namespace="default", service_account=name))

    asyncio.run(verify_three())
    text = metrics.registry.render()
    assert b"\nksa_verified_cache_entries 3.0\n" in text
    assert b"\nksa_verified_cache_misses_total 3.0\n" in text


def test_without_a_cache_there_is_no_entries_series() -> None:
    keyset = FakeKeySet()
    text = ValidationMetrics(_verifier(keyset), keyset).registry.render()
    assert b"ksa_verified_cache_entries" not in text
    assert b"\nksa_verified_cache_hits_total 0.0\n" in text
