"""uvicorn's h11 protocol with a header-read timeout, which uvicorn itself does not have."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeadTimedH11Protocol"]


class HeadTimedH11Protocol(H11Protocol):
    """A connection must complete each request head within `timeout_keep_alive` of opening or
    of its previous response, or it is closed.

    uvicorn arms its keep-alive timer only after a response and cancels it on the next byte, so
    a connection that sends nothing, or a head one byte at a time, stays open for good. Here the
    same timer also starts with the connection and keeps running until a whole head is in.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        running = self.timeout_keep_alive_task
        # Hidden from uvicorn, which would cancel it on any byte.
        self.timeout_keep_alive_task = None
        cycle = self.cycle
        super().data_received(data)
        if running is None:
            return
        if self.cycle is cycle and self.timeout_keep_alive_task is None:
            # No new request head yet: the head's deadline stands.
            self.timeout_keep_alive_task = running
        else:
            running.cancel()
