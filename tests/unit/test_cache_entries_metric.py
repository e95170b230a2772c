"""be2 exposes the verified cache's size as a gauge (the bench checks it stays within its bound)."""

from __future__ import annotations

from entrypoints.metrics import ValidationMetrics


def test_cache_entries_is_a_gauge_read_at_scrape_time() -> None:
    entries = [3]
    metrics = ValidationMetrics(
        jwks_fetches=dict,
        cache_hits=lambda: 0,
        cache_misses=lambda: 0,
        cache_entries=lambda: entries[0],
    )
    assert b"# TYPE ksa_verified_cache_entries gauge\nksa_verified_cache_entries 3.0\n" in (
        metrics.registry.render()
    )
    entries[0] = 7
    assert b"\nksa_verified_cache_entries 7.0\n" in metrics.registry.render()


def test_without_a_cache_there_is_no_entries_series() -> None:
    metrics = ValidationMetrics(jwks_fetches=dict, cache_hits=lambda: 0, cache_misses=lambda: 0)
    assert b"ksa_verified_cache_entries" not in metrics.registry.render()
