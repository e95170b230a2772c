"""The hostile-token matrix: each input with the status and reason be2 must answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.reliability.jws import SigningKey, b64url, b64url_decode, compact, json_bytes
from tests.unit.test_seed_token import SEED_TOKEN

__all__ = [
    "HostileCase",
    "HostileContext",
    "Mint",
    "Minter",
    "every_token",
    "hostile_cases",
    "local_minter",
]


@dataclass(frozen=True)
class HostileCase:
    """One request to be2: the raw Authorization value(s) and the answer it must get."""

    name: str
    # Raw header values, sent byte for byte; () sends no Authorization header at all.
    authorization: tuple[bytes, ...]
    status: int
    reason: str | None
    path: str = "/validate-auth"
    why: str = ""

    @property
    def tokens(self) -> tuple[bytes, ...]:
        return self.authorization


@dataclass(frozen=True)
class Mint:
    """What to mint: kube-apiserver-shaped claims, varied only as a real cluster could."""

    service_account: str = "be-sa"
    audiences: tuple[str, ...] | None = None
    expiration_seconds: int = 3600
    issued_at: float | None = None
    ec: bool = False


Minter = Callable[[Mint], str]


@dataclass
class HostileContext:
    """What the matrix is built from.

    `valid` is a token be2 accepts for a subject its policy allows, signed by the RSA key whose
    public JWK is `trusted_jwk`; `mint` makes more tokens the cluster would issue (RSA, or EC
    when `ec_kid` is set). `trusted`, when we hold the private key be2 trusts, unlocks the cases
    that need arbitrary claims or headers under a good signature.
    """

    valid: str
    trusted_jwk: dict[str, str]
    mint: Minter
    issuer: str
    audience: str
    namespace: str
    service_account: str
    now: float
    trusted: SigningKey | None = None
    ec_kid: str | None = None
    foreign_rsa: SigningKey = field(default_factory=SigningKey.rsa)
    foreign_ec: SigningKey = field(default_factory=SigningKey.ec)

    @property
    def trusted_kid(self) -> str:
        return self.trusted_jwk["kid"]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A pod-bound claim set as kube-apiserver issues it, valid now."""
        now = int(self.now)
        claims: dict[str, Any] = {
            "aud": [self.audience],
            "exp": now + 3600,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": self.namespace,
                "node": {"name": "devcluster-node", "uid": str(uuid.uuid4())},
                "pod": {"name": "hostile-pod", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": self.service_account, "uid": str(uuid.uuid4())},
                "warnafter": now + 3000,
            },
            "nbf": now,
            "sub": f"system:serviceaccount:{self.namespace}:{self.service_account}",
        }
        claims.update(overrides)
        return claims

    def header(self, key: SigningKey | None = None, **fields: Any) -> dict[str, Any]:
        kid = key.kid if key is not None else self.trusted_kid
        alg = key.alg if key is not None else "RS256"
        return {"alg": alg, "kid": kid, **fields}


def local_minter(key: SigningKey, ec_key: SigningKey | None, ctx_fields: dict[str, Any]) -> Minter:
    """A Minter signing kube-shaped tokens with keys we hold (for a be2 that trusts them)."""

    def mint(request: Mint) -> str:
        signer = ec_key if request.ec and ec_key is not None else key
        now = int(request.issued_at if request.issued_at is not None else ctx_fields["now"])
        namespace = ctx_fields["namespace"]
        claims = {
            "aud": list(request.audiences or (ctx_fields["audience"],)),
            "exp": now + request.expiration_seconds,
            "iat": now,
            "iss": ctx_fields["issuer"],
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": request.service_account, "uid": str(uuid.uuid4())},
                "warnafter": now + request.expiration_seconds,
            },
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{request.service_account}",
        }
        return compact({"alg": signer.alg, "kid": signer.kid}, claims, signer)

    return mint


def _bearer(token: str | bytes) -> tuple[bytes, ...]:
    raw = token.encode("latin-1") if isinstance(token, str) else token
    return (b"Bearer " + raw,)


def _flip_signature_bit(token: str, byte_index: int, bit: int = 0) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[byte_index % len(raw)] ^= 1 << bit
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _public_pem(jwk: dict[str, str]) -> bytes:
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(b64url_decode(jwk["e"]), "big"),
        int.from_bytes(b64url_decode(jwk["n"]), "big"),
    )
    return numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class _Cases:
    def __init__(self) -> None:
        self.cases: list[HostileCase] = []

    def add(
        self,
        name: str,
        authorization: tuple[bytes, ...] | str | bytes,
        status: int,
        reason: str | None,
        why: str = "",
        path: str = "/validate-auth",
    ) -> None:
        values = authorization if isinstance(authorization, tuple) else _bearer(authorization)
        self.cases.append(HostileCase(name, values, status, reason, path, why))


def hostile_cases(ctx: HostileContext) -> list[HostileCase]:
    """Every hostile input, each with the answer the HTTP API demands.

    Cases that need a good signature over arbitrary bytes are only built when `ctx.trusted`
    holds the private key be2 trusts.
    """
    out = _Cases()
    _baseline_and_scheme(out, ctx)
    _algorithms(out, ctx)
    _kids_and_key_headers(out, ctx)
    _integrity_and_shape(out, ctx)
    _claims_the_cluster_could_issue(out, ctx)
    if ctx.trusted is not None:
        _signed_by_the_trusted_key(out, ctx, ctx.trusted)
    _header_injection(out, ctx)
    return out.cases


def _baseline_and_scheme(out: _Cases, ctx: HostileContext) -> None:
    valid = ctx.valid.encode()
    out.add("valid token", ctx.valid, 200, None)
    out.add(
        "lowercase bearer scheme",
        (b"bearer " + valid,),
        200,
        None,
        "RFC 7235 §2.1: the auth-scheme is case-insensitive",
    )
    out.add("uppercase BEARER scheme", (b"BEARER " + valid,), 200, None)
    out.add("no Authorization header", (), 401, "missing_token")
    out.add(
        "Basic scheme",
        (b"Basic dXNlcjpwYXNz",),
        401,
        "missing_token",
        "not a Bearer credential: as if none was sent (RFC 6750 §3.1)",
    )
    out.add("Bearer without a token", (b"Bearer",), 401, "missing_token")
    out.add("token without a scheme", (valid,), 401, "missing_token")
    out.add(
        "the seed's sample token",
        SEED_TOKEN,
        401,
        "unknown_key",
        "signed by a Docker Desktop cluster whose key this cluster never published",
    )
    stranger = ctx.mint(Mint(service_account="stranger"))
    out.add(
        "valid token of a subject the policy does not allow",
        stranger,
        403,
        "forbidden",
        path="/protected",
    )
    out.add("same token on /validate-auth (authenticated, not authorized)", stranger, 200, None)
    out.add("/protected with no token", (), 401, "missing_token", path="/protected")
    out.add(
        "/protected with a tampered token",
        _flip_signature_bit(ctx.valid, 5),
        401,
        "bad_signature",
        path="/protected",
    )
    out.add("/protected with the allowed subject", ctx.valid, 200, None, path="/protected")


def _algorithms(out: _Cases, ctx: HostileContext) -> None:
    _, payload, signature = ctx.valid.split(".")
    kid = ctx.trusted_kid
    claims = b64url_decode(payload)

    def with_header(header: dict[str, Any], sig: str = signature) -> str:
        return f"{b64url(json_bytes(header))}.{payload}.{sig}"

    out.add(
        "alg none, no signature",
        compact({"alg": "none"}, claims, None),
        401,
        "unsupported_algorithm",
    )
    out.add(
        "alg none with the trusted kid",
        compact({"alg": "none", "kid": kid}, claims, None),
        401,
        "unsupported_algorithm",
    )
    out.add(
        "alg none, the original RS256 signature kept",
        with_header({"alg": "none", "kid": kid}),
        401,
        "unsupported_algorithm",
    )
    for spelling in ("None", "NONE", "nOnE"):
        out.add(
            f"alg {spelling}",
            compact({"alg": spelling, "kid": kid}, claims, None),
            401,
            "unsupported_algorithm",
        )
    pem = _public_pem(ctx.trusted_jwk)
    out.add(
        "HS256 signed with the RSA public key (PEM) as secret",
        compact({"alg": "HS256", "kid": kid}, claims, pem),
        401,
        "unsupported_algorithm",
        "key confusion: only the asymmetric algorithm of the key is accepted",
    )
    out.add(
        "HS256 signed with the RSA public key (PEM, no newline) as secret",
        compact({"alg": "HS256", "kid": kid}, claims, pem.rstrip(b"\n")),
        401,
        "unsupported_algorithm",
    )
    out.add(
        "HS256 signed with the public JWK JSON as secret",
        compact({"alg": "HS256", "kid": kid}, claims, json_bytes(ctx.trusted_jwk)),
        401,
        "unsupported_algorithm",
    )
    out.add(
        "HS512 with an empty secret",
        compact({"alg": "HS512", "kid": kid}, claims, b""),
        401,
        "unsupported_algorithm",
    )
    out.add(
        "RS512 header, the RS256 signature kept",
        with_header({"alg": "RS512", "kid": kid}),
        401,
        "unsupported_algorithm",
    )
    out.add(
        "PS256 header, the RS256 signature kept",
        with_header({"alg": "PS256", "kid": kid}),
        401,
        "unsupported_algorithm",
    )
    out.add("EdDSA header", with_header({"alg": "EdDSA", "kid": kid}), 401, "unsupported_algorithm")
    out.add("alg missing", with_header({"kid": kid}), 401, "malformed")
    out.add("alg not a string", with_header({"alg": 256, "kid": kid}), 401, "malformed")
    out.add("alg empty", with_header({"alg": "", "kid": kid}), 401, "unsupported_algorithm")
    out.add(
        "ES256 header on the trusted RSA key (signed by a foreign EC key)",
        compact({"alg": "ES256", "kid": kid}, claims, ctx.foreign_ec),
        401,
        "unsupported_algorithm",
        "the header's alg must be the one of the key's type",
    )
    if ctx.ec_kid is not None:
        out.add("valid ES256 token by the trusted EC key", ctx.mint(Mint(ec=True)), 200, None)
        out.add(
            "RS256 header on the trusted EC key (signed by a foreign RSA key)",
            compact({"alg": "RS256", "kid": ctx.ec_kid}, claims, ctx.foreign_rsa),
            401,
            "unsupported_algorithm",
        )
        ec_token = ctx.mint(Mint(ec=True))
        _, ec_payload, ec_signature = ec_token.split(".")
        out.add(
            "HS256 on the trusted EC kid, the ES256 signature kept",
            f"{b64url(json_bytes({'alg': 'HS256', 'kid': ctx.ec_kid}))}.{ec_payload}."
            f"{ec_signature}",
            401,
            "unsupported_algorithm",
        )
        out.add(
            "ES384 header on the trusted P-256 key",
            f"{b64url(json_bytes({'alg': 'ES384', 'kid': ctx.ec_kid}))}.{ec_payload}."
            f"{ec_signature}",
            401,
            "unsupported_algorithm",
        )
        out.add(
            "ES256 signature in DER instead of r||s", _der_signature(ec_token), 401, "bad_signature"
        )


def _der_signature(token: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    head, payload, signature = token.split(".")
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return f"{head}.{payload}.{b64url(der)}"


def _kids_and_key_headers(out: _Cases, ctx: HostileContext) -> None:
    claims = ctx.claims()
    foreign = ctx.foreign_rsa
    out.add(
        "kid unknown (a foreign key's)",
        compact(ctx.header(foreign), claims, foreign),
        401,
        "unknown_key",
    )
    out.add(
        "kid missing, signed by a foreign key",
        compact({"alg": "RS256"}, claims, foreign),
        401,
        "malformed",
        "every token kube-apiserver issues names its key; no kid is refused, not tried on all",
    )
    for label, kid in (
        ("path-like", "../../../../etc/passwd"),
        ("absolute path", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
        ("URL-like", "https://attacker.invalid/jwks.json"),
        ("file URL", "file:///etc/shadow"),
        ("SQL-ish", "' OR '1'='1"),
        ("with a NUL byte", "abc\u0000def"),
    ):
        out.add(
            f"kid {label}",
            compact({"alg": "RS256", "kid": kid}, claims, foreign),
            401,
            "unknown_key",
            "a kid is only ever a lookup key into the cluster's JWKS",
        )
    out.add(
        "kid not a string", compact({"alg": "RS256", "kid": 7}, claims, foreign), 401, "malformed"
    )
    out.add(
        "kid 2000 characters",
        compact({"alg": "RS256", "kid": "k" * 2000}, claims, foreign),
        401,
        "malformed",
    )
    # kube never sends them; be2 refuses them outright, whatever key signed the token.
    for name in ("jku", "x5u"):
        out.add(
            f"{name} pointing elsewhere, signed by the key it names",
            compact(
                ctx.header(foreign, **{name: "https://attacker.invalid/keys"}), claims, foreign
            ),
            401,
            "malformed",
            "never fetched: refused before any key is looked up",
        )
        out.add(
            f"{name} with the trusted kid, signed by a foreign key",
            compact(ctx.header(**{name: "https://attacker.invalid/keys"}), claims, foreign),
            401,
            "malformed",
        )
    out.add(
        "jwk header embedding the signing key (foreign kid)",
        compact(ctx.header(foreign, jwk=foreign.jwk()), claims, foreign),
        401,
        "malformed",
        "an embedded key is never trusted",
    )
    out.add(
        "jwk header embedding a foreign key under the trusted kid",
        compact(ctx.header(jwk=foreign.jwk()), claims, foreign),
        401,
        "malformed",
    )
    out.add(
        "x5c header with a junk chain under the trusted kid",
        compact(ctx.header(x5c=["MIIBjunk"]), claims, foreign),
        401,
        "malformed",
        "go-jose cannot parse the chain, so kube-apiserver rejects the token too",
    )


def _integrity_and_shape(out: _Cases, ctx: HostileContext) -> None:
    valid = ctx.valid
    head, payload, signature = valid.split(".")
    for index, bit in ((0, 0), (1, 7), (100, 3), (-1, 0)):
        out.add(
            f"signature bit flip at byte {index} bit {bit}",
            _flip_signature_bit(valid, index, bit),
            401,
            "bad_signature",
        )
    out.add(
        "signature truncated by one byte",
        f"{head}.{payload}.{b64url(b64url_decode(signature)[:-1])}",
        401,
        "bad_signature",
    )
    out.add("signature empty", f"{head}.{payload}.", 401, "bad_signature")
    out.add(
        "signature of another token",
        f"{head}.{payload}.{ctx.mint(Mint()).split('.')[2]}",
        401,
        "bad_signature",
    )
    claims = json.loads(b64url_decode(payload))
    tampered = {**claims, "sub": "system:serviceaccount:kube-system:admin"}
    out.add(
        "payload tampered (sub changed), signature kept",
        f"{head}.{b64url(json_bytes(tampered))}.{signature}",
        401,
        "bad_signature",
    )
    extended = {**claims, "exp": int(ctx.now) + 10**8}
    out.add(
        "payload tampered (exp extended), signature kept",
        f"{head}.{b64url(json_bytes(extended))}.{signature}",
        401,
        "bad_signature",
    )
    header = json.loads(b64url_decode(head))
    out.add(
        "header tampered (typ added), signature kept",
        f"{b64url(json_bytes({**header, 'typ': 'JWT'}))}.{payload}.{signature}",
        401,
        "bad_signature",
    )
    out.add(
        "header re-encoded with a space, signature kept",
        f"{b64url(json.dumps(header).encode())}.{payload}.{signature}",
        401,
        "bad_signature",
    )
    out.add("two segments", f"{head}.{payload}", 401, "malformed")
    out.add("four segments", f"{valid}.{signature}", 401, "malformed")
    out.add(
        "five segments (JWE shape)",
        f"{head}.{payload}.{signature}.{signature}.{signature}",
        401,
        "malformed",
    )
    out.add("one segment", head, 401, "malformed")
    out.add("only dots", "..", 401, "malformed")
    out.add("three dots", "...", 401, "malformed")
    out.add(
        "standard base64 alphabet (+/) in the signature",
        f"{head}.{payload}.{signature[:-3]}a+/",
        401,
        "malformed",
    )
    out.add(
        "invalid base64url character in the header",
        f"{head[:-1]}*.{payload}.{signature}",
        401,
        "malformed",
    )
    short = payload + "A" if len(payload) % 4 == 0 else payload + "A" * (5 - len(payload) % 4)
    out.add(
        "impossible base64url length (1 mod 4) in the payload",
        f"{head}.{short}.{signature}",
        401,
        "malformed",
    )
    out.add(
        "'=' padding on the segments",
        f"{head}{'=' * (-len(head) % 4) or '=='}.{payload}{'=' * (-len(payload) % 4)}.{signature}=",
        401,
        "malformed",
        "RFC 7515 §2: base64url without padding",
    )
    out.add("percent-encoded padding", f"{head}%3D.{payload}.{signature}", 401, "malformed")
    out.add("header is not JSON", f"{b64url(b'not json')}.{payload}.{signature}", 401, "malformed")
    out.add("header is a JSON array", f"{b64url(b'[1,2]')}.{payload}.{signature}", 401, "malformed")
    out.add("header is JSON null", f"{b64url(b'null')}.{payload}.{signature}", 401, "malformed")
    out.add("header is not base64 of anything", f"!!!.{payload}.{signature}", 401, "malformed")
    out.add(
        "header base64 of non-UTF-8 bytes",
        b64url(b"{\xff\xfe}") + f".{payload}.{signature}",
        401,
        "malformed",
    )
    out.add(
        "64 KiB token",
        "eyJ" + "A" * (64 * 1024),
        401,
        "malformed",
        "bounded before any parsing (JWT_MAX_BYTES = 16 KiB)",
    )
    out.add(
        "64 KiB token of three segments",
        f"{head}.{'A' * (64 * 1024)}.{signature}",
        401,
        "malformed",
    )
    out.add(
        "16 KiB + 1 token", f"{head}.{'A' * (16 * 1024 + 1 - len(head) - 2)}.", 401, "malformed"
    )
    out.add(
        "deeply nested header JSON",
        f"{b64url(_nested(3000))}.{payload}.{signature}",
        401,
        "malformed",
    )
    out.add(
        "deeply nested claims JSON, RS256 header",
        f"{head}.{b64url(_nested(1500))}.{signature}",
        401,
        "bad_signature",
        "the signature is checked before the claims are parsed",
    )
    out.add(
        "claims not JSON, signature kept",
        f"{head}.{b64url(b'garbage')}.{signature}",
        401,
        "bad_signature",
    )


def _claims_the_cluster_could_issue(out: _Cases, ctx: HostileContext) -> None:
    now = ctx.now
    out.add(
        "expired (an hour ago)",
        ctx.mint(Mint(issued_at=now - 7200, expiration_seconds=3600)),
        401,
        "expired",
    )
    out.add(
        "expired, but within the 60 s leeway",
        ctx.mint(Mint(issued_at=now - 3630, expiration_seconds=3600)),
        200,
        None,
        "kube-apiserver allows 60 s of clock skew",
    )
    out.add(
        "issued in the future (nbf, iat an hour ahead)",
        ctx.mint(Mint(issued_at=now + 3600)),
        401,
        "not_yet_valid",
        "go-jose checks nbf before iat (kube-apiserver's order)",
    )
    out.add("issued 30 s ahead (within the leeway)", ctx.mint(Mint(issued_at=now + 30)), 200, None)
    out.add(
        "another audience",
        ctx.mint(Mint(audiences=("https://attacker.invalid",))),
        401,
        "bad_audience",
    )
    out.add(
        "several audiences, one ours", ctx.mint(Mint(audiences=("other", ctx.audience))), 200, None
    )


def _signed_by_the_trusted_key(out: _Cases, ctx: HostileContext, key: SigningKey) -> None:
    def signed(claims: dict[str, Any] | bytes, **header: Any) -> str:
        return compact({"alg": "RS256", "kid": key.kid, **header}, claims, key, sign_alg="RS256")

    claims = ctx.claims()
    out.add("self-check: a token signed here is accepted", signed(claims), 200, None)
    out.add(
        "PS256 by the trusted RSA key",
        compact({"alg": "PS256", "kid": key.kid}, claims, key),
        401,
        "unsupported_algorithm",
        "kube-apiserver signs with RSA keys in RS256 only",
    )
    out.add(
        "kid missing, signed by the trusted key",
        compact({"alg": "RS256"}, claims, key),
        401,
        "malformed",
        "kube-apiserver would try every key (pkg/serviceaccount/jwt.go); every token it issues "
        "names its key, so be2 refuses a kid-less one rather than try them all",
    )
    out.add(
        "kid empty, signed by the trusted key",
        compact({"alg": "RS256", "kid": ""}, claims, key),
        401,
        "malformed",
    )
    for name in ("jku", "x5u"):
        out.add(
            f"{name} pointing elsewhere, signed by the trusted key",
            signed(claims, **{name: "https://attacker.invalid/keys"}),
            401,
            "malformed",
            "never fetched: kube never sends it, so be2 refuses it (a stricter-than-kube row)",
        )
    out.add(
        "jwk header with a foreign key, signed by the trusted key",
        signed(claims, jwk=ctx.foreign_rsa.jwk()),
        401,
        "malformed",
        "never trusted: refused outright",
    )
    out.add(
        "x5c header with junk, signed by the trusted key",
        signed(claims, x5c=["MIIBjunk"]),
        401,
        "malformed",
        "go-jose cannot parse the chain: kube-apiserver rejects it too",
    )
    out.add(
        "b64 false without crit, signed by the trusted key",
        signed(claims, b64=False),
        401,
        "malformed",
        "go-jose verifies an unencoded payload, so kube-apiserver rejects it",
    )
    out.add("typ JWT, signed by the trusted key", signed(claims, typ="JWT"), 200, None)
    out.add(
        "crit naming an unknown extension",
        signed(claims, crit=["urn:attacker:ext"], **{"urn:attacker:ext": True}),
        401,
        "malformed",
        "RFC 7515 §4.1.11: a crit extension the verifier does not understand MUST be rejected",
    )
    out.add(
        "crit b64=false (RFC 7797 unencoded payload)",
        signed(claims, crit=["b64"], b64=False),
        401,
        "malformed",
    )
    out.add("crit naming exp", signed(claims, crit=["exp"], exp=1), 401, "malformed")
    out.add(
        "crit empty list",
        signed(claims, crit=[]),
        401,
        "malformed",
        "RFC 7515 §4.1.11: crit MUST NOT be an empty list",
    )
    out.add("crit not a list", signed(claims, crit="exp"), 401, "malformed")
    out.add(
        "b64=false without crit",
        signed(claims, b64=False),
        401,
        "malformed",
        "go-jose honours b64 false without crit, so kube-apiserver rejects it too",
    )

    # -- malformed claims under a good signature ----------------------------------------------
    now = int(ctx.now)
    raw_claims = json_bytes(claims)
    out.add("deeply nested claims JSON (signed)", signed(_nested(1500)), 401, "malformed")
    out.add(
        "an extra claim nested 500 deep",
        signed(raw_claims[:-1] + b',"x":' + b"[" * 500 + b"]" * 500 + b"}"),
        200,
        None,
        "unknown claims are skipped, whatever their shape, within the size bound",
    )
    out.add("claims not JSON (signed)", signed(b"\x00\x01garbage"), 401, "malformed")
    out.add("claims a JSON string (signed)", signed(b'"hello"'), 401, "malformed")
    out.add(
        "non-UTF-8 bytes in an unknown claim (signed)",
        signed(raw_claims[:-1] + b',"x":"\xff\xfe"}'),
        401,
        "malformed",
        "every byte of the claims is read (Go would replace them: a stricter-than-kube row)",
    )
    out.add(
        "non-UTF-8 bytes in sub (signed)",
        signed(raw_claims.replace(b'"sub":"system', b'"sub":"\xff\xfesystem')),
        401,
        "malformed",
    )
    out.add(
        "a lone surrogate escape in an unknown claim (signed)",
        signed(raw_claims[:-1] + b',"x":"\\ud800"}'),
        401,
        "malformed",
        "strict: JSON text that decodes to no valid string is refused",
    )
    typed: list[tuple[str, dict[str, Any], int, str | None]] = [
        ("exp as a string", {"exp": str(now + 3600)}, 401, "malformed"),
        ("exp as a float", {"exp": now + 3600.5}, 200, None),
        ("exp as a boolean", {"exp": True}, 401, "malformed"),
        ("exp as null", {"exp": None}, 401, "expired"),
        ("exp huge (1e300)", {"exp": 1e300}, 401, "expired"),
        ("exp negative huge", {"exp": -1e300}, 401, "expired"),
        ("exp 2**64", {"exp": 2**64}, 401, "expired"),
        ("nbf as a string", {"nbf": str(now)}, 401, "malformed"),
        ("nbf as a boolean", {"nbf": False}, 401, "malformed"),
        ("nbf huge", {"nbf": 10**20}, 401, "not_yet_valid"),
        ("nbf as a float", {"nbf": now - 0.25}, 200, None),
        ("iat as a string", {"iat": str(now)}, 401, "malformed"),
        ("iat as a boolean", {"iat": True}, 401, "malformed"),
        ("iat huge", {"iat": 10**20}, 401, "issued_in_future"),
        ("iat as a list", {"iat": [now]}, 401, "malformed"),
        ("aud as a number", {"aud": 42}, 401, "malformed"),
        ("aud as an object", {"aud": {"aud": ctx.audience}}, 401, "malformed"),
        ("aud as a list with a number", {"aud": [ctx.audience, 1]}, 401, "malformed"),
        ("aud as a plain string", {"aud": ctx.audience}, 200, None),
        ("aud empty list", {"aud": []}, 401, "bad_audience"),
        ("iss another issuer", {"iss": "https://attacker.invalid"}, 401, "bad_issuer"),
        ("iss as a number", {"iss": 1}, 401, "malformed"),
        ("sub not a service account", {"sub": "admin"}, 401, "bad_subject"),
        (
            "sub another service account than kubernetes.io says",
            {"sub": "system:serviceaccount:kube-system:admin"},
            401,
            "bad_subject",
        ),
        ("kubernetes.io as a string", {"kubernetes.io": "default"}, 401, "malformed"),
    ]
    for name, overrides, status, reason in typed:
        varied = {**claims, **overrides}
        if overrides.get("exp", 0) is None:
            del varied["exp"]
        out.add(name, signed(varied), status, reason)
    without = {k: v for k, v in claims.items() if k != "kubernetes.io"}
    out.add("kubernetes.io claim missing", signed(without), 401, "malformed")
    out.add(
        "exp with 400 digits",
        signed(raw_claims[:-1] + b',"exp":1' + b"0" * 400 + b"}"),
        401,
        "malformed",
        "a NumericDate that is no finite number",
    )

    # -- duplicate keys (RFC 7515 §5.2): go-jose's JSON rejects them, and so does be2 -------
    out.add(
        "duplicate iss, the last one ours",
        signed(b'{"iss":"https://attacker.invalid",' + raw_claims[1:]),
        401,
        "malformed",
        "a repeated member is refused, as go-jose refuses it (kube-apiserver)",
    )
    out.add(
        "duplicate iss, the last one foreign",
        signed(raw_claims[:-1] + b',"iss":"https://attacker.invalid"}'),
        401,
        "malformed",
    )
    header_dup = b'{"alg":"RS256","kid":"' + key.kid.encode() + b'","alg":"none"}'
    out.add(
        "duplicate alg in the header, the last one none",
        compact(header_dup, claims, key, sign_alg="RS256"),
        401,
        "malformed",
        "one parser reads the header, once, and refuses a repeated member",
    )
    header_dup_kid = (
        b'{"alg":"RS256","kid":"'
        + ctx.foreign_rsa.kid.encode()
        + b'","kid":"'
        + key.kid.encode()
        + b'"}'
    )
    out.add(
        "duplicate kid in the header, the last one trusted",
        compact(header_dup_kid, claims, key, sign_alg="RS256"),
        401,
        "malformed",
    )


def _header_injection(out: _Cases, ctx: HostileContext) -> None:
    valid = ctx.valid.encode()
    head, payload, signature = (part.encode() for part in ctx.valid.split("."))
    out.add(
        "non-UTF-8 bytes in the token",
        (b"Bearer " + head + b".\xff\xfe." + signature,),
        401,
        "malformed",
    )
    out.add(
        "latin-1 letters in the token",
        (b"Bearer \xe9\xe8\xe0." + payload + b"." + signature,),
        401,
        "malformed",
    )
    out.add(
        "tab between scheme and token",
        (b"Bearer\t" + valid,),
        401,
        "malformed",
        "RFC 7235 §2.1: the scheme is followed by SP, and a tab is not SP",
    )
    out.add(
        "two spaces between scheme and token",
        (b"Bearer  " + valid,),
        200,
        None,
        "1*SP: several spaces are allowed",
    )
    out.add(
        "token, a comma and a parameter", (b"Bearer " + valid + b", realm=x",), 401, "malformed"
    )
    out.add(
        "two tokens separated by a space", (b"Bearer " + valid + b" " + valid,), 401, "malformed"
    )
    out.add(
        "two Bearer credentials, comma-separated",
        (b"Bearer " + valid + b", Bearer " + valid,),
        401,
        "malformed",
    )
    out.add(
        "two Authorization headers",
        (b"Bearer " + valid, b"Bearer " + valid),
        401,
        "malformed",
        "ambiguous credentials are refused, never one of them picked",
    )
    out.add(
        "token with a trailing tab",
        (b"Bearer " + valid + b"\t",),
        200,
        None,
        "HTTP strips whitespace around a field value (RFC 9110 §5.5)",
    )
    out.add("token in quotes", (b'Bearer "' + valid + b'"',), 401, "malformed")
    out.add(
        "token with a vertical tab inside",
        (b"Bearer " + head + b"\x0b." + payload,),
        400,
        None,
        "not a valid field value: the HTTP server refuses it before the app",
    )


def every_token(cases: list[HostileCase]) -> list[bytes]:
    """Every credential the matrix sends (for the log scan)."""
    out: list[bytes] = []
    for case in cases:
        for value in case.authorization:
            out.append(value.split(b" ", 1)[-1] if b" " in value else value)
    return out
