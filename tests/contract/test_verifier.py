"""The Verifier contract: one token matrix, the same decisions from every verifier.

JoseVerifier (over the cluster's JWKS, and over a saved JWKS file) and TokenReviewVerifier run
against the devcluster over real TLS, each bare and behind the CachingVerifier. Then tokens
signed by the cluster's key that kube-apiserver refuses (a member twice, a folded `iss`, typed
header members, `b64: false`, huge and fractional times, empty bound-object names): every
verifier refuses them, and the devcluster's own TokenReview answers each as kube-apiserver does.
Then what only TokenReview can see: a deleted pod, and the API server's own failures.
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from adapters.cluster_jwks import ClusterJwksConfig, ClusterJwksKeyProvider
from adapters.fake_keyset import FakeKeySet
from adapters.jose_verifier import JoseVerifier
from adapters.kube_http import api_server_client
from adapters.memory_token_source import InMemoryTokenSource
from adapters.projected_token_file import ProjectedTokenFile
from adapters.static_jwks_file import StaticJwksFile
from adapters.token_review import REVIEW_PATH, TokenReviewConfig, TokenReviewVerifier
from adapters.verified_cache import CachingVerifier
from domain.errors import AuthError, ReviewUnavailable
from domain.identity import Identity
from domain.ports import Clock, KeyProvider, TokenSource, Verifier
from domain.rules import Expectations
from entrypoints.container import REVIEW_CACHE_MAX_ENTRIES, REVIEW_CACHE_TTL_SECONDS
from tests.devcluster_harness import DevCluster, start_devcluster

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


# --- What kube-apiserver refuses, every verifier refuses ------------------------------------------
#
# Tokens signed by the cluster's own key (POST /admin/sign) that kube-apiserver would never mint.
# Each row says, as data read from kube's behaviour (pkg/serviceaccount jwt.go + claims.go on
# go-jose v2, and its verdicts in tests/data/fidelity), what be2 answers (every verifier, bare or
# cached) and what kube-apiserver's TokenReview answers (`status.error`; None: authenticated).
# The emulator's TokenReview is held to the kube column, never to be2's.

Members = list[tuple[str, Any]]
_INVALID = "invalid bearer token"
_PRIMITIVE = "[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]"
_EXPIRED = "[invalid bearer token, service account token has expired]"
_INVALIDATED = "[invalid bearer token, service account token has been invalidated]"


def _duplicate(name: str) -> str:
    return f"[invalid bearer token, json: duplicate key '{name}' in object]"


def _raw(members: Members) -> bytes:
    """A JSON object of these members in this order, a name twice if asked (json.dumps cannot)."""
    return ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in members) + "}").encode()


def _replace(members: Members, name: str, value: Any) -> Members:
    return [(key, value if key == name else old) for key, old in members]


def _bound(claims: Members, **objects: Any) -> Members:
    """The claims with `kubernetes.io` bound to exactly `objects` (besides the service account)."""
    private = dict(claims)["kubernetes.io"]
    kept = {"namespace": private["namespace"], "serviceaccount": private["serviceaccount"]}
    return _replace(claims, "kubernetes.io", {**kept, **objects})


def _private_jwk() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.private_numbers()
    point = numbers.public_numbers
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(point.x.to_bytes(32, "big")),
        "y": _b64(point.y.to_bytes(32, "big")),
        "d": _b64(numbers.private_value.to_bytes(32, "big")),
    }


@dataclass(frozen=True)
class KubeRow:
    """How to change the valid token's (header, claims), and the answers expected for it."""

    change: Callable[[Members, Members, int], tuple[Members, Members]]
    reason: str | None  # be2's, from every verifier
    kube: str | None  # kube-apiserver's TokenReview status.error


def _claims(change: Callable[[Members, int], Members]) -> Callable[..., tuple[Members, Members]]:
    return lambda header, claims, now: (header, change(claims, now))


def _header(change: Callable[[Members], Members]) -> Callable[..., tuple[Members, Members]]:
    return lambda header, claims, now: (change(header), claims)


ADMIN = "system:serviceaccount:default:admin"
KUBE_ROWS: dict[str, KubeRow] = {
    # A member twice: go-jose's JSON refuses it in the claims, and in the header (not kube's).
    "duplicate_iss": KubeRow(
        _claims(lambda c, _: [("iss", OTHER_ISSUER), *c]), "malformed", _duplicate("iss")
    ),
    "duplicate_sub": KubeRow(
        _claims(lambda c, _: [("sub", ADMIN), *c]), "malformed", _duplicate("sub")
    ),
    "duplicate_aud": KubeRow(
        _claims(lambda c, _: [("aud", ["someone-else"]), *c]), "malformed", _duplicate("aud")
    ),
    "duplicate_exp": KubeRow(
        _claims(lambda c, now: [("exp", now - 3600), *c]), "malformed", _duplicate("exp")
    ),
    "duplicate_kubernetes_io": KubeRow(
        _claims(lambda c, _: [("kubernetes.io", {"namespace": "kube-system"}), *c]),
        "malformed",
        _duplicate("kubernetes.io"),
    ),
    "duplicate_alg": KubeRow(_header(lambda h: [("alg", "none"), *h]), "malformed", _INVALID),
    "duplicate_kid": KubeRow(_header(lambda h: [("kid", "unknown"), *h]), "malformed", _INVALID),
    # encoding/json (the issuer pre-check) folds names and keeps the last: another issuer's token.
    "iss_then_ISS_other": KubeRow(
        _claims(lambda c, _: [*c, ("ISS", OTHER_ISSUER)]), "malformed", _INVALID
    ),
    "iss_then_long_s_other": KubeRow(
        _claims(lambda c, _: [*c, ("i\u017f\u017f", OTHER_ISSUER)]), "malformed", _INVALID
    ),
    # Header members go-jose types: one that does not parse makes the token not kube's.
    "jwk_rsa_without_n": KubeRow(
        _header(lambda h: [*h, ("jwk", {"kty": "RSA", "e": "AQAB"})]), "malformed", _INVALID
    ),
    "jwk_a_string": KubeRow(_header(lambda h: [*h, ("jwk", "abc")]), "malformed", _INVALID),
    "jwk_a_private_key": KubeRow(
        _header(lambda h: [*h, ("jwk", _private_jwk())]), "malformed", _INVALID
    ),
    "jwk_junk": KubeRow(_header(lambda h: [*h, ("jwk", {"kty": "XYZ"})]), "malformed", _INVALID),
    "x5c_not_base64": KubeRow(
        _header(lambda h: [*h, ("x5c", ["not base64!!"])]), "malformed", _INVALID
    ),
    "x5c_not_a_certificate": KubeRow(
        _header(lambda h: [*h, ("x5c", ["aGVsbG8="])]), "malformed", _INVALID
    ),
    "x5c_not_a_list": KubeRow(_header(lambda h: [*h, ("x5c", "abc")]), "malformed", _INVALID),
    "nonce_a_number": KubeRow(_header(lambda h: [*h, ("nonce", 5)]), "malformed", _INVALID),
    # go-jose verifies a b64:false token over the raw payload: a normal signature fails.
    "b64_false": KubeRow(_header(lambda h: [*h, ("b64", False)]), "malformed", _PRIMITIVE),
    # NumericDate: int64(float64), then time.Unix; beyond Go's time it wraps: expired.
    "exp_1e20": KubeRow(_claims(lambda c, _: _replace(c, "exp", 1e20)), "expired", _EXPIRED),
    "exp_2_to_64": KubeRow(_claims(lambda c, _: _replace(c, "exp", 2**64)), "expired", _EXPIRED),
    # Whole seconds: 0.999 s inside the leeway, but its second is past it.
    "exp_fraction_at_the_leeway": KubeRow(
        _claims(lambda c, now: _replace(c, "exp", now - 60 + 0.999)), "expired", _EXPIRED
    ),
    # A bound object with an empty name is never found: invalidated.
    "pod_name_empty": KubeRow(
        _claims(
            lambda c, _: _bound(
                c, pod={"name": "", "uid": "u"}, node=dict(c)["kubernetes.io"]["node"]
            )
        ),
        "malformed",
        _INVALIDATED,
    ),
    "secret_name_empty": KubeRow(
        _claims(lambda c, _: _bound(c, secret={"name": "", "uid": "u"})), "malformed", _INVALIDATED
    ),
    "node_name_empty": KubeRow(
        _claims(lambda c, _: _bound(c, node={"name": "", "uid": "u"})), "malformed", _INVALIDATED
    ),
}
# Controls: what kube-apiserver accepts. be2 too, or it is stricter (the README's table).
KUBE_CONTROLS: dict[str, KubeRow] = {
    "signed_as_minted": KubeRow(_claims(lambda c, _: c), None, None),
    "ISS_other_then_iss": KubeRow(_claims(lambda c, _: [("ISS", OTHER_ISSUER), *c]), None, None),
    "nbf_1e20_wraps_to_the_past": KubeRow(
        _claims(lambda c, _: _replace(c, "nbf", 1e20)), "not_yet_valid", None
    ),
    "jku_is_not_typed": KubeRow(
        _header(lambda h: [*h, ("jku", "https://evil.example/jwks.json")]), "malformed", None
    ),
}


@pytest.fixture(scope="module")
def kube_token(devcluster: DevCluster, matrix: dict[str, Row]) -> Callable[[str], str]:
    """Sign a row's token now: the valid token's header and claims, changed as the row says.

    Signed just before use: the fractional `exp` row tells truncation apart only while the
    second has not turned (tests/unit/test_devcluster_fidelity.py has it with a fixed clock).
    """
    valid = matrix["valid"].token
    header: Members = list(json.loads(_unb64(valid.split(".")[0])).items())
    claims: Members = list(json.loads(_unb64(valid.split(".")[1])).items())

    def token(name: str) -> str:
        row = {**KUBE_ROWS, **KUBE_CONTROLS}[name]
        changed_header, changed_claims = row.change(header, claims, int(time.time()))
        return devcluster.sign(_raw(changed_header), _raw(changed_claims))

    return token


@pytest.mark.parametrize("row", [*KUBE_ROWS, *KUBE_CONTROLS])
@pytest.mark.parametrize("kind", VERIFIERS)
async def test_every_verifier_refuses_what_kube_refuses(
    devcluster: DevCluster,
    kube_token: Callable[[str], str],
    tmp_path: Path,
    kind: str,
    row: str,
) -> None:
    expected = {**KUBE_ROWS, **KUBE_CONTROLS}[row].reason
    async with verifier_of(kind, devcluster, tmp_path) as verifier:
        token = kube_token(row)
        assert await _decision(verifier, token) == expected
        assert await _decision(verifier, token) == expected


@pytest.mark.parametrize("row", [*KUBE_ROWS, *KUBE_CONTROLS])
def test_the_api_servers_tokenreview_answers_as_kube_does(
    devcluster: DevCluster, kube_token: Callable[[str], str], row: str
) -> None:
    expected = {**KUBE_ROWS, **KUBE_CONTROLS}[row].kube
    bearer = {"Authorization": f"Bearer {devcluster.pod('be2').token()}"}
    with devcluster.client() as client:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": kube_token(row), "audiences": [AUDIENCE]},
        }
        response = client.post(REVIEW_PATH, json=body, headers=bearer)
    assert response.status_code == 201
    status = response.json()["status"]
    assert (status.get("authenticated", False), status.get("error")) == (expected is None, expected)


def test_every_class_row_is_refused_by_kube() -> None:
    assert all(row.kube is not None and row.reason is not None for row in KUBE_ROWS.values())
    assert all(row.kube is None for row in KUBE_CONTROLS.values())


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


async def test_tokenreview_refused_by_rbac_says_which_permission_is_missing(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    # The same pods under kube's bootstrap policy only: be2-sa may not create TokenReviews.
    with start_devcluster(tmp_path / "bootstrap-only", rbac=()) as bare:
        async with verifier_of("tokenreview", bare, tmp_path) as verifier:
            assert isinstance(verifier, TokenReviewVerifier)
            assert verifier.access_error is None
            with pytest.raises(ReviewUnavailable) as refused:
                await verifier.check_access()
            assert refused.value.detail == verifier.access_error
            assert verifier.access_error.startswith(
                "TokenReview answered 403: our service account needs `create` on `tokenreviews`"
            )
            assert verifier.access_error.endswith(
                "the API server said: tokenreviews.authentication.k8s.io is forbidden: User "
                '"system:serviceaccount:default:be2-sa" cannot create resource "tokenreviews" in '
                'API group "authentication.k8s.io" at the cluster scope'
            )
    # Where the binding exists, the check passes and clears nothing it did not set.
    async with verifier_of("tokenreview", devcluster, tmp_path) as verifier:
        assert isinstance(verifier, TokenReviewVerifier)
        await verifier.check_access()
        assert verifier.access_error is None


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
        cluster.admin(f"/admin/pods/{be.namespace}/{be.name}/remove")
        # Within the cache's TTL the earlier answer stands, without asking again.
        assert (await review.verify(token)).pod == be.name
        assert reviewer.reviews == 1
        clock.now += REVIEW_CACHE_TTL_SECONDS
        assert await _decision(review, token) == "revoked"
        assert reviewer.reviews == 2
        # The signature, issuer, audience and times are all still fine: JWKS accepts.
        assert (await jwks.verify(token)).pod == be.name
