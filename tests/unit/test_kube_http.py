"""kube_http against a loopback server: token guard, redirects, size and time bounds, JWKS shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from adapters.kube_http import ApiServerError, origin_of, request, same_origin

pytestmark = pytest.mark.anyio

TOKEN = "header.payload.signature-of-our-own-token"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Loopback:
    """A raw HTTP/1.1 server on 127.0.0.1 whose answer each test writes by hand."""

    def __init__(self, answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.answer = answer
        self.authorization: list[str | None] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/path"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:])
                if name
            }
            self.authorization.append(headers.get("authorization"))
            await self.answer(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def loopback(
    answer: Callable[[asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[Loopback]:
    server_state = Loopback(answer)
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    try:
        yield server_state
    finally:
        server.close()
        await server.wait_closed()


def respond(
    status: str, body: bytes, **headers: str
) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def answer(writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return answer


def test_origins_compare_scheme_host_and_port() -> None:
    assert origin_of("https://Kubernetes.Default.SVC/x") == ("https", "kubernetes.default.svc", 443)
    assert same_origin("https://a.example/x", "https://a.example:443/y?z")
    assert not same_origin("https://a.example", "http://a.example")
    assert not same_origin("https://a.example", "https://a.example:6443")
    assert not same_origin("https://a.example", "https://a.example.evil")
    assert not same_origin("https://a.example", "https://user@b.example")


async def test_the_token_goes_only_to_the_api_servers_https_origin() -> None:
    async with loopback(respond("200 OK", b"{}")) as server, httpx.AsyncClient() as client:
        # Another origin: no token.
        await request(client, "GET", server.url, api_server="https://kubernetes.default.svc",
                      token=TOKEN)  # fmt: skip
        # The same host and port over plain HTTP: still no token (it would travel in clear).
        await request(client, "GET", server.url, api_server=f"http://127.0.0.1:{server.port}",
                      token=TOKEN)  # fmt: skip
    assert server.authorization == [None, None]


async def test_a_redirect_is_an_error_and_not_followed() -> None:
    async with (
        loopback(respond("200 OK", b"{}")) as elsewhere,
        loopback(respond("302 Found", b"", location=elsewhere.url)) as server,
        httpx.AsyncClient(follow_redirects=True) as client,
    ):
        with pytest.raises(ApiServerError, match="redirects are not followed") as raised:
            await request(client, "GET", server.url, api_server=server.url, token=TOKEN)
    assert f"127.0.0.1:{elsewhere.port}" in raised.value.reason
    assert elsewhere.authorization == [], "the redirect target was contacted"


async def test_a_declared_oversized_body_is_refused() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n")

    async with loopback(answer) as server, httpx.AsyncClient() as client:
        with pytest.raises(ApiServerError, match="more than the 1048576"):
            await request(client, "GET", server.url, api_server=server.url)


async def test_a_chunked_body_is_cut_at_the_cap() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(40):  # 2.5 MiB if nobody stops reading
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async with loopback(answer) as server, httpx.AsyncClient() as client:
        with pytest.raises(ApiServerError, match="more than the 1048576 bytes allowed"):
            await request(client, "GET", server.url, api_server=server.url)


async def test_the_total_time_is_bounded_even_when_bytes_trickle() -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
        for _ in range(1000):  # one byte every 50 ms never trips a per-read timeout
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with loopback(answer) as server, httpx.AsyncClient() as client:
        with pytest.raises(ApiServerError, match=r"did not answer within 0\.3 s"):
            await request(client, "GET", server.url, api_server=server.url, total_seconds=0.3)


async def test_a_refused_connection_is_an_api_server_error() -> None:
    async with loopback(respond("200 OK", b"")) as server:
        url = server.url
    async with httpx.AsyncClient() as client:
        with pytest.raises(ApiServerError, match="could not be reached"):
            await request(client, "GET", url, api_server=url, token=TOKEN)
