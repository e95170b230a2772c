"""The log scrubber and formatters, and the Prometheus text exposition."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client.core import Metric

from entrypoints.logs import configure_logging, scrub
from entrypoints.metrics import Histogram, LabeledCounter, Registry, counter_family
from tests.unit.test_seed_token import SEED_TOKEN


@pytest.mark.parametrize(
    "text",
    [
        f"token {SEED_TOKEN} seen",
        f"headers={{'authorization': 'Bearer {SEED_TOKEN}'}}",
        f"Authorization: Bearer {SEED_TOKEN[:40]}",
        f"authorization=bearer%20{SEED_TOKEN}",
        f"GET /validate-auth?access_token={SEED_TOKEN}",
        f"(b'authorization', b'Bearer {SEED_TOKEN}')",
    ],
)
def test_scrub_removes_tokens_and_credentials(text: str) -> None:
    scrubbed = scrub(text)
    assert SEED_TOKEN not in scrubbed
    assert SEED_TOKEN[:40] not in scrubbed
    assert SEED_TOKEN.split(".")[2] not in scrubbed
    assert "redacted" in scrubbed


def test_scrub_keeps_ordinary_text() -> None:
    text = "GET /validate-auth 401 reason=bad_signature subject=system:serviceaccount:a:b"
    assert scrub(text) == text


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    # configure_logging is process-wide: put back what it changes.
    names = ("", "httpx", "httpcore", "uvicorn.access", "granian.access")
    saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
               logging.getLogger(name).disabled)
        for name in names
    }  # fmt: skip
    yield io.StringIO()
    for name, (handlers, level, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.disabled = disabled


def test_json_lines_are_scrubbed_including_extras_and_tracebacks(stderr: io.StringIO) -> None:
    configure_logging("INFO", "json", stderr)
    logger = logging.getLogger("ksa.test")
    logger.info("got %s", SEED_TOKEN, extra={"header": f"Bearer {SEED_TOKEN}"})
    try:
        raise ValueError(f"bad token {SEED_TOKEN}")
    except ValueError:
        logger.exception("failed")
    lines = [json.loads(line) for line in stderr.getvalue().splitlines() if line.startswith("{")]
    assert [line["msg"] for line in lines] == ["got [redacted-jwt]", "failed"]
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "ksa.test"
    assert lines[0]["header"].startswith("Bearer [redacted")
    assert "ValueError" in lines[1]["exc"]
    assert SEED_TOKEN not in stderr.getvalue()
    assert SEED_TOKEN.split(".")[2] not in stderr.getvalue()


def test_text_format(stderr: io.StringIO) -> None:
    configure_logging("WARNING", "text", stderr)
    logging.getLogger("ksa.test").info("hidden")
    logging.getLogger("ksa.test").warning("shown %s", "here", extra={"reason": "expired"})
    out = stderr.getvalue()
    assert "hidden" not in out
    assert "WARNING ksa.test shown here | reason=expired" in out


def test_prometheus_text_exposition() -> None:
    registry = Registry()
    labeled = LabeledCounter("b_total", "By result.", "result", initial=("ok",))
    histogram = Histogram("c_seconds", "Latency.", buckets=(0.1, 1.0))
    registry.add(lambda: counter_family("a_total", "A counter.", 1))
    registry.add(labeled.family)
    registry.add(histogram.family)
    registry.add(lambda: counter_family("d_total", "From an adapter.", {"ok": 2}, "outcome"))
    labeled.inc('we"ird\\')
    histogram.observe(0.05)
    histogram.observe(0.5)
    histogram.observe(5.0)
    assert registry.render().decode() == (
        "# HELP a_total A counter.\n# TYPE a_total counter\na_total 1.0\n"
        "# HELP b_total By result.\n# TYPE b_total counter\n"
        'b_total{result="ok"} 0.0\nb_total{result="we\\"ird\\\\"} 1.0\n'
        "# HELP c_seconds Latency.\n# TYPE c_seconds histogram\n"
        'c_seconds_bucket{le="0.1"} 1.0\nc_seconds_bucket{le="1.0"} 2.0\n'
        'c_seconds_bucket{le="+Inf"} 3.0\nc_seconds_count 3.0\nc_seconds_sum 5.55\n'
        '# HELP d_total From an adapter.\n# TYPE d_total counter\nd_total{outcome="ok"} 2.0\n'
    )


def test_a_failing_source_does_not_break_the_scrape() -> None:
    def broken() -> Metric:
        raise RuntimeError("adapter gone")

    registry = Registry()
    registry.add(broken)
    registry.add(lambda: counter_family("y_total", "Fine.", 0))
    assert registry.render() == b"# HELP y_total Fine.\n# TYPE y_total counter\ny_total 0.0\n"


@pytest.mark.parametrize(
    "text",
    [
        "no token after the `Bearer` scheme",
        "send Bearer, a space, then the token",
        "the Bearer token is empty",
        "Bearer realm=be2",
    ],
)
def test_scrub_leaves_prose_about_bearer_alone(text: str) -> None:
    assert scrub(text) == text
