"""go-jose v2 as kube-apiserver uses it: ParseSigned, the header, embedded JWKs, verify, claims."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from devcluster.gojson import (
    GO_SPACE,
    INT64_MIN,
    Abort,
    Decoding,
    JsonError,
    Members,
    Number,
    check_any,
    go_json,
    is_string,
    json_kind,
    raw_url_decode,
    std_decode,
    unique_members,
)

__all__ = [
    "Claims",
    "NotSigned",
    "PublicKey",
    "claimed_issuer",
    "jwks_key",
    "parse_signed",
    "read_claims",
    "verify",
]

_PRIMITIVE_ERROR = "go-jose/go-jose: error in cryptographic primitive"
_NUMERIC_DATE_ERROR = "go-jose/go-jose/jwt: expected number value to unmarshal NumericDate"
_AUDIENCE_ERROR = "go-jose/go-jose/jwt: expected string or array value to unmarshal to Audience"
# encoding/json's bound on nesting (scanner.go maxNestingDepth); go-jose's older fork has none.
_STD_JSON_MAX_DEPTH = 10_000

# The types service account signing keys come in for kube-apiserver: RSA and EC.
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class NotSigned(Exception):
    """ParseSigned refused the token: not a compact JWS go-jose can take apart."""


# --- go-jose's jwt: the claims kube-apiserver reads ----------------------------------------------


@dataclass
class _Ref:
    """claims.go `ref`: a bound object's name and UID."""

    name: str = ""
    uid: str = ""


@dataclass
class Claims:
    """The payload as kube-apiserver reads it: go-jose's jwt.Claims and claims.go privateClaims."""

    issuer: str = ""
    audiences: tuple[str, ...] = ()
    expiry: int | None = None
    not_before: int | None = None
    issued_at: int | None = None
    jti: str = ""
    namespace: str = ""
    service_account: _Ref = field(default_factory=_Ref)
    pod: _Ref | None = None
    secret: _Ref | None = None
    node: _Ref | None = None


def read_claims(payload: bytes) -> Claims:
    """tok.Claims(key, public, private): the verified payload; Abort with go-jose's words."""
    # Into jwt.Claims, then into privateClaims, each with go-jose's json (case-sensitive names,
    # no member twice).
    try:
        value = go_json(payload)
    except JsonError as exc:
        raise Abort(f"invalid character in JSON: {exc}") from None
    claims = Claims()
    public = Decoding()
    for name, member in public.struct(value, "jwt.Claims"):
        if name == "iss":
            claims.issuer = public.string(member)
        elif name == "sub":
            public.string(member)
        elif name == "jti":
            claims.jti = public.string(member)
        elif name == "aud":
            claims.audiences = _audience(member)
        elif name in ("exp", "nbf", "iat"):
            setattr(claims, _TIME_CLAIMS[name], _numeric_date(member))
    public.done()
    private = Decoding()
    for name, member in private.struct(value, "serviceaccount.privateClaims"):
        if name == "kubernetes.io":
            _read_kubernetes(member, claims, private)
    private.done()
    return claims


_TIME_CLAIMS = {"exp": "expiry", "nbf": "not_before", "iat": "issued_at"}


def _read_kubernetes(value: Any, claims: Claims, decoding: Decoding) -> None:
    for name, member in decoding.struct(value, "serviceaccount.kubernetes"):
        if name == "namespace":
            claims.namespace = decoding.string(member)
        elif name == "serviceaccount":
            claims.service_account = _ref(member, decoding) or _Ref()
        elif name in ("pod", "secret", "node"):
            setattr(claims, name, _ref(member, decoding))
        elif name == "warnafter":
            _numeric_date(member)


def _ref(value: Any, decoding: Decoding) -> _Ref | None:
    """A `*ref`: null is nil; anything else is allocated, then decoded (or found mistyped)."""
    if value is None:
        return None
    ref = _Ref()
    for name, member in decoding.struct(value, "serviceaccount.ref"):
        if name == "name":
            ref.name = decoding.string(member)
        elif name == "uid":
            ref.uid = decoding.string(member)
    return ref


def _numeric_date(value: Any) -> int | None:
    """jwt.NumericDate.UnmarshalJSON: strconv.ParseFloat of the number, then int64(f), which
    truncates, and is math.MinInt64 out of range (amd64); null is a nil pointer."""
    if value is None:
        return None
    seconds = float(value) if isinstance(value, Number) else math.inf
    if not math.isfinite(seconds):
        raise Abort(_NUMERIC_DATE_ERROR)
    return int(seconds) if INT64_MIN <= seconds < 2**63 else INT64_MIN


def _audience(value: Any) -> tuple[str, ...]:
    """jwt.Audience.UnmarshalJSON: a string or an array of strings; even null is refused."""
    check_any(value)
    if is_string(value):
        return (str(value),)
    if isinstance(value, list) and all(is_string(item) for item in value):
        return tuple(str(item) for item in value)
    raise Abort(_AUDIENCE_ERROR)


# --- jwt.go hasCorrectIssuer and go-jose's ParseSigned -------------------------------------------


def claimed_issuer(token: str) -> str | None:
    """The `iss` jwt.go hasCorrectIssuer reads from the unverified payload, None if it cannot."""
    # It uses Go's encoding/json: member names match without case, with Unicode folding (`ISS`,
    # and `i` followed by two long s, U+017F, read as `iss`); the last match wins, null leaves it
    # as it was, and any other non-string fails the whole read.
    if "".join(c for c in token if c not in GO_SPACE).startswith("{"):
        return None
    parts = token.split(".")
    payload = raw_url_decode(parts[1]) if len(parts) == 3 else None
    if payload is None:
        return None
    try:
        value = go_json(payload, _STD_JSON_MAX_DEPTH)
    except JsonError:
        return None
    if not isinstance(value, Members):
        return "" if value is None else None
    issuer = ""
    for name, member in value:
        if len(name) == 3 and name[0] in "iI" and name[1] in "sS\u017f" and name[2] in "sS\u017f":
            if is_string(member):
                issuer = str(member)
            elif member is not None:
                return None
    return issuer


def parse_signed(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """go-jose v2 jws.go ParseSigned, compact form: header, protected, payload, signature."""
    # Whitespace stripped, three unpadded base64url parts, and a protected header it can type;
    # else NotSigned: the token is not kube's.
    parts = "".join(c for c in token if c not in GO_SPACE).split(".")
    decoded = [raw_url_decode(part) for part in parts]
    if len(parts) != 3 or None in decoded:
        raise NotSigned
    protected, payload, signature = (part or b"" for part in decoded)
    try:
        header = _read_header(protected)
    except (JsonError, Abort):
        raise NotSigned from None
    return header, protected, payload, signature


def _read_header(protected: bytes) -> dict[str, Any]:
    """The protected header as go-jose v2 shared.go rawHeader.sanitized() types it: each member
    once; `kid`, `alg`, `nonce` strings; `jwk` a public key; `x5c` certificates; any other
    member any JSON (`jku` and `x5u` are not typed). Null members are absent."""
    value = go_json(protected) if protected else None  # an empty header: no members
    if value is not None and not isinstance(value, Members):
        raise Abort("json: cannot unmarshal into jose.rawHeader")
    header = {
        name: member for name, member in unique_members(value or Members()) if member is not None
    }
    for name, member in header.items():
        if name in ("kid", "alg", "nonce") and not is_string(member):
            raise Abort(f"failed to unmarshal {name}")
        if name == "x5c" and _certificates(member) is None:
            raise Abort("failed to unmarshal x5c header")
        if name == "jwk" and not _public_jwk(member):
            # jws.go sanitized: RFC 7515 4.1.3, only a valid public key may be embedded.
            raise Abort("go-jose/go-jose: invalid embedded jwk, must be public key")
        if name not in ("kid", "alg", "nonce", "x5c", "jwk"):
            check_any(member)
    return header


def _certificates(value: Any) -> list[x509.Certificate] | None:
    """A `[]string` of standard base64 DER certificates (shared.go parseCertificateChain)."""
    if not isinstance(value, list):
        return None
    certificates = []
    for item in value:
        der = std_decode(str(item or "")) if item is None or is_string(item) else None
        if der is None:
            return None
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError:
            return None
    return certificates


# --- go-jose v2 jwk.go: an embedded key ----------------------------------------------------------

_JWK_STRINGS = frozenset({"use", "kty", "kid", "crv", "alg", "x5t", "x5t#S256"})
_JWK_BYTES = frozenset({"k", "x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi"})
_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}


def _public_jwk(value: Any) -> bool:
    """JSONWebKey.UnmarshalJSON succeeds, and the key is Valid() and IsPublic()."""
    if not isinstance(value, Members):
        return False
    try:
        members = {name: member for name, member in unique_members(value) if member is not None}
    except Abort:
        return False
    data: dict[str, bytes] = {}
    for name, member in members.items():
        if name in _JWK_STRINGS | _JWK_BYTES and not is_string(member):
            return False
        # byteBuffer: base64url, padding tolerated (encoding.go base64URLDecode).
        decoded = raw_url_decode(str(member).rstrip("=")) if name in _JWK_BYTES else b""
        if decoded is None:
            return False
        data[name] = decoded
    certificates = _certificates(members["x5c"]) if "x5c" in members else []
    if certificates is None:
        return False
    key = _jwk_key(str(members.get("kty", "")), str(members.get("crv", "")), data)
    if key is None or (certificates and _key_numbers(certificates[0].public_key()) != key):
        return False
    return all(
        _thumbprint(members.get(name), size, certificates)
        for name, size in (("x5t", 20), ("x5t#S256", 32))
    )


def _jwk_key(kty: str, crv: str, data: Mapping[str, bytes]) -> tuple[Any, ...] | None:
    """The public key a JWK describes, as comparable numbers; None if go-jose would refuse it
    or it is not a public key (a `d`, or a symmetric `oct` key)."""
    if "d" in data:
        return None
    if kty == "EC" and crv in _CURVES and "x" in data and "y" in data:
        curve, size = _CURVES[crv]
        if len(data["x"]) != size or len(data["y"]) != size:
            return None
        x, y = int.from_bytes(data["x"], "big"), int.from_bytes(data["y"], "big")
        try:
            return _key_numbers(ec.EllipticCurvePublicNumbers(x, y, curve).public_key())
        except ValueError:  # not on the curve
            return None
    if kty == "RSA" and "n" in data and "e" in data:
        exponent = int.from_bytes(data["e"], "big") % 2**64  # toInt: big.Int.Int64
        if exponent == 0:  # Valid(): E != 0
            return None
        return ("RSA", int.from_bytes(data["n"], "big"), exponent)
    if kty == "OKP" and crv == "Ed25519" and len(data.get("x", b"")) == 32:
        return ("OKP", data["x"])
    return None


def _key_numbers(key: Any) -> tuple[Any, ...] | None:
    """A public key as comparable numbers (reflect.DeepEqual of the x5c leaf and the JWK key)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        return ("EC", key.curve.name, numbers.x, numbers.y)
    if isinstance(key, rsa.RSAPublicKey):
        public = key.public_numbers()
        return ("RSA", public.n, public.e)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("OKP", key.public_bytes_raw())
    return None


def _thumbprint(value: Any, size: int, certificates: Sequence[x509.Certificate]) -> bool:
    """x5t / x5t#S256: empty, or the digest of the leaf certificate (bytes or hex)."""
    if not value:
        return True
    digest = raw_url_decode(str(value).rstrip("="))
    if digest is not None and len(digest) == 2 * size:
        try:
            digest = bytes.fromhex(digest.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return False
    if digest is None or (digest and len(digest) != size):
        return False
    if digest and certificates:
        algorithm = hashlib.sha1 if size == 20 else hashlib.sha256
        der = certificates[0].public_bytes(serialization.Encoding.DER)
        return algorithm(der).digest() == digest
    return True


def jwks_key(jwk: Mapping[str, Any]) -> PublicKey:
    """An RSA or EC public key from its JWK (a published JWKS's, not an embedded one)."""

    def number(name: str) -> int:
        return int.from_bytes(raw_url_decode(str(jwk[name])) or b"", "big")

    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    curve, _ = _CURVES[str(jwk["crv"])]
    return ec.EllipticCurvePublicNumbers(number("x"), number("y"), curve).public_key()


# --- go-jose v2 jws.go DetachedVerify and asymmetric.go verifyPayload ----------------------------

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# ES sizes come from the algorithm, not from the key's curve (ecEncrypterVerifier).
_EC_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}


def verify(
    key: PublicKey, header: Mapping[str, Any], protected: bytes, payload: bytes, signature: bytes
) -> str:
    """DetachedVerify with one key: "" when the signature holds, else go-jose's error."""
    critical = header.get("crit")
    if critical is not None:
        names = critical if isinstance(critical, list) else None
        if names is None:
            return f"json: cannot unmarshal {json_kind(critical)} into Go value of type []string"
        mistyped = [name for name in names if name is not None and not is_string(name)]
        if mistyped:
            return f"json: cannot unmarshal {json_kind(mistyped[0])} into Go value of type string"
        if any(name != "b64" for name in names):  # supportedCritical: b64 only
            return _PRIMITIVE_ERROR
    if not protected:
        # computeAuthData re-reads the protected header: nothing is not JSON.
        return _PRIMITIVE_ERROR
    # computeAuthData: the segments re-encoded; with b64 JSON false, the raw payload (RFC 7797).
    body = payload if header.get("b64") is False else _raw_url_encode(payload)
    signing_input = _raw_url_encode(protected) + b"." + body
    # An alg the key cannot verify (none, HS256, EdDSA, empty, missing) is ErrUnsupportedAlgorithm,
    # which DetachedVerify wraps into ErrCryptoFailure: kube says only the latter.
    alg = str(header.get("alg", ""))
    return "" if _signature_holds(key, alg, signing_input, signature) else _PRIMITIVE_ERROR


def _signature_holds(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """RS and PS on an RSA key, ES on an EC key; any other pairing fails."""
    hash_name = alg[2:]
    try:
        if isinstance(key, rsa.RSAPublicKey) and alg[:2] in ("RS", "PS") and hash_name in _HASHES:
            algorithm = _HASHES[hash_name]()
            scheme: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if alg.startswith("RS")
                else padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO)
            )
            key.verify(signature, signing_input, scheme, algorithm)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and alg in _EC_SIZES:
            size = _EC_SIZES[alg]
            if len(signature) != 2 * size:
                return False
            r, s = (int.from_bytes(half, "big") for half in (signature[:size], signature[size:]))
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(_HASHES[hash_name]()))
            return True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return False


def _raw_url_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")
