"""The hardened-tokenreview overlay's RBAC on the devcluster: who may review and mint tokens,
and be2 (a real process) ready with the overlay's binding, not ready without it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.devcluster_harness import OVERLAYS, ROOT, DevCluster, poll, start_devcluster
from tests.reliability.services import be2_environment, start_service

pytestmark = pytest.mark.e2e

OVERLAY = "hardened-tokenreview"
# The overlay's pods: namespace ksa-auth, be with its audience-`be2` token.
PODS = ["--pod", "ksa-auth/be:be-sa:be2", "--pod", "ksa-auth/be2:be2-sa"]
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
MISSING_PERMISSION = (
    "TokenReview not usable: TokenReview answered 403: our service account needs `create` on "
    "`tokenreviews` in API group authentication.k8s.io (a ClusterRole such as "
    "system:auth-delegator, bound to it); the API server said: "
    'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:ksa-auth:'
    'be2-sa" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at '
    "the cluster scope"
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def review(cluster: DevCluster, caller: str, token: str) -> httpx.Response:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    body["spec"] = {"token": token, "audiences": ["be2"]}  # type: ignore[assignment]
    with cluster.client() as client:
        return client.post(TOKEN_REVIEWS, json=body, headers=bearer(caller))


def hardened_environment(cluster: DevCluster) -> dict[str, str]:
    """be2 as the overlay runs it: TokenReview, audience be2, only be-sa allowed."""
    return be2_environment(cluster, KSA_VERIFIER="tokenreview", KSA_AUDIENCES="be2")


@pytest.fixture(scope="module")
def overlay_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    state = tmp_path_factory.mktemp("hardened-tokenreview")
    with start_devcluster(state, extra_args=PODS, rbac=[OVERLAYS / OVERLAY]) as cluster:
        yield cluster


def test_only_be2_sa_may_review_tokens(overlay_cluster: DevCluster) -> None:
    be, be2 = overlay_cluster.pod("be"), overlay_cluster.pod("be2")
    allowed = review(overlay_cluster, be2.token(), be.token("be2"))
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["status"]["user"]["username"] == be.subject
    refused = review(overlay_cluster, be.token(), be.token("be2"))
    assert refused.status_code == 403
    assert refused.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:'
        'ksa-auth:be-sa" cannot create resource "tokenreviews" in API group '
        '"authentication.k8s.io" at the cluster scope',
        "reason": "Forbidden",
        "details": {"group": "authentication.k8s.io", "kind": "tokenreviews"},
        "code": 403,
    }


def test_be2_sa_cannot_mint_tokens_for_be_sa(overlay_cluster: DevCluster) -> None:
    be2 = overlay_cluster.pod("be2")
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    before = overlay_cluster.state()["tokens_issued"]
    with overlay_cluster.client() as client:
        answer = client.post(
            "/api/v1/namespaces/ksa-auth/serviceaccounts/be-sa/token",
            json=body,
            headers=bearer(be2.token()),
        )
    assert answer.status_code == 403
    assert answer.json()["message"] == (
        'serviceaccounts "be-sa" is forbidden: User "system:serviceaccount:ksa-auth:be2-sa" '
        'cannot create resource "serviceaccounts/token" in API group "" in the namespace '
        '"ksa-auth"'
    )
    assert answer.json()["details"] == {"name": "be-sa", "kind": "serviceaccounts"}
    assert overlay_cluster.state()["tokens_issued"] == before


def test_be2_is_ready_with_the_overlays_binding(
    overlay_cluster: DevCluster, tmp_path: Path
) -> None:
    be = overlay_cluster.pod("be")
    with start_service("be2", hardened_environment(overlay_cluster), tmp_path) as be2:
        with be2.client() as client:
            assert client.get("/readyz").json() == {"ready": True, "verifier": "tokenreview"}
            answer = client.get("/validate-auth", headers=bearer(be.token("be2")))
        assert answer.status_code == 200, answer.text
        assert answer.json()["subject"] == "system:serviceaccount:ksa-auth:be-sa"
        # An INFO line reaches the log in its batch, up to 0.2 s late: waited for, bounded.
        poll(lambda: "TokenReview usable" in be2.logs(), timeout=10, what="'TokenReview usable'")


def without_binding(copy: Path) -> Path:
    """deploy/k8s copied, its tokenreview component's ClusterRoleBinding deleted."""
    shutil.copytree(ROOT / "deploy" / "k8s", copy)
    rbac = copy / "components" / "tokenreview" / "rbac.yaml"
    documents = [d for d in yaml.safe_load_all(rbac.read_text()) if d]
    kept = [d for d in documents if d["kind"] != "ClusterRoleBinding"]
    assert len(kept) == len(documents) - 1
    rbac.write_text(yaml.safe_dump_all(kept))
    return copy / "overlays" / OVERLAY


def test_be2_is_not_ready_without_the_binding_and_says_what_is_missing(tmp_path: Path) -> None:
    overlay = without_binding(tmp_path / "k8s")
    state = tmp_path / "devcluster"
    with start_devcluster(state, extra_args=PODS, rbac=[overlay]) as cluster:
        env = hardened_environment(cluster)
        with start_service("be2", env, tmp_path / "logs", wait_ready=False) as be2:
            with be2.client() as client:

                def not_ready() -> Any:
                    answer = client.get("/readyz")
                    return answer.json() if answer.status_code == 503 else None

                assert poll(not_ready, timeout=30, what="be2 /readyz 503") == {
                    "ready": False,
                    "verifier": "tokenreview",
                    "reason": "review_unavailable",
                }
                refused = client.get(
                    "/validate-auth", headers=bearer(cluster.pod("be").token("be2"))
                )
            assert refused.status_code == 503
            assert refused.json()["reason"] == "review_unavailable"
            lines = [json.loads(line) for line in be2.logs().splitlines() if line.startswith("{")]
    messages = [line.get("msg", "") for line in lines if line.get("level") == "WARNING"]
    assert MISSING_PERMISSION in messages, messages


def test_be2_sees_a_terminated_pod_after_its_grace_and_60_s_a_removed_one_at_once(
    tmp_path: Path,
) -> None:
    state = tmp_path / "devcluster"
    pods = [*PODS, "--pod", "ksa-auth/web:be-sa:be2"]
    with start_devcluster(state, extra_args=pods, rbac=[OVERLAYS / OVERLAY]) as cluster:
        be, web = cluster.pod("be"), cluster.pod("web")

        def unseen(pod: str = be.name) -> str:
            # A token be2 has not cached, bound to the pod.
            return cluster.mint("be-sa", namespace="ksa-auth", audiences=["be2"], pod=pod)

        with (
            start_service("be2", hardened_environment(cluster), tmp_path / "logs") as be2,
            be2.client() as client,
        ):
            before, after, web_token = unseen(), unseen(), unseen(web.name)
            terminated = cluster.admin(
                f"/admin/pods/ksa-auth/{be.name}/terminate", {"grace_period_seconds": 30}
            )
            assert terminated["deletion_timestamp"].endswith("Z")
            # Minted before the clock moves: be2's own clock stays real.
            cluster.admin("/admin/clock/advance", {"seconds": 60})
            still = client.get("/validate-auth", headers=bearer(before))
            assert still.status_code == 200, still.text
            cluster.admin("/admin/clock/advance", {"seconds": 31})  # grace + 60 s are past
            revoked = client.get("/validate-auth", headers=bearer(after))
            assert revoked.status_code == 401, revoked.text
            assert revoked.json()["reason"] == "revoked"
            # remove: the object is gone, its tokens are refused at once (no grace).
            cluster.admin(f"/admin/pods/ksa-auth/{web.name}/remove")
            removed = client.get("/validate-auth", headers=bearer(web_token))
            assert removed.status_code == 401, removed.text
            assert removed.json()["reason"] == "revoked"
