"""Token claims as kube-apiserver writes them, and the one decoder that turns bytes into them."""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

from domain.errors import Malformed

__all__ = [
    "JWT_MAX_BYTES",
    "Claims",
    "Header",
    "KubernetesClaim",
    "ObjectRef",
    "decode_claims",
    "decode_header",
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
    """The JOSE header fields we look at; anything else (jku, x5u, jwk...) is ignored."""

    alg: _Short
    kid: _Short | None = None
    typ: _Short | None = None
    crit: list[_Short] | None = None


_claims_decoder = msgspec.json.Decoder(Claims)
_header_decoder = msgspec.json.Decoder(Header)


def decode_claims(payload: bytes) -> Claims:
    """Decode a JWT payload (raw JSON bytes) into `Claims`; any shape or type error is Malformed."""
    try:
        return _claims_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
        raise Malformed(f"token claims are not valid: {_first_line(exc)}") from None


def decode_header(raw: bytes) -> Header:
    """Decode a JOSE header (raw JSON bytes); any shape or type error is Malformed."""
    try:
        return _header_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
        raise Malformed(f"token header is not valid: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    # msgspec messages name the path (`$.exp`), never echo the value, so they are safe to show.
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def to_builtins(claims: Claims) -> dict[str, Any]:
    """The claims as plain JSON-able data, with the wire names (for `decode` and debugging)."""
    data: dict[str, Any] = msgspec.to_builtins(claims)
    return data
