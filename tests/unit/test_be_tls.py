"""be -> be2 over TLS: only a certificate from KSA_BE2_CA_FILE for be2's host gets the token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from adapters.fake_keyset import FakeKeySet
from adapters.memory_token_source import InMemoryTokenSource
from entrypoints import be
from entrypoints.container import build_container
from entrypoints.settings import Settings, SettingsError
from tests.tls_peer import RecordingTlsServer, TestCa


@pytest.fixture
def token() -> str:
    return FakeKeySet().mint(namespace="default", service_account="be-sa")


@pytest.fixture
def trusted(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "trusted")


def call_be2(token: str, port: int, ca_file: Path) -> tuple[int, dict[str, object]]:
    settings = Settings(be2_url=f"https://127.0.0.1:{port}", be2_ca_file=str(ca_file))
    container = build_container(settings)
    container.token_source.override(providers.Object(InMemoryTokenSource(token)))
    with TestClient(be.create_app(container)) as client:
        response = client.get("/call-be2")
    body: dict[str, object] = response.json()
    return response.status_code, body


def test_a_trusted_certificate_for_the_host_gets_the_request_and_the_token(
    token: str, trusted: TestCa
) -> None:
    # The control case: the recorder does see the token once the handshake succeeds.
    cert, key = trusted.issue("be2", ["be2", "be2.default.svc", "127.0.0.1"])
    with RecordingTlsServer(cert, key) as peer:
        status, body = call_be2(token, peer.port, trusted.ca_file)
    assert status == 200, body
    assert body == {"be2_status": 200, "be2": {"authenticated": True}}
    [connection] = peer.connections
    assert connection.handshake == "ok"
    headers = connection.received.decode().lower().split("\r\n")
    assert f"authorization: bearer {token}".lower() in headers


@pytest.mark.parametrize(
    ("case", "names", "log_says"),
    [
        ("another CA", ["be2", "127.0.0.1"], "unable to get local issuer certificate"),
        ("wrong host name", ["be2", "be2.default.svc"], "IP address mismatch"),
    ],
)
def test_an_untrusted_certificate_is_a_502_and_no_byte_of_the_request_is_sent(
    token: str,
    trusted: TestCa,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
    names: list[str],
    log_says: str,
) -> None:
    issuer = TestCa(tmp_path / "rogue") if case == "another CA" else trusted
    cert, key = issuer.issue("be2", names)
    with RecordingTlsServer(cert, key) as peer, caplog.at_level(logging.WARNING, "ksa.be"):
        status, body = call_be2(token, peer.port, trusted.ca_file)
    assert status == 502
    assert body["error"] == "be2_tls_failed"
    assert body["be2_status"] == 0
    assert "no token was sent" in str(body["detail"])
    assert peer.connections, "be never connected"
    for connection in peer.connections:
        assert connection.handshake.startswith("failed"), connection
        assert connection.received == b""
    [line] = [r.getMessage() for r in caplog.records if r.name == "ksa.be"]
    assert "TLS handshake failed: certificate verify failed" in line
    assert log_says in line
    assert token not in caplog.text


def test_a_be2_ca_file_without_a_certificate_stops_be_in_one_line(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("not a certificate")
    settings = Settings(be2_url="https://be2", be2_ca_file=str(not_pem))
    with pytest.raises(
        SettingsError, match=r"^KSA_BE2_CA_FILE: CA file .* no usable PEM"
    ) as caught:
        be.create_app(build_container(settings))
    assert "\n" not in str(caught.value)
