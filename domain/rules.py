"""The claim rules kube-apiserver applies, as one pure function of (claims, expectations, now)."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable

import msgspec

from domain.claims import Claims, KubernetesClaim
from domain.errors import (
    BadAudience,
    BadIssuer,
    BadSubject,
    Expired,
    IssuedInFuture,
    Malformed,
    NotYetValid,
)
from domain.identity import SUBJECT_PREFIX, Identity

__all__ = [
    "DEFAULT_LEEWAY_SECONDS",
    "LEGACY_ISSUER",
    "Expectations",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "numeric_date",
    "split_subject",
    "validate_claims",
]

# go-jose's jwt.DefaultLeeway, used by kube-apiserver for exp, nbf and iat (claims.go).
DEFAULT_LEEWAY_SECONDS = 60.0
# pkg/serviceaccount/legacy.go: LegacyIssuer.
LEGACY_ISSUER = "kubernetes/serviceaccount"

# go-jose v2 NumericDate: the JSON number as float64, converted to int64 (truncated; out of
# range it is math.MinInt64 on amd64), then time.Unix, whose internal count of seconds since
# year 1 overflows past this many seconds and wraps into the far past.
_INT64_MIN = -(2**63)
_LAST_UNIX_SECOND = 2**63 - 1 - 62_135_596_800


def numeric_date(value: float) -> int:
    """The second kube-apiserver compares for a JWT time claim: whole seconds, and a value
    beyond what Go's time can hold lands in the far past (so a huge `exp` has expired)."""
    if not _INT64_MIN <= value < 2**63:
        return _INT64_MIN
    seconds = int(value)
    return seconds if seconds <= _LAST_UNIX_SECOND else _INT64_MIN


_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def is_dns1123_label(value: str) -> bool:
    """A namespace name: at most 63 of [a-z0-9-], starting and ending alphanumeric."""
    return len(value) <= 63 and _DNS1123_LABEL.match(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """A service account name: at most 253 characters of dot-separated DNS-1123 labels."""
    return 0 < len(value) <= 253 and all(_DNS1123_LABEL.match(p) for p in value.split("."))


# Every token of one service account names the same subject: check each spelling once.
@functools.lru_cache(maxsize=1024)
def split_subject(subject: str) -> tuple[str, str] | None:
    """`system:serviceaccount:<ns>:<name>` -> (ns, name) when both names are valid, else None."""
    if not subject.startswith(SUBJECT_PREFIX):
        return None
    parts = subject[len(SUBJECT_PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    namespace, name = parts
    if not (is_dns1123_label(namespace) and is_dns1123_subdomain(name)):
        return None
    return namespace, name


class Expectations(msgspec.Struct, frozen=True, kw_only=True):
    """What a verifier expects of every token it accepts."""

    issuers: frozenset[str]
    audiences: frozenset[str]
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS
    allow_legacy: bool = False

    def __post_init__(self) -> None:
        if not self.issuers:
            raise ValueError("at least one issuer is required")
        if not self.audiences:
            raise ValueError("at least one audience is required")
        if self.leeway_seconds < 0:
            raise ValueError("leeway must not be negative")

    @classmethod
    def of(
        cls,
        issuers: Iterable[str],
        audiences: Iterable[str],
        *,
        leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
        allow_legacy: bool = False,
    ) -> Expectations:
        return cls(
            issuers=frozenset(issuers),
            audiences=frozenset(audiences),
            leeway_seconds=leeway_seconds,
            allow_legacy=allow_legacy,
        )


def validate_claims(claims: Claims, expectations: Expectations, now: float) -> Identity:
    """Apply kube-apiserver's checks to verified claims and return the caller's identity.

    Raises:
        BadIssuer, Expired, NotYetValid, IssuedInFuture, BadAudience, BadSubject, Malformed.
    """
    if claims.iss not in expectations.issuers:
        raise BadIssuer(f"issuer {claims.iss!r} is not one of the accepted issuers")
    if claims.is_legacy:
        return _legacy_identity(claims, expectations)
    if claims.kubernetes is None:
        raise Malformed("token has no `kubernetes.io` claim: not a service account token")
    # kube-apiserver's order (pkg/serviceaccount/jwt.go, claims.go): issuer, audience, times.
    audiences = claims.audiences
    if expectations.audiences.isdisjoint(audiences):
        raise BadAudience(
            f"token audiences {sorted(audiences)} are not among the accepted audiences"
        )
    _check_times(claims, expectations.leeway_seconds, now)
    private = claims.kubernetes
    parsed = split_subject(claims.sub)
    if parsed is None:
        raise BadSubject(f"subject {claims.sub!r} is not system:serviceaccount:<ns>:<name>")
    namespace, name = parsed
    if (namespace, name) != (private.namespace, private.serviceaccount.name):
        raise BadSubject("subject does not match the `kubernetes.io` namespace and service account")
    _check_binding(private)
    # kubernetes claims.go: past warnafter the token still authenticates but is "stale".
    warn_after = None if private.warnafter is None else numeric_date(private.warnafter)
    stale = warn_after is not None and now > warn_after
    return Identity(
        subject=claims.sub,
        namespace=namespace,
        service_account=name,
        service_account_uid=private.serviceaccount.uid or None,
        pod=private.pod.name if private.pod else None,
        pod_uid=(private.pod.uid or None) if private.pod else None,
        node=private.node.name if private.node else None,
        issuer=claims.iss,
        audiences=audiences,
        expires_at=numeric_date(claims.exp) if claims.exp is not None else None,
        stale=stale,
        warn_after=warn_after,
    )


def _check_binding(private: KubernetesClaim) -> None:
    # claims.go looks the bound object up by name (a pod-bound token's node is only
    # informative): an empty name is never found, "service account token has been invalidated".
    bound = private.pod or private.secret or private.node
    if bound is not None and not bound.name:
        raise Malformed("token is bound to an object with an empty name")


def _check_times(claims: Claims, leeway: float, now: float) -> None:
    # Same order and comparisons as go-jose jwt.Claims.ValidateWithLeeway, on whole seconds.
    # A huge nbf or iat wraps into the past in Go and passes; here it stays in the future.
    if claims.nbf is not None and now + leeway < math.trunc(claims.nbf):
        raise NotYetValid("token is not valid yet (nbf is in the future)")
    if claims.exp is None:
        # Bound tokens always carry exp; only legacy secret tokens have none.
        raise Expired("token has no expiry (exp)")
    if now - leeway > numeric_date(claims.exp):
        raise Expired("token has expired")
    if claims.iat is not None and now + leeway < math.trunc(claims.iat):
        raise IssuedInFuture("token is issued in the future (iat)")


def _legacy_identity(claims: Claims, expectations: Expectations) -> Identity:
    if not expectations.allow_legacy:
        raise BadIssuer("legacy secret-based service account tokens are not accepted")
    parsed = split_subject(claims.sub)
    if parsed is None or parsed != (claims.legacy_namespace, claims.legacy_service_account_name):
        raise BadSubject("legacy token subject does not match its service account claims")
    namespace, name = parsed
    return Identity(
        subject=claims.sub,
        namespace=namespace,
        service_account=name,
        service_account_uid=claims.legacy_service_account_uid or None,
        issuer=claims.iss,
        # Legacy tokens carry no audience; kube-apiserver treats them as its implicit audiences.
        audiences=tuple(sorted(expectations.audiences)),
    )
