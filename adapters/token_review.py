"""Verification by the API server itself: the TokenReview API."""

from __future__ import annotations

import re
import time

import httpx
import msgspec

from adapters.kube_http import TOTAL_TIMEOUT_SECONDS, ApiServerError, request
from domain.claims import Claims, decode_claims
from domain.errors import (
    AuthError,
    BadAudience,
    BadIssuer,
    BadSignature,
    BadSubject,
    Expired,
    IssuedInFuture,
    Malformed,
    NotYetValid,
    ReviewUnavailable,
    Revoked,
    TokenUnavailable,
    UnknownKey,
    UnsupportedAlgorithm,
)
from domain.identity import Identity
from domain.jws import parse_compact, require_signing_algorithm
from domain.ports import Clock, TokenSource, Verifier
from domain.rules import DEFAULT_LEEWAY_SECONDS, Expectations, split_subject, validate_claims

__all__ = ["REVIEW_PATH", "TokenReviewConfig", "TokenReviewVerifier"]

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
_POD_NAME = "authentication.kubernetes.io/pod-name"
_POD_UID = "authentication.kubernetes.io/pod-uid"
_NODE_NAME = "authentication.kubernetes.io/node-name"

# TokenReview `status.error` texts (pkg/serviceaccount/claims.go, jwt.go, go-jose, and the
# authenticator union) -> the closest reason. First match wins.
_ERROR_REASONS: tuple[tuple[re.Pattern[str], type[AuthError]], ...] = (
    (re.compile(r"has expired"), Expired),
    (re.compile(r"not valid yet"), NotYetValid),
    (re.compile(r"issued in the future"), IssuedInFuture),
    # The bound pod/secret/node or the service account is gone or was re-created: the token
    # was valid and has been invalidated (claims.go). Only TokenReview can see this.
    (re.compile(r"invalidated|not found|does not match claim|does not match service"), Revoked),
    (re.compile(r"audiences .* is invalid for the target audiences"), BadAudience),
    (re.compile(r"no keys found"), UnknownKey),
    (re.compile(r"unsupported algorithm|unexpected signature algorithm"), UnsupportedAlgorithm),
    (re.compile(r"cryptographic primitive|verification error|invalid signature"), BadSignature),
    (re.compile(r"could not be validated|malformed|compact JWS"), Malformed),
    # No authenticator recognised the token: for a JWT that means its `iss` is not one of the
    # API server's --service-account-issuer values.
    (re.compile(r"^invalid bearer token$"), BadIssuer),
)


class TokenReviewConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How to ask the API server, and for which audiences."""

    api_server: str
    """KSA_API_SERVER, e.g. `https://kubernetes.default.svc`."""
    audiences: tuple[str, ...]
    """KSA_AUDIENCES: sent as `spec.audiences`; one of them must come back."""
    issuers: tuple[str, ...] = ()
    """KSA_ISSUER: tokens claiming another issuer are refused without asking (empty: any)."""
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS
    timeout_seconds: float = TOTAL_TIMEOUT_SECONDS
    """Bound on each TokenReview, connection to last byte."""

    def __post_init__(self) -> None:
        if not self.audiences:
            raise ValueError("at least one audience is required")
        if not 0 < self.timeout_seconds <= TOTAL_TIMEOUT_SECONDS:
            raise ValueError(f"timeout_seconds must be in (0, {TOTAL_TIMEOUT_SECONDS:g}]")


class _User(msgspec.Struct):
    username: str = ""
    uid: str = ""
    extra: dict[str, list[str]] = msgspec.field(default_factory=dict)


class _Status(msgspec.Struct):
    authenticated: bool = False
    user: _User | None = None
    audiences: list[str] = msgspec.field(default_factory=list)
    error: str = ""


class _Review(msgspec.Struct):
    status: _Status = msgspec.field(default_factory=_Status)


class _Spec(msgspec.Struct):
    token: str
    audiences: list[str]


class _ReviewRequest(msgspec.Struct):
    spec: _Spec
    api_version: str = msgspec.field(default="authentication.k8s.io/v1", name="apiVersion")
    kind: str = "TokenReview"


_review_decoder = msgspec.json.Decoder(_Review)


class TokenReviewVerifier(Verifier):
    """Asks kube-apiserver (`create tokenreviews`, e.g. ClusterRole system:auth-delegator) whether
    a token is valid for our audiences: unlike a local check, it also sees deleted pods.

    Every call that passes the local checks is one TokenReview: put a `CachingVerifier` with a
    short TTL in front to bound how late a revocation is seen against how often the API
    server is asked.
    """

    __slots__ = ("_client", "_clock", "_config", "_token_source", "access_error", "reviews")

    def __init__(
        self,
        client: httpx.AsyncClient,
        token_source: TokenSource,
        config: TokenReviewConfig,
        clock: Clock = time.time,
    ) -> None:
        self._client = client
        self._token_source = token_source
        self._config = config
        self._clock = clock
        self.reviews = 0
        """How many TokenReviews were sent (for tests and metrics)."""
        self.access_error: str | None = None
        """Why the API server refused our last TokenReview (401/403), None once one answered."""

    @property
    def url(self) -> str:
        return self._config.api_server.rstrip("/") + REVIEW_PATH

    async def verify(self, token: str) -> Identity:
        """Return the identity the API server vouches for; raises an AuthError subclass, or
        ReviewUnavailable when the API server could not be asked."""
        claims, local = self._precheck(token, self._clock())
        status = await self._review(token)
        if not status.authenticated:
            raise _rejection(status.error)
        return self._identity(status, claims, local)

    def _precheck(self, token: str, now: float) -> tuple[Claims, Identity]:
        # What can be decided without the API server is decided here, with the same reasons
        # as the local verifier; acceptance is still only ever the API server's.
        parts = parse_compact(token)
        # Anything kube-apiserver does not sign with cannot be one of its tokens: refused
        # without a round trip, with the reason the local verifier gives.
        require_signing_algorithm(parts.header.alg)
        claims = decode_claims(parts.payload)
        expectations = Expectations.of(
            self._config.issuers or (claims.iss,),
            self._config.audiences,
            leeway_seconds=self._config.leeway_seconds,
        )
        local = validate_claims(claims, expectations, now)
        # The API server finds the verifying key by this kid, as the local verifier does.
        return claims, msgspec.structs.replace(local, key_id=parts.header.kid)

    async def _review(self, token: str) -> _Status:
        try:
            own_token = self._token_source.current_token()
        except TokenUnavailable as exc:
            raise ReviewUnavailable(f"TokenReview needs our own token: {exc.detail}") from None
        body = msgspec.json.encode(_ReviewRequest(_Spec(token, list(self._config.audiences))))
        self.reviews += 1
        try:
            response = await request(
                self._client,
                "POST",
                self.url,
                api_server=self._config.api_server,
                token=own_token,
                json_body=body,
                total_seconds=self._config.timeout_seconds,
            )
        except ApiServerError as exc:
            raise ReviewUnavailable(f"TokenReview failed: {exc.reason}") from None
        if response.status in (401, 403):
            self.access_error = _refusal(response.status, response.body)
            raise ReviewUnavailable(self.access_error)
        if response.status not in (200, 201):
            raise ReviewUnavailable(f"TokenReview answered HTTP {response.status}")
        try:
            status = _review_decoder.decode(response.body).status
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            raise ReviewUnavailable("TokenReview answer is not a TokenReview") from None
        self.access_error = None
        return status

    async def check_access(self) -> None:
        """Ask one TokenReview (of our own token) to learn whether we may: `access_error`
        says why not (RBAC, our own token refused), None once the API server answered.

        Raises:
            ReviewUnavailable: the API server could not be asked, or refused us.
        """
        try:
            own_token = self._token_source.current_token()
        except TokenUnavailable as exc:
            raise ReviewUnavailable(f"TokenReview needs our own token: {exc.detail}") from None
        await self._review(own_token)

    def _identity(self, status: _Status, claims: Claims, local: Identity) -> Identity:
        requested = set(self._config.audiences)
        # authentication.k8s.io/v1: a caller that sets spec.audiences must check that the
        # authenticator confirmed at least one of them (an audience-unaware one returns none).
        granted = tuple(a for a in status.audiences if a in requested)
        if not granted:
            raise BadAudience("TokenReview did not confirm any of the requested audiences")
        user = status.user or _User()
        parsed = split_subject(user.username)
        if parsed is None:
            raise BadSubject("TokenReview user is not a service account")
        namespace, name = parsed
        extra = user.extra
        return Identity(
            subject=user.username,
            namespace=namespace,
            service_account=name,
            service_account_uid=user.uid or local.service_account_uid,
            pod=_first(extra.get(_POD_NAME)) or local.pod,
            pod_uid=_first(extra.get(_POD_UID)) or local.pod_uid,
            node=_first(extra.get(_NODE_NAME)) or local.node,
            issuer=claims.iss,
            audiences=granted,
            expires_at=local.expires_at,
            stale=local.stale,
            warn_after=local.warn_after,
            key_id=local.key_id,
        )


class _StatusMessage(msgspec.Struct):
    message: str = ""


def _refusal(status: int, body: bytes) -> str:
    """What a refused TokenReview means for us, with the API server's own words (its Status
    names the user and the verb; no token)."""
    try:
        said = msgspec.json.decode(body, type=_StatusMessage).message.strip()[:300]
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        said = ""
    if status == 403:
        problem = (
            "TokenReview answered 403: our service account needs `create` on `tokenreviews` "
            "in API group authentication.k8s.io (a ClusterRole such as system:auth-delegator, "
            "bound to it)"
        )
    else:
        problem = "TokenReview answered 401: the API server refused our own token"
    return f"{problem}; the API server said: {said}" if said else problem


def _rejection(error: str) -> AuthError:
    text = error.strip()
    shown = text[:300] or "no reason given"
    for pattern, reason in _ERROR_REASONS:
        if pattern.search(text):
            return reason(f"the API server rejected the token: {shown}")
    # TokenReview said no, for a reason not listed above: the API server's word is final.
    return Revoked(f"the API server rejected the token: {shown}")


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None
