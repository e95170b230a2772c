"""Prometheus metrics: plain counts on the request path, exposed through prometheus-client."""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from adapters.cluster_jwks import ClusterJwksKeyProvider
from adapters.verified_cache import CachingVerifier
from domain.ports import KeyProvider, Verifier

__all__ = [
    "CONTENT_TYPE",
    "Histogram",
    "LabeledCounter",
    "Registry",
    "ValidationMetrics",
    "counter_family",
]

# The classic text format, which generate_latest writes and every Prometheus scrapes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Local verification takes microseconds; a JWKS fetch or a TokenReview tens of milliseconds.
VALIDATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

Family = Callable[[], Metric]
"""Builds one metric family from current values, at scrape time."""


def counter_family(
    name: str, help_text: str, values: int | Mapping[str, int], label: str = ""
) -> Metric:
    """A counter family: one value, or one sample per label value (sorted)."""
    if isinstance(values, int):
        return CounterMetricFamily(name, help_text, value=values)
    family = CounterMetricFamily(name, help_text, labels=[label])
    for key in sorted(values, key=str):
        family.add_metric([str(key)], values[key])
    return family


class LabeledCounter:
    """A counter with one label; label values are bounded by the caller (reason codes etc.).

    A dict of ints, not a prometheus_client Counter: its lock and child lookup would be paid on
    every request, and the counts are only read when scraped.
    """

    __slots__ = ("help", "label", "name", "values")

    def __init__(self, name: str, help_text: str, label: str, initial: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self.values: dict[str, int] = dict.fromkeys(initial, 0)

    def inc(self, label_value: str) -> None:
        self.values[label_value] = self.values.get(label_value, 0) + 1

    def family(self) -> Metric:
        return counter_family(self.name, self.help, self.values, self.label)


class Histogram:
    """A histogram of seconds with fixed buckets."""

    __slots__ = ("buckets", "count", "counts", "help", "name", "total")

    def __init__(
        self, name: str, help_text: str, buckets: tuple[float, ...] = VALIDATION_BUCKETS
    ) -> None:
        self.name = name
        self.help = help_text
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.buckets, seconds)
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.total += seconds

    def family(self) -> Metric:
        cumulative = itertools.accumulate(self.counts)
        buckets = [(repr(float(b)), c) for b, c in zip(self.buckets, cumulative, strict=True)]
        buckets.append(("+Inf", self.count))
        return HistogramMetricFamily(self.name, self.help, buckets=buckets, sum_value=self.total)


class Registry:
    """The metrics of one app instance, in registration order, in a registry of its own (two
    apps in one process do not share series)."""

    __slots__ = ("_families", "_registry")

    def __init__(self) -> None:
        self._families: list[Family] = []
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def add(self, family: Family) -> None:
        self._families.append(family)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            try:
                yield family()
            except Exception:  # a failing source must not take /metrics down; skip its family
                logging.getLogger(__name__).warning("a metric could not be read", exc_info=True)

    def render(self) -> bytes:
        return generate_latest(self._registry)


class ValidationMetrics:
    """be2's series: validations by result, their latency, stale tokens, and what the
    verified cache and the cluster key provider count themselves."""

    __slots__ = ("latency", "registry", "stale_tokens", "validations")

    def __init__(self, verifier: Verifier, key_provider: KeyProvider | None = None) -> None:
        self.validations = LabeledCounter(
            "ksa_validations_total",
            "Bearer token validations by result (ok or the reason code).",
            "result",
            initial=("ok",),
        )
        self.latency = Histogram(
            "ksa_validation_duration_seconds", "Time to verify one Bearer token."
        )
        # kubernetes claims.go: past warnafter a token still authenticates but is stale; the
        # caller's kubelet is not refreshing it (or the caller keeps an old copy).
        self.stale_tokens = 0
        self.registry = Registry()
        self.registry.add(self.validations.family)
        self.registry.add(self.latency.family)
        self.registry.add(
            lambda: counter_family(
                "ksa_stale_tokens_total",
                "Accepted tokens past their kubernetes.io warnafter.",
                self.stale_tokens,
            )
        )
        cluster = key_provider if isinstance(key_provider, ClusterJwksKeyProvider) else None
        self.registry.add(
            lambda: counter_family(
                "ksa_jwks_fetches_total",
                "Discovery/JWKS fetches by outcome (from the key provider).",
                dict(cluster.fetch_outcomes) if cluster else {},
                "outcome",
            )
        )
        cache = verifier if isinstance(verifier, CachingVerifier) else None
        self.registry.add(
            lambda: counter_family(
                "ksa_verified_cache_hits_total",
                "Tokens answered from the verified cache.",
                cache.hits if cache else 0,
            )
        )
        self.registry.add(
            lambda: counter_family(
                "ksa_verified_cache_misses_total",
                "Tokens verified in full (cache miss).",
                cache.misses if cache else 0,
            )
        )
        if cache is not None:
            self.registry.add(
                lambda: GaugeMetricFamily(
                    "ksa_verified_cache_entries",
                    "Verified tokens held in the cache now.",
                    value=len(cache),
                )
            )

    def observe(self, result: str, seconds: float, *, stale: bool = False) -> None:
        """Count one validation: `ok` or a reason code, and how long it took."""
        self.validations.inc(result)
        self.latency.observe(seconds)
        if stale:
            self.stale_tokens += 1
