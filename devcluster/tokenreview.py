"""TokenReview: kube-apiserver's service account authenticator (pkg/serviceaccount/jwt.go)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from adapters.fake_keyset import FakeKeySet
from devcluster.registry import Registry
from devcluster.status import bad_request
from domain.ports import Clock

__all__ = [
    "LEEWAY_SECONDS",
    "Authenticator",
    "BoundObjects",
    "PublicKey",
    "PublicKeys",
    "RegistryObjects",
    "Review",
    "token_review",
]

# go-jose jwt.DefaultLeeway, used by kube-apiserver for exp, nbf and iat.
LEEWAY_SECONDS = 60
_PRIMITIVE_ERROR = "go-jose/go-jose: error in cryptographic primitive"
_UNSUPPORTED_ERROR = "go-jose/go-jose: unknown/unsupported algorithm"
_NUMERIC_DATE_ERROR = "go-jose/go-jose/jwt: expected number value to unmarshal NumericDate"
_AUDIENCE_ERROR = "go-jose/go-jose/jwt: expected string or array value to unmarshal to Audience"
_INVALIDATED = "service account token has been invalidated"
# encoding/json's bound on nesting (scanner.go maxNestingDepth); go-jose's older fork has none.
_STD_JSON_MAX_DEPTH = 10_000
# time.Unix counts seconds from year 1 internally, in an int64 that wraps (time.go unixToInternal).
_UNIX_TO_INTERNAL = 62_135_596_800
_INT64_MIN = -(2**63)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass
class Review:
    """The outcome of authenticating a bearer token, as TokenReview reports it."""

    authenticated: bool
    error: str = ""
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)
    audiences: tuple[str, ...] = ()

    def status(self) -> dict[str, Any]:
        """TokenReviewStatus as kube-apiserver encodes it (Go omitempty: no false, no "")."""
        user: dict[str, Any] = {}
        if self.username:
            user["username"] = self.username
        if self.uid:
            user["uid"] = self.uid
        if self.groups:
            user["groups"] = list(self.groups)
        if self.extra:
            # A Go map: encoding/json writes its keys sorted.
            user["extra"] = dict(sorted(self.extra.items()))
        status: dict[str, Any] = {}
        if self.authenticated:
            status["authenticated"] = True
        status["user"] = user
        if self.audiences:
            status["audiences"] = list(self.audiences)
        if self.error:
            status["error"] = self.error
        return status


class _Invalid(Exception):
    """A token the service account authenticator recognised and rejected."""


class _Unrecognised(Exception):
    """A token the service account authenticator does not handle (not a JWT of our issuer)."""


class _Abort(Exception):
    """go-jose's json gave up (a repeated member, a failed UnmarshalJSON) or a type did not fit."""


@dataclass(frozen=True)
class PublicKeys:
    """The keys the authenticator verifies with, oldest first (pkg/serviceaccount keys getter)."""

    published: Callable[[], Sequence[tuple[str, PublicKey]]]

    def get(self, kid: str) -> list[PublicKey]:
        """GetPublicKeys: the keys with this kid, or every key for a token without one."""
        return [key for key_id, key in self.published() if not kid or key_id == kid]

    @classmethod
    def of_keyset(cls, keyset: FakeKeySet) -> PublicKeys:
        """The keyset's published keys (their public halves), as it rotates and retires them."""

        def published() -> list[tuple[str, PublicKey]]:
            return [
                (kid, keyset.signing_key(kid).private_key.public_key())
                for kid in keyset.published_kids
            ]

        return cls(published)

    @classmethod
    def of_jwks(cls, jwks: Mapping[str, Any]) -> PublicKeys:
        """A published JWKS of RSA and EC keys, e.g. one saved from GET /openid/v1/jwks."""
        keys = [(str(jwk["kid"]), _jwks_key(jwk)) for jwk in jwks["keys"]]
        return cls(lambda: keys)


class BoundObjects(Protocol):
    """The objects a token names, by name: each one's UID, or None when there is no such object
    (pkg/serviceaccount ServiceAccountTokenGetter)."""

    def service_account_uid(self, namespace: str, name: str) -> str | None: ...

    def pod_uid(self, namespace: str, name: str) -> str | None: ...

    def secret_uid(self, namespace: str, name: str) -> str | None: ...

    def node_uid(self, name: str) -> str | None: ...


@dataclass(frozen=True)
class RegistryObjects(BoundObjects):
    """The registry's objects; an empty name or namespace names nothing, as in the API."""

    registry: Registry

    def service_account_uid(self, namespace: str, name: str) -> str | None:
        account = self.registry.service_accounts.get((namespace, name))
        return account.uid if account is not None and namespace and name else None

    def pod_uid(self, namespace: str, name: str) -> str | None:
        pod = self.registry.pods.get((namespace, name))
        return pod.uid if pod is not None and namespace and name else None

    def secret_uid(self, namespace: str, name: str) -> str | None:
        # No Secrets here: a secret-bound token's secret is gone.
        return None

    def node_uid(self, name: str) -> str | None:
        node = self.registry.node
        return node.uid if name and name == node.name else None


@dataclass(frozen=True)
class Authenticator:
    """Authenticates service account tokens against published keys and the objects they name."""

    issuer: str
    api_audiences: tuple[str, ...]
    keys: PublicKeys
    objects: BoundObjects
    clock: Clock

    def authenticate(self, token: str, audiences: Sequence[str] | None = None) -> Review:
        """Authenticate a bearer token for `audiences` (default: the API audiences)."""
        requested = tuple(audiences) if audiences else self.api_audiences
        try:
            return self._authenticate(token, requested)
        except _Unrecognised:
            # No authenticator took the token: bearertoken.go's default error.
            return Review(False, "invalid bearer token")
        except _Invalid as exc:
            # The union of request authenticators aggregates the errors, as seen in
            # kube-apiserver's logs and TokenReview answers.
            return Review(False, f"[invalid bearer token, {exc}]")

    def authenticate_header(self, authorization: str | None) -> Review:
        """authenticator/request/bearertoken: `Bearer <token>` (scheme case-insensitive)."""
        parts = (authorization or "").strip().split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return Review(False, "")
        return self.authenticate(parts[1])

    # --- jwt.go: is it ours, and is it signed by a published key ------------------------------

    def _authenticate(self, token: str, requested: tuple[str, ...]) -> Review:
        # hasCorrectIssuer: only tokens claiming our issuer are this authenticator's.
        if _claimed_issuer(token) != self.issuer:
            raise _Unrecognised
        # jwt.ParseSigned: a token go-jose cannot take apart is not one of ours either.
        header, protected, payload, signature = _parse_signed(token)
        kid = header.get("kid", "")
        keys = self.keys.get(kid)
        if not keys:
            raise _Invalid("invalid signature, no keys found")
        errors: list[str] = []
        for key in keys:
            # tok.Claims(key, public, private): verify, then read the claims; the first key
            # for which both work wins, else every key's error is reported.
            error = _verify(key, header, protected, payload, signature)
            if not error:
                try:
                    claims = _read_claims(payload)
                    break
                except _Abort as exc:
                    error = str(exc)
            errors.append(error)
        else:
            raise _Invalid(_aggregate(errors))
        # jwt.go re-checks the issuer as go-jose read it (case-sensitive, no duplicates).
        if claims.issuer != self.issuer:
            raise _Invalid(f"token issuer {_go_quote(claims.issuer)} is invalid")
        return self._validate(claims, requested)

    # --- claims.go: audiences, times, and the objects the token is bound to -------------------

    def _validate(self, claims: _Claims, requested: tuple[str, ...]) -> Review:
        granted = self._granted_audiences(claims.audiences, requested)
        self._check_times(claims)
        namespace, account = claims.namespace, claims.service_account
        uid = self.objects.service_account_uid(namespace, account.name)
        if uid is None:
            raise _Invalid(f"serviceaccounts {_go_quote(account.name)} not found")
        if uid != account.uid:
            raise _Invalid(f"service account UID ({uid}) does not match claim ({account.uid})")
        extra = self._bound_objects(claims)
        if claims.jti:
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims.jti}"]
        return Review(
            True,
            username=f"system:serviceaccount:{namespace}:{account.name}",
            uid=account.uid,
            groups=(
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
            extra=extra,
            audiences=granted,
        )

    def _granted_audiences(
        self, audiences: tuple[str, ...], requested: tuple[str, ...]
    ) -> tuple[str, ...]:
        """The token's audiences that were requested, in the token's order; none is an error."""
        token_audiences = audiences or self.api_audiences  # legacy tokens: the implicit ones
        granted = tuple(a for a in token_audiences if a in requested)
        if not granted:
            raise _Invalid(
                f"token audiences {_go_quote_list(token_audiences)} is invalid for the target "
                f"audiences {_go_quote_list(requested)}"
            )
        return granted

    def _check_times(self, claims: _Claims) -> None:
        # go-jose jwt.Claims.ValidateWithLeeway, comparing time.Unix(NumericDate, 0): a value
        # past what Go's time holds wraps into the far past (a huge exp has expired; a huge
        # nbf or iat passes).
        now = self.clock()
        if claims.not_before is not None and now + LEEWAY_SECONDS < _go_unix(claims.not_before):
            raise _Invalid("service account token is not valid yet")
        if claims.expiry is not None and now - LEEWAY_SECONDS > _go_unix(claims.expiry):
            raise _Invalid("service account token has expired")
        if claims.issued_at is not None and now + LEEWAY_SECONDS < _go_unix(claims.issued_at):
            raise _Invalid("service account token is issued in the future")

    def _bound_objects(self, claims: _Claims) -> dict[str, list[str]]:
        """The bound secret, pod or node must still exist with the same UID; the user's extra."""
        namespace, secret, pod, node = claims.namespace, claims.secret, claims.pod, claims.node
        extra: dict[str, list[str]] = {}
        if secret is not None:
            uid = self.objects.secret_uid(namespace, secret.name)
            if uid is None:
                raise _Invalid(_INVALIDATED)
            if uid != secret.uid:
                raise _Invalid(
                    f"secret UID ({uid}) does not match service account secret ref claim "
                    f"({secret.uid})"
                )
        if pod is not None:
            uid = self.objects.pod_uid(namespace, pod.name)
            if uid is None:
                raise _Invalid(_INVALIDATED)
            if uid != pod.uid:
                raise _Invalid(
                    f"pod UID ({uid}) does not match service account pod ref claim ({pod.uid})"
                )
            if pod.name and pod.uid:
                extra["authentication.kubernetes.io/pod-name"] = [pod.name]
                extra["authentication.kubernetes.io/pod-uid"] = [pod.uid]
        if node is not None and pod is None:
            # A pod-bound token's node is only informative; a node-bound one's must exist.
            uid = self.objects.node_uid(node.name)
            if uid is None:
                raise _Invalid(_INVALIDATED)
            if uid != node.uid:
                raise _Invalid(
                    f"node UID ({uid}) does not match service account node ref claim ({node.uid})"
                )
        if node is not None and node.name:
            extra["authentication.kubernetes.io/node-name"] = [node.name]
            if node.uid:
                extra["authentication.kubernetes.io/node-uid"] = [node.uid]
        return extra


def token_review(authenticator: Authenticator, body: Any) -> dict[str, Any]:
    """POST /apis/authentication.k8s.io/v1/tokenreviews (pkg/registry/authentication)."""
    if not isinstance(body, dict) or body.get("kind", "TokenReview") != "TokenReview":
        raise bad_request("the body of the request is not a TokenReview object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise bad_request("the body of the request is not a TokenReview object")
    token, audiences = spec.get("token"), spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise bad_request("spec.audiences must be a list of strings")
    if not isinstance(token, str) or not token:
        raise bad_request("token is required for TokenReview in authentication")
    review = authenticator.authenticate(token, audiences or None)
    return {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        # kube-apiserver echoes the spec it was sent, token included.
        "spec": {"token": token, **({"audiences": audiences} if audiences else {})},
        "status": review.status(),
    }


# --- Go's text: base64, whitespace and quoting -------------------------------------------------

# unicode.IsSpace: what go-jose's stripWhitespace drops and strings.TrimSpace trims.
_GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_RAW_URL_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
_GO_ESCAPES |= {"\v": r"\v", '"': r"\"", "\\": r"\\"}


def _raw_url_decode(segment: str) -> bytes | None:
    """base64.RawURLEncoding.DecodeString: no padding, CR and LF skipped, loose trailing bits."""
    text = segment.replace("\r", "").replace("\n", "")
    if not _RAW_URL_ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        return None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _std_decode(text: str) -> bytes | None:
    """base64.StdEncoding.DecodeString (x5c entries): padded, CR and LF skipped."""
    data = text.replace("\r", "").replace("\n", "")
    if len(data) % 4 or not data.isascii():
        return None
    try:
        return binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except binascii.Error:
        return None


def _go_quote(value: str) -> str:
    """fmt's %q of a string (strconv.Quote)."""
    out = []
    for char in value:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _go_quote_list(values: Iterable[str]) -> str:
    # fmt's %q on a []string: ["a" "b"].
    return "[" + " ".join(_go_quote(v) for v in values) + "]"


def _aggregate(errors: Sequence[str]) -> str:
    """utilerrors.NewAggregate(errs).Error(): one as is, several deduplicated in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


def _go_unix(seconds: int) -> int:
    """The Unix second Go compares for time.Unix(seconds, 0), after its internal int64 wraps."""
    internal = (seconds + _UNIX_TO_INTERNAL - _INT64_MIN) % 2**64 + _INT64_MIN
    return internal - _UNIX_TO_INTERNAL


# --- Go's JSON, as its scanner reads it ----------------------------------------------------------


class _Members(list[tuple[str, Any]]):
    """A JSON object as Go's decoders meet it: its members in order, a repeated name kept."""


class _Number(str):
    """A JSON number's text: Go converts it only when the destination type asks."""


class _JsonError(ValueError):
    """Not JSON as Go's scanner reads it."""


_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS: tuple[tuple[str, Any], ...] = (("true", True), ("false", False), ("null", None))
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')


def _go_json(raw: bytes, max_depth: int | None = None) -> Any:
    """Parse JSON as Go's scanner does, without recursion. Invalid UTF-8 and lone surrogates
    read as U+FFFD (decode.go unquote), numbers stay text, objects keep repeated members.

    Raises:
        _JsonError.
    """
    text = raw.decode("utf-8", "surrogateescape")
    stack: list[_Members | list[Any]] = []
    names: list[str] = []  # the pending member name of each open object
    value: Any
    pos = _skip(text, 0)
    while True:
        char = text[pos : pos + 1]
        if char in ("{", "["):
            stack.append(_Members() if char == "{" else [])
            if max_depth is not None and len(stack) > max_depth:
                raise _JsonError("exceeded max depth")
            pos = _skip(text, pos + 1)
            if not text.startswith("}" if char == "{" else "]", pos):
                if char == "{":
                    pos = _member_name(text, pos, names)
                continue
            value, pos = stack.pop(), pos + 1
        else:
            value, pos = _scalar(text, pos)
        # A value is complete: add it to its container; close each container that ends here.
        while stack:
            container = stack[-1]
            if isinstance(container, _Members):
                container.append((names.pop(), value))
            else:
                container.append(value)
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
                if isinstance(container, _Members):
                    pos = _member_name(text, pos, names)
                break
            if not text.startswith("}" if isinstance(container, _Members) else "]", pos):
                raise _JsonError("invalid character after a value")
            value, pos = stack.pop(), pos + 1
        else:
            if _skip(text, pos) != len(text):
                raise _JsonError("invalid character after top-level value")
            return value


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _member_name(text: str, pos: int, names: list[str]) -> int:
    if not text.startswith('"', pos):
        raise _JsonError("looking for beginning of object key string")
    name, pos = _string(text, pos)
    pos = _skip(text, pos)
    if not text.startswith(":", pos):
        raise _JsonError("after object key")
    names.append(name)
    return _skip(text, pos + 1)


def _scalar(text: str, pos: int) -> tuple[Any, int]:
    if text.startswith('"', pos):
        return _string(text, pos)
    number = _NUMBER.match(text, pos)
    if number:
        return _Number(number.group()), number.end()
    for word, value in _LITERALS:
        if text.startswith(word, pos):
            return value, pos + len(word)
    raise _JsonError("looking for beginning of value")


def _string(text: str, pos: int) -> tuple[str, int]:
    literal = _STRING.match(text, pos)
    if literal is None:
        raise _JsonError("invalid string literal")
    value: str = json.loads(literal.group())
    return _SURROGATE.sub("\ufffd", value), literal.end()


def _is_string(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, _Number)


def _kind(value: Any) -> str:
    """The JSON kind UnmarshalTypeError names."""
    if isinstance(value, _Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "object" if isinstance(value, _Members) else "array"


def _members(value: _Members) -> Iterator[tuple[str, Any]]:
    """An object's members in order; go-jose's json fork refuses a name it has already seen
    (json/decode.go object), when it decodes the object into a type."""
    seen: set[str] = set()
    for name, member in value:
        if name in seen:
            raise _Abort(f"json: duplicate key '{name}' in object")
        seen.add(name)
        yield name, member


def _check_any(value: Any) -> None:
    """go-jose's json into interface{}: no object names a member twice, every number is a
    float64 (decode.go objectInterface, convertNumber)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _Members):
            pending.extend(member for _, member in _members(item))
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, _Number) and not math.isfinite(float(item)):
            raise _Abort(f"json: cannot unmarshal number {item} into Go value of type float64")


@dataclass
class _Decoding:
    """One json.Unmarshal into a Go type: the first type mismatch is kept while decoding goes on,
    then returned (decode.go saveError)."""

    error: str = ""

    def mismatch(self, value: Any, go_type: str) -> None:
        if not self.error:
            self.error = f"json: cannot unmarshal {_kind(value)} into Go value of type {go_type}"

    def string(self, value: Any) -> str:
        if _is_string(value):
            return str(value)
        if value is not None:  # null leaves a string as it was
            self.mismatch(value, "string")
        return ""

    def struct(self, value: Any, go_type: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, _Members):
            return _members(value)
        if value is not None:
            self.mismatch(value, go_type)
        return iter(())

    def done(self) -> None:
        if self.error:
            raise _Abort(self.error)


# --- go-jose's jwt: the claims kube-apiserver reads ----------------------------------------------


@dataclass
class _Ref:
    """claims.go `ref`: a bound object's name and UID."""

    name: str = ""
    uid: str = ""


@dataclass
class _Claims:
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


def _read_claims(payload: bytes) -> _Claims:
    """tok.Claims(key, public, private): the payload into jwt.Claims, then into privateClaims,
    each with go-jose's json (case-sensitive names, no member twice).

    Raises:
        _Abort: with go-jose's or Go's error text.
    """
    try:
        value = _go_json(payload)
    except _JsonError as exc:
        raise _Abort(f"invalid character in JSON: {exc}") from None
    claims = _Claims()
    public = _Decoding()
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
    private = _Decoding()
    for name, member in private.struct(value, "serviceaccount.privateClaims"):
        if name == "kubernetes.io":
            _read_kubernetes(member, claims, private)
    private.done()
    return claims


_TIME_CLAIMS = {"exp": "expiry", "nbf": "not_before", "iat": "issued_at"}


def _read_kubernetes(value: Any, claims: _Claims, decoding: _Decoding) -> None:
    for name, member in decoding.struct(value, "serviceaccount.kubernetes"):
        if name == "namespace":
            claims.namespace = decoding.string(member)
        elif name == "serviceaccount":
            claims.service_account = _ref(member, decoding) or _Ref()
        elif name in ("pod", "secret", "node"):
            setattr(claims, name, _ref(member, decoding))
        elif name == "warnafter":
            _numeric_date(member)


def _ref(value: Any, decoding: _Decoding) -> _Ref | None:
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
    seconds = float(value) if isinstance(value, _Number) else math.inf
    if not math.isfinite(seconds):
        raise _Abort(_NUMERIC_DATE_ERROR)
    return int(seconds) if _INT64_MIN <= seconds < 2**63 else _INT64_MIN


def _audience(value: Any) -> tuple[str, ...]:
    """jwt.Audience.UnmarshalJSON: a string or an array of strings; even null is refused."""
    _check_any(value)
    if _is_string(value):
        return (str(value),)
    if isinstance(value, list) and all(_is_string(item) for item in value):
        return tuple(str(item) for item in value)
    raise _Abort(_AUDIENCE_ERROR)


# --- jwt.go hasCorrectIssuer and go-jose's ParseSigned -------------------------------------------


def _claimed_issuer(token: str) -> str | None:
    """The `iss` hasCorrectIssuer reads from the unverified payload, None if it cannot.

    It uses Go's encoding/json: member names match without case, with Unicode folding (`ISS`,
    and `i` followed by two long s, U+017F, read as `iss`); the last match wins, null leaves it
    as it was, and any other non-string fails the whole read.
    """
    if "".join(c for c in token if c not in _GO_SPACE).startswith("{"):
        return None
    parts = token.split(".")
    payload = _raw_url_decode(parts[1]) if len(parts) == 3 else None
    if payload is None:
        return None
    try:
        value = _go_json(payload, _STD_JSON_MAX_DEPTH)
    except _JsonError:
        return None
    if not isinstance(value, _Members):
        return "" if value is None else None
    issuer = ""
    for name, member in value:
        if len(name) == 3 and name[0] in "iI" and name[1] in "sS\u017f" and name[2] in "sS\u017f":
            if _is_string(member):
                issuer = str(member)
            elif member is not None:
                return None
    return issuer


def _parse_signed(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """go-jose v2 jws.go ParseSigned for the compact form: whitespace stripped, three unpadded
    base64url parts, and a protected header it can type; else the token is not kube's."""
    parts = "".join(c for c in token if c not in _GO_SPACE).split(".")
    decoded = [_raw_url_decode(part) for part in parts]
    if len(parts) != 3 or None in decoded:
        raise _Unrecognised
    protected, payload, signature = (part or b"" for part in decoded)
    try:
        header = _read_header(protected)
    except (_JsonError, _Abort):
        raise _Unrecognised from None
    return header, protected, payload, signature


def _read_header(protected: bytes) -> dict[str, Any]:
    """The protected header as go-jose v2 shared.go rawHeader.sanitized() types it: each member
    once; `kid`, `alg`, `nonce` strings; `jwk` a public key; `x5c` certificates; any other
    member any JSON (`jku` and `x5u` are not typed). Null members are absent."""
    value = _go_json(protected) if protected else None  # an empty header: no members
    if value is not None and not isinstance(value, _Members):
        raise _Abort("json: cannot unmarshal into jose.rawHeader")
    header = {name: member for name, member in _members(value or _Members()) if member is not None}
    for name, member in header.items():
        if name in ("kid", "alg", "nonce") and not _is_string(member):
            raise _Abort(f"failed to unmarshal {name}")
        if name == "x5c" and _certificates(member) is None:
            raise _Abort("failed to unmarshal x5c header")
        if name == "jwk" and not _public_jwk(member):
            # jws.go sanitized: RFC 7515 4.1.3, only a valid public key may be embedded.
            raise _Abort("go-jose/go-jose: invalid embedded jwk, must be public key")
        if name not in ("kid", "alg", "nonce", "x5c", "jwk"):
            _check_any(member)
    return header


def _certificates(value: Any) -> list[x509.Certificate] | None:
    """A `[]string` of standard base64 DER certificates (shared.go parseCertificateChain)."""
    if not isinstance(value, list):
        return None
    certificates = []
    for item in value:
        der = _std_decode(str(item or "")) if item is None or _is_string(item) else None
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
    if not isinstance(value, _Members):
        return False
    try:
        members = {name: member for name, member in _members(value) if member is not None}
    except _Abort:
        return False
    data: dict[str, bytes] = {}
    for name, member in members.items():
        if name in _JWK_STRINGS | _JWK_BYTES and not _is_string(member):
            return False
        # byteBuffer: base64url, padding tolerated (encoding.go base64URLDecode).
        decoded = _raw_url_decode(str(member).rstrip("=")) if name in _JWK_BYTES else b""
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
    digest = _raw_url_decode(str(value).rstrip("="))
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


# --- go-jose v2 jws.go DetachedVerify and asymmetric.go verifyPayload ----------------------------

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# ES sizes come from the algorithm, not from the key's curve (ecEncrypterVerifier).
_EC_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}
_ASYMMETRIC = frozenset({f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in _HASHES})


def _verify(
    key: PublicKey, header: Mapping[str, Any], protected: bytes, payload: bytes, signature: bytes
) -> str:
    """DetachedVerify with one key: "" when the signature holds, else go-jose's error."""
    critical = header.get("crit")
    if critical is not None:
        names = critical if isinstance(critical, list) else None
        if names is None:
            return f"json: cannot unmarshal {_kind(critical)} into Go value of type []string"
        mistyped = [name for name in names if name is not None and not _is_string(name)]
        if mistyped:
            return f"json: cannot unmarshal {_kind(mistyped[0])} into Go value of type string"
        if any(name != "b64" for name in names):  # supportedCritical: b64 only
            return _PRIMITIVE_ERROR
    if not protected:
        # computeAuthData re-reads the protected header: nothing is not JSON.
        return _PRIMITIVE_ERROR
    # computeAuthData: the segments re-encoded; with b64 JSON false, the raw payload (RFC 7797).
    body = payload if header.get("b64") is False else _raw_url_encode(payload)
    signing_input = _raw_url_encode(protected) + b"." + body
    alg = str(header.get("alg", ""))
    if alg not in _ASYMMETRIC:
        # go-jose wraps this in ErrCryptoFailure too; the emulator has long named the cause.
        return _UNSUPPORTED_ERROR
    return "" if _signature_holds(key, alg, signing_input, signature) else _PRIMITIVE_ERROR


def _signature_holds(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """RS and PS on an RSA key, ES on an EC key; any other pairing is unsupported."""
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


def _jwks_key(jwk: Mapping[str, Any]) -> PublicKey:
    """An RSA or EC public key from its JWK."""

    def number(name: str) -> int:
        return int.from_bytes(_raw_url_decode(str(jwk[name])) or b"", "big")

    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    curve, _ = _CURVES[str(jwk["crv"])]
    return ec.EllipticCurvePublicNumbers(number("x"), number("y"), curve).public_key()
