"""TokenReview `status.error` texts, as kube-apiserver words them, map to the closest reason."""

from __future__ import annotations

import pytest

from adapters.token_review import _rejection


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        # pkg/serviceaccount/claims.go, wrapped by the authenticator union.
        ("[invalid bearer token, service account token has expired]", "expired"),
        ("[invalid bearer token, service account token is not valid yet]", "not_yet_valid"),
        ("[invalid bearer token, service account token is issued in the future]",
         "issued_in_future"),
        ("[invalid bearer token, service account token has been invalidated]", "revoked"),
        ('[invalid bearer token, pods "be-7d9f8" not found]', "revoked"),
        ('[invalid bearer token, serviceaccounts "be-sa" not found]', "revoked"),
        ("[invalid bearer token, pod UID (a) does not match service account pod ref claim (b)]",
         "revoked"),
        ("[invalid bearer token, service account UID (a) does not match claim (b)]", "revoked"),
        # pkg/authentication/authenticator/audagnostic.go
        ('[invalid bearer token, token audiences ["x"] is invalid for the target audiences '
         '["be2"]]', "bad_audience"),
        # pkg/serviceaccount/jwt.go and go-jose
        ("[invalid bearer token, invalid signature, no keys found]", "unknown_key"),
        ("[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]",
         "bad_signature"),
        ("[invalid bearer token, crypto/rsa: verification error]", "bad_signature"),
        ("[invalid bearer token, go-jose/go-jose: unknown/unsupported algorithm]",
         "unsupported_algorithm"),
        ("[invalid bearer token, service account token claims could not be validated]",
         "malformed"),
        # bearertoken.go: no authenticator recognised the token (not our issuer).
        ("invalid bearer token", "bad_issuer"),
        # Anything else: the API server said no, and its word is final.
        ("", "revoked"),
        ("something new in a future release", "revoked"),
    ],
)  # fmt: skip
def test_api_server_errors_map_to_the_closest_reason(error: str, reason: str) -> None:
    rejection = _rejection(error)
    assert rejection.reason == reason
    assert rejection.detail.startswith("the API server rejected the token")
