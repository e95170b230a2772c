"""Compact JWS parsing (RFC 7515 §7.1): split, size-capped and decoded before any key is used."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, NamedTuple

from domain.claims import JWT_MAX_BYTES, Header, decode_header
from domain.errors import BadSignature, Malformed, UnsupportedAlgorithm

__all__ = [
    "COMPACT_JWS",
    "SIGNING_ALGORITHMS",
    "CompactJws",
    "Unverified",
    "b64url_decode",
    "b64url_encode",
    "parse_compact",
    "peek",
    "require_signing_algorithm",
]

# What kube-apiserver signs with (pkg/serviceaccount/jwt.go signerFromKey): RS256 for RSA keys,
# ES256/384/512 by curve for EC keys, as alg -> (kty, crv). Never `none`, never HMAC: an HS256
# token "signed" with the public key as the secret is the classic confusion attack.
SIGNING_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
_ALLOWED = ", ".join(SIGNING_ALGORITHMS)

# Three base64url segments; the signature may be empty (an `alg: none` token), so that the
# algorithm check, not the shape check, names what is wrong with it.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url (RFC 7515 §2); raises Malformed."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise Malformed("token segments are not valid base64url") from None


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Unpadded base64url ending 2 or 3 characters into a 4-character group leaves 4 or 2 bits of
# its last character unused; canonical encoding sets them to zero (RFC 4648 §3.5).
_UNUSED_BITS = {2: 0b1111, 3: 0b11}


def _canonical(segment: str) -> bool:
    mask = _UNUSED_BITS.get(len(segment) % 4)
    return mask is None or _ALPHABET.find(segment[-1]) & mask == 0


def b64url_encode(data: bytes) -> str:
    """Encode as unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class CompactJws(NamedTuple):
    """A compact JWS taken apart; nothing in it is trusted until the signature verifies."""

    header: Header
    payload: bytes
    signing_input: str
    signature: str
    """The signature segment, still base64url."""


def parse_compact(token: str) -> CompactJws:
    """Take a compact JWS apart, refusing oversized or misshapen input before any parsing.

    Raises:
        Malformed, or BadSignature for a signature not in canonical base64url.
    """
    if len(token) > JWT_MAX_BYTES:
        raise Malformed(f"token is longer than {JWT_MAX_BYTES} bytes")
    if COMPACT_JWS.fullmatch(token) is None:
        raise Malformed("token is not a compact JWS (three base64url segments)")
    signing_input, _, signature = token.rpartition(".")
    header_segment, _, payload_segment = signing_input.partition(".")
    header = _header_of(header_segment)
    if header.b64 is False:
        # RFC 7797: the signature would cover the raw payload; kube-apiserver never signs so.
        raise Malformed("token header sets b64 to false (an unencoded payload)")
    if not _canonical(signature):
        # Unused trailing bits set: the same signature spelt another way (16 spellings of an
        # RS256 one), which would let one token pass as many.
        raise BadSignature("token signature is not in canonical base64url")
    return CompactJws(header, b64url_decode(payload_segment), signing_input, signature)


def require_signing_algorithm(alg: str) -> tuple[str, str | None]:
    """The (kty, crv) an accepted algorithm needs; raises UnsupportedAlgorithm otherwise."""
    try:
        return SIGNING_ALGORITHMS[alg]
    except KeyError:
        raise UnsupportedAlgorithm(f"algorithm {alg!r} is not accepted ({_ALLOWED})") from None


# Decoded headers by their segment: every token one cluster key signs carries the same header,
# so the strict read is done once per key. Bounded: when full, it starts over.
_HEADERS: dict[str, Header] = {}
_HEADERS_MAX = 256


def _header_of(segment: str) -> Header:
    header = _HEADERS.get(segment)
    if header is None:
        header = decode_header(b64url_decode(segment))
        if len(_HEADERS) >= _HEADERS_MAX:
            _HEADERS.clear()
        _HEADERS[segment] = header
    return header


class Unverified(NamedTuple):
    """A token's header and claims as plain JSON objects. NOT verified: to show a token or to
    decide how to verify it, never to trust it."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def peek(token: str) -> Unverified:
    """Take a compact JWS apart without verifying it (the CLI's `decode`, the emulator, the demo).

    Raises:
        Malformed: not three base64url segments, the first two JSON objects.
    """
    if len(token) > JWT_MAX_BYTES:
        raise Malformed(f"token is longer than {JWT_MAX_BYTES} bytes")
    segments = token.split(".")
    if len(segments) != 3:
        raise Malformed(f"a JWT has 3 dot-separated segments, this has {len(segments)}")
    header_raw, claims_raw, signature = (b64url_decode(segment) for segment in segments)
    try:
        header, claims = json.loads(header_raw), json.loads(claims_raw)
    except (ValueError, RecursionError):
        raise Malformed("token header or claims are not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Malformed("token header and claims must be JSON objects")
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii", "replace")
    return Unverified(header, claims, signing_input, signature)
