"""Token claims as kube-apiserver writes them, and the one decoder that turns bytes into them."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import msgspec

from domain.errors import Malformed

__all__ = [
    "FOREIGN_HEADER_MEMBERS",
    "JWT_MAX_BYTES",
    "Claims",
    "Header",
    "KubernetesClaim",
    "ObjectRef",
    "decode_claims",
    "decode_claims_strictly",
    "decode_header",
    "strict_object",
    "to_builtins",
]

# kube-apiserver has no such limit, but a service account token is ~1 KiB; 16 KiB leaves room
# for long names while bounding the work any caller can make us do before a signature check.
JWT_MAX_BYTES = 16 * 1024

# Names and UIDs are bounded by Kubernetes (253 for a DNS subdomain); 1 KiB is generous.
_Short = Annotated[str, msgspec.Meta(max_length=1024)]


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number")


class ObjectRef(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A reference to a bound object (service account, pod, secret or node)."""

    name: _Short
    uid: _Short = ""


class KubernetesClaim(msgspec.Struct, frozen=True):
    """The private `kubernetes.io` claim of a bound token (pkg/serviceaccount/claims.go)."""

    namespace: _Short
    serviceaccount: ObjectRef
    pod: ObjectRef | None = None
    secret: ObjectRef | None = None
    node: ObjectRef | None = None
    # go-jose NumericDate accepts any JSON number, so do we; it is only ever compared.
    warnafter: float | None = None

    def __post_init__(self) -> None:
        _finite("kubernetes.io.warnafter", self.warnafter)


class Claims(msgspec.Struct, frozen=True):
    """The claims of a service account token, bound (projected) or legacy (secret-based).

    Bound tokens carry `kubernetes` (the `kubernetes.io` claim); legacy secret tokens carry the
    flat `kubernetes.io/serviceaccount/*` claims and no `exp`, `iat` or `aud`
    (pkg/serviceaccount/legacy.go).
    """

    iss: _Short
    sub: _Short = ""
    aud: _Short | list[_Short] | None = None
    exp: float | None = None
    nbf: float | None = None
    iat: float | None = None
    jti: _Short | None = None
    kubernetes: KubernetesClaim | None = msgspec.field(default=None, name="kubernetes.io")
    legacy_namespace: _Short | None = msgspec.field(
        default=None, name="kubernetes.io/serviceaccount/namespace"
    )
    legacy_secret_name: _Short | None = msgspec.field(
        default=None, name="kubernetes.io/serviceaccount/secret.name"
    )
    legacy_service_account_name: _Short | None = msgspec.field(
        default=None, name="kubernetes.io/serviceaccount/service-account.name"
    )
    legacy_service_account_uid: _Short | None = msgspec.field(
        default=None, name="kubernetes.io/serviceaccount/service-account.uid"
    )

    def __post_init__(self) -> None:
        for name in ("exp", "nbf", "iat"):
            _finite(name, getattr(self, name))

    @property
    def audiences(self) -> tuple[str, ...]:
        """`aud` as a tuple: a single string and a one-element list mean the same (RFC 7519)."""
        if self.aud is None:
            return ()
        if isinstance(self.aud, str):
            return (self.aud,)
        return tuple(self.aud)

    @property
    def is_legacy(self) -> bool:
        """True for a secret-based token (flat claims, no `kubernetes.io` object)."""
        return self.kubernetes is None and self.legacy_namespace is not None


class Header(msgspec.Struct, frozen=True):
    """The JOSE header members go-jose reads with a type; anything else is any JSON value."""

    alg: _Short
    kid: _Short | None = None
    typ: Any = None
    crit: list[_Short] | None = None
    # RFC 7797: go-jose signs over the raw payload when b64 is JSON false (any other value: as
    # if absent).
    b64: Any = None


# Members go-jose parses into keys, certificates or a nonce. kube-apiserver never puts them in
# its tokens and verifies with its own keys, so a token that brings them is refused outright.
FOREIGN_HEADER_MEMBERS = frozenset({"jwk", "x5c", "x5u", "jku", "nonce"})
# Go's encoding/json, which kube-apiserver's issuer check uses, matches member names without
# case, folding the long s (U+017F): `ISS` is read as `iss` (the last one wins).
_ISS_SPELLINGS = frozenset(i + s1 + s2 for i in "iI" for s1 in "sS\u017f" for s2 in "sS\u017f")


def strict_object(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON object read as go-jose reads it, but stricter on text: valid UTF-8 and no lone
    surrogates (Go would replace them); no member named twice in any object; numbers finite
    where they are read; null members left out.

    Raises:
        Malformed: naming `what` (the token header or claims).
    """
    try:
        text = raw.decode("utf-8")
        value = _STRICT_DECODER.decode(text)
        # Only an escape can make a surrogate: look for lone ones only then.
        if "\\u" in text:
            _refuse_lone_surrogates(value)
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise Malformed(f"token {what}: not valid JSON ({_first_line(exc)})") from None
    if not isinstance(value, dict):
        raise Malformed(f"token {what}: not a JSON object")
    # Go reads a null member as absent (a string stays empty, a pointer nil).
    if None in value.values():
        return {name: member for name, member in value.items() if member is not None}
    return value


def _refuse_lone_surrogates(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate
    elif isinstance(value, dict):
        for name, member in value.items():
            _refuse_lone_surrogates(name)
            _refuse_lone_surrogates(member)
    elif isinstance(value, list):
        for member in value:
            _refuse_lone_surrogates(member)


def _refuse_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for index, name in enumerate(names) if name in names[:index])
        # go-jose's JSON (used for the header and the claims) rejects a repeated member.
        raise ValueError(f"duplicate member {twice[:64]!r}")
    return members


# One decoder, built once (json.loads with a hook would build one per call).
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_refuse_constant)


def _last_issuer(members: dict[str, Any]) -> Any:
    return [member for name, member in members.items() if name in _ISS_SPELLINGS][-1]


def decode_claims(payload: bytes) -> Claims:
    """Decode a JWT payload (raw JSON bytes) into `Claims`, as strictly as go-jose does.

    Raises:
        Malformed: any shape or type error, a repeated member, or a member that Go's
        case-insensitive JSON reads as `iss` disagreeing with `iss`.
    """
    plain = _plain_claims(payload)
    return plain if plain is not None else decode_claims_strictly(payload)


def decode_claims_strictly(payload: bytes) -> Claims:
    """`decode_claims` through the strict reader alone: what decides, and names the problem,
    whenever the payload is not written as kube-apiserver writes it.

    Raises:
        Malformed: as `decode_claims`.
    """
    members = strict_object(payload, "claims")
    # kube-apiserver takes a token as its own by the issuer Go's encoding/json reads: the last
    # member whose name folds to `iss`. That one must be the `iss` checked here.
    spellings = _ISS_SPELLINGS.intersection(members)
    if len(spellings) > 1 and _last_issuer(members) != members.get("iss"):
        raise Malformed("token claims name two issuers (members that differ only in case)")
    try:
        return msgspec.convert(members, Claims)
    except (msgspec.ValidationError, ValueError) as exc:
        raise Malformed(f"token claims are not valid: {_first_line(exc)}") from None


def decode_header(raw: bytes) -> Header:
    """Decode a JOSE header (raw JSON bytes) as go-jose types its members.

    Raises:
        Malformed: any shape or type error, a repeated member, or a member kube never sends
        (`jwk`, `x5c`, `x5u`, `jku`, `nonce`).
    """
    members = strict_object(raw, "header")
    foreign = FOREIGN_HEADER_MEMBERS.intersection(members)
    if foreign:
        raise Malformed(f"token header carries {', '.join(sorted(foreign))}, which is not accepted")
    try:
        return msgspec.convert(members, Header)
    except (msgspec.ValidationError, ValueError) as exc:
        raise Malformed(f"token header is not valid: {_first_line(exc)}") from None


# A shortcut for claims written as kube-apiserver writes them (compact, ASCII, no null): the
# strict reader costs about twice as much per token (docs/PERFORMANCE.md, first sight).
_PLAIN_CLAIMS = msgspec.json.Decoder(Claims)
_ANY_JSON = msgspec.json.Decoder()
_ENCODE = msgspec.json.encode


def _plain_claims(payload: bytes) -> Claims | None:
    """The claims when `payload` is plain enough to read fast with the same answer as the
    strict reader; None when the strict reader must decide (and name what is wrong)."""
    if not payload.isascii() or b"null" in payload:
        return None
    try:
        members = _ANY_JSON.decode(payload)
        # Written back byte for byte: no whitespace, no escape, and no member named twice (a
        # repeated name would have been written once).
        if _ENCODE(members) != payload or len(_ISS_SPELLINGS.intersection(members)) > 1:
            return None
        return _PLAIN_CLAIMS.decode(payload)
    except (msgspec.DecodeError, TypeError, RecursionError):
        return None


def _first_line(exc: BaseException) -> str:
    # msgspec messages name the path (`$.exp`), never echo the value, so they are safe to show.
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def to_builtins(claims: Claims) -> dict[str, Any]:
    """The claims as plain JSON-able data, with the wire names (for `decode` and debugging)."""
    data: dict[str, Any] = msgspec.to_builtins(claims)
    return data
