"""ServingCertificate: TLS 1.3-only contexts, and a watcher that waits for a pair that loads."""

from __future__ import annotations

import queue
import ssl
from pathlib import Path

import pytest

from adapters.serving_certificate import ServingCertificate, ServingCertificateError
from devcluster.tls import write_serving_secret
from tests.tls_peer import TestCa

NAMES = ("be2", "be2.default.svc", "127.0.0.1")


def test_a_context_is_tls_1_3_only_and_a_server_context(tmp_path: Path) -> None:
    cert, key = TestCa(tmp_path).issue("be2", NAMES)
    context = ServingCertificate(str(cert), str(key)).context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.protocol == ssl.PROTOCOL_TLS_SERVER


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    ca = TestCa(tmp_path)
    cert, _ = ca.issue("be2", NAMES)
    _, other_key = ca.issue("other", NAMES)
    with pytest.raises(ServingCertificateError, match="not a PEM certificate and its private key"):
        ServingCertificate(str(cert), str(other_key)).context()


def test_a_renewed_secret_is_a_new_context_and_a_broken_one_an_error(tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "ca")
    secret = write_serving_secret(tmp_path / "be2-tls", ca.authority, NAMES)
    served = ServingCertificate(str(secret.cert_file), str(secret.key_file))
    first = served.fingerprint()
    assert served.new_context(first) is None
    # A renewal as the kubelet publishes it: `..data` swapped to new files.
    write_serving_secret(tmp_path / "be2-tls", ca.authority, NAMES)
    renewed = served.new_context(first)
    assert renewed is not None
    second, context = renewed
    assert second != first
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert served.new_context(second) is None
    # A changed pair that does not load is an error, not a context; once it loads, it is one.
    good_key = secret.key_file.resolve().read_bytes()
    broken = tmp_path / "broken.key"
    broken.write_bytes(b"not a key")
    secret.key_file.unlink()
    secret.key_file.symlink_to(broken)
    with pytest.raises(ServingCertificateError):
        served.new_context(second)
    broken.write_bytes(good_key)
    assert served.new_context(second) is not None


def test_the_watcher_hands_a_renewed_certificate_to_the_server(tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "ca")
    secret = write_serving_secret(tmp_path / "be2-tls", ca.authority, NAMES)
    served = ServingCertificate(str(secret.cert_file), str(secret.key_file))
    handed: queue.Queue[ssl.SSLContext] = queue.Queue()
    stop = served.watch(handed.put, interval=0.02)
    try:
        write_serving_secret(tmp_path / "be2-tls", ca.authority, NAMES)
        assert isinstance(handed.get(timeout=10), ssl.SSLContext)
    finally:
        stop()
