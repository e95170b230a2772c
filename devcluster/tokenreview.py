"""TokenReview: kube-apiserver's service account authenticator (pkg/serviceaccount/jwt.go)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.fake_keyset import FakeKeySet
from devcluster.gojose import (
    Claims,
    NotSigned,
    PublicKey,
    claimed_issuer,
    jwks_key,
    parse_signed,
    read_claims,
    verify,
)
from devcluster.gojson import Abort, aggregate, go_quote, go_quote_list, go_unix
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
    "TokenAuthenticator",
    "bearer_token",
    "token_review",
]

# go-jose jwt.DefaultLeeway, used by kube-apiserver for exp, nbf and iat.
LEEWAY_SECONDS = 60
_INVALIDATED = "service account token has been invalidated"


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
        keys = [(str(jwk["kid"]), jwks_key(jwk)) for jwk in jwks["keys"]]
        return cls(lambda: keys)


class BoundObjects(Protocol):
    """The objects a token names, by name: each one's UID, or None when there is no such object
    (pkg/serviceaccount ServiceAccountTokenGetter)."""

    def service_account_uid(self, namespace: str, name: str) -> str | None: ...

    def pod_uid(self, namespace: str, name: str) -> str | None: ...

    def secret_uid(self, namespace: str, name: str) -> str | None: ...

    def node_uid(self, name: str) -> str | None: ...


# claims.go: a pod whose deletionTimestamp is more than this long past no longer vouches.
DELETED_POD_GRACE_SECONDS = 60


@dataclass(frozen=True)
class RegistryObjects(BoundObjects):
    """The registry's objects; an empty name or namespace names nothing, as in the API."""

    registry: Registry
    clock: Clock

    def service_account_uid(self, namespace: str, name: str) -> str | None:
        account = self.registry.service_accounts.get((namespace, name))
        return account.uid if account is not None and namespace and name else None

    def pod_uid(self, namespace: str, name: str) -> str | None:
        pod = self.registry.pods.get((namespace, name))
        if pod is None or not namespace or not name:
            return None
        # claims.go: a terminating pod's tokens stay valid until 60 s past its
        # deletionTimestamp (DeletionTimestamp.Before(now - 60 s) is "invalidated").
        deleted = pod.deletion_timestamp
        if deleted is not None and deleted < self.clock() - DELETED_POD_GRACE_SECONDS:
            return None
        return pod.uid

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
        token = bearer_token(authorization)
        return self.authenticate(token) if token else Review(False, "")

    # --- jwt.go: is it ours, and is it signed by a published key ------------------------------

    def _authenticate(self, token: str, requested: tuple[str, ...]) -> Review:
        # hasCorrectIssuer: only tokens claiming our issuer are this authenticator's.
        if claimed_issuer(token) != self.issuer:
            raise _Unrecognised
        # jwt.ParseSigned: a token go-jose cannot take apart is not one of ours either.
        try:
            header, protected, payload, signature = parse_signed(token)
        except NotSigned:
            raise _Unrecognised from None
        kid = header.get("kid", "")
        keys = self.keys.get(kid)
        if not keys:
            raise _Invalid("invalid signature, no keys found")
        errors: list[str] = []
        for key in keys:
            # tok.Claims(key, public, private): verify, then read the claims; the first key
            # for which both work wins, else every key's error is reported.
            error = verify(key, header, protected, payload, signature)
            if not error:
                try:
                    claims = read_claims(payload)
                    break
                except Abort as exc:
                    error = str(exc)
            errors.append(error)
        else:
            raise _Invalid(aggregate(errors))
        # jwt.go re-checks the issuer as go-jose read it (case-sensitive, no duplicates).
        if claims.issuer != self.issuer:
            raise _Invalid(f"token issuer {go_quote(claims.issuer)} is invalid")
        return self._validate(claims, requested)

    # --- claims.go: audiences, times, and the objects the token is bound to -------------------

    def _validate(self, claims: Claims, requested: tuple[str, ...]) -> Review:
        granted = self._granted_audiences(claims.audiences, requested)
        self._check_times(claims)
        namespace, account = claims.namespace, claims.service_account
        uid = self.objects.service_account_uid(namespace, account.name)
        if uid is None:
            raise _Invalid(f"serviceaccounts {go_quote(account.name)} not found")
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
                f"token audiences {go_quote_list(token_audiences)} is invalid for the target "
                f"audiences {go_quote_list(requested)}"
            )
        return granted

    def _check_times(self, claims: Claims) -> None:
        # go-jose jwt.Claims.ValidateWithLeeway, comparing time.Unix(NumericDate, 0): a value
        # past what Go's time holds wraps into the far past (a huge exp has expired; a huge
        # nbf or iat passes).
        now = self.clock()
        if claims.not_before is not None and now + LEEWAY_SECONDS < go_unix(claims.not_before):
            raise _Invalid("service account token is not valid yet")
        if claims.expiry is not None and now - LEEWAY_SECONDS > go_unix(claims.expiry):
            raise _Invalid("service account token has expired")
        if claims.issued_at is not None and now + LEEWAY_SECONDS < go_unix(claims.issued_at):
            raise _Invalid("service account token is issued in the future")

    def _bound_objects(self, claims: Claims) -> dict[str, list[str]]:
        """The bound secret, pod or node must still exist with the same UID; the user's extra."""
        namespace, secret, pod, node = claims.namespace, claims.secret, claims.pod, claims.node
        extra: dict[str, list[str]] = {}
        if secret is not None:
            _check_ref("secret", self.objects.secret_uid(namespace, secret.name), secret.uid)
        if pod is not None:
            _check_ref("pod", self.objects.pod_uid(namespace, pod.name), pod.uid)
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


def bearer_token(authorization: str | None) -> str:
    """authenticator/request/bearertoken: the token of `Bearer <token>`, or "" when none."""
    parts = (authorization or "").strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return ""
    return parts[1]


class TokenAuthenticator(Protocol):
    """What TokenReview asks: who a bearer token is, for the requested audiences."""

    def authenticate(self, token: str, audiences: Sequence[str] | None = None) -> Review: ...


def _check_ref(kind: str, found: str | None, claimed: str) -> None:
    # claims.go: the bound object must still exist, with the UID the token names.
    if found is None:
        raise _Invalid(_INVALIDATED)
    if found != claimed:
        raise _Invalid(
            f"{kind} UID ({found}) does not match service account {kind} ref claim ({claimed})"
        )


def token_review(authenticator: TokenAuthenticator, body: Any) -> dict[str, Any]:
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
