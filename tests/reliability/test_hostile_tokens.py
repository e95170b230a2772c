"""Hostile tokens over HTTP against real be2 processes: each gets its status and reason."""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import SharedStack, Tally
from tests.reliability.hostile import (
    HostileCase,
    HostileContext,
    Mint,
    every_token,
    hostile_cases,
    local_minter,
)
from tests.reliability.jws import SigningKey
from tests.reliability.logscan import SecretLedger
from tests.reliability.rawhttp import Response, request_sync

pytestmark = pytest.mark.e2e


def _names(with_trusted_key: bool) -> list[str]:
    # The names only: the real cases are built against the running cluster's keys.
    key, ec_key = SigningKey.rsa(), SigningKey.ec()
    fields = {"now": time.time(), "namespace": "default", "audience": "a", "issuer": "i"}
    mint = local_minter(key, ec_key, fields)
    context = HostileContext(
        valid=mint(Mint()),
        trusted_jwk=key.jwk(),
        mint=mint,
        issuer="i",
        audience="a",
        namespace="default",
        service_account="be-sa",
        now=fields["now"],
        trusted=key if with_trusted_key else None,
        ec_kid=ec_key.kid,
    )
    return [case.name for case in hostile_cases(context)]


CLUSTER_CASES = _names(with_trusted_key=False)
FILE_CASES = _names(with_trusted_key=True)


@pytest.fixture(scope="module")
def cluster_matrix(shared_stack: SharedStack, ledger: SecretLedger) -> dict[str, HostileCase]:
    cases = hostile_cases(shared_stack.cluster_context())
    ledger.add_tokens(every_token(cases), "hostile")
    return {case.name: case for case in cases}


@pytest.fixture(scope="module")
def file_matrix(shared_stack: SharedStack, ledger: SecretLedger) -> dict[str, HostileCase]:
    cases = hostile_cases(shared_stack.file_context())
    ledger.add_tokens(every_token(cases), "hostile")
    return {case.name: case for case in cases}


def _send(port: int, case: HostileCase) -> Response:
    headers = [(b"Authorization", value) for value in case.authorization]
    # A generous client timeout: an answer that does not come is a hang, and a failure.
    return request_sync(port, "GET", case.path, headers, timeout=20.0)


def _check(case: HostileCase, response: Response) -> None:
    body_text = response.body.decode("utf-8", "replace")
    assert (response.status, response.reason) == (case.status, case.reason), (
        f"{case.name}: got {response.status} {body_text[:300]}"
    )
    for value in case.authorization:
        token = value.split(b" ", 1)[-1]
        signature = token.rsplit(b".", 1)[-1]
        # The answer never echoes the credential (or its signature) back.
        if len(signature) >= 16:
            assert signature not in response.body, case.name
            assert all(signature.decode("latin-1") not in v for v in response.headers.values())
    if case.status == 200:
        data = response.json()
        assert data.get("authenticated", True) is True
        assert data["subject"].startswith("system:serviceaccount:")
        return
    if case.status == 400:
        return  # refused by the HTTP server before the app: not a credential we judged
    data = response.json()
    assert data["authenticated"] is (case.status == 403)
    assert isinstance(data["detail"], str) and data["detail"]
    # Our own details never need the log scrubber; when it fires on one, the text is garbled.
    assert "[redacted" not in data["detail"], data["detail"]
    if case.status == 401:
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="be2"')
        # RFC 6750 §3.1: no error code when no Bearer credential was sent at all.
        assert ('error="invalid_token"' in challenge) is (case.reason != "missing_token")
        assert "no-store" in response.headers.get("cache-control", "")


@pytest.mark.parametrize("name", CLUSTER_CASES)
def test_hostile_token_against_be2_fetching_cluster_keys(
    name: str, shared_stack: SharedStack, cluster_matrix: dict[str, HostileCase], tally: Tally
) -> None:
    case = cluster_matrix[name]
    response = _send(shared_stack.be2.port, case)
    tally.add("hostile inputs tried")
    tally.add("requests sent")
    _check(case, response)


@pytest.mark.parametrize("name", FILE_CASES)
def test_hostile_token_against_be2_with_a_trusted_test_key(
    name: str, shared_stack: SharedStack, file_matrix: dict[str, HostileCase], tally: Tally
) -> None:
    case = file_matrix[name]
    response = _send(shared_stack.be2_file.port, case)
    tally.add("hostile inputs tried")
    tally.add("requests sent")
    _check(case, response)
