"""20 000 requests over 64 keep-alive connections against be2, valid and hostile mixed:
zero 5xx, zero dropped connections, every answer the right one."""

from __future__ import annotations

import asyncio

import pytest

from adapters.cluster_jwks import UNKNOWN_KID_INTERVAL_SECONDS
from tests.reliability.conftest import SharedStack, Tally
from tests.reliability.hostile import Mint
from tests.reliability.jws import SigningKey, compact
from tests.reliability.loadgen import Probe, run_load
from tests.reliability.logscan import SecretLedger
from tests.unit.test_seed_token import SEED_TOKEN

pytestmark = pytest.mark.e2e

TOTAL = 20_000
CONNECTIONS = 64


def _bearer(token: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"Authorization", f"Bearer {token}".encode()),)


def _flip(token: str) -> str:
    head, payload, signature = token.split(".")
    first = "A" if signature[0] != "A" else "B"
    return f"{head}.{payload}.{first}{signature[1:]}"


def test_twenty_thousand_mixed_requests_over_64_connections(
    shared_stack: SharedStack, ledger: SecretLedger, tally: Tally
) -> None:
    context = shared_stack.cluster_context()
    mint = context.mint
    valid = [mint(Mint()) for _ in range(16)]
    ec_valid = mint(Mint(ec=True))
    stranger = mint(Mint(service_account="stranger"))
    expired = mint(Mint(issued_at=context.now - 7200, expiration_seconds=3600))
    foreign = SigningKey.rsa()
    unknown_kid = compact({"alg": "RS256", "kid": foreign.kid}, context.claims(), foreign)
    alg_none = compact({"alg": "none"}, context.claims(), None)
    ledger.add_tokens([*valid, ec_valid, stranger, expired, unknown_kid, alg_none], "load")

    probes = [
        *(Probe(f"valid {i}", _bearer(token), 200) for i, token in enumerate(valid)),
        Probe("valid ES256", _bearer(ec_valid), 200),
        Probe("valid on /protected", _bearer(valid[0]), 200, path="/protected"),
        Probe("stranger on /protected", _bearer(stranger), 403, "forbidden", "/protected"),
        Probe("tampered", _bearer(_flip(valid[1])), 401, "bad_signature"),
        Probe("expired", _bearer(expired), 401, "expired"),
        Probe("garbage", ((b"Authorization", b"Bearer not-a-jwt"),), 401, "malformed"),
        Probe("missing", (), 401, "missing_token"),
        Probe("unknown kid", _bearer(unknown_kid), 401, "unknown_key"),
        Probe("alg none", _bearer(alg_none), 401, "unsupported_algorithm"),
        Probe("seed token", _bearer(SEED_TOKEN), 401, "unknown_key"),
        Probe("basic", ((b"Authorization", b"Basic dXNlcjpwYXNz"),), 401, "missing_token"),
    ]
    fetches_before = shared_stack.cluster.state()["jwks_requests"]
    report = asyncio.run(
        run_load(shared_stack.be2.port, probes, total=TOTAL, concurrency=CONNECTIONS)
    )
    tally.add("requests sent", report.sent)
    tally.add("load requests sent", report.sent)
    tally.add("load requests per second", int(report.answered / report.seconds))
    print(report.summary())
    assert report.answered == TOTAL, report.summary()
    assert report.dropped == 0, (report.summary(), report.dropped_examples)
    assert report.server_errors == 0, report.summary()
    assert report.wrong_count == 0, (report.summary(), report.wrong)
    assert report.connections_opened == CONNECTIONS, "a connection was dropped and reopened"
    assert len(report.by_label) == len(probes)
    # Made-up kids in every 28th request fetched the JWKS at most once per unknown-kid interval.
    fetches = shared_stack.cluster.state()["jwks_requests"] - fetches_before
    assert fetches <= 1 + int(report.seconds // UNKNOWN_KID_INTERVAL_SECONDS), fetches
