"""The Statistics port in Prometheus series (prometheus-client), one registry per app."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sized

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.prometheus_multiprocess import shared_directory
from domain.ports import Statistics

__all__ = [
    "CONTENT_TYPE",
    "ValidationMetrics",
    "new_registry",
    "render",
    "series_registry",
]

# The classic text format, which generate_latest writes and every Prometheus scrapes. Litestar
# adds `; charset=utf-8` to a text/* media type itself.
CONTENT_TYPE = "text/plain; version=0.0.4"

# Local verification takes microseconds; a JWKS fetch or a TokenReview tens of milliseconds.
VALIDATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# With several workers, how often each copies its per-request counts to its shared file: a
# scrape answered by one worker shows the others' counts at most this late.
SHARE_EVERY_SECONDS = 1.0


def new_registry(before_scrape: Callable[[], None] | None = None) -> CollectorRegistry:
    """A registry of the app's own: two apps in one process do not share series. With several
    workers it answers with the sum of every worker's files instead, after `before_scrape`
    has copied this worker's latest counts to its file."""
    # A `_created` timestamp beside every counter doubles the series for no use here.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # the library ships no stub for it
    registry = CollectorRegistry()
    directory = shared_directory()
    if directory is not None:
        # Collected in the order registered: the copy first, then the sum.
        if before_scrape is not None:
            registry.register(_BeforeScrape(before_scrape))
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def series_registry(registry: CollectorRegistry) -> CollectorRegistry | None:
    """Where a Counter or Gauge registers: the app's registry, or none with several workers,
    where its values go to this worker's file and the registry's collector sums the files."""
    return None if shared_directory() is not None else registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format, for /metrics."""
    return generate_latest(registry)


class ValidationMetrics(Statistics):
    """be2's series: validations by result, their latency, stale tokens, and the statistics
    the verified cache and the key provider report as things happen.

    The per-request counts are plain numbers handed to prometheus-client when scraped (a
    collector of this registry): its own Counter and Histogram take a lock per increment, which
    cost be2 about a twentieth of its requests per second (docs/PERFORMANCE.md). With several
    workers the same numbers are copied into the library's per-worker files every second and at
    each scrape (`shared`), so the request path costs the same with one worker or many.
    """

    __slots__ = (
        "_cache",
        "_fetches",
        "_latency",
        "_results",
        "_shared",
        "_stale",
        "_totals",
        "_watched",
        "registry",
    )

    def __init__(self) -> None:
        self._shared = _SharedCounts() if shared_directory() is not None else None
        self.registry = new_registry(self.share)
        self._results: dict[str, int] = {"ok": 0}
        self._latency = [0] * (len(VALIDATION_BUCKETS) + 1)  # the last: above every bucket
        self._totals = [0.0]  # the latency sum
        self._stale = 0
        self._cache: dict[str, int] = {"hits": 0, "misses": 0}
        self._watched: Sized | None = None
        self._fetches = Counter(
            "ksa_jwks_fetches",
            "Discovery/JWKS fetches by outcome.",
            ["outcome"],
            registry=series_registry(self.registry),
        )
        if self._shared is None:
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
        self._watched = cache
        if self._shared is not None:
            return
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

    def share(self) -> None:
        """Copy the counts not yet in this worker's shared file there (several workers only)."""
        if self._shared is not None:
            self._shared.copy(self)

    @contextlib.asynccontextmanager
    async def sharing(self) -> AsyncIterator[None]:
        """While the app runs: with several workers, share the counts every second and at
        shutdown, and drop this worker's gauge file when it stops (its counters stay in the sum)."""
        if self._shared is None:
            yield
            return
        task = asyncio.create_task(self._share_forever(), name="metrics-share")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.share()
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def _share_forever(self) -> None:
        while True:
            await asyncio.sleep(SHARE_EVERY_SECONDS)
            self.share()

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


class _SharedCounts:
    """The plain counts, as prometheus-client series backed by this worker's files, and how
    much of each was copied there already."""

    __slots__ = ("_copied", "duration", "entries", "hits", "misses", "stale", "validations")

    def __init__(self) -> None:
        self.validations = Counter(
            "ksa_validations",
            "Bearer token validations by result (ok or the reason code).",
            ["result"],
            registry=None,
        )
        self.duration = Histogram(
            "ksa_validation_duration_seconds",
            "Time to verify one Bearer token.",
            buckets=VALIDATION_BUCKETS,
            registry=None,
        )
        self.stale = Counter(
            "ksa_stale_tokens", "Accepted tokens past their kubernetes.io warnafter.", registry=None
        )
        self.hits = Counter(
            "ksa_verified_cache_hits", "Tokens answered from the verified cache.", registry=None
        )
        self.misses = Counter(
            "ksa_verified_cache_misses", "Tokens verified in full (cache miss).", registry=None
        )
        # Summed over the workers alive: each holds a cache of its own.
        self.entries = Gauge(
            "ksa_verified_cache_entries",
            "Verified tokens held in the cache now.",
            multiprocess_mode="livesum",
            registry=None,
        )
        self._copied: dict[object, float] = {}

    def copy(self, metrics: ValidationMetrics) -> None:
        for result, count in list(metrics._results.items()):
            self._add(("result", result), count, self.validations.labels(result).inc)
        # The histogram's own per-bucket values (not cumulative, as its observe() keeps them).
        buckets = self.duration._buckets
        for index, count in enumerate(metrics._latency):
            self._add(("bucket", index), count, buckets[index].inc)
        self._add("sum", metrics._totals[0], self.duration._sum.inc)
        self._add("stale", metrics._stale, self.stale.inc)
        self._add("hits", metrics._cache["hits"], self.hits.inc)
        self._add("misses", metrics._cache["misses"], self.misses.inc)
        if metrics._watched is not None:
            self.entries.set(len(metrics._watched))

    def _add(self, key: object, total: float, add: Callable[[float], None]) -> None:
        done = self._copied.get(key, 0)
        if total != done:
            add(total - done)
            self._copied[key] = total


class _BeforeScrape(Collector):
    """Yields nothing; runs its hook just before the workers' files are summed."""

    def __init__(self, hook: Callable[[], None]) -> None:
        self._hook = hook

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        self._hook()
        return ()


class _Collector(Collector):
    def __init__(self, metrics: ValidationMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.families()
