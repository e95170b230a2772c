"""Prometheus metrics with prometheus-client, counted as things happen, one registry per app."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator, Sized

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

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
    the verified cache and the key provider report as things happen.

    The per-request counts are plain numbers handed to prometheus-client when scraped (a
    collector of this registry): its own Counter and Histogram take a lock per increment, which
    cost be2 about a twentieth of its requests per second (docs/PERFORMANCE.md).
    """

    __slots__ = ("_cache", "_fetches", "_latency", "_results", "_stale", "_totals", "registry")

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self._results: dict[str, int] = {"ok": 0}
        self._latency = [0] * (len(VALIDATION_BUCKETS) + 1)  # the last: above every bucket
        self._totals = [0.0]  # the latency sum
        self._stale = 0
        self._cache: dict[str, int] = {"hits": 0, "misses": 0}
        self._fetches = Counter(
            "ksa_jwks_fetches",
            "Discovery/JWKS fetches by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    def observe(self, result: str, seconds: float, *, stale: bool = False) -> None:
        """Count one validation: `ok` or a reason code, and how long it took."""
        self._results[result] = self._results.get(result, 0) + 1
        self._latency[bisect.bisect_left(VALIDATION_BUCKETS, seconds)] += 1
        self._totals[0] += seconds
        if stale:
            self._stale += 1

    def watch_cache(self, cache: Sized) -> None:
        """Expose the verified cache's size, read when scraped."""
        entries = Gauge(
            "ksa_verified_cache_entries",
            "Verified tokens held in the cache now.",
            registry=self.registry,
        )
        entries.set_function(lambda: len(cache))

    def cache_hit(self) -> None:
        self._cache["hits"] += 1

    def cache_miss(self) -> None:
        self._cache["misses"] += 1

    def key_fetch(self, outcome: str) -> None:
        self._fetches.labels(outcome).inc()

    def families(self) -> Iterator[Metric]:
        """The per-request series as they stand, for the registry's collector."""
        validations = CounterMetricFamily(
            "ksa_validations",
            "Bearer token validations by result (ok or the reason code).",
            labels=["result"],
        )
        for result, count in sorted(self._results.items()):
            validations.add_metric([result], count)
        yield validations
        cumulative = list(itertools.accumulate(self._latency))
        buckets = [(repr(b), n) for b, n in zip(VALIDATION_BUCKETS, cumulative, strict=False)]
        yield HistogramMetricFamily(
            "ksa_validation_duration_seconds",
            "Time to verify one Bearer token.",
            buckets=[*buckets, ("+Inf", cumulative[-1])],
            sum_value=self._totals[0],
        )
        # kubernetes claims.go: past warnafter a token still authenticates but is stale; the
        # caller's kubelet is not refreshing it (or the caller keeps an old copy).
        yield CounterMetricFamily(
            "ksa_stale_tokens", "Accepted tokens past their kubernetes.io warnafter.", self._stale
        )
        yield CounterMetricFamily(
            "ksa_verified_cache_hits",
            "Tokens answered from the verified cache.",
            self._cache["hits"],
        )
        yield CounterMetricFamily(
            "ksa_verified_cache_misses",
            "Tokens verified in full (cache miss).",
            self._cache["misses"],
        )


class _Collector(Collector):
    def __init__(self, metrics: ValidationMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.families()
