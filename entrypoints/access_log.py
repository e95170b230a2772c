"""One access line per request: an ASGI wrapper, with a fast path into the JSON batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import msgspec

from domain.redaction import scrub
from entrypoints.logs import installed_json_handler, json_line, utc_millis
from entrypoints.server_limits import MAX_HEADER_FIELDS, MAX_TARGET_BYTES, refuse

__all__ = ["ACCESS_LOGGER", "AccessFields", "RequestLog", "RequestRecord", "record_of"]

ACCESS_LOGGER = "ksa.access"
_RECORD_KEY = "ksa.request"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


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


class AccessFields(msgspec.Struct, frozen=True, kw_only=True):
    """What an access line says after its time, level, logger and message, in this order; the
    latency comes last. Hashable: lines that differ only in time and latency share an encoding."""

    service: str
    method: str
    path: str
    status: int
    subject: str | None
    outcome: str
    reason: str | None

    def message(self) -> str:
        return f"{self.method} {self.path} {self.status}"


class RequestLog:
    """ASGI wrapper writing one access line per HTTP request, after the response is sent.

    The line has method, path (never the query string: it may carry credentials), status,
    subject, outcome and reason, and latency; never a header value. Being outermost, it also
    refuses what no server lets us bound: more than MAX_HEADER_FIELDS header fields (431) and a
    target longer than MAX_TARGET_BYTES (414).
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
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 0))
            return send(message)

        try:
            if len(scope["headers"]) > MAX_HEADER_FIELDS:
                await refuse(capture, 431, f"more than {MAX_HEADER_FIELDS} header fields")
            elif (
                len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
                >= MAX_TARGET_BYTES
                and _target_length(scope) > MAX_TARGET_BYTES
            ):
                await refuse(capture, 414, f"request target over {MAX_TARGET_BYTES} bytes")
            else:
                await self.app(scope, receive, capture)
        finally:
            if self.logger.isEnabledFor(logging.INFO):
                path = scope.get("path", "")
                fields = AccessFields(
                    service=self.service,
                    method=scrub(str(scope.get("method", "?"))),
                    # From the client, so scrubbed (before any handler sees it), then bounded.
                    path=scrub(path)[:512] if isinstance(path, str) else "?",
                    status=status,
                    subject=record.subject,
                    outcome=record.outcome
                    or ("ok" if 0 < status < 400 else "error" if status else "aborted"),
                    reason=record.reason,
                )
                log_access(self.logger, fields, round((time.perf_counter() - started) * 1000, 3))


def _target_length(scope: Scope) -> int:
    """The request target's length as sent: path, and `?` with the query when there is one."""
    query: bytes = scope.get("query_string", b"")
    return len(scope.get("raw_path") or b"") + (len(query) + 1 if query else 0)


def log_access(logger: logging.Logger, fields: AccessFields, latency_ms: float) -> None:
    """`logger.info` of the access line; straight into the JSON batch when that is where the
    line would go anyway, which is most of be2's per-request cost otherwise (see
    docs/PERFORMANCE.md)."""
    direct = _only_destination(logger)
    if direct is None:
        extra = {**msgspec.structs.asdict(fields), "latency_ms": latency_ms}
        logger.info("%s", fields.message(), extra=extra)
    else:
        direct.write_lazy(_Line(time.time(), logger.name, fields, latency_ms), 320)


def _only_destination(logger: logging.Logger) -> Any:
    """configure_logging's JSON handler, when an INFO record of `logger` would reach it and
    nothing else, through no filter but its scrubber; else None."""
    handler = installed_json_handler()
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


# The encoded middle of recent access lines (`"level":...,"reason":...`), by logger and fields:
# a caller that reuses its token gets the same one every time. Bounded: when full, it restarts.
_MIDDLES: dict[tuple[str, AccessFields], str] = {}
_MIDDLES_MAX = 1024


class _Line(msgspec.Struct, gc=False):
    """An access line, formatted (exactly as JsonFormatter would) when its batch is written.

    A line waits up to a batch's delay, long enough to outlive young collections; holding only
    strings and numbers, it is left out of the collector's work (gc=False).
    """

    created: float
    logger_name: str
    fields: AccessFields
    latency_ms: float

    def __str__(self) -> str:
        key = (self.logger_name, self.fields)
        middle = _MIDDLES.get(key)
        if middle is None:
            head = {"level": "INFO", "logger": self.logger_name, "msg": self.fields.message()}
            middle = json_line(head | msgspec.structs.asdict(self.fields))[1:-1]
            if len(_MIDDLES) >= _MIDDLES_MAX:
                _MIDDLES.clear()
            _MIDDLES[key] = middle
        # A round()ed float's repr is its shortest JSON form, as msgspec would write it.
        return f'{{"ts":"{utc_millis(self.created)}",{middle},"latency_ms":{self.latency_ms!r}}}'
