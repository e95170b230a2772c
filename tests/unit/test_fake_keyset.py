"""FakeKeySet mints what kube-apiserver mints: header, claim layout, extension rule, JWKS."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from adapters.fake_keyset import (
    EXPIRATION_EXTENSION_SECONDS,
    ISSUER,
    Algorithm,
    FakeKeySet,
)
from domain.claims import ObjectRef, decode_claims
from tests.helpers import layout, segment
from tests.unit.test_seed_token import SEED_TOKEN

NOW = 1_771_480_455.0
POD = ObjectRef("be-7d9f8", "c399bb09-8074-4482-9ca1-0963a3fd23ad")
NODE = ObjectRef("devcluster-node", "0ef5c6fe-1819-46b3-8f8c-8a57f92e19f9")


def _keyset(algorithm: Algorithm = "RS256") -> FakeKeySet:
    return FakeKeySet(algorithm, clock=lambda: NOW)


def _pod_token(keyset: FakeKeySet, **kwargs: Any) -> str:
    return keyset.mint(
        namespace="default",
        service_account="default",
        service_account_uid="58b22efa-874c-48b1-937f-0f70f8e4e3c9",
        pod=POD,
        node=NODE,
        **kwargs,
    )


def test_minted_token_has_the_seed_tokens_exact_layout() -> None:
    token = _pod_token(_keyset(), expiration_seconds=3607)
    assert layout(segment(token, 0)) == layout(segment(SEED_TOKEN, 0))
    assert layout(segment(token, 1)) == layout(segment(SEED_TOKEN, 1))
    # Same key order too: Go writes object keys sorted.
    assert list(segment(token, 1)) == list(segment(SEED_TOKEN, 1))
    assert list(segment(token, 1)["kubernetes.io"]) == list(segment(SEED_TOKEN, 1)["kubernetes.io"])


def test_header_is_alg_and_kid_only_as_kube_apiserver_sends() -> None:
    keyset = _keyset()
    header = segment(_pod_token(keyset), 0)
    assert header == {"alg": "RS256", "kid": keyset.signing_kid}


def test_api_audience_3607_pod_token_is_extended_to_a_year_with_warnafter() -> None:
    claims = segment(_pod_token(_keyset(), expiration_seconds=3607), 1)
    assert claims["iat"] == claims["nbf"] == int(NOW)
    assert claims["exp"] - claims["iat"] == EXPIRATION_EXTENSION_SECONDS == 365 * 86400
    assert claims["kubernetes.io"]["warnafter"] - claims["iat"] == 3607
    assert claims["aud"] == [ISSUER]


@pytest.mark.parametrize(
    ("audiences", "expiration", "bound"),
    [
        (["be2"], 3607, True),  # a custom audience is never extended
        ([ISSUER, "be2"], 3607, True),  # audiences must all be API audiences
        ([ISSUER], 3600, True),  # only the kubelet's magic 3607
        ([ISSUER], 3607, False),  # only pod-bound tokens
    ],
    ids=["custom-audience", "mixed-audiences", "not-3607", "not-pod-bound"],
)
def test_other_requests_are_not_extended_and_carry_no_warnafter(
    audiences: list[str], expiration: int, bound: bool
) -> None:
    keyset = _keyset()
    token = keyset.mint(
        namespace="default",
        service_account="be-sa",
        audiences=audiences,
        expiration_seconds=expiration,
        pod=POD if bound else None,
        node=NODE if bound else None,
    )
    claims = segment(token, 1)
    assert claims["exp"] - claims["iat"] == expiration
    assert "warnafter" not in claims["kubernetes.io"]
    assert claims["aud"] == audiences


def test_extension_can_be_switched_off_like_the_apiserver_flag() -> None:
    keyset = FakeKeySet(clock=lambda: NOW, extend_expiration=False)
    claims = segment(_pod_token(keyset, expiration_seconds=3607), 1)
    assert claims["exp"] - claims["iat"] == 3607
    assert "warnafter" not in claims["kubernetes.io"]


def test_minted_claims_decode_in_the_domain() -> None:
    claims = decode_claims(base64.urlsafe_b64decode(_pod_token(_keyset()).split(".")[1] + "=="))
    assert claims.kubernetes is not None
    assert claims.kubernetes.pod == POD
    assert claims.kubernetes.node == NODE
    assert claims.sub == "system:serviceaccount:default:default"
    assert claims.jti is not None and len(claims.jti) == 36


def test_jti_is_a_fresh_uuid_per_token() -> None:
    keyset = _keyset()
    assert segment(_pod_token(keyset), 1)["jti"] != segment(_pod_token(keyset), 1)["jti"]


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_jwks_verifies_minted_tokens_and_kid_is_sha256_of_spki(algorithm: Algorithm) -> None:
    keyset = _keyset(algorithm)
    token = _pod_token(keyset)
    jwks = keyset.jwks()
    (jwk,) = jwks["keys"]
    assert jwk["use"] == "sig" and jwk["alg"] == algorithm
    assert list(jwk)[:3] == ["use", "kty", "kid"]
    jws.deserialize_compact(token, KeySet.import_key_set(jwks), algorithms=[algorithm])  # type: ignore[arg-type]
    der = (
        keyset.signing_key()
        .private_key.public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert jwk["kid"] == segment(token, 0)["kid"] == expected


def test_rotation_signs_with_the_new_key_and_keeps_the_old_published() -> None:
    keyset = _keyset()
    old = keyset.signing_kid
    old_token = _pod_token(keyset)
    new = keyset.rotate()
    assert new != old
    assert keyset.signing_kid == new
    assert keyset.published_kids == (old, new)
    assert segment(_pod_token(keyset), 0)["kid"] == new
    jwks = KeySet.import_key_set(keyset.jwks())  # type: ignore[arg-type]
    jws.deserialize_compact(old_token, jwks, algorithms=["RS256"])
    keyset.retire(old)
    assert list(keyset.published_kids) == [new]
    with pytest.raises(InvalidKeyIdError):
        jws.deserialize_compact(
            old_token,
            KeySet.import_key_set(keyset.jwks()),  # type: ignore[arg-type]
            algorithms=["RS256"],
        )


def test_rotate_can_retire_the_previous_keys_and_the_signer_cannot_be_retired() -> None:
    keyset = _keyset()
    old = keyset.signing_kid
    new = keyset.rotate("ES256", retire_previous=True)
    assert keyset.published_kids == (new,)
    assert keyset.algorithms() == ["ES256"]
    with pytest.raises(ValueError, match="signing key"):
        keyset.retire(new)
    with pytest.raises(KeyError):
        keyset.retire(old)


def test_sign_takes_arbitrary_claims_header_overrides_and_unpublished_keys() -> None:
    keyset = _keyset()
    stranger = keyset.generate_unpublished()
    token = keyset.sign({"iss": "x"}, {"typ": "JWT", "kid": None}, key=stranger)
    assert segment(token, 0) == {"alg": "RS256", "typ": "JWT"}
    assert segment(token, 1) == {"iss": "x"}
    assert stranger not in keyset.known_kids()


def test_a_token_cannot_be_bound_to_a_secret_and_a_pod() -> None:
    with pytest.raises(ValueError, match="one object type"):
        _keyset().mint(pod=POD, secret=ObjectRef("s", "u"))
