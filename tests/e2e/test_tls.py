"""be2 serving TLS as a real process (granian and uvicorn), and be calling it: versions, names,
trust, and a renewed certificate picked up without a restart."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from adapters.fake_keyset import FakeKeySet
from devcluster.tls import ServingFiles, serving_names, write_serving_secret
from tests.devcluster_harness import poll
from tests.reliability.services import Service, start_service
from tests.tls_peer import TestCa

pytestmark = pytest.mark.e2e

# The watcher looks every 2 s; granian then starts a new worker before stopping the old one.
RENEWAL_SEEN_WITHIN_SECONDS = 30.0
BE_SUBJECT = "system:serviceaccount:default:be-sa"


@dataclass
class Be2:
    service: Service
    secret: ServingFiles
    ca: TestCa
    keyset: FakeKeySet

    @property
    def port(self) -> int:
        return self.service.port


def be2_settings(keyset: FakeKeySet, tmp_path: Path, secret: ServingFiles) -> dict[str, str]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keyset.jwks()))
    return {
        "KSA_JWKS_FILE": str(jwks),
        "KSA_ALLOWED_SUBJECTS": BE_SUBJECT,
        "KSA_TLS_CERT_FILE": str(secret.cert_file),
        "KSA_TLS_KEY_FILE": str(secret.key_file),
    }


@pytest.fixture(params=["granian", "uvicorn"])
def be2(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Be2]:
    """be2 serving TLS from a cert-manager-shaped Secret volume, with an offline JWKS."""
    ca = TestCa(tmp_path / "ca")
    keyset = FakeKeySet()
    secret = write_serving_secret(
        tmp_path / "be2-tls", ca.authority, serving_names("be2", "default")
    )
    env = be2_settings(keyset, tmp_path, secret)
    with start_service(
        "be2", env, tmp_path / "logs", ca_file=secret.ca_file, server=request.param
    ) as service:
        yield Be2(service, secret, ca, keyset)


def handshake(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> x509.Certificate:
    """The certificate be2 presents to a client with `context` asking for `host`."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def trusting(ca_file: Path, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if maximum is not None:
        context.maximum_version = maximum
    return context


def test_be2_serves_tls_1_3_only_for_its_names(be2: Be2) -> None:
    presented = handshake(be2.port, trusting(be2.secret.ca_file))
    names = presented.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["be2", "be2.default.svc", "127.0.0.1"]
    with pytest.raises(ssl.SSLError):
        handshake(be2.port, trusting(be2.secret.ca_file, maximum=ssl.TLSVersion.TLSv1_2))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(be2.port, trusting(be2.secret.ca_file), host="be2.elsewhere.svc")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(be2.port, trusting(TestCa(be2.ca.directory / "other").ca_file))
    token = be2.keyset.mint(namespace="default", service_account="be-sa")
    with be2.service.client() as client:
        answer = client.get("/validate-auth", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["subject"] == BE_SUBJECT


def test_a_renewed_certificate_is_served_without_a_restart(be2: Be2) -> None:
    before = handshake(be2.port, trusting(be2.secret.ca_file))
    old_target = be2.secret.cert_file.resolve()
    # As cert-manager renews and the kubelet updates the mounted Secret: `..data` swapped.
    write_serving_secret(
        be2.secret.cert_file.parent, be2.ca.authority, serving_names("be2", "default")
    )
    assert not old_target.exists()  # the files the server was started with are gone
    renewed = x509.load_pem_x509_certificate(be2.secret.cert_file.read_bytes())
    assert renewed.serial_number != before.serial_number

    def serving_renewed() -> bool:
        seen = handshake(be2.port, trusting(be2.secret.ca_file))
        return seen.serial_number == renewed.serial_number

    poll(serving_renewed, timeout=RENEWAL_SEEN_WITHIN_SECONDS, what="the renewed certificate")
    assert be2.service.process.poll() is None  # the same process, not restarted
    token = be2.keyset.mint(namespace="default", service_account="be-sa")
    with be2.service.client() as client:
        answer = client.get("/validate-auth", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    # Logs are written in batches, up to 0.2 s late.
    poll(lambda: "changed: serving the new one" in be2.service.logs(), what="the log line")


def be_settings(token: str, tmp_path: Path, be2_url: str, ca_file: Path) -> dict[str, str]:
    token_file = tmp_path / "be-token"
    token_file.write_text(token)
    return {
        "KSA_TOKEN_FILE": str(token_file),
        "KSA_BE2_URL": be2_url,
        "KSA_BE2_CA_FILE": str(ca_file),
    }


@pytest.mark.parametrize("be2", ["granian"], indirect=True)
def test_be_calls_be2_over_tls_and_refuses_a_wrong_host_name_or_ca(
    be2: Be2, tmp_path: Path
) -> None:
    token = be2.keyset.mint(namespace="default", service_account="be-sa")
    for directory in ("good", "host", "wrong-ca"):
        (tmp_path / directory).mkdir()
    good = be_settings(token, tmp_path / "good", be2.service.url, be2.secret.ca_file)
    # localhost reaches the same be2, but its certificate does not name localhost.
    wrong_host = be_settings(
        token, tmp_path / "host", f"https://localhost:{be2.port}", be2.secret.ca_file
    )
    other_ca = TestCa(tmp_path / "other").ca_file
    wrong_ca = be_settings(token, tmp_path / "wrong-ca", be2.service.url, other_ca)
    with start_service("be", good, tmp_path / "logs", name="be-good") as be, be.client() as client:
        called = client.get("/call-be2").json()
    assert called["be2_status"] == 200, called
    assert called["be2"]["subject"] == BE_SUBJECT
    for settings, name, reason in (
        (wrong_host, "be-host", "Hostname mismatch"),
        (wrong_ca, "be-ca", "unable to get local issuer certificate"),
    ):
        with start_service("be", settings, tmp_path / "logs", name=name) as be:
            with be.client() as client:
                refused = client.get("/call-be2")
            logs = be.logs()
        assert refused.status_code == 502
        assert refused.json()["error"] == "be2_tls_failed"
        assert f"TLS handshake failed: certificate verify failed: {reason}" in logs
        assert token not in logs
