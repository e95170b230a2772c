"""Structured logs: JSON (or text) lines, one per request, with tokens and signatures scrubbed."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import msgspec

__all__ = [
    "ACCESS_LOGGER",
    "BatchingStreamHandler",
    "RequestLog",
    "RequestRecord",
    "configure_logging",
    "record_of",
    "scrub",
]

ACCESS_LOGGER = "ksa.access"
_RECORD_KEY = "ksa.request"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

# Compact JWS: three base64url segments, the first a JSON header ("eyJ" is base64url of '{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
# A credential-looking run (16+ token68 characters) after a Bearer scheme, so prose such as
# "the Bearer scheme" survives; and Authorization header values in whatever quoting.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9._~+/=-]{16,}")
_AUTHORIZATION = re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*(?:b?['\"])?)[^'\"\r\n]+")

# One encoder for every line (json.dumps builds one per call). Whatever is not JSON (an
# exception object in `extra`, say) is written as str.
_ENCODER = msgspec.json.Encoder(enc_hook=str)


def _json(data: Mapping[str, object]) -> str:
    """One JSON object on one line."""
    try:
        return _ENCODER.encode(data).decode()
    except (TypeError, ValueError, OverflowError):  # a non-str key, an int beyond 64 bits,
        # a lone surrogate (escaped as \ud800 by ensure_ascii, so any stream can take the line)
        return json.dumps(data, default=str)


# uvicorn adds `color_message` (the message with ANSI colours) to its records: not for files.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def scrub(text: str) -> str:
    """Replace anything shaped like a JWT, a Bearer credential or an Authorization value."""
    # Each pattern needs its literal ("eyJ", "bearer", "authorization"); most strings have none.
    # Under re.IGNORECASE a dotless "\u0131" also matches "i", which str.lower() leaves as it is.
    lowered = text.lower()
    if not ("eyj" in lowered or "bearer" in lowered or "authorization" in lowered) and (
        "\u0131" not in lowered
    ):
        return text
    text = _JWT.sub("[redacted-jwt]", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _AUTHORIZATION.sub(r"\1[redacted]", text)


# Scrubbed forms of short strings seen before (method, path, subject, outcome: the same few on
# almost every access line). Bounded: past the bound, strings are scrubbed each time as before.
_SCRUBBED_MEMO: dict[str, str] = {}
_MEMO_MAX_ENTRIES = 1024
_MEMO_MAX_CHARS = 256


def _scrub_memo(text: str) -> str:
    done = _SCRUBBED_MEMO.get(text)
    if done is None:
        done = scrub(text)
        if len(text) <= _MEMO_MAX_CHARS and len(_SCRUBBED_MEMO) < _MEMO_MAX_ENTRIES:
            _SCRUBBED_MEMO[text] = done
    return done


class RequestRecord:
    """What the auth middleware and error handlers learned about a request, for its log line."""

    __slots__ = ("outcome", "reason", "subject")

    def __init__(self) -> None:
        self.subject: str | None = None
        self.outcome: str | None = None
        self.reason: str | None = None


def record_of(scope: Mapping[str, object]) -> RequestRecord | None:
    """The request's log record, when the request goes through `RequestLog`."""
    state = scope.get("state")
    if isinstance(state, dict):
        record = state.get(_RECORD_KEY)
        if isinstance(record, RequestRecord):
            return record
    return None


class RequestLog:
    """ASGI wrapper writing one access line per HTTP request, after the response is sent.

    The line has method, path (never the query string: it may carry credentials), status,
    subject, outcome and reason, and latency; never a header value.
    """

    __slots__ = ("app", "logger", "service")

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        scope.setdefault("state", {})[_RECORD_KEY] = record
        status = 0
        started = time.perf_counter()

        def capture(message: Message) -> Awaitable[None]:
            # A plain function handing back send's awaitable: no coroutine per message.
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 0))
            return send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if self.logger.isEnabledFor(logging.INFO):
                fields = AccessFields(
                    service=self.service,
                    method=str(scope.get("method", "?")),
                    path=_path(scope),
                    status=status,
                    subject=record.subject,
                    outcome=record.outcome
                    or ("ok" if 0 < status < 400 else "error" if status else "aborted"),
                    reason=record.reason,
                )
                _log_access(self.logger, fields, round((time.perf_counter() - started) * 1000, 3))


class AccessFields(msgspec.Struct, frozen=True, kw_only=True):
    """What an access line says after its time, level, logger and message, in this order, but
    for the latency, which comes last. Hashable: lines that differ only in time and latency
    share one encoding (`_access_json`)."""

    service: str
    method: str
    path: str
    status: int
    subject: str | None
    outcome: str
    reason: str | None

    def scrubbed(self) -> AccessFields:
        """These fields scrubbed, as _ScrubFilter would (method and path come from the client)."""
        return AccessFields(
            service=_scrub_memo(self.service),
            method=_scrub_memo(self.method),
            path=_scrub_memo(self.path),
            status=self.status,
            subject=None if self.subject is None else _scrub_memo(self.subject),
            outcome=_scrub_memo(self.outcome),
            reason=None if self.reason is None else _scrub_memo(self.reason),
        )

    def message(self) -> str:
        """The line's `msg`: `METHOD path status` (scrubbed)."""
        return _scrub_memo(f"{self.method} {self.path} {self.status}")


# The encoded middle of recent access lines (`"level":...,"reason":...`), by logger and fields:
# a caller that reuses its token gets the same one on every request. Bounded: when full, it
# starts over.
_ACCESS_MIDDLES: dict[tuple[str, AccessFields], str] = {}
_ACCESS_MIDDLES_MAX = 1024


def _access_json(created: float, logger_name: str, fields: AccessFields, latency_ms: float) -> str:
    """Exactly JsonFormatter's line for the access record `_log_access` would build, without
    building the record."""
    middle = _ACCESS_MIDDLES.get((logger_name, fields))
    if middle is None:
        scrubbed = fields.scrubbed()
        head = {"level": "INFO", "logger": logger_name, "msg": scrubbed.message()}
        middle = _json(head | msgspec.structs.asdict(scrubbed))[1:-1]
        if len(_ACCESS_MIDDLES) >= _ACCESS_MIDDLES_MAX:
            _ACCESS_MIDDLES.clear()
        _ACCESS_MIDDLES[logger_name, fields] = middle
    # A round()ed float's repr is its shortest JSON form, as msgspec would write it.
    return f'{{"ts":"{_utc_millis(created)}",{middle},"latency_ms":{latency_ms!r}}}'


def _log_access(logger: logging.Logger, fields: AccessFields, latency_ms: float) -> None:
    """Log one access line, scrubbed before any handler sees it: straight into the batch when
    configure_logging's JSON handler is its only destination, else through `logger.info`."""
    direct = _direct_json_handler(logger)
    if direct is not None:
        direct.write_access(time.time(), logger.name, fields, latency_ms)
        return
    scrubbed = fields.scrubbed()
    extra = {**msgspec.structs.asdict(scrubbed), "latency_ms": latency_ms}
    logger.info("%s", scrubbed.message(), extra=extra)


# The handler configure_logging installed, while it writes JSON; None otherwise.
_installed: BatchingStreamHandler | None = None


def _direct_json_handler(logger: logging.Logger) -> BatchingStreamHandler | None:
    """The installed JSON handler when it is the only place an INFO record of `logger` would
    go, unfiltered but for the scrubber (as configure_logging leaves logging); else None."""
    handler = _installed
    if handler is None or handler.level > logging.INFO or len(handler.filters) != 1:
        return None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        if current.parent is None:  # the root
            return handler if current.handlers == [handler] else None
        if current.handlers:
            return None
        current = current.parent if current.propagate else None
    return None


def _path(scope: Scope) -> str:
    path = scope.get("path", "")
    # A path cannot carry a header, but a client can put a token in it: bounded here, scrubbed
    # with the rest of the line.
    return path[:512] if isinstance(path, str) else "?"


class _ScrubFilter(logging.Filter):
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


# How many forks deep this process is: a forked child has no flusher thread, whatever its
# parent's handlers say (os.getpid() on every line would be a system call per request).
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes lines in batches: at most `max_delay` seconds late, at once
    for WARNING and above (with everything before them, in order), and whenever about
    `max_bytes` are waiting. A write per request would hand the GIL to the server's own threads
    on every request; access lines are queued as fields and formatted when the batch is written.
    """

    # What an access line is counted as towards max_bytes before it is formatted.
    ACCESS_LINE_BYTES = 320

    def __init__(self, stream: TextIO, max_delay: float = 0.2, max_bytes: int = 64 * 1024) -> None:
        super().__init__(stream)
        self.max_delay = max_delay
        self.max_bytes = max_bytes
        self._lines: list[str | tuple[float, str, AccessFields, float]] = []
        self._size = 0
        # The process generation (see _forks) whose flusher thread runs; None: none started.
        self._flusher_generation: int | None = None
        self._wake = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._queue(line, len(line), urgent=record.levelno >= logging.WARNING)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._lines:
                pending, self._lines, self._size = self._lines, [], 0
                try:
                    self.stream.write("".join(map(self._text, pending)))
                except Exception:  # a closed or broken stream must not break the caller
                    return
            if hasattr(self.stream, "flush"):
                try:
                    self.stream.flush()
                except Exception:
                    return

    def write_access(
        self, created: float, logger_name: str, fields: AccessFields, latency_ms: float
    ) -> None:
        """Queue one access line (INFO, JSON), formatted as `_log_access`'s record would be."""
        self._queue((created, logger_name, fields, latency_ms), self.ACCESS_LINE_BYTES)

    def _queue(
        self, item: str | tuple[float, str, AccessFields, float], size: int, urgent: bool = False
    ) -> None:
        """Add one line to the batch; write the batch now if urgent or full."""
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(item)
            self._size += size
            urgent = urgent or self._size >= self.max_bytes
        if urgent:
            self.flush()
        elif self._flusher_generation != _forks:
            self._start_flusher()

    def _text(self, item: str | tuple[float, str, AccessFields, float]) -> str:
        if isinstance(item, str):
            return item
        return _access_json(*item) + self.terminator

    def close(self) -> None:
        self.flush()
        super().close()

    def _start_flusher(self) -> None:
        # Started on first use and again in a forked worker, which inherits no threads.
        self._flusher_generation = _forks
        threading.Thread(target=self._flush_forever, name="log-flusher", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            self._wake.wait(self.max_delay)
            if self._lines:
                self.flush()


def _has_fd(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation, AttributeError):
        return False
    return True


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _utc_millis(created: float) -> str:
    """`created` (seconds since the epoch) as UTC ISO 8601 truncated to milliseconds, with the
    date-and-seconds part computed once a second (it was a fifth of the access line's cost)."""
    global _second
    seconds, millis = divmod(math.floor(created * 1000), 1000)
    cached = _second
    if cached[0] != seconds:
        cached = (seconds, datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _second = cached
    return f"{cached[1]}.{millis:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _utc_millis(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                data[key] = value
        if record.exc_text:
            data["exc"] = record.exc_text
        return _json(data)


class TextFormatter(logging.Formatter):
    """`time level logger message key=value...` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_") and value is not None
        )
        line = f"{stamp} {record.levelname:<7} {record.name} {record.getMessage()}"
        if extras:
            line = f"{line} | {extras}"
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        return line


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
    logging._srcfile = None
    target = stream or sys.stderr
    # A real file or pipe gets batched writes; an in-memory stream (tests) is written at once.
    handler = BatchingStreamHandler(target) if _has_fd(target) else logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ScrubFilter())
    global _installed
    _installed = handler if fmt == "json" and isinstance(handler, BatchingStreamHandler) else None
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # The servers' own access logs print the full request line (query string included): ours
    # replaces them. Their error loggers propagate to the root handler above.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("granian.access").disabled = True
    # httpcore's DEBUG traces include request headers (our token among them): never below WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
