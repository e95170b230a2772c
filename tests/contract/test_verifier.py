"""The Verifier contract: one token matrix, the same decisions from every verifier.

JoseVerifier (over the cluster's JWKS, and over a saved JWKS file) and TokenReviewVerifier run
against the devcluster over real TLS, each bare and behind the CachingVerifier. Then what only
TokenReview can see: a deleted pod, and the API server's own failures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.cluster_jwks import ClusterJwksConfig, ClusterJwksKeyProvider
from adapters.fake_keyset import FakeKeySet
from adapters.jose_verifier import JoseVerifier
from adapters.kube_http import api_server_client
from adapters.memory_token_source import InMemoryTokenSource
from adapters.projected_token_file import ProjectedTokenFile
from adapters.static_jwks_file import StaticJwksFile
from adapters.token_review import TokenReviewConfig, TokenReviewVerifier
from adapters.verified_cache import CachingVerifier
from domain.errors import AuthError, ReviewUnavailable
from domain.identity import Identity
from domain.ports import Clock, KeyProvider, TokenSource, Verifier
from domain.rules import Expectations
from entrypoints.container import REVIEW_CACHE_MAX_ENTRIES, REVIEW_CACHE_TTL_SECONDS
from tests.devcluster_harness import DevCluster

pytestmark = pytest.mark.anyio

AUDIENCE = "be2"
# kubernetes.default.svc vs ...svc.cluster.local differs by distribution (kubeflow#3079).
OTHER_ISSUER = "https://kubernetes.default.svc"

KINDS = ["jose_cluster", "jose_file", "tokenreview"]
VERIFIERS = [*KINDS, *(f"{kind}+cache" for kind in KINDS)]


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _published_jwks(cluster: DevCluster) -> dict[str, Any]:
    with cluster.client() as client:
        response = client.get(
            "/openid/v1/jwks", headers={"Authorization": f"Bearer {cluster.pod('be2').token()}"}
        )
    response.raise_for_status()
    jwks: dict[str, Any] = response.json()
    return jwks


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    # Still a consistent, valid-looking claim set: only the signature can tell.
    claims["sub"] = "system:serviceaccount:default:admin"
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _resigned(token: str, header: dict[str, Any], secret: bytes | None) -> str:
    payload = token.split(".")[1]
    signing_input = f"{_b64(json.dumps(header).encode())}.{payload}"
    if secret is None:
        return f"{signing_input}."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _public_pem(jwk: dict[str, Any]) -> bytes:
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(_unb64(jwk["e"]), "big"), int.from_bytes(_unb64(jwk["n"]), "big")
    )
    return numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Row:
    token: str
    reason: str | None  # None: accepted


@pytest.fixture(scope="module")
def matrix(devcluster: DevCluster) -> dict[str, Row]:
    """The token matrix, minted once per module by the devcluster (and its impostors)."""
    be = devcluster.pod("be")
    valid = devcluster.mint("be-sa", audiences=[AUDIENCE], pod=be.name)
    published = _published_jwks(devcluster)["keys"][0]
    impostor = FakeKeySet(issuer=devcluster.issuer)
    foreign = FakeKeySet(issuer=OTHER_ISSUER)
    header = {"kid": published["kid"]}
    return {
        "valid": Row(valid, None),
        "expired": Row(
            devcluster.mint(
                "be-sa",
                audiences=[AUDIENCE],
                expiration_seconds=600,
                issued_at=int(time.time()) - 7200,
            ),
            "expired",
        ),
        "wrong_audience": Row(devcluster.mint("be-sa", audiences=["someone-else"]), "bad_audience"),
        "wrong_issuer": Row(
            foreign.mint(namespace="default", service_account="be-sa", audiences=[AUDIENCE]),
            "bad_issuer",
        ),
        "tampered_payload": Row(_tampered(valid), "bad_signature"),
        "unknown_key": Row(
            impostor.mint(namespace="default", service_account="be-sa", audiences=[AUDIENCE]),
            "unknown_key",
        ),
        "alg_none": Row(_resigned(valid, {"alg": "none", **header}, None), "unsupported_algorithm"),
        "hs256_with_public_key": Row(
            _resigned(valid, {"alg": "HS256", **header}, _public_pem(published)),
            "unsupported_algorithm",
        ),
    }


@asynccontextmanager
async def verifier_of(
    kind: str,
    cluster: DevCluster,
    tmp_path: Path,
    *,
    clock: Clock = time.time,
    own_token: TokenSource | None = None,
    **review: Any,
) -> AsyncIterator[Verifier]:
    """A verifier of `kind` wired to the devcluster as be2 would be (its own token, its CA)."""
    be2 = cluster.pod("be2")
    client = api_server_client(be2.ca_file)
    own = own_token or ProjectedTokenFile(be2.token_file)
    expectations = Expectations.of([cluster.issuer], [AUDIENCE])
    base = kind.removesuffix("+cache")
    keys: KeyProvider | None = None
    cluster_keys: ClusterJwksKeyProvider | None = None
    verifier: Verifier
    if base == "jose_cluster":
        config = ClusterJwksConfig(
            discovery_url=cluster.discovery_url, issuers=frozenset({cluster.issuer})
        )
        keys = cluster_keys = ClusterJwksKeyProvider(config, client, own, clock)
        await cluster_keys.start()
        verifier = JoseVerifier(keys, expectations, clock)
    elif base == "jose_file":
        tmp_path.mkdir(parents=True, exist_ok=True)
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps(_published_jwks(cluster)))
        keys = StaticJwksFile(path)
        verifier = JoseVerifier(keys, expectations, clock)
    else:
        settings: dict[str, Any] = {
            "api_server": cluster.url,
            "audiences": (AUDIENCE,),
            "issuers": (cluster.issuer,),
            **review,
        }
        verifier = TokenReviewVerifier(client, own, TokenReviewConfig(**settings), clock)
    if kind.endswith("+cache"):
        verifier = CachingVerifier(verifier, clock, keys)
    try:
        yield verifier
    finally:
        if cluster_keys is not None:
            await cluster_keys.close()
        await client.aclose()


async def _decision(verifier: Verifier, token: str) -> str | None:
    try:
        await verifier.verify(token)
    except AuthError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize("row", ["valid", "expired", "wrong_audience", "wrong_issuer",
                                 "tampered_payload", "unknown_key", "alg_none",
                                 "hs256_with_public_key"])  # fmt: skip
@pytest.mark.parametrize("kind", VERIFIERS)
async def test_the_matrix_gets_the_same_decision_from_every_verifier(
    devcluster: DevCluster, matrix: dict[str, Row], tmp_path: Path, kind: str, row: str
) -> None:
    case = matrix[row]
    async with verifier_of(kind, devcluster, tmp_path) as verifier:
        # Twice: a cached verifier answers the second from its cache (or, for a failure,
        # not from the cache: failures are never cached), with the same decision.
        assert await _decision(verifier, case.token) == case.reason
        assert await _decision(verifier, case.token) == case.reason
        if isinstance(verifier, CachingVerifier):
            assert verifier.hits == (1 if case.reason is None else 0)


async def test_every_verifier_returns_the_same_identity(
    devcluster: DevCluster, matrix: dict[str, Row], tmp_path: Path
) -> None:
    be = devcluster.pod("be")
    identities: dict[str, Identity] = {}
    for kind in KINDS:
        async with verifier_of(kind, devcluster, tmp_path / kind) as verifier:
            identities[kind] = await verifier.verify(matrix["valid"].token)
    first = identities["jose_cluster"]
    assert all(identity == first for identity in identities.values()), identities
    assert first.subject == "system:serviceaccount:default:be-sa"
    assert (first.pod, first.pod_uid, first.node) == (be.name, be.uid, be.node)
    assert first.service_account_uid == be.service_account_uid
    assert first.audiences == (AUDIENCE,)
    assert first.issuer == devcluster.issuer


async def test_tokenreview_asks_the_api_server_only_what_it_cannot_decide_itself(
    devcluster: DevCluster, matrix: dict[str, Row], tmp_path: Path
) -> None:
    # A flood of expired, foreign or `alg: none` tokens must not become a flood of
    # TokenReviews: those are refused locally, with the same reasons the API server would give.
    local = {"expired", "wrong_audience", "wrong_issuer", "alg_none", "hs256_with_public_key"}
    async with verifier_of("tokenreview", devcluster, tmp_path) as verifier:
        assert isinstance(verifier, TokenReviewVerifier)
        for name, row in matrix.items():
            before = verifier.reviews
            assert await _decision(verifier, row.token) == row.reason
            assert verifier.reviews - before == (0 if name in local else 1), name


@pytest.fixture
def review_faults(devcluster: DevCluster) -> Iterator[Callable[..., None]]:
    def set_faults(**faults: Any) -> None:
        devcluster.admin("/admin/faults", faults)

    yield set_faults
    devcluster.admin("/admin/faults", {"tokenreview": "ok", "delay_seconds": 0})


async def test_tokenreview_outage_is_review_unavailable(
    devcluster: DevCluster,
    matrix: dict[str, Row],
    tmp_path: Path,
    review_faults: Callable[..., None],
) -> None:
    review_faults(tokenreview="outage")
    async with verifier_of("tokenreview", devcluster, tmp_path) as verifier:
        with pytest.raises(ReviewUnavailable, match="503"):
            await verifier.verify(matrix["valid"].token)


async def test_a_slow_tokenreview_is_review_unavailable(
    devcluster: DevCluster,
    matrix: dict[str, Row],
    tmp_path: Path,
    review_faults: Callable[..., None],
) -> None:
    review_faults(tokenreview="slow", delay_seconds=2)
    async with verifier_of("tokenreview", devcluster, tmp_path, timeout_seconds=0.5) as verifier:
        with pytest.raises(ReviewUnavailable, match=r"did not answer within 0\.5 s"):
            await verifier.verify(matrix["valid"].token)


async def test_tokenreview_without_our_own_token_is_review_unavailable(
    devcluster: DevCluster, matrix: dict[str, Row], tmp_path: Path
) -> None:
    async with verifier_of(
        "tokenreview", devcluster, tmp_path, own_token=InMemoryTokenSource()
    ) as verifier:
        with pytest.raises(ReviewUnavailable, match="own token"):
            await verifier.verify(matrix["valid"].token)
    rejected = InMemoryTokenSource(_tampered(matrix["valid"].token))
    async with verifier_of("tokenreview", devcluster, tmp_path, own_token=rejected) as verifier:
        with pytest.raises(ReviewUnavailable, match="401"):
            await verifier.verify(matrix["valid"].token)


async def test_tokenreview_maps_the_api_servers_own_verdicts(
    devcluster: DevCluster, matrix: dict[str, Row], tmp_path: Path
) -> None:
    # With our clock two hours behind, the expired token looks fine locally: the API server
    # decides, and its "service account token has expired" becomes `expired`.
    behind = FakeClock()
    behind.now -= 7000
    async with verifier_of("tokenreview", devcluster, tmp_path, clock=behind) as verifier:
        assert await _decision(verifier, matrix["expired"].token) == "expired"
    # Without KSA_ISSUER, a foreign issuer is left to the API server: "invalid bearer token".
    async with verifier_of("tokenreview", devcluster, tmp_path, issuers=()) as verifier:
        assert await _decision(verifier, matrix["wrong_issuer"].token) == "bad_issuer"
        assert await _decision(verifier, matrix["valid"].token) is None


async def test_a_deleted_pod_is_revoked_by_tokenreview_while_jwks_still_accepts(
    fresh_devcluster: DevCluster, tmp_path: Path
) -> None:
    """The trade-off: a local JWKS check cannot see that the token's pod is gone; TokenReview
    asks the API server, which checks the bound object still exists (claims.go)."""
    cluster = fresh_devcluster
    be = cluster.pod("be")
    token = cluster.mint("be-sa", audiences=[AUDIENCE], pod=be.name)
    clock = FakeClock()
    async with (
        verifier_of("jose_cluster", cluster, tmp_path / "jwks", clock=clock) as jwks,
        verifier_of("tokenreview", cluster, tmp_path / "review", clock=clock) as reviewer,
    ):
        assert isinstance(reviewer, TokenReviewVerifier)
        # As be2 wires it: TokenReview's positive answers are kept briefly.
        review = CachingVerifier(
            reviewer,
            clock,
            ttl_seconds=REVIEW_CACHE_TTL_SECONDS,
            max_entries=REVIEW_CACHE_MAX_ENTRIES,
        )
        assert (await jwks.verify(token)).pod == be.name
        assert (await review.verify(token)).pod == be.name
        cluster.admin(f"/admin/pods/{be.namespace}/{be.name}/delete")
        # Within the cache's TTL the earlier answer stands, without asking again.
        assert (await review.verify(token)).pod == be.name
        assert reviewer.reviews == 1
        clock.now += REVIEW_CACHE_TTL_SECONDS
        assert await _decision(review, token) == "revoked"
        assert reviewer.reviews == 2
        # The signature, issuer, audience and times are all still fine: JWKS accepts.
        assert (await jwks.verify(token)).pod == be.name
