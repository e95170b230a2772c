"""A bounded load generator: N requests over C keep-alive connections, every answer checked."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.reliability.rawhttp import Connection

__all__ = ["LoadReport", "Probe", "run_load"]


@dataclass(frozen=True)
class Probe:
    """One kind of request and the answer it must get."""

    label: str
    headers: tuple[tuple[bytes, bytes], ...]
    status: int
    reason: str | None = None
    path: str = "/validate-auth"


@dataclass
class LoadReport:
    sent: int = 0
    answered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_label: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    wrong_count: int = 0
    dropped: int = 0
    dropped_examples: list[str] = field(default_factory=list)
    connections_opened: int = 0
    seconds: float = 0.0
    slowest_seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        rate = self.answered / self.seconds if self.seconds else 0.0
        return (
            f"sent={self.sent} answered={self.answered} wrong={self.wrong_count} "
            f"dropped={self.dropped} 5xx={self.server_errors} statuses={dict(self.statuses)} "
            f"connections={self.connections_opened} seconds={self.seconds:.1f} "
            f"rate={rate:.0f}/s slowest={self.slowest_seconds:.2f}s"
        )


async def run_load(
    port: int,
    probes: Sequence[Probe],
    *,
    total: int,
    concurrency: int,
    timeout: float = 15.0,
    report: LoadReport | None = None,
) -> LoadReport:
    """Send `total` requests cycling through `probes`, `concurrency` connections at a time.

    A request that gets no complete answer (reset, EOF, timeout) counts as dropped and its
    connection is reopened. Connections are never idle under this load, so the server's
    keep-alive timeout cannot close one between two requests.
    """
    report = report if report is not None else LoadReport()
    # `probes` may grow while the load runs (a test adds tokens of a rotated-in key).
    order = itertools.count()
    started = time.perf_counter()

    async def worker() -> None:
        connection: Connection | None = None
        try:
            while report.sent < total:
                report.sent += 1
                probe = probes[next(order) % len(probes)]
                if connection is None:
                    connection = await Connection.open("127.0.0.1", port, timeout)
                    report.connections_opened += 1
                began = time.perf_counter()
                try:
                    response = await connection.send(
                        "GET", probe.path, list(probe.headers), timeout=timeout
                    )
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    report.dropped += 1
                    if len(report.dropped_examples) < 5:
                        report.dropped_examples.append(f"{probe.label}: {type(exc).__name__}")
                    await connection.close()
                    connection = None
                    continue
                report.slowest_seconds = max(report.slowest_seconds, time.perf_counter() - began)
                report.answered += 1
                report.statuses[response.status] += 1
                report.by_label[probe.label] += 1
                if response.status != probe.status or (
                    probe.reason is not None and response.reason != probe.reason
                ):
                    report.wrong_count += 1
                    if len(report.wrong) < 10:
                        report.wrong.append(
                            f"{probe.label}: {response.status} {response.reason!r}, "
                            f"expected {probe.status} {probe.reason!r}"
                        )
                if response.headers.get("connection", "").lower() == "close":
                    await connection.close()
                    connection = None
        finally:
            if connection is not None:
                await connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    report.seconds = time.perf_counter() - started
    return report
