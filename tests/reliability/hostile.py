"""The hostile-token matrix: each input with the status and reason be2 must answer (SPEC §4)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.reliability.jws import SigningKey, b64url, b64url_decode, compact, json_bytes
from tests.unit.test_seed_token import SEED_TOKEN

__all__ = ["HostileCase", "HostileContext", "hostile_cases"]


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


@dataclass
class HostileContext:
    """Keys and claims the matrix is built from.

    `trusted` is a key be2 trusts (its kid is in the cluster's JWKS); `trusted_ec` an EC key
    it trusts too, if the cluster publishes one. `foreign_*` are keys nobody published.
    """

    trusted: SigningKey
    issuer: str
    audience: str
    namespace: str
    service_account: str
    now: float
    trusted_ec: SigningKey | None = None
    foreign_rsa: SigningKey = field(default_factory=SigningKey.rsa)
    foreign_ec: SigningKey = field(default_factory=SigningKey.ec)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A pod-bound claim set as kube-apiserver issues it, valid now; None drops a claim."""
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
        for name, value in overrides.items():
            key = name.replace("__", ".")
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        return claims

    def header(self, key: SigningKey | None = None, **fields: Any) -> dict[str, Any]:
        key = key or self.trusted
        header: dict[str, Any] = {"alg": key.alg, "kid": key.kid}
        header.update(fields)
        return {name: value for name, value in header.items() if value is not None}

    def valid(self, **overrides: Any) -> str:
        return compact(self.header(), self.claims(**overrides), self.trusted)


def _bearer(token: str | bytes) -> tuple[bytes, ...]:
    raw = token.encode("latin-1") if isinstance(token, str) else token
    return (b"Bearer " + raw,)


def _flip_signature_bit(token: str, byte_index: int, bit: int = 0) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[byte_index % len(raw)] ^= 1 << bit
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def _signed_payload(ctx: HostileContext, payload: bytes, key: SigningKey | None = None) -> str:
    """A correctly signed token around raw payload bytes (junk JSON, duplicates, non-UTF-8)."""
    key = key or ctx.trusted
    return compact(ctx.header(key), payload, key)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def hostile_cases(ctx: HostileContext) -> list[HostileCase]:
    """Every hostile input of issue 8, each with the answer SPEC §4 demands."""
    cases: list[HostileCase] = []

    def add(
        name: str,
        authorization: tuple[bytes, ...] | str | bytes,
        status: int,
        reason: str | None,
        why: str = "",
        path: str = "/validate-auth",
    ) -> None:
        values = authorization if isinstance(authorization, tuple) else _bearer(authorization)
        cases.append(HostileCase(name, values, status, reason, path, why))

    valid = ctx.valid()
    head, payload, signature = valid.split(".")
    trusted_kid = ctx.trusted.kid

    # -- the baseline: a correct token passes (so every rejection below is about one change) --
    add("valid token", valid, 200, None)
    add(
        "lowercase bearer scheme",
        (b"bearer " + valid.encode(),),
        200,
        None,
        "RFC 7235 §2.1: the auth-scheme is case-insensitive",
    )
    add("uppercase BEARER scheme", (b"BEARER " + valid.encode(),), 200, None)

    # -- no token ---------------------------------------------------------------------------
    add("no Authorization header", (), 401, "missing_token")
    add(
        "Basic scheme",
        (b"Basic dXNlcjpwYXNz",),
        401,
        "missing_token",
        "not a Bearer credential: as if none was sent (RFC 6750 §3)",
    )
    add("Bearer without a token", (b"Bearer",), 401, "missing_token")
    add("token without a scheme", (valid.encode(),), 401, "missing_token")

    # -- algorithms ---------------------------------------------------------------------------
    add(
        "alg none, no signature",
        compact({"alg": "none"}, ctx.claims(), None),
        401,
        "unsupported_algorithm",
    )
    add(
        "alg none with the trusted kid",
        compact({"alg": "none", "kid": trusted_kid}, ctx.claims(), None),
        401,
        "unsupported_algorithm",
    )
    add(
        "alg none with a valid RS256 signature kept",
        compact({"alg": "none", "kid": trusted_kid}, ctx.claims(), ctx.trusted, sign_alg="RS256"),
        401,
        "unsupported_algorithm",
    )
    for spelling in ("None", "NONE", "nOnE"):
        add(
            f"alg {spelling}",
            compact({"alg": spelling, "kid": trusted_kid}, ctx.claims(), None),
            401,
            "unsupported_algorithm",
        )
    add(
        "HS256 signed with the RSA public key (PEM) as secret",
        compact({"alg": "HS256", "kid": trusted_kid}, ctx.claims(), ctx.trusted.public_pem()),
        401,
        "unsupported_algorithm",
        "key confusion: only asymmetric algorithms are accepted",
    )
    add(
        "HS256 signed with the public JWK JSON as secret",
        compact({"alg": "HS256", "kid": trusted_kid}, ctx.claims(), json_bytes(ctx.trusted.jwk())),
        401,
        "unsupported_algorithm",
    )
    add(
        "HS512 with an empty secret",
        compact({"alg": "HS512", "kid": trusted_kid}, ctx.claims(), b""),
        401,
        "unsupported_algorithm",
    )
    add(
        "PS256 by the trusted RSA key",
        compact({"alg": "PS256", "kid": trusted_kid}, ctx.claims(), ctx.trusted),
        401,
        "unsupported_algorithm",
        "kube-apiserver signs RSA keys with RS256 only",
    )
    add(
        "RS512 header",
        compact({"alg": "RS512", "kid": trusted_kid}, ctx.claims(), ctx.trusted, sign_alg="RS256"),
        401,
        "unsupported_algorithm",
    )
    add(
        "alg missing",
        compact({"kid": trusted_kid}, ctx.claims(), ctx.trusted, sign_alg="RS256"),
        401,
        "malformed",
    )
    add(
        "alg not a string",
        compact({"alg": 256, "kid": trusted_kid}, ctx.claims(), ctx.trusted, sign_alg="RS256"),
        401,
        "malformed",
    )
    add(
        "ES256 header on the trusted RSA key (signed by a foreign EC key)",
        compact({"alg": "ES256", "kid": trusted_kid}, ctx.claims(), ctx.foreign_ec),
        401,
        "unsupported_algorithm",
        "the header's alg must fit the key's type",
    )
    if ctx.trusted_ec is not None:
        ec_kid = ctx.trusted_ec.kid
        add(
            "RS256 header on the trusted EC key (signed by a foreign RSA key)",
            compact({"alg": "RS256", "kid": ec_kid}, ctx.claims(), ctx.foreign_rsa),
            401,
            "unsupported_algorithm",
        )
        add(
            "valid ES256 token by the trusted EC key",
            compact(ctx.header(ctx.trusted_ec), ctx.claims(), ctx.trusted_ec),
            200,
            None,
        )

    # -- kid ----------------------------------------------------------------------------------
    add(
        "kid missing, signed by the trusted key",
        compact({"alg": "RS256"}, ctx.claims(), ctx.trusted),
        200,
        None,
        "kube-apiserver tries every key when there is no kid (pkg/serviceaccount/jwt.go)",
    )
    add(
        "kid missing, signed by a foreign key",
        compact({"alg": "RS256"}, ctx.claims(), ctx.foreign_rsa),
        401,
        "bad_signature",
    )
    add(
        "kid unknown (a foreign key's)",
        compact(ctx.header(ctx.foreign_rsa), ctx.claims(), ctx.foreign_rsa),
        401,
        "unknown_key",
    )
    for label, kid in (
        ("path-like", "../../../../etc/passwd"),
        ("absolute path", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
        ("URL-like", "https://attacker.invalid/jwks.json"),
        ("file URL", "file:///etc/shadow"),
        ("SQL-ish", "' OR '1'='1"),
        ("empty", ""),
        ("NUL byte", "abc\u0000def"),
    ):
        add(
            f"kid {label}",
            compact({"alg": "RS256", "kid": kid}, ctx.claims(), ctx.foreign_rsa),
            401,
            "unknown_key",
            "a kid is only ever a lookup key in the cluster's JWKS",
        )
    add(
        "kid not a string",
        compact({"alg": "RS256", "kid": 7}, ctx.claims(), ctx.trusted),
        401,
        "malformed",
    )
    add(
        "kid 2000 characters",
        compact({"alg": "RS256", "kid": "k" * 2000}, ctx.claims(), ctx.foreign_rsa),
        401,
        "malformed",
    )

    # -- key-carrying headers: never fetched, never trusted -----------------------------------
    for name in ("jku", "x5u"):
        add(
            f"{name} pointing elsewhere, signed by the trusted key",
            compact(
                ctx.header(**{name: "https://attacker.invalid/keys"}), ctx.claims(), ctx.trusted
            ),
            200,
            None,
            "ignored: keys come only from the cluster JWKS by kid",
        )
        add(
            f"{name} pointing elsewhere, signed by the key it names",
            compact(
                ctx.header(ctx.foreign_rsa, **{name: "https://attacker.invalid/keys"}),
                ctx.claims(),
                ctx.foreign_rsa,
            ),
            401,
            "unknown_key",
        )
    add(
        "jwk header embedding the signing key (foreign kid)",
        compact(
            ctx.header(ctx.foreign_rsa, jwk=ctx.foreign_rsa.jwk()), ctx.claims(), ctx.foreign_rsa
        ),
        401,
        "unknown_key",
    )
    add(
        "jwk header embedding a foreign key under the trusted kid",
        compact(ctx.header(jwk=ctx.foreign_rsa.jwk()), ctx.claims(), ctx.foreign_rsa),
        401,
        "bad_signature",
    )
    add(
        "jwk header with the trusted key, signed by it",
        compact(ctx.header(jwk=ctx.trusted.jwk()), ctx.claims(), ctx.trusted),
        200,
        None,
    )
    add(
        "x5c header with junk, signed by the trusted key",
        compact(ctx.header(x5c=["MIIBjunk"]), ctx.claims(), ctx.trusted),
        200,
        None,
    )
    add(
        "crit naming an unknown extension",
        compact(
            ctx.header(crit=["urn:attacker:ext"], **{"urn:attacker:ext": True}),
            ctx.claims(),
            ctx.trusted,
        ),
        401,
        "malformed",
        "RFC 7515 §4.1.11: a crit extension the verifier does not understand MUST be rejected",
    )
    add(
        "crit b64=false (RFC 7797 unencoded payload)",
        compact(ctx.header(crit=["b64"], b64=False), ctx.claims(), ctx.trusted),
        401,
        "malformed",
    )
    add(
        "crit empty list", compact(ctx.header(crit=[]), ctx.claims(), ctx.trusted), 401, "malformed"
    )
    add(
        "crit not a list",
        compact(ctx.header(crit="exp"), ctx.claims(), ctx.trusted),
        401,
        "malformed",
    )
    add(
        "typ JWT (harmless), signed by the trusted key",
        compact(ctx.header(typ="JWT"), ctx.claims(), ctx.trusted),
        200,
        None,
    )

    # -- signature and integrity -------------------------------------------------------------
    for index, bit in ((0, 0), (1, 7), (100, 3), (-1, 0)):
        add(
            f"signature bit flip at byte {index} bit {bit}",
            _flip_signature_bit(valid, index, bit),
            401,
            "bad_signature",
        )
    add(
        "signature truncated by one byte",
        f"{head}.{payload}.{b64url(b64url_decode(signature)[:-1])}",
        401,
        "bad_signature",
    )
    add("signature empty", f"{head}.{payload}.", 401, "bad_signature")
    add(
        "signature of another token",
        f"{head}.{payload}.{ctx.valid().split('.')[2]}",
        401,
        "bad_signature",
    )
    tampered = ctx.claims(sub="system:serviceaccount:kube-system:admin")
    add(
        "payload tampered (sub changed), signature kept",
        f"{head}.{b64url(json_bytes(tampered))}.{signature}",
        401,
        "bad_signature",
    )
    add(
        "payload tampered (exp extended), signature kept",
        f"{head}.{b64url(json_bytes(ctx.claims(exp=int(ctx.now) + 10**8)))}.{signature}",
        401,
        "bad_signature",
    )
    add(
        "header tampered (typ added), signature kept",
        f"{b64url(json_bytes(ctx.header(typ='JWT')))}.{payload}.{signature}",
        401,
        "bad_signature",
    )

    # -- shape and encoding --------------------------------------------------------------------
    add("two segments", f"{head}.{payload}", 401, "malformed")
    add("four segments", f"{valid}.{signature}", 401, "malformed")
    add(
        "five segments (JWE shape)",
        f"{head}.{payload}.{signature}.{signature}.{signature}",
        401,
        "malformed",
    )
    add("one segment", head, 401, "malformed")
    add("only dots", "..", 401, "malformed")
    add("empty segments", "...", 401, "malformed")
    add(
        "standard base64 alphabet (+/) in the signature",
        f"{head}.{payload}.{signature.replace('-', '+').replace('_', '/')}a+/",
        401,
        "malformed",
    )
    add(
        "invalid base64url character in the header",
        f"{head[:-1]}*.{payload}.{signature}",
        401,
        "malformed",
    )
    add(
        "invalid base64url length (1 mod 4) in the payload",
        f"{head}.{payload}A.{signature}" if len(payload) % 4 == 0 else f"{head}.A.{signature}",
        401,
        "malformed",
    )
    add(
        "'=' padding on every segment",
        f"{head}{'=' * (-len(head) % 4)}.{payload}{'=' * (-len(payload) % 4)}."
        f"{signature}{'=' * (-len(signature) % 4) or '=='}",
        401,
        "malformed",
        "RFC 7515 §2: base64url without padding",
    )
    add("header is not JSON", f"{b64url(b'not json')}.{payload}.{signature}", 401, "malformed")
    add("header is a JSON array", f"{b64url(b'[1,2]')}.{payload}.{signature}", 401, "malformed")
    add("header is not base64 of anything", f"!!!.{payload}.{signature}", 401, "malformed")
    add(
        "64 KiB token",
        "eyJ" + "A" * (64 * 1024),
        401,
        "malformed",
        "bounded before any parsing (JWT_MAX_BYTES = 16 KiB)",
    )
    add("16 KiB + 1 token", "eyJ" + "A" * (16 * 1024 - 2), 401, "malformed")
    add(
        "deeply nested header JSON",
        f"{b64url(_nested(3000))}.{payload}.{signature}",
        401,
        "malformed",
    )
    add("deeply nested claims JSON (signed)", _signed_payload(ctx, _nested(3000)), 401, "malformed")
    add(
        "claims JSON nested 500 deep inside a valid claim set",
        _signed_payload(
            ctx, json_bytes(ctx.claims())[:-1] + b',"x":' + b"[" * 500 + b"]" * 500 + b"}"
        ),
        200,
        None,
        "unknown claims are ignored, whatever their shape, once within size",
    )
    add("claims not JSON (signed)", _signed_payload(ctx, b"\x00\x01garbage"), 401, "malformed")
    add("claims a JSON string (signed)", _signed_payload(ctx, b'"hello"'), 401, "malformed")
    add(
        "claims non-UTF-8 bytes (signed)",
        _signed_payload(ctx, json_bytes(ctx.claims())[:-1] + b',"x":"\xff\xfe"}'),
        401,
        "malformed",
    )

    # -- claim types --------------------------------------------------------------------------
    now = int(ctx.now)
    typed: list[tuple[str, dict[str, Any], int, str | None]] = [
        ("exp as a string", {"exp": str(now + 3600)}, 401, "malformed"),
        ("exp as a float", {"exp": now + 3600.5}, 200, None),
        ("exp as a boolean", {"exp": True}, 401, "malformed"),
        ("exp as null", {"exp": None}, 401, "expired"),
        ("exp huge (1e300)", {"exp": 1e300}, 200, None),
        ("exp negative huge", {"exp": -1e300}, 401, "expired"),
        ("exp in the past", {"exp": now - 3600}, 401, "expired"),
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
        ("aud another audience", {"aud": ["https://attacker.invalid"]}, 401, "bad_audience"),
        ("iss another issuer", {"iss": "https://attacker.invalid"}, 401, "bad_issuer"),
        ("iss as a number", {"iss": 1}, 401, "malformed"),
        ("sub not a service account", {"sub": "admin"}, 401, "bad_subject"),
        (
            "sub another service account",
            {"sub": "system:serviceaccount:kube-system:admin"},
            401,
            "bad_subject",
        ),
        ("kubernetes.io claim missing", {"kubernetes.io": None}, 401, "malformed"),
        ("kubernetes.io as a string", {"kubernetes.io": "default"}, 401, "malformed"),
    ]
    for name, overrides, status, reason in typed:
        claims = ctx.claims()
        claims.update(overrides)
        if overrides.get("kubernetes.io", 0) is None:
            del claims["kubernetes.io"]
        if "exp" in overrides and overrides["exp"] is None:
            del claims["exp"]
        add(name, compact(ctx.header(), claims, ctx.trusted), status, reason)
    add(
        "exp with 400 digits",
        _signed_payload(ctx, json_bytes(ctx.claims())[:-1] + b',"exp":1' + b"0" * 400 + b"}"),
        401,
        "malformed",
        "a NumericDate that is no finite number",
    )

    # -- duplicate keys (RFC 7515 §5.2: reject, or use the last one consistently) ------------
    claims_bytes = json_bytes(ctx.claims())
    add(
        "duplicate iss, last one ours",
        _signed_payload(ctx, b'{"iss":"https://attacker.invalid",' + claims_bytes[1:]),
        200,
        None,
        "the last duplicate wins, as in Go's encoding/json (kube-apiserver)",
    )
    add(
        "duplicate iss, last one foreign",
        _signed_payload(ctx, claims_bytes[:-1] + b',"iss":"https://attacker.invalid"}'),
        401,
        "bad_issuer",
    )
    header_dup = b'{"alg":"RS256","kid":"' + trusted_kid.encode() + b'","alg":"none"}'
    add(
        "duplicate alg in the header, last one none",
        compact(header_dup, ctx.claims(), ctx.trusted, sign_alg="RS256"),
        401,
        "unsupported_algorithm",
        "the header is read once, by one parser",
    )
    header_dup_kid = (
        b'{"alg":"RS256","kid":"'
        + ctx.foreign_rsa.kid.encode()
        + b'","kid":"'
        + trusted_kid.encode()
        + b'"}'
    )
    add(
        "duplicate kid in the header, last one trusted",
        compact(header_dup_kid, ctx.claims(), ctx.trusted, sign_alg="RS256"),
        200,
        None,
    )

    # -- bytes that are not UTF-8, and header injection ---------------------------------------
    add(
        "non-UTF-8 bytes in the token",
        (b"Bearer " + head.encode() + b".\xff\xfe." + signature.encode(),),
        401,
        "malformed",
    )
    add(
        "latin-1 letters in the token",
        (b"Bearer \xe9\xe8\xe0." + payload.encode() + b"." + signature.encode(),),
        401,
        "malformed",
    )
    add(
        "tab between scheme and token",
        (b"Bearer\t" + valid.encode(),),
        401,
        "malformed",
        "RFC 7235 §2.1: one or more SP; a tab is not SP",
    )
    add(
        "two spaces between scheme and token",
        (b"Bearer  " + valid.encode(),),
        200,
        None,
        "1*SP: several spaces are allowed",
    )
    add(
        "token then a comma and a parameter",
        (b"Bearer " + valid.encode() + b", realm=x",),
        401,
        "malformed",
    )
    add(
        "two tokens separated by a space",
        (b"Bearer " + valid.encode() + b" " + valid.encode(),),
        401,
        "malformed",
    )
    add(
        "two Bearer credentials comma-separated",
        (b"Bearer " + valid.encode() + b", Bearer " + valid.encode(),),
        401,
        "malformed",
    )
    add(
        "two Authorization headers",
        (b"Bearer " + valid.encode(), b"Bearer " + valid.encode()),
        401,
        "malformed",
        "ambiguous credentials are refused, never one of them picked",
    )
    add(
        "token with a trailing tab",
        (b"Bearer " + valid.encode() + b"\t",),
        200,
        None,
        "HTTP strips optional whitespace around a field value (RFC 9110 §5.5)",
    )
    add("token quoted", (b'Bearer "' + valid.encode() + b'"',), 401, "malformed")

    # -- the seed's sample token: signed by a Docker Desktop cluster we do not trust ----------
    add("the seed's sample token", SEED_TOKEN, 401, "unknown_key")

    # -- authorization: a valid token whose subject the policy does not allow ----------------
    other = ctx.valid(
        sub="system:serviceaccount:default:stranger",
        **{
            "kubernetes.io": {
                **ctx.claims()["kubernetes.io"],
                "serviceaccount": {"name": "stranger", "uid": "u"},
            }
        },
    )
    add(
        "valid token of a subject the policy does not allow",
        other,
        403,
        "forbidden",
        path="/protected",
    )
    add("/protected with no token", (), 401, "missing_token", path="/protected")
    add(
        "/protected with a tampered token",
        _flip_signature_bit(valid, 5),
        401,
        "bad_signature",
        path="/protected",
    )
    add("/protected with the allowed subject", valid, 200, None, path="/protected")
    return cases


def every_token(cases: list[HostileCase]) -> list[bytes]:
    """Every credential the matrix sends (for the log scan)."""
    out: list[bytes] = []
    for case in cases:
        for value in case.authorization:
            out.append(value.split(b" ", 1)[-1] if b" " in value else value)
    return out
