"""be2's OpenAPI examples: a plausible verified caller, and one failure answer per reason code."""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import Example

from entrypoints.middleware import UNAVAILABLE_DETAIL

__all__ = ["AUTHENTICATED", "FORBIDDEN", "REJECTED", "UNAVAILABLE", "examples"]

# be's pod on Docker Desktop, with the default kube-api-access token (its audience is the API
# server's), as /validate-auth answers it.
AUTHENTICATED: dict[str, Any] = {
    "authenticated": True,
    "subject": "system:serviceaccount:default:be-sa",
    "namespace": "default",
    "service_account": "be-sa",
    "service_account_uid": "3f0c1f5e-8a2b-4b7e-9d0a-6c1e2f4a7b90",
    "pod": "be-6d9f7c8b5-x2k4q",
    "pod_uid": "a1b2c3d4-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
    "node": "docker-desktop",
    "issuer": "https://kubernetes.default.svc.cluster.local",
    "audiences": ["https://kubernetes.default.svc.cluster.local"],
    "expires_at": 1830297600,
    "stale": False,
}

# (reason, detail) as the verifier words them; the detail of a 401 is also the
# WWW-Authenticate error_description.
REJECTED: tuple[tuple[str, str], ...] = (
    ("missing_token", "no Authorization header; send `Bearer`, a space, then the token"),
    ("malformed", "token is not a compact JWS (three base64url segments)"),
    ("unsupported_algorithm", "algorithm 'none' is not accepted (RS256, ES256, ES384, ES512)"),
    ("unknown_key", "no key with kid 'Jt4NhCztq0aY' in the cluster's JWKS"),
    ("bad_signature", "token signature does not verify with the published key"),
    ("expired", "token has expired"),
    ("not_yet_valid", "token is not valid yet (nbf is in the future)"),
    ("issued_in_future", "token is issued in the future (iat)"),
    ("bad_issuer", "issuer 'https://oidc.example.com' is not one of the accepted issuers"),
    ("bad_audience", "token audiences ['vault'] are not among the accepted audiences"),
    ("bad_subject", "subject 'admin' is not system:serviceaccount:<ns>:<name>"),
    ("revoked", 'the API server rejected the token: pods "be-6d9f7c8b5-x2k4q" not found'),
)

FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("forbidden", "system:serviceaccount:default:be2-sa is not allowed to use this route"),
)

# A 503 tells the caller only which part is missing; the specifics are in be2's log.
UNAVAILABLE: tuple[tuple[str, str], ...] = (
    ("keys_unavailable", UNAVAILABLE_DETAIL),
    ("review_unavailable", UNAVAILABLE_DETAIL),
)


def examples(status: int) -> list[Example]:
    """The named examples of one status of be2's authenticated routes."""
    if status == 200:
        return [Example(summary="be's service account", value=AUTHENTICATED)]
    failures = {401: REJECTED, 403: FORBIDDEN, 503: UNAVAILABLE}[status]
    return [
        Example(
            summary=reason,
            value={"authenticated": status == 403, "reason": reason, "detail": detail},
        )
        for reason, detail in failures
    ]
