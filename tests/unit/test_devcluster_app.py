"""The devcluster's Litestar apps in process: hostile bodies and headers never get a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from devcluster.admin import create_admin_app, set_faults
from devcluster.apiserver import create_app
from devcluster.cluster import Cluster

VALUES: list[Any] = [None, 0, -1, 1.5, 2**70, 1e308, "", "x", [], [1], ["a"], {}, {"a": 1}, True]
API_PATHS = [
    "/api/v1/namespaces/default/serviceaccounts/be-sa/token",
    "/api/v1/namespaces/%2F/serviceaccounts/..%2F/token",
    "/apis/authentication.k8s.io/v1/tokenreviews",
]
ADMIN_PATHS = [
    "/admin/tokens/mint",
    "/admin/faults",
    "/admin/signing-keys/rotate",
    "/admin/signing-keys/retire",
    "/admin/pods/default/nope/terminate",
    "/admin/pods/default/nope/remove",
]
ADMIN_FIELDS = (
    "namespace",
    "audiences",
    "expiration_seconds",
    "pod",
    "issued_at",
    "kid",
    "keys",
    "delay_seconds",
    "endpoints",
    "tokenreview",
    "retire_previous",
    "algorithm",
    "grace_period_seconds",
)
# Every service account may do anything here, so hostile bodies reach the decoders.
EVERYTHING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "everyone-admin"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "cluster-admin",
    },
    "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}],
}


def _bodies() -> Iterator[Any]:
    for value in VALUES:
        yield value
        yield {"spec": value, "metadata": value}
        yield {"kind": value, "spec": {"audiences": value, "token": value}}
        yield {"spec": {"expirationSeconds": value, "boundObjectRef": value}}
        for kind in (value, "Pod", "Node"):
            ref = {"kind": kind, "apiVersion": value, "name": value, "uid": value}
            yield {"spec": {"boundObjectRef": ref}}
        yield dict.fromkeys(ADMIN_FIELDS, value) | {"service_account": "sa"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return Cluster(tmp_path_factory.mktemp("devcluster"), rbac=[EVERYTHING])


def test_hostile_bodies_get_4xx_never_500(cluster: Cluster) -> None:
    token = next(iter(cluster.registry.pods.values())).token_file.read_text()
    caller = {"Authorization": f"Bearer {token}"}
    admin = {"Authorization": f"Bearer {cluster.admin_token}"}
    failures = []
    with TestClient(create_app(cluster)) as api, TestClient(create_admin_app(cluster)) as ops:
        for body in _bodies():
            raw = json.dumps(body).encode()
            for path in API_PATHS:
                response = api.post(path, content=raw, headers=caller)
                if response.status_code >= 500:
                    failures.append((path, body, response.status_code))
            for path in ADMIN_PATHS:
                response = ops.post(path, content=raw, headers=admin)
                if response.status_code >= 500:
                    failures.append((path, body, response.status_code))
        set_faults(cluster, {"keys": "ok", "tokenreview": "ok", "delay_seconds": 0})
    assert failures == []


@pytest.mark.parametrize("authorization", [b"Bearer", b"Bearer  ", b"Basic abc", b""])
def test_headers_without_a_bearer_token_are_anonymous_and_403(
    cluster: Cluster, authorization: bytes
) -> None:
    # bearertoken.go: no usable bearer token is "no credentials"; anonymous auth takes over.
    with TestClient(create_app(cluster)) as api:
        response = api.get("/openid/v1/jwks", headers={"Authorization": authorization})
    assert response.status_code == 403
    assert response.json()["message"] == (
        'forbidden: User "system:anonymous" cannot get path "/openid/v1/jwks"'
    )


@pytest.mark.parametrize(
    "authorization",
    [
        b"bearer x",
        b"Bearer a.b",
        b"Bearer ..",
        b"Bearer e.e.x",
        b"Bearer " + b"a" * 100_000,
        "Bearer a.a.a.\u00e9".encode(),
        b"Bearer \xff\xfe.a.a",
    ],
)
def test_odd_authorization_headers_are_401(cluster: Cluster, authorization: bytes) -> None:
    with TestClient(create_app(cluster)) as api:
        response = api.get("/openid/v1/jwks", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["reason"] == "Unauthorized"


def test_create_app_without_a_cluster_makes_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KSA_DEVCLUSTER_STATE_DIR", str(tmp_path / "own"))
    with TestClient(create_app()) as api:
        assert api.get("/healthz").text == "ok"
        assert api.get("/.well-known/openid-configuration").status_code == 403
    assert (tmp_path / "own" / "ca.crt").exists()
