"""A tiny HTTP/1.1 client over asyncio streams: exact header bytes on the wire, keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Connection", "Response", "request", "request_sync"]

# No answer of ours comes near this; a bigger one is a bug, not something to buffer.
_MAX_BODY = 1024 * 1024


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str | None:
        """The `reason` field of a JSON error answer, if any."""
        try:
            data = self.json()
        except ValueError:
            return None
        return data.get("reason") if isinstance(data, dict) else None


class Connection:
    """One keep-alive connection; requests are sent one after another (no pipelining)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 10.0) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=256 * 1024), timeout
        )
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def send(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        timeout: float = 10.0,
        host: str = "127.0.0.1",
    ) -> Response:
        lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: " + host.encode()]
        lines += [name + b": " + value for name, value in headers]
        if body or method in ("POST", "PUT"):
            lines.append(b"Content-Length: " + str(len(body)).encode())
        self._writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await self._writer.drain()
        return await asyncio.wait_for(self._read_response(), timeout)

    async def _read_response(self) -> Response:
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].split(b"\r\n")
        parts = status_line.split(b" ", 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            length = int(headers.get("content-length", "0"))
            if length > _MAX_BODY:
                raise ValueError(f"answer body of {length} bytes")
            body = await self._reader.readexactly(length)
        return Response(status, headers, body)

    async def _read_chunked(self) -> bytes:
        chunks = bytearray()
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return bytes(chunks)
            chunks += await self._reader.readexactly(size)
            await self._reader.readexactly(2)
            if len(chunks) > _MAX_BODY:
                raise ValueError("chunked answer too large")


async def request(
    port: int,
    method: str,
    target: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    timeout: float = 10.0,
    host: str = "127.0.0.1",
) -> Response:
    """One request on a fresh connection; raises TimeoutError when the server does not answer."""
    connection = await Connection.open(host, port, timeout)
    try:
        return await connection.send(method, target, headers, body, timeout)
    finally:
        await connection.close()


def request_sync(
    port: int,
    method: str,
    target: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    timeout: float = 10.0,
) -> Response:
    return asyncio.run(request(port, method, target, headers, body, timeout))
