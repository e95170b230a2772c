"""A Litestar hello-world: the ceiling any Litestar endpoint on the same server can reach."""

from __future__ import annotations

import asyncio
import sys

from litestar import Litestar, get

# Long enough that a SIGTERM sent right after the request started lands mid-request.
SLOW_SECONDS = 1.0


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    """Answer a tiny JSON body, like /validate-auth does, with no work behind it."""
    return {"hello": "world"}


@get("/slow")
async def slow() -> dict[str, str]:
    """Answer after a while: the in-flight request of the graceful-shutdown check."""
    await asyncio.sleep(SLOW_SECONDS)
    return {"hello": "slowly"}


def _said_goodbye() -> None:
    # The graceful-shutdown check looks for this line: lifespan shutdown ran to its end.
    print("hello: lifespan shutdown complete", file=sys.stderr, flush=True)


def create_app() -> Litestar:
    """The app factory (`--factory` for uvicorn and granian)."""
    return Litestar(route_handlers=[hello, slow], on_shutdown=[_said_goodbye])
