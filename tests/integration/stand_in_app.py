"""A tiny real ASGI app standing in for be/be2 in the process-supervision tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _misbehave()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status = 200 if scope["path"] in ("/readyz", "/healthz") else 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok" if status == 200 else b""})


def _misbehave() -> None:
    """STAND_IN_MODE picks a bad habit the supervisor must cope with."""
    mode = os.environ.get("STAND_IN_MODE", "")
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "grandchild":
        # A grandchild in the same process group that outlives a graceful leader exit.
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import signal, time; "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
            ]
        )
        with open(os.environ["STAND_IN_PID_FILE"], "w") as handle:
            handle.write(str(child.pid))
