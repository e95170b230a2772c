"""The log scrubber and formatters, and the Prometheus text exposition."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from adapters.prometheus_statistics import ValidationMetrics, render
from domain.redaction import scrub
from entrypoints.logs import configure_logging, flush_logs
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
    flush_logs()
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
    flush_logs()
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
    flush_logs()
    out = stderr.getvalue()
    assert "hidden" not in out
    assert "WARNING ksa.test shown here | reason=expired" in out


def test_validation_metrics_count_as_things_happen() -> None:
    metrics = ValidationMetrics()
    metrics.observe("ok", 0.0002)
    metrics.observe("ok", 0.003, stale=True)
    metrics.observe("bad_signature", 5.0)
    metrics.cache_hit()
    metrics.cache_miss()
    metrics.cache_miss()
    metrics.key_fetch("ok")
    metrics.key_fetch("error")
    text = render(metrics.registry).decode()
    for line in (
        'ksa_validations_total{result="ok"} 2.0',
        'ksa_validations_total{result="bad_signature"} 1.0',
        'ksa_validation_duration_seconds_bucket{le="0.0005"} 1.0',
        'ksa_validation_duration_seconds_bucket{le="0.005"} 2.0',
        'ksa_validation_duration_seconds_bucket{le="+Inf"} 3.0',
        "ksa_validation_duration_seconds_count 3.0",
        "ksa_stale_tokens_total 1.0",
        "ksa_verified_cache_hits_total 1.0",
        "ksa_verified_cache_misses_total 2.0",
        'ksa_jwks_fetches_total{outcome="ok"} 1.0',
        'ksa_jwks_fetches_total{outcome="error"} 1.0',
    ):
        assert f"\n{line}\n" in text, line
    assert "_created" not in text  # no creation-time series beside the counters


def test_two_apps_in_one_process_keep_their_own_series() -> None:
    first, second = ValidationMetrics(), ValidationMetrics()
    first.observe("ok", 0.001)
    assert 'ksa_validations_total{result="ok"} 1.0' in render(first.registry).decode()
    assert 'ksa_validations_total{result="ok"} 0.0' in render(second.registry).decode()


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
