"""The devcluster mints only tokens kube-apiserver would mint: each passes the domain's rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devcluster.admin import mint
from devcluster.cluster import Cluster
from devcluster.kubelet import PodSpec
from devcluster.status import ApiError
from domain.claims import decode_claims
from domain.identity import Identity
from domain.jws import parse_compact, require_signing_algorithm
from domain.rules import Expectations, validate_claims

START = 1_800_000_000.0
PODS = (
    PodSpec("be", "be-sa", "default", ("be2",)),
    PodSpec("api", "api.sa", "team-a", ("https://vault.example",)),
)


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return Cluster(tmp_path_factory.mktemp("mints"), pods=PODS, clock=FakeClock())


def _kube_rules(token: str, namespace: str, service_account: str) -> Identity:
    """The domain's parser and kube rules, unchanged: no Malformed, the expected subject."""
    parts = parse_compact(token)
    require_signing_algorithm(parts.header.alg)
    assert parts.header.kid, "kube-apiserver always sets kid"
    claims = decode_claims(parts.payload)
    assert claims.iat is not None and claims.audiences
    expectations = Expectations.of([claims.iss], claims.audiences)
    identity = validate_claims(claims, expectations, claims.iat)
    assert identity.subject == f"system:serviceaccount:{namespace}:{service_account}"
    return identity


def _request(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> str:
    answer = cluster.tokens.token_request(namespace, name, {"spec": spec})
    token: str = answer["status"]["token"]
    return token


def test_token_requests_bound_to_nothing_a_pod_or_the_node(cluster: Cluster) -> None:
    be = next(p for p in cluster.registry.pods.values() if p.service_account == "be-sa")
    pod_ref = {"kind": "Pod", "apiVersion": "v1", "name": be.name}
    node_ref = {"kind": "Node", "apiVersion": "v1", "name": cluster.registry.node.name}
    specs: list[dict[str, Any]] = [
        {},
        {"audiences": ["be2", "other"], "expirationSeconds": 600},
        {"boundObjectRef": pod_ref},
        {"boundObjectRef": {**pod_ref, "uid": be.uid}, "expirationSeconds": 3607},
        {"boundObjectRef": node_ref, "audiences": ["be2"]},
    ]
    for spec in specs:
        identity = _kube_rules(_request(cluster, "default", "be-sa", spec), "default", "be-sa")
        bound = spec.get("boundObjectRef", {}).get("kind")
        pod = (be.name, be.uid) if bound == "Pod" else (None, None)
        assert (identity.pod, identity.pod_uid) == pod
        assert identity.node == (cluster.registry.node.name if bound else None)


def test_the_kubelets_projected_tokens(cluster: Cluster) -> None:
    cluster.kubelet.refresh_tokens(force=True)
    seen = 0
    for pod in cluster.registry.pods.values():
        for projection in pod.projections:
            token = (projection.volume / "token").read_text()
            identity = _kube_rules(token, pod.namespace, pod.service_account)
            assert (identity.pod, identity.pod_uid, identity.node) == (pod.name, pod.uid, pod.node)
            assert identity.audiences == projection.audiences
            seen += 1
    assert seen == 4


def test_the_admin_mint_with_a_pod_and_with_each_signing_key(cluster: Cluster) -> None:
    be = next(p for p in cluster.registry.pods.values() if p.service_account == "be-sa")
    first = cluster.keyset.signing_kid
    cluster.keyset.rotate("ES256")
    for kid in (first, cluster.keyset.signing_kid, None):
        body = {"service_account": "be-sa", "pod": be.name, "kid": kid, "audiences": ["be2"]}
        identity = _kube_rules(mint(cluster, body)["token"], "default", "be-sa")
        assert identity.pod == be.name


@settings(max_examples=60, deadline=None)
@given(
    namespace=st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z"),
    name=st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?(\.[a-z0-9]{1,5}){0,2}\Z"),
    audiences=st.lists(st.text(min_size=1, max_size=30), max_size=3),
    expiration=st.integers(1, 2**32),
    issued_at=st.none() | st.integers(0, 2**33) | st.floats(0, 2**33),
)
def test_the_admin_mint_with_any_options(
    cluster: Cluster,
    namespace: str,
    name: str,
    audiences: list[str],
    expiration: int,
    issued_at: float | None,
) -> None:
    body = {
        "namespace": namespace,
        "service_account": name,
        "audiences": audiences,
        "expiration_seconds": expiration,
        "issued_at": issued_at,
    }
    identity = _kube_rules(mint(cluster, body)["token"], namespace, name)
    assert identity.audiences == (tuple(audiences) or cluster.api_audiences)


@pytest.mark.parametrize(
    "body",
    [
        {"namespace": "", "service_account": "be-sa"},
        {"namespace": "Default", "service_account": "be-sa"},
        {"service_account": "be_sa"},
        {"service_account": "x" * 254},
    ],
    ids=["empty-namespace", "uppercase-namespace", "underscore", "too-long"],
)
def test_the_admin_mint_refuses_names_the_api_server_would(
    cluster: Cluster, body: dict[str, Any]
) -> None:
    with pytest.raises(ApiError) as refused:
        mint(cluster, body)
    assert refused.value.code == 400


def test_the_admin_mint_binds_no_token_to_another_accounts_pod(cluster: Cluster) -> None:
    be = next(p for p in cluster.registry.pods.values() if p.service_account == "be-sa")
    with pytest.raises(ApiError, match="different serviceaccount name"):
        mint(cluster, {"service_account": "intruder", "pod": be.name})
    assert ("default", "intruder") not in cluster.registry.service_accounts
