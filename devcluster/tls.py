"""The emulator's TLS: its own CA, the API server's certificate, workloads' serving ones."""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devcluster.kubelet import write_private, write_projected_volume
from domain.ports import Clock

__all__ = [
    "SERVER_NAMES",
    "CertificateAuthority",
    "ServingFiles",
    "TlsFiles",
    "serving_names",
    "write_serving_secret",
    "write_tls_material",
]

# The names pods use for the API server, and the one a browser or curl on this machine uses.
SERVER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)
_CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ksa-auth devcluster CA")])


@dataclass(frozen=True)
class TlsFiles:
    """The CA certificate clients trust and the server certificate and key uvicorn serves."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca_pem: bytes
    authority: CertificateAuthority


@dataclass(frozen=True)
class ServingFiles:
    """A workload's serving certificate as its pod sees the mounted Secret."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    names: tuple[str, ...]


def _issued_by_ca(
    subject: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    """A certificate the CA issues (its own included), valid from an hour ago for a year."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(_CA_NAME)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
    )


def _key_usage(*, certificate_authority: bool) -> x509.KeyUsage:
    # A CA signs certificates and CRLs; the server key only signs TLS handshakes (ECDSA).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_authority,
        crl_sign=certificate_authority,
        encipher_only=False,
        decipher_only=False,
    )


class CertificateAuthority:
    """The emulator's CA: one key, one self-signed certificate, and the certificates it issues."""

    def __init__(self, now: datetime.datetime) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = (
            _issued_by_ca(_CA_NAME, self._key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(certificate_authority=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server(
        self, common_name: str, names: Sequence[str], now: datetime.datetime
    ) -> tuple[bytes, bytes]:
        """A server certificate (PEM) and its unencrypted PKCS#8 key (PEM) for `names`
        (host names, or IP addresses written as such)."""
        server_key = ec.generate_private_key(ec.SECP256R1())
        ca_ski = self.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        server_cert = (
            _issued_by_ca(subject, server_key.public_key(), now)
            .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(certificate_authority=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        key_pem = server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem, server_cert.public_bytes(serialization.Encoding.PEM)


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def serving_names(app: str, namespace: str) -> tuple[str, ...]:
    """What a pod's Service is called from inside the cluster, and the loopback `make run` uses."""
    return (app, f"{app}.{namespace}.svc", "127.0.0.1")


def write_serving_secret(
    volume: Path,
    authority: CertificateAuthority,
    names: Sequence[str],
    clock: Clock = time.time,
) -> ServingFiles:
    """Issue a serving certificate for `names` and publish it as a kubernetes.io/tls Secret volume.

    `tls.crt`, `tls.key` and `ca.crt`, as cert-manager's Secret holds them, written the way the
    kubelet updates a mounted Secret (a `..data` symlink swapped atomically), so a renewal looks
    exactly like cert-manager's. Mode 0644 is a Secret volume's default (`defaultMode: 420`).
    """
    now = datetime.datetime.fromtimestamp(clock(), datetime.UTC)
    key_pem, cert_pem = authority.issue_server(names[0], names, now)
    write_projected_volume(
        volume, {"tls.crt": cert_pem, "tls.key": key_pem, "ca.crt": authority.pem}
    )
    return ServingFiles(
        cert_file=volume / "tls.crt",
        key_file=volume / "tls.key",
        ca_file=volume / "ca.crt",
        names=tuple(names),
    )


def write_tls_material(directory: Path, clock: Clock = time.time) -> TlsFiles:
    """Create a CA and a server certificate for the API server's names and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.fromtimestamp(clock(), datetime.UTC)
    authority = CertificateAuthority(now)
    key_pem, cert_pem = authority.issue_server("kube-apiserver", (*SERVER_NAMES, "127.0.0.1"), now)
    files = TlsFiles(
        ca_file=directory / "ca.crt",
        cert_file=directory / "tls" / "apiserver.crt",
        key_file=directory / "tls" / "apiserver.key",
        ca_pem=authority.pem,
        authority=authority,
    )
    files.cert_file.parent.mkdir(mode=0o700, exist_ok=True)
    files.ca_file.write_bytes(authority.pem)
    files.cert_file.write_bytes(cert_pem)
    write_private(files.key_file, key_pem)
    return files
