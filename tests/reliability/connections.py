"""Hostile connections: held silent sockets, slowloris drips, raw exchanges and probes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.reliability.rawhttp import request

__all__ = ["Hold", "Probes", "exchange", "probe_while"]

# Opening thousands of sockets at once overflows the listen queue into SYN retries; a few
# hundred at a time keeps the set-up quick and the hold exactly as large as asked.
_OPEN_BATCH = 200


@dataclass
class Hold:
    """Sockets held open against one port: `silent` ones send nothing, `dripping` ones send a
    request head one byte a second and never finish it (slowloris)."""

    port: int
    silent: list[asyncio.StreamWriter] = field(default_factory=list)
    silent_readers: list[asyncio.StreamReader] = field(default_factory=list)
    dripping: list[asyncio.Task[None]] = field(default_factory=list)
    cut: int = 0
    """Dripping connections the server closed."""

    async def open_silent(self, count: int) -> None:
        for start in range(0, count, _OPEN_BATCH):
            pairs = await asyncio.gather(
                *(self._connect() for _ in range(min(_OPEN_BATCH, count - start)))
            )
            for reader, writer in pairs:
                self.silent_readers.append(reader)
                self.silent.append(writer)

    async def start_dripping(self, count: int) -> None:
        for start in range(0, count, _OPEN_BATCH):
            pairs = await asyncio.gather(
                *(self._connect() for _ in range(min(_OPEN_BATCH, count - start)))
            )
            self.dripping += [asyncio.create_task(self._drip(*pair)) for pair in pairs]

    def silent_still_open(self) -> int:
        """Silent sockets the server has not closed (no end of stream seen)."""
        return sum(1 for reader in self.silent_readers if not reader.at_eof())

    def all_closed(self) -> bool:
        """Whether the server has closed every held socket."""
        return self.cut == len(self.dripping) and self.silent_still_open() == 0

    async def close(self) -> None:
        for task in self.dripping:
            task.cancel()
        await asyncio.gather(*self.dripping, return_exceptions=True)
        for writer in self.silent:
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 30)

    async def _drip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
        try:
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    # Wait a second for the next byte; an end of stream means we were cut.
                    if await asyncio.wait_for(reader.read(1024), 1.0) == b"":
                        break
            else:
                return
            self.cut += 1
        except OSError:
            self.cut += 1
        finally:
            writer.close()


@dataclass
class Probes:
    """What new clients got while a hold was on."""

    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    during_full_hold: int = 0
    """Answers received before the server had closed any held socket."""

    @property
    def worst_ms(self) -> int:
        return round(max(self.seconds, default=0.0) * 1000)

    @property
    def median_ms(self) -> int:
        ordered = sorted(self.seconds)
        return round(ordered[len(ordered) // 2] * 1000) if ordered else 0


async def probe_while(
    port: int,
    requests: Sequence[tuple[str, Sequence[tuple[bytes, bytes]]]],
    hold: Hold,
    *,
    timeout: float,
    limit_seconds: float,
) -> Probes:
    """Send `requests` in turn, each on a new connection, until the server has closed every
    held socket (or `limit_seconds` pass); each may take `timeout`."""
    probes = Probes()
    deadline = time.monotonic() + limit_seconds
    index = 0
    while not hold.all_closed() and time.monotonic() < deadline:
        target, headers = requests[index % len(requests)]
        index += 1
        started = time.monotonic()
        try:
            response = await request(port, "GET", target, headers, timeout=timeout)
        except (TimeoutError, OSError) as exc:
            probes.failures.append(f"{target}: {type(exc).__name__}")
            continue
        probes.seconds.append(time.monotonic() - started)
        probes.statuses.append(response.status)
        if hold.cut == 0 and hold.silent_still_open() == len(hold.silent):
            probes.during_full_hold += 1
        await asyncio.sleep(0.2)
    return probes


async def exchange(port: int, raw: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Send raw bytes, read until the server closes or goes quiet for `timeout`; returns what
    was read and whether the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()
    closed = False
    try:
        writer.write(raw)
        await writer.drain()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            received += chunk
    except ConnectionResetError:
        closed = True
    finally:
        writer.close()
    return bytes(received), closed
