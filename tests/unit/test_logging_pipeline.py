"""The logging pipeline: records scrubbed on the caller's thread, written by the listener in
order, one JSON line each, and the access line of every request."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import TestClient

from entrypoints import logs as ksa_logging
from entrypoints.access_log import ACCESS_LOGGER, RequestLog
from entrypoints.logs import configure_logging, flush_logs
from tests.unit.test_seed_token import SEED_TOKEN


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    flush_logs()
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_lines_arrive_in_order_without_anyone_flushing(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with open(path, "w", encoding="utf-8") as stream:
        configure_logging("INFO", "json", stream)
        for number in range(50):
            logging.getLogger("ksa.test").info("line %d", number)
        # The listener writes when its queue runs dry: poll the file, with a bound.
        deadline = time.monotonic() + 5.0
        while len(path.read_text(encoding="utf-8").splitlines()) < 50:
            assert time.monotonic() < deadline, "lines not written within 5 s"
            time.sleep(0.01)
    assert [line["msg"] for line in _lines(path)] == [f"line {n}" for n in range(50)]


@pytest.mark.usefixtures("restore_logging")
def test_flush_writes_everything_and_logging_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with open(path, "w", encoding="utf-8") as stream:
        configure_logging("INFO", "json", stream)
        logging.getLogger("ksa.test").warning("before")
        flush_logs()
        flush_logs()  # twice is harmless
        logging.getLogger("ksa.test").info("after")
        flush_logs()
    assert [line["msg"] for line in _lines(path)] == ["before", "after"]


def _app() -> RequestLog:
    @get("/validate-auth/{rest:str}", sync_to_thread=False)
    def anything(rest: FromPath[str]) -> str:
        return "ok"

    # logging_config=None: Litestar would otherwise configure logging itself at start-up.
    return RequestLog(Litestar([anything], logging_config=None), "be2")  # type: ignore[arg-type]


@pytest.mark.usefixtures("restore_logging")
def test_the_access_line_has_its_fields_in_order_and_no_token(tmp_path: Path) -> None:
    path = tmp_path / "log"
    seen = io.StringIO()
    on_access = logging.StreamHandler(seen)  # a handler without our filter, on our logger
    logging.getLogger(ACCESS_LOGGER).addHandler(on_access)
    try:
        with open(path, "w", encoding="utf-8") as stream:
            configure_logging("INFO", "json", stream)
            with TestClient(_app()) as client:  # type: ignore[arg-type]
                client.get(f"/validate-auth/{SEED_TOKEN}?token={SEED_TOKEN}")
            flush_logs()
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(on_access)
    [line] = [line for line in _lines(path) if line["logger"] == ACCESS_LOGGER]
    assert list(line) == [
        "ts", "level", "logger", "msg", "service", "method", "path", "status", "subject",
        "outcome", "reason", "latency_ms",
    ]  # fmt: skip
    assert line["path"] == "/validate-auth/[redacted-jwt]"
    assert (line["status"], line["outcome"]) == (200, "ok")
    assert SEED_TOKEN not in path.read_text() and SEED_TOKEN not in seen.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_a_line_msgspec_cannot_encode_is_still_written(tmp_path: Path) -> None:
    # A lone surrogate (a path some server decoded with surrogateescape) must not cost the line
    # nor those around it, on a strict UTF-8 stream.
    path = tmp_path / "log"
    with open(path, "w", encoding="utf-8") as stream:
        configure_logging("INFO", "json", stream)
        for suffix in ("/before", "/\udcff", "/after"):
            logging.getLogger(ACCESS_LOGGER).info("GET", extra={"path": suffix})
        flush_logs()
    assert [line["path"] for line in _lines(path)] == ["/before", "/\udcff", "/after"]


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
    line = ksa_logging.json_line(data)
    assert "\n" not in line
    assert json.loads(line) == data


def test_json_line_writes_what_json_cannot_as_text() -> None:
    assert json.loads(ksa_logging.json_line({"error": ValueError("boom"), "n": 2**70})) == {
        "error": "boom",
        "n": 2**70,
    }


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_timestamps_are_utc_iso_8601_to_the_millisecond(created: float) -> None:
    record = logging.makeLogRecord({"msg": "x", "created": created, "levelname": "INFO"})
    text = json.loads(ksa_logging.JsonFormatter().format(record))["ts"]
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0) and text.endswith("+00:00")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    whole = datetime.fromtimestamp(created, UTC).replace(microsecond=0)
    assert abs((parsed - epoch) - (whole - epoch)) < timedelta(seconds=1)


# Near the edges where rounding to the microsecond carries into the next millisecond or second.
_EDGES = st.sampled_from([0.0, 0.0000005, 0.0005, 0.0009995, 0.9995, 0.9999995, 0.999999])


@given(
    st.one_of(
        st.floats(min_value=0, max_value=2**33, allow_nan=False, allow_infinity=False),
        st.builds(lambda whole, edge: whole + edge, st.integers(0, 2**33), _EDGES),
    )
)
def test_the_line_time_is_what_datetime_writes(created: float) -> None:
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert ksa_logging.utc_millis(created) == expected
