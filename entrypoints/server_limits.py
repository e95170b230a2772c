"""Every limit `serve` gives the HTTP server, in one place, and the guards where it cannot."""

from __future__ import annotations

import logging
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "BACKLOG",
    "IDLE_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_FIELDS",
    "MAX_TARGET_BYTES",
    "StrictFraming",
    "connection_limit",
    "refuse",
]

logger = logging.getLogger("ksa.serve")

# Connections one worker serves at once. granian takes a permit per connection (its
# "backpressure"), not per request, so this many open sockets, even silent ones, make new
# clients wait; its default (1,024) was reached by one client. An idle connection costs granian
# about 4 KB, so the limit is set far above what callers need and paid for in file descriptors
# (raised to it below); each socket is closed after IDLE_TIMEOUT_SECONDS without a whole head.
MAX_CONNECTIONS = 8192
# Connections the kernel queues while every permit is taken (capped by net.core.somaxconn).
BACKLOG = 1024
# Slow headers and an idle keep-alive connection are closed after this (granian has one timer
# for both). Longer than httpx's 5 s keep-alive, so be never reuses a connection be2 just closed.
IDLE_TIMEOUT_SECONDS = 10
# Larger than a 64 KiB token, so an oversized token still gets be2's own 401 `malformed`.
MAX_HEADER_BYTES = 80 * 1024
# Below the servers' own limits (hyper: 100 fields, about 64 KiB of target; h11: none), so both
# servers answer the same: 431 past this many header fields, 414 past this long a target.
MAX_HEADER_FIELDS = 64
MAX_TARGET_BYTES = 8 * 1024
# Descriptors kept for be2's own work (key fetches, the token file, logs) when sockets are many.
_RESERVED_FILES = 256

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def connection_limit(workers: int = 1) -> int:
    """MAX_CONNECTIONS per worker, with the open-file limit raised to hold them; less (and a
    warning) when the hard limit is lower, so a socket flood never takes the files be2 needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS * workers + _RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return MAX_CONNECTIONS
    fitting = max(1, (soft - _RESERVED_FILES) // workers)
    logger.warning(
        "open-file limit %d: serving %d connections per worker instead of %d "
        "(raise the hard limit, e.g. ulimit -Hn, to hold more)",
        soft,
        fitting,
        MAX_CONNECTIONS,
    )
    return fitting


async def refuse(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    """Answer `status` with a JSON detail (litestar's error shape), before the app is called."""
    body = b'{"status_code":%d,"detail":"%s"}' % (status, detail.encode())
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class StrictFraming:
    """ASGI wrapper for uvicorn, whose h11 lets through what RFC 9112 refuses (granian's hyper
    does this itself): both Content-Length and Transfer-Encoding get 400 and the connection is
    closed (section 6.1), so a request smuggled behind the body is never answered; an HTTP
    version other than 1.0 and 1.1 gets 505."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope.get("http_version") not in ("1.0", "1.1"):
                await refuse(send, 505, "HTTP version not supported", close=True)
                return
            names = {name for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                await refuse(send, 400, "both Content-Length and Transfer-Encoding", close=True)
                return
        await self.app(scope, receive, send)
