"""The seed's flow in containers: be and be2 from the image, on the devcluster's pod volumes."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import OVERLAYS, Document, render
from tests.deploy.policy import container, literal_env
from tests.devcluster_harness import DevCluster, DevPod, poll
from tests.image.containers import Container, serve_container

pytestmark = pytest.mark.e2e

# Where the kubelet mounts kube-api-access; the settings' defaults read the token and CA there.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ROTATION_SEEN_WITHIN_SECONDS = 60.0


# Where the hardened overlay mounts be2's Secret (tls.crt, tls.key) and be's CA for it.
TLS_SETTINGS = ("KSA_TLS_CERT_FILE", "KSA_TLS_KEY_FILE", "KSA_BE2_CA_FILE")


@functools.cache
def _rendered(overlay: str) -> list[Document]:
    return render(OVERLAYS / overlay)


def overlay_env(service: str, overlay: str = "docker-desktop") -> dict[str, str]:
    """The container's environment as the overlay renders it."""
    docs = _rendered(overlay)
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == service
    )
    spec = container(deployment, service)
    assert spec is not None
    return literal_env(spec)


def hardened_tls_env(service: str) -> dict[str, str]:
    """Only the transport settings of the hardened overlay (its files' paths in the pod)."""
    return {k: v for k, v in overlay_env(service, "hardened").items() if k in TLS_SETTINGS}


def pod_volume(pod: DevPod) -> str:
    """The pod's projected volume, mounted read-only where the kubelet puts kube-api-access."""
    return f"{pod.volume}:{SERVICE_ACCOUNT_DIR}:ro"


def be2_tls(cluster: DevCluster) -> dict[str, Any]:
    tls = cluster.pod("be2").tls
    assert tls is not None, "the devcluster issued no serving certificate for be2"
    return tls


def secret_volume(cluster: DevCluster, settings: dict[str, str], variable: str) -> str:
    """be2's Secret as the devcluster issued it, mounted read-only where the setting points."""
    secret = Path(be2_tls(cluster)["cert_file"]).parent
    return f"{secret}:{Path(settings[variable]).parent}:ro"


@pytest.fixture(params=["http", "tls"])
def services(
    request: pytest.FixtureRequest, image: str, fresh_devcluster: DevCluster
) -> Iterator[tuple[DevCluster, Container, Container]]:
    """be2 then be, as containers of the image on the host network, wired to the devcluster.

    The docker-desktop overlay's settings are kept; only what cluster DNS would resolve is
    replaced by the devcluster's and be2's loopback addresses (there is no Service named be2 or
    kubernetes here). With `tls`, be2 serves the certificate the devcluster issued (valid for
    127.0.0.1) and be verifies it, with the hardened overlay's TLS settings and mount paths.
    """
    cluster = fresh_devcluster
    tls = request.param == "tls"
    be2_env = overlay_env("be2") | {
        "KSA_API_SERVER": cluster.url,
        "KSA_DISCOVERY_URL": cluster.discovery_url,
    }
    be2_mounts = [pod_volume(cluster.pod("be2"))]
    be_mounts = [pod_volume(cluster.pod("be"))]
    ca_file = None
    if tls:
        be2_env |= hardened_tls_env("be2")
        be2_mounts.append(secret_volume(cluster, be2_env, "KSA_TLS_CERT_FILE"))
        ca_file = Path(be2_tls(cluster)["ca_file"])
    with serve_container("be2", be2_env, be2_mounts, ca_file=ca_file) as be2:
        be_env = overlay_env("be") | {"KSA_BE2_URL": be2.url}
        if tls:
            be_env |= hardened_tls_env("be")
            be_mounts.append(secret_volume(cluster, be_env, "KSA_BE2_CA_FILE"))
        with serve_container("be", be_env, be_mounts) as be:
            yield cluster, be, be2


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _validate(be2: Container, token: str) -> dict[str, Any]:
    with be2.client() as client:
        answer = client.get("/validate-auth", headers=_bearer(token))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_get_jwt_validate_auth_and_call_be2(
    services: tuple[DevCluster, Container, Container],
) -> None:
    cluster, be, be2 = services
    subject = cluster.pod("be").subject
    with be.client() as client:
        issued = client.get("/get-jwt")
        assert issued.status_code == 200, issued.text
        token = issued.json()["token"]
        assert issued.json()["subject"] == subject == "system:serviceaccount:default:be-sa"
        identity = _validate(be2, token)
        assert identity["authenticated"] is True
        assert identity["subject"] == subject
        assert identity["pod"] == cluster.pod("be").name
        called = client.get("/call-be2").json()
    assert called["be2_status"] == 200, called
    assert called["be2"]["subject"] == subject


def test_a_token_rotated_by_the_devcluster_is_picked_up_in_the_container(
    services: tuple[DevCluster, Container, Container],
) -> None:
    cluster, be, be2 = services
    with be.client() as client:
        before = client.get("/get-jwt").json()["token"]
        assert before == cluster.pod("be").token()
        cluster.admin("/admin/tokens/rotate")
        rotated = cluster.pod("be").token()
        assert rotated != before

        def served() -> str | None:
            token: str = client.get("/get-jwt").json()["token"]
            return token if token != before else None

        after = poll(served, timeout=ROTATION_SEEN_WITHIN_SECONDS, what="be to serve the new token")
        assert after == rotated
        assert _validate(be2, after)["subject"] == cluster.pod("be").subject
        assert client.get("/call-be2").json()["be2_status"] == 200
    logs = be.logs() + be2.logs()
    assert before not in logs and after not in logs


def test_volume_files_are_readable_by_the_containers_user(fresh_devcluster: DevCluster) -> None:
    # The containers run as 10001, not as the root that wrote the files: kube-api-access's 0644,
    # and a Secret volume's default 0644 for be2's certificate.
    for pod in fresh_devcluster.pods:
        for name in ("token", "ca.crt", "namespace"):
            assert (pod.volume / name).stat().st_mode & 0o004, f"{pod.name}/{name}"
        assert Path(pod.volume).stat().st_mode & 0o005 == 0o005
    secret = Path(be2_tls(fresh_devcluster)["cert_file"]).parent
    for name in ("tls.crt", "tls.key", "ca.crt"):
        assert (secret / name).stat().st_mode & 0o004, f"be2-tls/{name}"
    assert secret.stat().st_mode & 0o005 == 0o005
