"""BatchingStreamHandler: lines arrive late by a bounded time, at once from WARNING up, in order."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints.logs import BatchingStreamHandler, _has_fd


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("ksa.test", level, __file__, 1, message, None, None)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[tuple[Path, io.TextIOWrapper]]:
    path = tmp_path / "out.log"
    with open(path, "w", encoding="utf-8") as stream:
        yield path, stream


def test_info_lines_are_written_within_the_delay(
    log_file: tuple[Path, io.TextIOWrapper],
) -> None:
    path, stream = log_file
    handler = BatchingStreamHandler(stream, max_delay=0.05)
    handler.emit(_record(logging.INFO, "one"))
    handler.emit(_record(logging.INFO, "two"))
    deadline = time.monotonic() + 5.0
    while path.read_text() != "one\ntwo\n":
        assert time.monotonic() < deadline, f"not flushed: {path.read_text()!r}"
        time.sleep(0.01)


def test_a_warning_is_written_at_once_after_what_came_before(
    log_file: tuple[Path, io.TextIOWrapper],
) -> None:
    path, stream = log_file
    handler = BatchingStreamHandler(stream, max_delay=3600)
    handler.emit(_record(logging.INFO, "before"))
    assert path.read_text() == ""
    handler.emit(_record(logging.WARNING, "warned"))
    assert path.read_text() == "before\nwarned\n"


def test_a_full_buffer_is_written_at_once(log_file: tuple[Path, io.TextIOWrapper]) -> None:
    path, stream = log_file
    handler = BatchingStreamHandler(stream, max_delay=3600, max_bytes=10)
    handler.emit(_record(logging.INFO, "12345"))
    assert path.read_text() == ""
    handler.emit(_record(logging.INFO, "67890"))
    assert path.read_text() == "12345\n67890\n"


def test_close_writes_what_is_waiting(log_file: tuple[Path, io.TextIOWrapper]) -> None:
    path, stream = log_file
    handler = BatchingStreamHandler(stream, max_delay=3600)
    handler.emit(_record(logging.INFO, "last words"))
    handler.close()
    assert path.read_text() == "last words\n"


def test_only_streams_with_a_descriptor_are_batched(
    log_file: tuple[Path, io.TextIOWrapper],
) -> None:
    assert _has_fd(log_file[1])
    assert not _has_fd(io.StringIO())
