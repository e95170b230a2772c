"""TokenReview: kube-apiserver's service account authenticator (pkg/serviceaccount/jwt.go)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from adapters.fake_keyset import FakeKeySet
from devcluster.registry import Registry
from devcluster.status import bad_request
from domain.claims import ObjectRef
from domain.errors import Malformed
from domain.jws import peek
from domain.ports import Clock

__all__ = ["LEEWAY_SECONDS", "Authenticator", "Review", "token_review"]

# go-jose jwt.DefaultLeeway, used by kube-apiserver for exp, nbf and iat.
LEEWAY_SECONDS = 60
_PRIMITIVE_ERROR = "go-jose/go-jose: error in cryptographic primitive"
_UNVALIDATED = "service account token claims could not be validated"
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
class Authenticator:
    """Authenticates service account tokens against the keyset and the registry's objects."""

    issuer: str
    api_audiences: tuple[str, ...]
    keyset: FakeKeySet
    registry: Registry
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
        token = token.strip()
        # Go's base64.RawURLEncoding takes no padding; a JSON-serialised JWS is not one of ours.
        if token.startswith("{") or "=" in token:
            raise _Unrecognised
        try:
            header, payload, signing_input, signature = peek(token)
        except Malformed as exc:
            raise _Unrecognised from exc
        # hasCorrectIssuer: only tokens claiming our issuer are this authenticator's.
        if payload.get("iss") != self.issuer:
            raise _Unrecognised
        kid = header.get("kid") if isinstance(header.get("kid"), str) else ""
        candidates = [k for k in self.keyset.published_kids if not kid or k == kid]
        if not candidates:
            raise _Invalid("invalid signature, no keys found")
        errors = [self._verify(k, header.get("alg"), signing_input, signature) for k in candidates]
        if all(errors):
            messages = [e for e in errors if e]
            raise _Invalid(messages[0] if len(messages) == 1 else f"[{', '.join(messages)}]")
        return self._validate(payload, requested)

    def _verify(self, kid: str, alg: Any, signing_input: bytes, signature: bytes) -> str:
        """go-jose's verdict for one key: "" when the signature holds, else its error."""
        key = self.keyset.signing_key(kid)
        if alg not in ("RS256", "ES256"):
            return "go-jose/go-jose: unknown/unsupported algorithm"
        if alg != key.alg:
            return _PRIMITIVE_ERROR
        public = key.private_key.public_key()
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            else:
                if len(signature) != 64:
                    return _PRIMITIVE_ERROR
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return _PRIMITIVE_ERROR
        return ""

    # --- claims.go: audiences, times, and the objects the token is bound to -------------------

    def _validate(self, payload: dict[str, Any], requested: tuple[str, ...]) -> Review:
        granted = self._granted_audiences(payload.get("aud"), requested)
        self._check_times(payload)
        private = payload.get("kubernetes.io")
        if not isinstance(private, dict):
            raise _Invalid(_UNVALIDATED)
        namespace = private.get("namespace")
        sa_ref = _ref(private.get("serviceaccount"))
        if not isinstance(namespace, str) or sa_ref is None:
            raise _Invalid(_UNVALIDATED)
        account = self.registry.service_accounts.get((namespace, sa_ref.name))
        if account is None:
            raise _Invalid(f'serviceaccounts "{sa_ref.name}" not found')
        if account.uid != sa_ref.uid:
            raise _Invalid(
                f"service account UID ({account.uid}) does not match claim ({sa_ref.uid})"
            )
        extra = self._bound_objects(namespace, private)
        jti = payload.get("jti")
        if isinstance(jti, str) and jti:
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={jti}"]
        return Review(
            True,
            username=f"system:serviceaccount:{namespace}:{sa_ref.name}",
            uid=sa_ref.uid,
            groups=(
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ),
            extra=extra,
            audiences=granted,
        )

    def _granted_audiences(self, aud: Any, requested: tuple[str, ...]) -> tuple[str, ...]:
        """The token's audiences that were requested, in the token's order; none is an error."""
        token_audiences = (aud,) if isinstance(aud, str) else tuple(aud or ())
        if not all(isinstance(a, str) for a in token_audiences):
            raise _Invalid(_UNVALIDATED)
        if not token_audiences:
            token_audiences = self.api_audiences  # legacy tokens: the implicit audiences
        granted = tuple(a for a in token_audiences if a in requested)
        if not granted:
            raise _Invalid(
                f"token audiences {_go_quote_list(token_audiences)} is invalid for the target "
                f"audiences {_go_quote_list(requested)}"
            )
        return granted

    def _check_times(self, payload: dict[str, Any]) -> None:
        now = self.clock()
        times = {name: payload.get(name) for name in ("nbf", "exp", "iat")}
        if any(v is not None and not isinstance(v, int | float) for v in times.values()):
            raise _Invalid(_UNVALIDATED)
        nbf, exp, iat = times["nbf"], times["exp"], times["iat"]
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            raise _Invalid("service account token is not valid yet")
        if exp is not None and now - LEEWAY_SECONDS > exp:
            raise _Invalid("service account token has expired")
        if iat is not None and now + LEEWAY_SECONDS < iat:
            raise _Invalid("service account token is issued in the future")

    def _bound_objects(self, namespace: str, private: dict[str, Any]) -> dict[str, list[str]]:
        """The bound secret, pod or node must still exist with the same UID; the user's extra."""
        if private.get("secret") is not None:
            # No Secrets here: a secret-bound token's secret is gone.
            raise _Invalid(_INVALIDATED)
        pod_ref, node_ref = _ref(private.get("pod")), _ref(private.get("node"))
        node = self.registry.node
        extra: dict[str, list[str]] = {}
        if pod_ref is not None:
            pod = self.registry.pods.get((namespace, pod_ref.name))
            if pod is None:
                raise _Invalid(_INVALIDATED)
            if pod.uid != pod_ref.uid:
                raise _Invalid(
                    f"pod UID ({pod.uid}) does not match service account pod ref claim "
                    f"({pod_ref.uid})"
                )
            extra["authentication.kubernetes.io/pod-name"] = [pod_ref.name]
            extra["authentication.kubernetes.io/pod-uid"] = [pod_ref.uid]
        elif node_ref is not None:
            if node_ref.name != node.name:
                raise _Invalid(_INVALIDATED)
            if node_ref.uid != node.uid:
                raise _Invalid(
                    f"node UID ({node.uid}) does not match service account node ref claim "
                    f"({node_ref.uid})"
                )
        if node_ref is not None:
            extra["authentication.kubernetes.io/node-name"] = [node_ref.name]
            if node_ref.uid:
                extra["authentication.kubernetes.io/node-uid"] = [node_ref.uid]
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


def _go_quote_list(values: Iterable[str]) -> str:
    # fmt's %q on a []string: ["a" "b"].
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _ref(value: Any) -> ObjectRef | None:
    if not isinstance(value, dict):
        return None
    name, uid = value.get("name", ""), value.get("uid", "")
    if not isinstance(name, str) or not isinstance(uid, str):
        return None
    return ObjectRef(name, uid)
