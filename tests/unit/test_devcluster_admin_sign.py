"""POST /admin/sign: any header and payload bytes, signed by the cluster's current key."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devcluster.admin import sign
from devcluster.cluster import Cluster
from devcluster.status import ApiError

START = 1_800_000_000.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return Cluster(tmp_path_factory.mktemp("sign"), clock=lambda: START)


def _payload(cluster: Cluster, **changes: Any) -> dict[str, Any]:
    be = next(p for p in cluster.registry.pods.values() if p.service_account == "be-sa")
    token, _ = cluster.tokens.issue("default", "be-sa", audiences=["be2"], for_pod=be)
    claims: dict[str, Any] = json.loads(_unb64(token.split(".")[1]))
    return claims | changes


def test_the_bytes_are_kept_exactly_and_signed_by_the_current_key(cluster: Cluster) -> None:
    kid = cluster.keyset.signing_kid
    header = b'{"alg":"RS256","kid":"' + kid.encode() + b'","alg":"RS256"}'
    payload = b'{"x": 1,\n "x": 2}'
    answer = sign(cluster, {"header": _b64(header), "payload": _b64(payload)})
    head, body, signature = answer["token"].split(".")
    assert (_unb64(head), _unb64(body), answer["kid"]) == (header, payload, kid)
    public = cluster.keyset.signing_key().private_key.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(_unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize(
    "body",
    [
        {"header": "e30="},
        {"header": "e30", "payload": "e30", "kid": "k"},
        {"header": "e30", "payload": 7},
        {"header": "e30", "payload": "a"},
        {"header": "e3+/", "payload": "e30"},
    ],
    ids=["padded-and-missing", "unknown-member", "not-a-string", "not-base64", "std-alphabet"],
)
def test_bodies_that_are_not_two_base64url_segments_are_refused(
    cluster: Cluster, body: dict[str, Any]
) -> None:
    with pytest.raises(ApiError) as refused:
        sign(cluster, body)
    assert refused.value.code == 400


def test_the_emulator_refuses_a_repeated_issuer_it_would_otherwise_accept(cluster: Cluster) -> None:
    header = json.dumps({"alg": "RS256", "kid": cluster.keyset.signing_kid}).encode()
    claims = _payload(cluster)
    plain = json.dumps(claims).encode()
    # The same claims, with a foreign issuer first: go-jose's JSON refuses the second `iss`.
    twice = b'{"iss":"https://elsewhere",' + plain[1:]
    for payload, error in [
        (plain, ""),
        (twice, "[invalid bearer token, json: duplicate key 'iss' in object]"),
    ]:
        token = sign(cluster, {"header": _b64(header), "payload": _b64(payload)})["token"]
        review = cluster.authenticator.authenticate(token, ["be2"])
        assert (review.authenticated, review.error) == (not error, error)
