"""Prometheus metrics with prometheus-client, counted as things happen, one registry per app."""

from __future__ import annotations

from collections.abc import Sized

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from domain.ports import Statistics

__all__ = ["CONTENT_TYPE", "ValidationMetrics", "new_registry", "render"]

# The classic text format, which generate_latest writes and every Prometheus scrapes. Litestar
# adds `; charset=utf-8` to a text/* media type itself.
CONTENT_TYPE = "text/plain; version=0.0.4"

# Local verification takes microseconds; a JWKS fetch or a TokenReview tens of milliseconds.
VALIDATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def new_registry() -> CollectorRegistry:
    """A registry of the app's own: two apps in one process do not share series."""
    # A `_created` timestamp beside every counter doubles the series for no use here.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # the library ships no stub for it
    return CollectorRegistry()


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format, for /metrics."""
    return generate_latest(registry)


class ValidationMetrics(Statistics):
    """be2's series: validations by result, their latency, stale tokens, and the statistics
    the verified cache and the key provider report."""

    __slots__ = (
        "_fetches",
        "_hits",
        "_latency",
        "_misses",
        "_results",
        "_results_of",
        "_stale",
        "registry",
    )

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        validations = Counter(
            "ksa_validations",
            "Bearer token validations by result (ok or the reason code).",
            ["result"],
            registry=self.registry,
        )
        # One child per result, looked up once: `labels()` costs more than the increment.
        self._results = {"ok": validations.labels("ok")}
        self._results_of = validations.labels
        self._latency = Histogram(
            "ksa_validation_duration_seconds",
            "Time to verify one Bearer token.",
            buckets=VALIDATION_BUCKETS,
            registry=self.registry,
        )
        # kubernetes claims.go: past warnafter a token still authenticates but is stale; the
        # caller's kubelet is not refreshing it (or the caller keeps an old copy).
        self._stale = Counter(
            "ksa_stale_tokens",
            "Accepted tokens past their kubernetes.io warnafter.",
            registry=self.registry,
        )
        self._fetches = Counter(
            "ksa_jwks_fetches",
            "Discovery/JWKS fetches by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._hits = Counter(
            "ksa_verified_cache_hits",
            "Tokens answered from the verified cache.",
            registry=self.registry,
        )
        self._misses = Counter(
            "ksa_verified_cache_misses",
            "Tokens verified in full (cache miss).",
            registry=self.registry,
        )

    def observe(self, result: str, seconds: float, *, stale: bool = False) -> None:
        """Count one validation: `ok` or a reason code, and how long it took."""
        child = self._results.get(result)
        if child is None:
            child = self._results[result] = self._results_of(result)
        child.inc()
        self._latency.observe(seconds)
        if stale:
            self._stale.inc()

    def watch_cache(self, cache: Sized) -> None:
        """Expose the verified cache's size, read when scraped."""
        entries = Gauge(
            "ksa_verified_cache_entries",
            "Verified tokens held in the cache now.",
            registry=self.registry,
        )
        entries.set_function(lambda: len(cache))

    def cache_hit(self) -> None:
        self._hits.inc()

    def cache_miss(self) -> None:
        self._misses.inc()

    def key_fetch(self, outcome: str) -> None:
        self._fetches.labels(outcome).inc()
