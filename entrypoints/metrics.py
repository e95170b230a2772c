"""A tiny Prometheus text exposition (format 0.0.4): counters, a histogram, read-through sources."""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

__all__ = [
    "CONTENT_TYPE",
    "Counter",
    "Histogram",
    "LabeledCounter",
    "Registry",
    "SourcedLabeledCounter",
    "SourcedValue",
]

# prometheus_client would add a process-global registry (two apps in one test process clash) for
# five series; the text format is simple and stable, so it is written here.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Local verification takes microseconds; a JWKS fetch or a TokenReview tens of milliseconds.
VALIDATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _header(name: str, help_text: str, kind: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


class Counter:
    """A counter without labels."""

    __slots__ = ("help", "name", "value")

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount

    def lines(self) -> list[str]:
        return [*_header(self.name, self.help, "counter"), f"{self.name} {self.value}"]


class LabeledCounter:
    """A counter with one label; label values are bounded by the caller (reason codes etc.)."""

    __slots__ = ("help", "label", "name", "values")

    def __init__(self, name: str, help_text: str, label: str, initial: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self.values: dict[str, int] = dict.fromkeys(initial, 0)

    def inc(self, label_value: str, amount: int = 1) -> None:
        self.values[label_value] = self.values.get(label_value, 0) + amount

    def lines(self) -> list[str]:
        return [
            *_header(self.name, self.help, "counter"),
            *_labeled(self.name, self.label, self.values),
        ]


def _labeled(name: str, label: str, values: Mapping[str, int]) -> list[str]:
    return [
        f'{name}{{{label}="{_escape_label(str(key))}"}} {_number(count)}'
        for key, count in sorted(values.items(), key=lambda item: str(item[0]))
    ]


class SourcedValue:
    """A counter or gauge whose value is read, at scrape time, from an adapter (cache hits,
    cache entries)."""

    __slots__ = ("help", "kind", "name", "source")

    def __init__(
        self,
        name: str,
        help_text: str,
        source: Callable[[], int],
        kind: Literal["counter", "gauge"] = "counter",
    ) -> None:
        self.name = name
        self.help = help_text
        self.source = source
        self.kind = kind

    def lines(self) -> list[str]:
        return [*_header(self.name, self.help, self.kind), f"{self.name} {int(self.source())}"]


class SourcedLabeledCounter:
    """A labelled counter read at scrape time from an adapter's Counter (e.g. JWKS fetches)."""

    __slots__ = ("help", "label", "name", "source")

    def __init__(
        self, name: str, help_text: str, label: str, source: Callable[[], Mapping[str, int]]
    ) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self.source = source

    def lines(self) -> list[str]:
        return [
            *_header(self.name, self.help, "counter"),
            *_labeled(self.name, self.label, dict(self.source())),
        ]


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

    def lines(self) -> list[str]:
        lines = _header(self.name, self.help, "histogram")
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            cumulative += count
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {_number(self.total)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


Metric = Counter | LabeledCounter | SourcedValue | SourcedLabeledCounter | Histogram


class Registry:
    """The metrics of one app instance, rendered in registration order."""

    __slots__ = ("metrics",)

    def __init__(self) -> None:
        self.metrics: list[Metric] = []

    def add(self, metric: Metric) -> None:
        self.metrics.append(metric)

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            try:
                lines.extend(metric.lines())
            except Exception:  # a failing source must not take /metrics down; skip its family
                logging.getLogger(__name__).warning("metric %s could not be read", metric.name)
        return "\n".join(lines) + "\n"


class ValidationMetrics:
    """be2's series: validations by result, their latency, stale tokens, and adapter counters."""

    __slots__ = ("latency", "registry", "stale_tokens", "validations")

    def __init__(
        self,
        *,
        jwks_fetches: Callable[[], Mapping[str, int]],
        cache_hits: Callable[[], int],
        cache_misses: Callable[[], int],
        cache_entries: Callable[[], int] | None = None,
    ) -> None:
        self.registry = Registry()
        self.validations = LabeledCounter(
            "ksa_validations_total",
            "Bearer token validations by result (ok or the reason code).",
            "result",
            initial=("ok",),
        )
        # kubernetes claims.go: past warnafter a token still authenticates but is stale; the
        # caller's kubelet is not refreshing it (or the caller keeps an old copy).
        self.stale_tokens = Counter(
            "ksa_stale_tokens_total", "Accepted tokens past their kubernetes.io warnafter."
        )
        self.latency = Histogram(
            "ksa_validation_duration_seconds", "Time to verify one Bearer token."
        )
        self.registry.add(self.validations)
        self.registry.add(self.latency)
        self.registry.add(self.stale_tokens)
        self.registry.add(
            SourcedLabeledCounter(
                "ksa_jwks_fetches_total",
                "Discovery/JWKS fetches by outcome (from the key provider).",
                "outcome",
                jwks_fetches,
            )
        )
        self.registry.add(
            SourcedValue(
                "ksa_verified_cache_hits_total",
                "Tokens answered from the verified cache.",
                cache_hits,
            )
        )
        self.registry.add(
            SourcedValue(
                "ksa_verified_cache_misses_total",
                "Tokens verified in full (cache miss).",
                cache_misses,
            )
        )
        if cache_entries is not None:
            # Bounded by the cache's max_entries; issue 7 checks it after 10 000 distinct tokens.
            self.registry.add(
                SourcedValue(
                    "ksa_verified_cache_entries",
                    "Verified tokens held in the cache now.",
                    cache_entries,
                    kind="gauge",
                )
            )

    def observe(self, result: str, seconds: float, *, stale: bool = False) -> None:
        """Count one validation: `ok` or a reason code, and how long it took."""
        self.validations.inc(result)
        self.latency.observe(seconds)
        if stale:
            self.stale_tokens.inc()
