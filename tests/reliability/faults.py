"""Small helpers for the fault suites: timed requests, Prometheus parsing, log lines."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx

from tests.devcluster_harness import poll
from tests.reliability.services import Service

__all__ = ["Answer", "call", "log_lines", "metric", "wait_for_log"]

# Far above any bound the services promise (5 s API timeout): reaching it means a hang.
CLIENT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    status: int
    json: dict[str, object]
    headers: httpx.Headers
    seconds: float

    @property
    def reason(self) -> object:
        return self.json.get("reason")


def call(service: Service, path: str, token: str | None = None) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    started = time.perf_counter()
    response = httpx.get(service.url + path, headers=headers, timeout=CLIENT_TIMEOUT_SECONDS)
    seconds = time.perf_counter() - started
    try:
        body = response.json()
    except ValueError:
        body = {}
    return Answer(
        response.status_code, body if isinstance(body, dict) else {}, response.headers, seconds
    )


def metric(service: Service, name: str, **labels: str) -> float:
    """The value of one Prometheus series (0 when absent)."""
    text = httpx.get(service.url + "/metrics", timeout=CLIENT_TIMEOUT_SECONDS).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.compile(
        rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? ([0-9.eE+-]+)$"
        if wanted
        else rf"^{re.escape(name)} ([0-9.eE+-]+)$",
        re.MULTILINE,
    )
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


def log_lines(service: Service, *needles: str) -> list[str]:
    """Lines of the service's output containing every needle (case-insensitive)."""
    lowered = [needle.lower() for needle in needles]
    return [
        line
        for line in service.logs().splitlines()
        if all(needle in line.lower() for needle in lowered)
    ]


def wait_for_log(service: Service, *needles: str, timeout: float = 15.0) -> list[str]:
    """The lines holding every needle, once there are some (logs are written in batches, up to
    0.2 s late, so a line is waited for with a bound rather than expected at once)."""
    return poll(
        lambda: log_lines(service, *needles),
        timeout=timeout,
        what=f"a log line of {service.name} with {needles}",
    )
