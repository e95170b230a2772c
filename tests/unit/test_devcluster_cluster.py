"""The devcluster's rules, in process with a fake clock: kube-apiserver's checks and wording."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from devcluster.admin import set_faults
from devcluster.cluster import Cluster
from devcluster.kubelet import PodSpec, parse_pod_spec, write_projected_volume
from devcluster.status import ApiError

START = 1_800_000_000.0
API = "https://kubernetes.default.svc.cluster.local"


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cluster(tmp_path: Path, clock: FakeClock) -> Cluster:
    return Cluster(tmp_path / "state", clock=clock)


def _pod(cluster: Cluster, app: str) -> Any:
    return next(p for p in cluster.registry.pods.values() if p.name.rsplit("-", 1)[0] == app)


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def _error(cluster: Cluster, token: str, audiences: list[str] | None = None) -> str:
    review = cluster.authenticator.authenticate(token, audiences)
    assert not review.authenticated
    return review.error


def test_projected_token_authenticates_with_the_pod_in_extra(cluster: Cluster) -> None:
    be = _pod(cluster, "be")
    review = cluster.authenticator.authenticate(be.token_file.read_text())
    assert review.authenticated
    assert review.username == "system:serviceaccount:default:be-sa"
    assert review.audiences == (API,)
    assert review.extra["authentication.kubernetes.io/pod-name"] == [be.name]
    assert review.extra["authentication.kubernetes.io/node-name"] == ["devcluster-node"]
    assert list(review.status()["user"]["extra"]) == sorted(review.extra)


def test_times_are_checked_with_60_seconds_leeway(cluster: Cluster, clock: FakeClock) -> None:
    token, _ = cluster.tokens.issue("default", "be-sa", expiration_seconds=600)
    clock.now = START + 600 + 60
    assert cluster.authenticator.authenticate(token).authenticated
    clock.now = START + 600 + 61
    assert _error(cluster, token) == "[invalid bearer token, service account token has expired]"
    future, _ = cluster.tokens.issue("default", "be-sa", issued_at=START + 600 + 61 + 120)
    assert (
        _error(cluster, future) == "[invalid bearer token, service account token is not valid yet]"
    )


def test_issued_in_the_future_is_its_own_error(cluster: Cluster) -> None:
    claims = _claims(cluster.tokens.issue("default", "be-sa")[0])
    claims["iat"] = START + 600
    assert _error(cluster, cluster.keyset.sign(claims)) == (
        "[invalid bearer token, service account token is issued in the future]"
    )


def test_signature_and_key_failures(cluster: Cluster) -> None:
    token, _ = cluster.tokens.issue("default", "be-sa")
    claims = _claims(token)
    stranger = cluster.keyset.generate_unpublished()
    assert _error(cluster, cluster.keyset.sign(claims, key=stranger)) == (
        "[invalid bearer token, invalid signature, no keys found]"
    )
    header, _, signature = token.split(".")
    tampered_claims = base64.urlsafe_b64encode(
        json.dumps({**claims, "sub": "system:serviceaccount:default:admin"}).encode()
    ).rstrip(b"=")
    tampered = f"{header}.{tampered_claims.decode()}.{signature}"
    assert _error(cluster, tampered) == (
        "[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]"
    )
    assert _error(cluster, cluster.keyset.sign(claims, {"alg": "none"})) == (
        "[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]"
    )
    # No kid: kube-apiserver tries every published key.
    no_kid = cluster.keyset.sign(claims, {"kid": None})
    assert cluster.authenticator.authenticate(no_kid).authenticated


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "{}.{}.{}", "eyJhbGciOiJSUzI1NiJ9.e30=.c2ln"],
)
def test_tokens_that_are_not_ours_are_just_invalid_bearer_tokens(
    cluster: Cluster, token: str
) -> None:
    assert _error(cluster, token) == "invalid bearer token"


def test_other_issuers_are_not_ours(cluster: Cluster) -> None:
    claims = _claims(cluster.tokens.issue("default", "be-sa")[0]) | {"iss": "https://elsewhere"}
    assert _error(cluster, cluster.keyset.sign(claims)) == "invalid bearer token"


def test_bound_objects_must_still_exist_with_the_same_uid(cluster: Cluster) -> None:
    be = _pod(cluster, "be")
    token = be.token_file.read_text()
    claims = _claims(token)
    claims["kubernetes.io"]["serviceaccount"]["uid"] = "other-uid"
    sa_uid = cluster.registry.service_account("default", "be-sa").uid
    assert _error(cluster, cluster.keyset.sign(claims)) == (
        f"[invalid bearer token, service account UID ({sa_uid}) does not match claim (other-uid)]"
    )
    claims = _claims(token)
    claims["kubernetes.io"]["pod"]["uid"] = "old-pod"
    assert _error(cluster, cluster.keyset.sign(claims)) == (
        f"[invalid bearer token, pod UID ({be.uid}) does not match service account pod ref "
        "claim (old-pod)]"
    )
    claims = _claims(token) | {"sub": "system:serviceaccount:default:ghost"}
    claims["kubernetes.io"]["serviceaccount"]["name"] = "ghost"
    assert _error(cluster, cluster.keyset.sign(claims)) == (
        '[invalid bearer token, serviceaccounts "ghost" not found]'
    )
    claims = _claims(token)
    del claims["kubernetes.io"]["pod"], claims["kubernetes.io"]["node"]
    claims["kubernetes.io"]["secret"] = {"name": "s", "uid": "u"}
    assert _error(cluster, cluster.keyset.sign(claims)) == (
        "[invalid bearer token, service account token has been invalidated]"
    )
    cluster.remove_pod("default", be.name)
    assert _error(cluster, token) == (
        "[invalid bearer token, service account token has been invalidated]"
    )


def test_a_terminating_pods_tokens_hold_until_60_s_past_its_deletion_timestamp(
    cluster: Cluster, clock: FakeClock
) -> None:
    be = _pod(cluster, "be")
    token = be.token_file.read_text()
    clock.now = START + 0.7
    cluster.terminate_pod("default", be.name, grace_seconds=30)
    # metav1.Time keeps whole seconds: deletionTimestamp = START + 30.
    assert be.deletion_timestamp == int(START) + 30
    assert cluster.pod_json(be)["deletion_timestamp"].endswith("Z")
    clock.now = START + 30 + 60
    assert cluster.authenticator.authenticate(token).authenticated
    # claims.go: DeletionTimestamp.Before(now - 60 s), compared to the nanosecond.
    clock.now = START + 30 + 60.5
    assert _error(cluster, token) == (
        "[invalid bearer token, service account token has been invalidated]"
    )
    # A second terminate keeps the first deletionTimestamp, as the API server does.
    cluster.terminate_pod("default", be.name, grace_seconds=0)
    assert be.deletion_timestamp == int(START) + 30


def test_audiences_intersect_in_token_order(cluster: Cluster) -> None:
    token, _ = cluster.tokens.issue("default", "be-sa", audiences=["b", "a", "c"])
    assert cluster.authenticator.authenticate(token, ["c", "a"]).audiences == ("a", "c")
    assert _error(cluster, token, ["z"]) == (
        '[invalid bearer token, token audiences ["b" "a" "c"] is invalid for the target '
        'audiences ["z"]]'
    )


def test_token_request_validation_and_bindings(cluster: Cluster) -> None:
    be = _pod(cluster, "be")
    with pytest.raises(ApiError) as short:
        cluster.tokens.token_request("default", "be-sa", {"spec": {"expirationSeconds": 599}})
    assert short.value.code == 422
    assert short.value.message == (
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
        "Invalid value: 599: may not specify a duration less than 10 minutes"
    )
    ref = {"kind": "Pod", "apiVersion": "v1", "name": be.name, "uid": "stale"}
    with pytest.raises(ApiError) as conflict:
        cluster.tokens.token_request("default", "be-sa", {"spec": {"boundObjectRef": ref}})
    assert (conflict.value.code, conflict.value.reason) == (409, "Conflict")
    ref = {"kind": "Deployment", "apiVersion": "apps/v1", "name": "x"}
    with pytest.raises(ApiError) as kind:
        cluster.tokens.token_request("default", "be-sa", {"spec": {"boundObjectRef": ref}})
    assert kind.value.message == "cannot bind token to object of type apps/v1, Kind=Deployment"
    with pytest.raises(ApiError) as name:
        cluster.tokens.token_request("default", "be-sa", {"metadata": {"name": "other"}})
    assert name.value.code == 422

    node_bound = cluster.tokens.token_request(
        "default",
        "be-sa",
        {
            "spec": {
                "boundObjectRef": {"kind": "Node", "apiVersion": "v1", "name": "devcluster-node"}
            }
        },
    )
    token = node_bound["status"]["token"]
    assert set(_claims(token)["kubernetes.io"]) == {"namespace", "serviceaccount", "node"}
    review = cluster.authenticator.authenticate(token)
    assert review.authenticated
    assert "authentication.kubernetes.io/pod-name" not in review.extra


def test_token_request_reports_the_requested_expiry_even_when_extended(
    cluster: Cluster,
) -> None:
    be = _pod(cluster, "be")
    ref = {"kind": "Pod", "apiVersion": "v1", "name": be.name}
    answer = cluster.tokens.token_request(
        "default", "be-sa", {"spec": {"expirationSeconds": 3607, "boundObjectRef": ref}}
    )
    claims = _claims(answer["status"]["token"])
    assert claims["exp"] - claims["iat"] == 365 * 86400
    assert answer["status"]["expirationTimestamp"] == "2027-01-15T09:00:07Z"


def test_kubelet_refreshes_at_80_percent_of_the_requested_lifetime(
    cluster: Cluster, clock: FakeClock
) -> None:
    be = _pod(cluster, "be")
    first = be.token_file.read_text()
    refresh_at = cluster.kubelet.next_refresh()
    assert refresh_at is not None
    assert refresh_at - START == pytest.approx(0.8 * 3607)
    clock.now = refresh_at - 1
    assert cluster.kubelet.refresh_tokens() == 0
    clock.now = refresh_at
    assert cluster.kubelet.refresh_tokens() == 3  # be, be's be2 token, be2
    assert be.token_file.read_text() != first
    cluster.remove_pod("default", be.name)
    clock.now += 3607
    assert cluster.kubelet.refresh_tokens() == 1  # a deleted pod's volume is left alone


def test_atomic_writer_swaps_data_and_skips_unchanged_payloads(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    assert write_projected_volume(volume, {"token": b"one", "namespace": b"default"})
    first = os.readlink(volume / "..data")
    assert not write_projected_volume(volume, {"token": b"one", "namespace": b"default"})
    assert os.readlink(volume / "..data") == first
    assert write_projected_volume(volume, {"token": b"two", "namespace": b"default"})
    second = os.readlink(volume / "..data")
    assert second != first and not (volume / first).exists()
    assert (volume / "token").read_bytes() == b"two"
    assert sorted(os.listdir(volume)) == sorted(["..data", second, "token", "namespace"])


def test_kubelet_writes_every_volume_file_world_readable_as_kube_api_access(
    cluster: Cluster,
) -> None:
    # kube-api-access has defaultMode 0644: a container running as any non-root UID (the image's
    # 10001) reads its pod's token through a read-only mount of the volume.
    for pod in cluster.registry.pods.values():
        for projection in pod.projections:
            data = projection.volume / os.readlink(projection.volume / "..data")
            assert data.stat().st_mode & 0o777 == 0o755
            for name in ("token", "ca.crt", "namespace"):
                assert (projection.volume / name).stat().st_mode & 0o777 == 0o644, name


def test_pod_specs_parse_and_validate(tmp_path: Path) -> None:
    assert parse_pod_spec("team/api:api-sa:be2,https://x") == PodSpec(
        "api", "api-sa", "team", ("be2", "https://x")
    )
    assert parse_pod_spec("be:be-sa") == PodSpec("be", "be-sa")
    with pytest.raises(ValueError, match="not a valid Kubernetes name"):
        parse_pod_spec("Bad_App:sa")
    cluster = Cluster(tmp_path / "s", pods=[parse_pod_spec("team/api:api-sa:https://x")])
    (pod,) = cluster.registry.pods.values()
    assert pod.namespace == "team"
    assert [p.volume.name for p in pod.projections] == ["serviceaccount", "https-x-token"]


def test_faults_are_validated(cluster: Cluster) -> None:
    with pytest.raises(ApiError):
        set_faults(cluster, {"keys": "meltdown"})
    with pytest.raises(ApiError):
        set_faults(cluster, {"delay_seconds": -1})
    assert set_faults(cluster, {"keys": "slow", "delay_seconds": 0.5})["keys"] == "slow"


def test_be2_gets_a_serving_certificate_from_the_cluster_ca_for_its_service_names(
    cluster: Cluster, clock: FakeClock
) -> None:
    be2 = _pod(cluster, "be2")
    files = cluster.serving[(be2.namespace, be2.name)]
    assert files.cert_file.parent.name == "be2-tls"
    assert sorted(
        p.name for p in files.cert_file.parent.iterdir() if not p.name.startswith("..")
    ) == [
        "ca.crt",
        "tls.crt",
        "tls.key",
    ]
    assert files.ca_file.read_bytes() == cluster.tls.ca_pem
    ca = x509.load_pem_x509_certificate(cluster.tls.ca_pem)
    leaf = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    when = datetime.datetime.fromtimestamp(clock(), datetime.UTC)
    for name in ("be2", "be2.default.svc"):
        verifier = (
            PolicyBuilder().store(Store([ca])).time(when).build_server_verifier(x509.DNSName(name))
        )
        verifier.verify(leaf, [])
    ip_verifier = (
        PolicyBuilder()
        .store(Store([ca]))
        .time(when)
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    )
    ip_verifier.verify(leaf, [])
    wrong = (
        PolicyBuilder()
        .store(Store([ca]))
        .time(when)
        .build_server_verifier(x509.DNSName("be.default.svc"))
    )
    with pytest.raises(x509.verification.VerificationError):
        wrong.verify(leaf, [])
    # be's pod has no serving certificate; cluster.json says where be2's is.
    assert [p["name"] for p in cluster.cluster_json()["pods"] if p["tls"]] == [be2.name]
    assert cluster.pod_json(be2)["tls"]["cert_file"] == str(files.cert_file)


def test_renewing_swaps_the_secret_volume_to_a_new_key_and_serial(cluster: Cluster) -> None:
    be2 = _pod(cluster, "be2")
    files = cluster.serving[(be2.namespace, be2.name)]
    old_target = files.cert_file.resolve()
    old = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    old_key = files.key_file.read_bytes()
    assert cluster.renew_serving_certificates() == 1
    new = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    assert new.serial_number != old.serial_number
    assert files.key_file.read_bytes() != old_key
    assert not old_target.exists()  # the previous ..data target is gone, as the kubelet does
    assert files.cert_file.is_symlink() and os.readlink(files.cert_file) == "..data/tls.crt"
