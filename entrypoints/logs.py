"""Structured logs through the standard library: scrubbed JSON or text lines, written in batches."""

from __future__ import annotations

import atexit
import json
import logging
import math
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import msgspec

from adapters.batching_log_handler import BatchingStreamHandler
from domain.redaction import scrub

__all__ = [
    "JsonFormatter",
    "ScrubFilter",
    "TextFormatter",
    "configure_logging",
    "flush_logs",
    "installed_json_handler",
    "json_line",
    "server_log_config",
    "utc_millis",
]

# uvicorn adds `color_message` (the message with ANSI colours) to its records: not for files.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class ScrubFilter(logging.Filter):
    """Scrub every record of every logger (ours, litestar's, the server's) before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in someone's log call must not lose the line
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info:
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


# One encoder for every line. Whatever is not JSON (an exception object in `extra`) is str.
_ENCODER = msgspec.json.Encoder(enc_hook=str)


def json_line(data: Mapping[str, object]) -> str:
    """One JSON object on one line."""
    try:
        return _ENCODER.encode(data).decode()
    except (TypeError, ValueError, OverflowError):  # a non-str key, an int beyond 64 bits,
        # a lone surrogate (escaped as \ud800 by ensure_ascii, so any stream can take the line)
        return json.dumps(data, default=str)


def utc_millis(created: float) -> str:
    """Seconds since the epoch as UTC ISO 8601, to the millisecond: what
    `datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")` writes."""
    # As datetime does: whole seconds, and microseconds rounded half to even. The date and time
    # of day are written once per second: most of a line's cost otherwise.
    fraction, whole = math.modf(created)
    micros = round(fraction * 1_000_000)
    second = int(whole) + micros // 1_000_000
    cached = _LAST_SECOND[0]
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _LAST_SECOND[0] = cached
    return f"{cached[1]}.{micros % 1_000_000 // 1000:03d}+00:00"


# The last second written and its text, replaced whole so that any thread reads a matching pair.
_LAST_SECOND: list[tuple[int, str]] = [(-1, "")]


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        head = {"ts": utc_millis(record.created), "level": record.levelname, "logger": record.name}
        data = {**head, "msg": record.getMessage(), **_extras(record)}
        if record.exc_text:
            data["exc"] = record.exc_text
        return json_line(data)


class TextFormatter(logging.Formatter):
    """`time level logger message key=value...` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        shown = " ".join(f"{k}={v}" for k, v in _extras(record).items() if v is not None)
        line = f"{stamp} {record.levelname:<7} {record.name} {record.getMessage()}"
        if shown:
            line = f"{line} | {shown}"
        return f"{line}\n{record.exc_text}" if record.exc_text else line


_FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


class _Logger(logging.Logger):
    """Our lines print no source file or line: do not look the caller up for each record."""

    def findCaller(
        self, stack_info: bool = False, stacklevel: int = 1
    ) -> tuple[str, int, str, str | None]:
        return "(unknown file)", 0, "(unknown function)", None


_installed: BatchingStreamHandler | None = None


def installed_json_handler() -> BatchingStreamHandler | None:
    """The handler configure_logging installed, while it writes JSON; None otherwise."""
    return _installed


def configure_logging(
    level: str, fmt: Literal["json", "text"], stream: TextIO | None = None
) -> None:
    """Send every logger to stderr (or `stream`) through the scrubber, in the chosen format
    (process-wide)."""
    # The logging HOWTO, "Optimization": neither format prints the thread, the process or the
    # caller's file and line, so do not collect them for every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.setLoggerClass(_Logger)
    global _installed
    if _installed is not None:
        _installed.close()
    handler = BatchingStreamHandler(stream or sys.stderr)
    handler.setFormatter(_FORMATTERS[fmt]())
    handler.addFilter(ScrubFilter())
    _installed = handler if fmt == "json" else None
    atexit.register(handler.close)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    _quiet_noisy_loggers()


def server_log_config(fmt: Literal["json", "text"]) -> dict[str, Any]:
    """A logging.config dict for the ASGI server's own logger (granian's `_granian`): our
    format, through the scrubber, to stderr."""
    return {
        "filters": {"scrub": {"()": ScrubFilter}},
        "formatters": {"ksa": {"()": _FORMATTERS[fmt]}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "ksa",
                "filters": ["scrub"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"_granian": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
    }


def flush_logs() -> None:
    """Write every line logged so far (tests, and before a process exits on its own)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def _quiet_noisy_loggers() -> None:
    # The servers' own access logs print the full request line (query string included): ours
    # replaces them. Their error loggers propagate to the root handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("granian.access").disabled = True
    # httpcore's DEBUG traces include request headers (our token among them): never below WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
