"""The emulator's TLS material: its own CA, and a server certificate for the API server's names."""

from __future__ import annotations

import datetime
import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devcluster.kubelet import write_private
from domain.ports import Clock

__all__ = ["SERVER_NAMES", "TlsFiles", "write_tls_material"]

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


def _certificate_authority(
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        _issued_by_ca(_CA_NAME, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certificate_authority=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_cert


def _server_certificate(
    now: datetime.datetime, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_NAMES]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    server_cert = (
        _issued_by_ca(server_name, server_key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(certificate_authority=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return server_key, server_cert


def write_tls_material(directory: Path, clock: Clock = time.time) -> TlsFiles:
    """Create a CA and a server certificate for the API server's names and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.fromtimestamp(clock(), datetime.UTC)
    ca_key, ca_cert = _certificate_authority(now)
    server_key, server_cert = _server_certificate(now, ca_key, ca_cert)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    files = TlsFiles(
        ca_file=directory / "ca.crt",
        cert_file=directory / "tls" / "apiserver.crt",
        key_file=directory / "tls" / "apiserver.key",
        ca_pem=ca_pem,
    )
    files.cert_file.parent.mkdir(mode=0o700, exist_ok=True)
    files.ca_file.write_bytes(ca_pem)
    files.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    write_private(
        files.key_file,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return files
