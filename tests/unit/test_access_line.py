"""The access line's fast paths write exactly what `logger.info(..., extra=...)` would."""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrypoints import logs as ksa_logging
from tests.unit.test_seed_token import SEED_TOKEN

FIELDS: dict[str, object] = {
    "service": "be2",
    "method": "GET",
    "path": f"/validate-auth/{SEED_TOKEN}",
    "status": 401,
    "subject": None,
    "outcome": "rejected",
    "reason": "bad_signature",
    "latency_ms": 0.25,
}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    ksa_logging._installed = None


def _lines(write: object) -> list[dict[str, object]]:
    logger = logging.getLogger(ksa_logging.ACCESS_LOGGER)
    fields = {key: value for key, value in FIELDS.items() if key != "latency_ms"}
    ksa_logging._log_access(
        logger,
        ksa_logging.AccessFields(**fields),  # type: ignore[arg-type]
        float(FIELDS["latency_ms"]),  # type: ignore[arg-type]
    )
    logger.info("%s %s %s", "GET", FIELDS["path"], 401, extra=dict(FIELDS))
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = write() if callable(write) else ""
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        assert isinstance(line.pop("ts"), str)
    return lines


@pytest.mark.usefixtures("restore_logging")
def test_direct_json_line_equals_the_logged_record(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with open(path, "w", encoding="utf-8") as stream:
        ksa_logging.configure_logging("INFO", "json", stream)
        assert ksa_logging._direct_json_handler(logging.getLogger("ksa.access")) is not None
        fast, generic = _lines(path.read_text)
    assert fast == generic
    assert list(fast) == list(generic)  # same keys in the same order
    assert SEED_TOKEN not in path.read_text()


@pytest.mark.usefixtures("restore_logging")
def test_record_path_when_another_handler_would_see_the_line(tmp_path: Path) -> None:
    path = tmp_path / "log"
    seen = io.StringIO()
    with open(path, "w", encoding="utf-8") as stream:
        ksa_logging.configure_logging("INFO", "json", stream)
        extra = logging.StreamHandler(seen)
        logging.getLogger("ksa").addHandler(extra)
        try:
            assert ksa_logging._direct_json_handler(logging.getLogger("ksa.access")) is None
            fast, generic = _lines(path.read_text)
        finally:
            logging.getLogger("ksa").removeHandler(extra)
    assert fast == generic
    lines = seen.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("GET /validate-auth/") for line in lines)
    # The fast path scrubs before any handler; a handler without our filter sees that too.
    assert SEED_TOKEN not in lines[0]


@pytest.mark.usefixtures("restore_logging")
def test_in_memory_streams_take_the_record_path() -> None:
    stream = io.StringIO()
    ksa_logging.configure_logging("INFO", "json", stream)
    assert ksa_logging._installed is None
    fast, generic = _lines(stream.getvalue)
    assert fast == generic


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
        | st.lists(st.integers(), max_size=2),
        max_size=6,
    )
)
def test_json_line_is_one_line_of_the_same_data(data: dict[str, object]) -> None:
    line = ksa_logging._json(data)
    assert "\n" not in line
    assert json.loads(line) == data


def test_json_line_writes_what_json_cannot_as_text() -> None:
    assert json.loads(ksa_logging._json({"error": ValueError("boom"), "n": 2**70})) == {
        "error": "boom",
        "n": 2**70,
    }


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_timestamps_are_utc_iso_8601_to_the_millisecond(created: float) -> None:
    text = ksa_logging._utc_millis(created)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0) and text.endswith("+00:00")
    # Truncated to the millisecond (created * 1000 floored, as floats allow).
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert (parsed - epoch) // timedelta(milliseconds=1) == math.floor(created * 1000)


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False).map(lambda ms: round(ms, 3)))
def test_an_access_line_is_json_with_the_latency_as_given(latency_ms: float) -> None:
    fields = ksa_logging.AccessFields(
        **{key: value for key, value in FIELDS.items() if key != "latency_ms"}  # type: ignore[arg-type]
    )
    line = ksa_logging._access_json(0.0, "ksa.access", fields, latency_ms)
    data = json.loads(line)
    assert list(data)[:4] == ["ts", "level", "logger", "msg"] and list(data)[-1] == "latency_ms"
    assert data["latency_ms"] == latency_ms
    assert SEED_TOKEN not in line


@pytest.mark.usefixtures("restore_logging")
def test_a_line_msgspec_cannot_encode_is_written_with_its_batch(tmp_path: Path) -> None:
    # A lone surrogate (a path some server decoded with surrogateescape) must not cost the line,
    # nor the batch it is queued in, on a strict UTF-8 stream.
    path = tmp_path / "log"
    logger = logging.getLogger(ksa_logging.ACCESS_LOGGER)
    fields = {key: value for key, value in FIELDS.items() if key != "latency_ms"}
    with open(path, "w", encoding="utf-8") as stream:
        ksa_logging.configure_logging("INFO", "json", stream)
        for suffix in ("/before", "/\udcff", "/after"):
            fields["path"] = f"/validate-auth{suffix}"
            ksa_logging._log_access(logger, ksa_logging.AccessFields(**fields), 0.5)  # type: ignore[arg-type]
        logging.getLogger().handlers[0].flush()
    paths = [json.loads(line)["path"] for line in path.read_text().splitlines()]
    assert paths == ["/validate-auth/before", "/validate-auth/\udcff", "/validate-auth/after"]
