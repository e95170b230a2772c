"""A Litestar hello-world: the ceiling any Litestar endpoint on the same server can reach."""

from __future__ import annotations

from litestar import Litestar, get


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    """Answer a tiny JSON body, like /validate-auth does, with no work behind it."""
    return {"hello": "world"}


def create_app() -> Litestar:
    """The app factory (`--factory` for uvicorn and granian)."""
    return Litestar(route_handlers=[hello])
