"""The devcluster process answers as kube-apiserver does where clients can tell: RBAC before
routing, strict decoding, graceful pod deletion, kubelet file modes; the admin-only extras stay
off the API listener."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devcluster.status import status_body
from tests.devcluster_harness import TEST_RBAC, DevCluster, start_devcluster

pytestmark = pytest.mark.e2e

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/openid/v1/jwks"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
TOKEN_REQUEST = "/api/v1/namespaces/default/serviceaccounts/be-sa/token"
# A service account bound to cluster-admin sees what is behind RBAC: the routing answers.
ROOT_RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops-cluster-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: ops-sa, namespace: default}]
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status(
    code: int, reason: str, message: str, details: dict[str, str] | None = None
) -> dict[str, Any]:
    """A metav1.Status; `details` only where kube sets them (not on NewBadRequest's 400s)."""
    return status_body(code, reason, message, details)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    state = tmp_path_factory.mktemp("kube-answers")
    root_rbac = state / "ops.yaml"
    root_rbac.write_text(ROOT_RBAC)
    pods = ["--pod", "be:be-sa:be2", "--pod", "be2:be2-sa", "--pod", "ops:ops-sa"]
    with start_devcluster(state / "cluster", extra_args=pods, rbac=[TEST_RBAC, root_rbac]) as dc:
        yield dc


# --- RBAC before routing: HEAD, POST, unknown paths ---------------------------------------


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", [DISCOVERY, JWKS])
def test_other_methods_on_discovery_are_an_rbac_question_first(
    cluster: DevCluster, method: str, path: str
) -> None:
    be = cluster.pod("be")
    with cluster.client() as client:
        refused = client.request(method, path, headers=bearer(be.token()))
        allowed = client.request(method, path, headers=bearer(cluster.pod("ops").token()))
    # The bootstrap role grants `get` only: HEAD is verb `head`, POST `post`.
    assert refused.status_code == 403
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert allowed.status_code == 405
    if method == "HEAD":
        assert refused.content == allowed.content == b""
        return
    verb = method.lower()
    assert refused.json() == status(
        403, "Forbidden", f'forbidden: User "{be.subject}" cannot {verb} path "{path}"', {}
    )
    assert allowed.json() == status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        {},
    )


def test_unknown_paths_are_403_unless_rbac_allows_then_404_with_empty_details(
    cluster: DevCluster,
) -> None:
    with cluster.client() as client:
        anonymous = client.get("/nope")
        root = client.get("/nope", headers=bearer(cluster.pod("ops").token()))
        pods = client.get(
            "/api/v1/namespaces/default/pods", headers=bearer(cluster.pod("be").token())
        )
    assert anonymous.json() == status(
        403, "Forbidden", 'forbidden: User "system:anonymous" cannot get path "/nope"', {}
    )
    assert root.json() == status(
        404, "NotFound", "the server could not find the requested resource", {}
    )
    assert pods.json() == status(
        403,
        "Forbidden",
        f'pods is forbidden: User "{cluster.pod("be").subject}" cannot list resource "pods" in '
        'API group "" in the namespace "default"',
        {"kind": "pods"},
    )


def test_health_is_public_as_system_public_info_viewer_makes_it(cluster: DevCluster) -> None:
    with cluster.client() as client:
        assert client.get("/healthz").text == "ok"
        assert client.get("/readyz").text == "ok"
        assert client.get("/healthz", headers=bearer("not-a-token")).status_code == 401


# --- strict decoding ----------------------------------------------------------------------


def post(cluster: DevCluster, path: str, content: bytes, query: str = "") -> httpx.Response:
    caller = cluster.pod("be2" if path == TOKEN_REVIEWS else "be").token()
    headers = {**bearer(caller), "Content-Type": "application/json"}
    with cluster.client() as client:
        return client.post(path + query, content=content, headers=headers)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            TOKEN_REVIEWS,
            b'{"apiVersion":"v1","kind":"Pod","spec":{"token":"x"}}',
            "the API version in the data (v1) does not match the expected API version "
            "(authentication.k8s.io/v1)",
        ),
        (
            TOKEN_REQUEST,
            b'{"apiVersion":"v1","kind":"Pod"}',
            "the API version in the data (v1) does not match the expected API version "
            "(authentication.k8s.io/v1)",
        ),
        (
            TOKEN_REVIEWS,
            b'{"kind":"Tokenreview","spec":{"token":"x"}}',
            'Tokenreview in version "v1" cannot be handled as a TokenReview: no kind '
            '"Tokenreview" is registered for version "authentication.k8s.io/v1" in scheme '
            '"pkg/api/legacyscheme/scheme.go:30"',
        ),
        (
            TOKEN_REVIEWS,
            b'{"spec":{"token":"x"',
            "the object provided is unrecognized (must be of type TokenReview): couldn't get "
            'version/kind; json parse error: unexpected end of JSON input ({"spec":{"token":"x")',
        ),
        (
            TOKEN_REVIEWS,
            b"{'spec': {}}",
            "the object provided is unrecognized (must be of type TokenReview): couldn't get "
            "version/kind; json parse error: invalid character '\\'' looking for beginning of "
            "object key string ({'spec': {}})",
        ),
        (
            TOKEN_REQUEST,
            b"",
            "the object provided is unrecognized (must be of type TokenRequest): couldn't get "
            "version/kind; json parse error: unexpected end of JSON input (<empty>)",
        ),
        (
            TOKEN_REQUEST,
            b'{"spec":{"expirationSeconds":"600"}}',
            'TokenRequest in version "v1" cannot be handled as a TokenRequest: json: cannot '
            "unmarshal string into Go struct field TokenRequestSpec.spec.expirationSeconds of "
            "type int64",
        ),
    ],
)
def test_bodies_kube_cannot_decode_are_400_in_its_words(
    cluster: DevCluster, path: str, body: bytes, message: str
) -> None:
    answer = post(cluster, path, body)
    assert answer.json() == status(400, "BadRequest", message)


def test_unknown_fields_are_a_warning_by_default_and_400_when_strict(cluster: DevCluster) -> None:
    token = cluster.pod("be").token()
    body = b'{"kind":"TokenReview","spec":{"token":"%s","audience":["x"]},"extra":1}' % (
        token.encode()
    )
    warned = post(cluster, TOKEN_REVIEWS, body)
    assert warned.status_code == 201
    assert warned.json()["status"]["authenticated"] is True
    assert warned.headers["warning"] == (
        '299 - "unknown field \\"spec.audience\\"", 299 - "unknown field \\"extra\\""'
    )
    quiet = post(cluster, TOKEN_REVIEWS, body, "?fieldValidation=Ignore")
    assert quiet.status_code == 201 and "warning" not in quiet.headers
    strict = post(cluster, TOKEN_REVIEWS, body, "?fieldValidation=Strict")
    assert strict.json() == status(
        400,
        "BadRequest",
        'TokenReview in version "v1" cannot be handled as a TokenReview: strict decoding '
        'error: unknown field "spec.audience", unknown field "extra"',
    )
    clean = post(cluster, TOKEN_REQUEST, b'{"spec":{"audiences":["be2"]}}')
    assert clean.status_code == 201 and "warning" not in clean.headers


# --- pods deleted in two steps, on the emulator's clock -------------------------------------


def review_error(cluster: DevCluster, token: str) -> str | None:
    body = {"spec": {"token": token}}
    with cluster.client() as client:
        answer = client.post(TOKEN_REVIEWS, json=body, headers=bearer(cluster.pod("be2").token()))
    found: dict[str, Any] = answer.json()["status"]
    return None if found.get("authenticated") else found["error"]


def test_terminate_keeps_tokens_for_grace_plus_60_s_and_remove_ends_them(tmp_path: Path) -> None:
    pods = ["--pod", "be:be-sa", "--pod", "be2:be2-sa", "--pod", "web:be-sa"]
    with start_devcluster(tmp_path / "cluster", extra_args=pods) as cluster:
        be, web = cluster.pod("be"), cluster.pod("web")
        token, web_token = be.token(), web.token()
        answer = cluster.admin(
            f"/admin/pods/default/{be.name}/terminate", {"grace_period_seconds": 10}
        )
        assert answer["uid"] == be.uid
        state = cluster.state()
        assert state["pods_terminated"] == 1
        listed = next(p for p in state["pods"] if p["name"] == be.name)
        assert listed["deletion_timestamp"] == answer["deletion_timestamp"]
        # deletionTimestamp is whole seconds (at most 1 s before now + grace): 65 s on, the
        # 10 s grace + 60 s have not passed (4 s to spare for the test itself); 72 s on they have.
        cluster.admin("/admin/clock/advance", {"seconds": 65})
        assert review_error(cluster, token) is None
        cluster.admin("/admin/clock/advance", {"seconds": 7})
        assert review_error(cluster, token) == (
            "[invalid bearer token, service account token has been invalidated]"
        )
        assert review_error(cluster, web_token) is None
        cluster.admin(f"/admin/pods/default/{web.name}/remove")
        assert review_error(cluster, web_token) == (
            "[invalid bearer token, service account token has been invalidated]"
        )
        assert cluster.state()["pods_removed"] == 1


# --- kubelet file modes ---------------------------------------------------------------------


def test_projected_files_are_0644_whatever_the_umask(tmp_path: Path) -> None:
    # atomic_writer.go chmods each file to the volume's mode: a umask does not narrow it.
    previous = os.umask(0o077)
    try:
        with start_devcluster(tmp_path / "cluster") as cluster:
            for pod in cluster.pods:
                for name in ("token", "ca.crt", "namespace"):
                    assert (pod.volume / name).stat().st_mode & 0o777 == 0o644, name
                for path in pod.extra_tokens.values():
                    assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)


# --- what kube-apiserver never does stays on the admin listener -----------------------------

ADMIN_ONLY = [
    ("POST", "/admin/tokens/mint", {"service_account": "be-sa"}),
    ("POST", "/admin/sign", {"header": "e30", "payload": "e30"}),
    ("POST", "/admin/signing-keys/rotate", {}),
    ("POST", "/admin/faults", {"keys": "outage"}),
    ("POST", "/admin/clock/advance", {"seconds": 1000}),
    ("POST", "/admin/tokens/rotate", {}),
    ("POST", "/admin/pods/default/be/remove", {}),
    ("GET", "/admin/state", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_admin_operations_are_not_on_the_api_listener(
    cluster: DevCluster, method: str, path: str, body: dict[str, Any] | None
) -> None:
    before = cluster.state()
    with cluster.client() as client:
        as_admin = client.request(method, path, json=body, headers=bearer(cluster.admin_token))
        as_root = client.request(
            method, path, json=body, headers=bearer(cluster.pod("ops").token())
        )
    # The admin token is no service account token (401); even cluster-admin finds nothing.
    assert as_admin.status_code == 401
    assert as_root.status_code in (404, 405)
    assert as_root.json()["details"] == {}
    after = cluster.state()
    for counter in ("tokens_issued", "key_rotations", "token_writes", "pods_removed"):
        assert after[counter] == before[counter]
    assert after["faults"] == before["faults"]
    assert after["signing_kid"] == before["signing_kid"]
