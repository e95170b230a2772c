"""Hostile connections against real be2 processes: held sockets, slowloris, smuggling, limits.

Idle and slow connections must not stop be2 for new clients on the default server; both servers
close the connection after a request with Content-Length and Transfer-Encoding and never answer
what was smuggled behind it; too many or too large headers and an overlong target get 431/414
at the limits of entrypoints/server_limits.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
from collections.abc import Iterator

import pytest

from adapters.fake_keyset import FakeKeySet
from entrypoints.server_limits import (
    IDLE_TIMEOUT_SECONDS,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_TARGET_BYTES,
)
from tests.reliability.conftest import Tally, assert_no_leaks, register_logs
from tests.reliability.connections import Hold, Probes, exchange, probe_while
from tests.reliability.logscan import SecretLedger
from tests.reliability.rawhttp import request_sync
from tests.reliability.services import Service, start_service

pytestmark = pytest.mark.e2e

SERVERS = ("granian", "uvicorn")
# granian's default limit was 1,024 connections a worker; these holds go well past it.
SILENT = 1100
DRIPPING = 1500
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


class Be2:
    def __init__(self, service: Service, keyset: FakeKeySet, ledger: SecretLedger) -> None:
        self.service = service
        self.keyset = keyset
        self.ledger = ledger

    @property
    def port(self) -> int:
        return self.service.port

    def valid(self) -> str:
        token = self.keyset.mint(namespace="default", service_account="be-sa")
        self.ledger.add_token(token, "hostile connections")
        return token


@pytest.fixture(scope="module", params=SERVERS)
def be2(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tally: Tally,
    ledger: SecretLedger,
) -> Iterator[Be2]:
    """be2 on a JWKS file of a FakeKeySet, under each server; its logs scanned after."""
    server: str = request.param
    root = tmp_path_factory.mktemp(f"hostile-connections-{server}")
    keyset = FakeKeySet()
    jwks = root / "jwks.json"
    jwks.write_text(json.dumps(keyset.jwks()))
    env = {
        "KSA_JWKS_FILE": str(jwks),
        "KSA_ISSUER": keyset.issuer,
        "KSA_AUDIENCES": ",".join(sorted(keyset.api_audiences)),
        "KSA_ALLOWED_SUBJECTS": "system:serviceaccount:default:be-sa",
        "KSA_LOG_FORMAT": "json",
    }
    with start_service("be2", env, root / "logs", name=f"be2-{server}", server=server) as svc:
        register_logs(tally, *svc.log_paths)
        yield Be2(svc, keyset, ledger)
    assert_no_leaks(ledger, list(svc.log_paths))


def _server(be2: Be2) -> str:
    return be2.service.name.removeprefix("be2-")


def _allow_open_files(count: int) -> None:
    """Raise this process's soft open-file limit to hold `count` sockets (skip if it cannot)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= count:
        return
    if hard != resource.RLIM_INFINITY and hard < count:
        pytest.skip(f"the hard open-file limit ({hard}) cannot hold {count} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def _bearer(token: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"Authorization", f"Bearer {token}".encode()),)


def test_silent_and_slowloris_connections_do_not_stop_be2(be2: Be2, tally: Tally) -> None:
    """1,100 silent sockets and 1,500 slowloris drips held at once: new clients are answered
    all along, from before the server closes any of them, and it closes every one of them at
    its header timeout (a silent socket too: granian serves HTTP/1 only, and uvicorn runs
    entrypoints/uvicorn_protocol.py)."""
    _allow_open_files(SILENT + DRIPPING + 512)
    token = be2.valid()
    requests = [("/healthz", ()), ("/validate-auth", _bearer(token))]

    async def scenario() -> tuple[Probes, int, int]:
        hold = Hold(be2.port)
        try:
            await hold.open_silent(SILENT)
            await hold.start_dripping(DRIPPING)
            probes = await probe_while(
                be2.port,
                requests,
                hold,
                # Generous: an answer, not a speed, is what is asserted.
                timeout=15.0,
                limit_seconds=IDLE_TIMEOUT_SECONDS * 6,
            )
            return probes, hold.silent_still_open(), hold.cut
        finally:
            await hold.close()

    probes, silent_open, cut = asyncio.run(scenario())
    assert not probes.failures, probes.failures[:5]
    assert set(probes.statuses) == {200}, probes.statuses
    assert probes.during_full_hold >= 1, "no answer before the hold thinned"
    assert cut == DRIPPING, f"{DRIPPING - cut} slowloris connections were never closed"
    assert silent_open == 0, f"{silent_open} silent sockets were never closed"
    server = _server(be2)
    tally.add(f"hold ({server}): probes answered", len(probes.statuses))
    tally.add(f"hold ({server}): answered before any cut", probes.during_full_hold)
    tally.add(f"hold ({server}): worst answer ms", probes.worst_ms)
    tally.add(f"hold ({server}): median answer ms", probes.median_ms)


def test_content_length_with_transfer_encoding_closes_and_smuggles_nothing(be2: Be2) -> None:
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    raw = (
        b"POST /validate-auth HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
    )
    received, closed = asyncio.run(exchange(be2.port, raw))
    statuses = _STATUS_LINE.findall(received)
    assert closed, "the connection stayed open after a request with both CL and TE"
    assert len(statuses) <= 1, f"the smuggled request was answered: {received[:400]!r}"
    if statuses:
        head = received.split(b"\r\n\r\n", 1)[0].lower()
        assert statuses[0] == b"400" or b"connection: close" in head, received[:400]


@pytest.mark.parametrize("version", [b"HTTP/1.2", b"HTTP/9.9"])
def test_unknown_http_versions_are_refused(be2: Be2, version: bytes) -> None:
    received, _ = asyncio.run(
        exchange(be2.port, b"GET /healthz " + version + b"\r\nHost: 127.0.0.1\r\n\r\n", 5.0)
    )
    statuses = _STATUS_LINE.findall(received)
    assert statuses in ([], [b"400"], [b"505"]), received[:300]


def test_cleartext_http2_is_not_spoken(be2: Be2) -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    received, _ = asyncio.run(exchange(be2.port, preface, 5.0))
    # An HTTP/2 server answers with a SETTINGS frame (type 4 at byte 3); HTTP/1.1 with text.
    assert received == b"" or received.startswith(b"HTTP/1.1 "), received[:50]


def test_header_fields_up_to_the_limit_pass_and_one_more_is_431(be2: Be2) -> None:
    # Host is one field; the client sends no others.
    extra = [(f"X-Field-{i}".encode(), b"v") for i in range(MAX_HEADER_FIELDS - 1)]
    assert request_sync(be2.port, "GET", "/healthz", extra).status == 200
    over = request_sync(be2.port, "GET", "/healthz", [*extra, (b"X-Field-last", b"v")])
    assert over.status == 431


def test_a_64_kib_token_reaches_be2_and_oversized_headers_get_refused(be2: Be2) -> None:
    big = request_sync(be2.port, "GET", "/validate-auth", _bearer("a" * 64 * 1024))
    assert (big.status, big.reason) == (401, "malformed")
    # Both servers check their buffer after each read: a head over the limit is refused at the
    # read that crosses it, so one sent in a single burst may pass by up to one read's worth.
    filler = [(b"X-Filler", b"f" * (2 * MAX_HEADER_BYTES))]
    refused = request_sync(be2.port, "GET", "/healthz", filler)
    # hyper answers 431; h11 has one error for every malformed head, 400.
    assert refused.status == (431 if _server(be2) == "granian" else 400)


def test_a_target_up_to_the_limit_passes_and_one_byte_more_is_414(be2: Be2) -> None:
    base = "/healthz?pad="
    at_limit = base + "p" * (MAX_TARGET_BYTES - len(base))
    assert request_sync(be2.port, "GET", at_limit).status == 200
    assert request_sync(be2.port, "GET", at_limit + "p").status == 414


def test_a_kept_alive_connection_dawdling_over_its_next_head_is_closed(be2: Be2) -> None:
    """After an answer, the next head must be complete within the timeout too, however
    steadily its bytes come."""

    async def scenario() -> tuple[int, bool]:
        reader, writer = await asyncio.open_connection("127.0.0.1", be2.port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            await asyncio.wait_for(reader.readexactly(len(b'{"status":"ok"}')), 10)
            deadline = asyncio.get_running_loop().time() + IDLE_TIMEOUT_SECONDS * 4
            while asyncio.get_running_loop().time() < deadline:
                try:
                    writer.write(b"X")
                    await writer.drain()
                    if await asyncio.wait_for(reader.read(1024), 0.5) == b"":
                        return int(first.split()[1]), True
                except TimeoutError:
                    continue
                except OSError:
                    return int(first.split()[1]), True
            return int(first.split()[1]), False
        finally:
            writer.close()

    status, closed = asyncio.run(scenario())
    assert status == 200
    assert closed, f"still open {IDLE_TIMEOUT_SECONDS * 4} s into a dripped second head"


def test_an_obs_folded_authorization_is_refused_or_read_as_one_space(be2: Be2) -> None:
    """RFC 9112 section 5.2 lets a server refuse obs-fold (400, hyper) or replace it with a
    space (h11): either way be2 decides on the same bytes a proxy that unfolds would pass."""
    token = be2.valid().encode()
    raw = b"GET /validate-auth HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer\r\n " + token
    received, _ = asyncio.run(exchange(be2.port, raw + b"\r\n\r\n", 5.0))
    statuses = _STATUS_LINE.findall(received)
    assert statuses == ([b"400"] if _server(be2) == "granian" else [b"200"]), received[:300]
