"""Hand-made JWS tokens: any header, any payload bytes, any key, with no library in the way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = [
    "SigningKey",
    "b64url",
    "b64url_decode",
    "compact",
    "json_bytes",
    "kid_of",
    "public_jwk",
    "sign",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def kid_of(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """kube-apiserver's kid: base64url(SHA-256(DER SPKI)) (pkg/serviceaccount/jwt.go)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(hashlib.sha256(der).digest())


def _int_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(size, "big"))


def public_jwk(private_key: PrivateKey) -> dict[str, str]:
    """The public JWK of a key, shaped as kube-apiserver publishes it."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": kid_of(public),
            "alg": "RS256",
            "n": _int_b64(numbers.n),
            "e": _int_b64(numbers.e),
        }
    numbers_ec = public.public_numbers()
    return {
        "use": "sig",
        "kty": "EC",
        "kid": kid_of(public),
        "alg": "ES256",
        "crv": "P-256",
        "x": _int_b64(numbers_ec.x, 32),
        "y": _int_b64(numbers_ec.y, 32),
    }


@dataclass(frozen=True)
class SigningKey:
    """A private key with the kid kube-apiserver would give it."""

    private: PrivateKey

    @classmethod
    def rsa(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError(f"unsupported key type {type(key).__name__}")
        return cls(key)

    @property
    def kid(self) -> str:
        return kid_of(self.private.public_key())

    @property
    def alg(self) -> str:
        return "RS256" if isinstance(self.private, rsa.RSAPrivateKey) else "ES256"

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, str]:
        return public_jwk(self.private)


def sign(signing_input: bytes, alg: str, key: SigningKey | bytes) -> bytes:
    """Sign with `alg` regardless of what the header says: bytes keys are HMAC secrets.

    RS256 with an EC key or ES256 with an RSA key is impossible; callers that want a header/key
    mismatch sign with the key's own algorithm and lie in the header instead.
    """
    if isinstance(key, bytes):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(key, signing_input, digest).digest()
    if alg == "none":
        return b""
    if isinstance(key.private, rsa.RSAPrivateKey):
        hash_algorithm = {"RS256": hashes.SHA256(), "PS256": hashes.SHA256()}[alg]
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg.startswith("RS")
            else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        )
        return key.private.sign(signing_input, pad, hash_algorithm)
    der = key.private.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # JWS ECDSA signatures are r || s, fixed width (RFC 7518 §3.4), not DER.
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def compact(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    key: SigningKey | bytes | None,
    *,
    sign_alg: str | None = None,
) -> str:
    """header.payload.signature; header and payload may be raw JSON bytes (duplicates, junk).

    `sign_alg` picks the signing algorithm when it should differ from the header's `alg`.
    """
    header_bytes = header if isinstance(header, bytes) else json_bytes(header)
    payload_bytes = payload if isinstance(payload, bytes) else json_bytes(payload)
    signing_input = f"{b64url(header_bytes)}.{b64url(payload_bytes)}".encode("ascii")
    if key is None:
        return signing_input.decode("ascii") + "."
    alg = sign_alg
    if alg is None:
        alg = header["alg"] if isinstance(header, dict) else "RS256"
    signature = sign(signing_input, alg, key)
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"
