"""`ksa-auth devcluster` as a real process, checked over real TLS with its own CA."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.jwk import KeySet

from devcluster.status import status_body
from tests.devcluster_harness import DevCluster, devcluster_command, poll, start_devcluster
from tests.helpers import layout, segment
from tests.unit.test_seed_token import SEED_TOKEN

pytestmark = pytest.mark.e2e

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
ONE_YEAR = 365 * 24 * 3600


def forbidden(message: str, **details: str) -> dict[str, Any]:
    """kube-apiserver's 403 Status (its full shape is pinned in test_devcluster_rbac.py)."""
    return status_body(403, "Forbidden", message, details)


def anonymous_status(verb: str, path: str) -> dict[str, Any]:
    return forbidden(f'forbidden: User "system:anonymous" cannot {verb} path "{path}"')


DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/openid/v1/jwks"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _jwks(cluster: DevCluster) -> dict[str, Any]:
    with cluster.client() as client:
        response = client.get(JWKS, headers=_bearer(cluster.pod("be").token()))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify with joserfc against the published JWKS (algorithms pinned); return the claims."""
    jws.deserialize_compact(token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])  # type: ignore[arg-type]
    return segment(token, 1)


def _spki_kid(jwk: dict[str, str]) -> str:
    """SHA-256 over the DER SubjectPublicKeyInfo rebuilt from the JWK, base64url, no padding."""

    def number(member: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(jwk[member] + "=" * (-len(jwk[member]) % 4)))

    public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    if jwk["kty"] == "RSA":
        public = rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    else:
        curve = ec.SECP256R1()
        public = ec.EllipticCurvePublicNumbers(number("x"), number("y"), curve).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _review(
    cluster: DevCluster,
    token: str,
    audiences: list[str] | None = None,
    caller: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    caller = caller or cluster.pod("be2").token()
    with cluster.client() as client:
        response = client.post(TOKEN_REVIEWS, json=body, headers=_bearer(caller))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


# --- a shared cluster (read-only checks) ----------------------------------------------------


def test_cluster_json_names_the_contract_fields(devcluster: DevCluster) -> None:
    raw = devcluster.raw
    assert raw["url"].startswith("https://127.0.0.1:")
    assert raw["admin_url"].startswith("http://127.0.0.1:")
    assert raw["issuer"] == raw["api_audience"] == "https://kubernetes.default.svc.cluster.local"
    assert raw["discovery_url"] == raw["url"] + DISCOVERY
    assert raw["jwks_url"] == raw["url"] + JWKS
    assert Path(raw["ca_file"]) == devcluster.state_dir / "ca.crt"
    be, be2 = devcluster.pod("be"), devcluster.pod("be2")
    assert (be.namespace, be.service_account, be2.service_account) == ("default", "be-sa", "be2-sa")
    assert be.name.startswith("be-") and be2.name.startswith("be2-")
    assert set(be.extra_tokens) == {"be2"} and be2.extra_tokens == {}
    assert be.node == be2.node == "devcluster-node"
    assert (devcluster.state_dir / "cluster.json").stat().st_mode & 0o077 == 0


def test_volumes_are_kubelet_style_symlinks_into_data(devcluster: DevCluster) -> None:
    for pod in devcluster.pods:
        for volume in [pod.volume, *(p.parent for p in pod.extra_tokens.values())]:
            data = volume / "..data"
            assert data.is_symlink()
            target = os.readlink(data)
            assert target.startswith("..") and "/" not in target
            assert (volume / target).is_dir() and not (volume / target).is_symlink()
            for name in ("token", "ca.crt", "namespace"):
                assert (volume / name).is_symlink()
                assert os.readlink(volume / name) == f"..data/{name}"
                # kube-api-access files are 0644: readable by the containers' non-root UID.
                assert (volume / name).stat().st_mode & 0o777 == 0o644, name
            assert (volume / "namespace").read_text() == pod.namespace
            assert (volume / "ca.crt").read_bytes() == devcluster.ca_file.read_bytes()
            assert not (volume / "..data_tmp").exists()


def test_discovery_needs_a_service_account_token_for_the_api_audience(
    devcluster: DevCluster,
) -> None:
    be = devcluster.pod("be")
    with devcluster.client() as client:
        anonymous = client.get(DISCOVERY)
        other_audience = client.get(DISCOVERY, headers=_bearer(be.token("be2")))
        garbage = client.get(DISCOVERY, headers=_bearer("not-a-token"))
        good = client.get(DISCOVERY, headers=_bearer(be.token()))
    # Anonymous auth is on, as by default: no token is system:anonymous, whom RBAC refuses.
    assert (anonymous.status_code, anonymous.json()) == (403, anonymous_status("get", DISCOVERY))
    for refused in (other_audience, garbage):
        assert refused.status_code == 401
        assert refused.json() == UNAUTHORIZED
        assert refused.headers["content-type"] == "application/json"
    assert good.status_code == 200
    assert good.headers["content-type"] == "application/json"
    assert good.headers["cache-control"] == "public, max-age=3600"
    assert good.json() == {
        "issuer": "https://kubernetes.default.svc.cluster.local",
        "jwks_uri": "https://apiserver.invalid:6443/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def test_jwks_needs_auth_and_verifies_every_projected_token(devcluster: DevCluster) -> None:
    with devcluster.client() as client:
        assert client.get(JWKS).json() == anonymous_status("get", JWKS)
        response = client.get(JWKS, headers=_bearer(devcluster.pod("be2").token()))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == "public, max-age=3600"
    jwks = response.json()
    (jwk,) = jwks["keys"]
    assert list(jwk) == ["use", "kty", "kid", "alg", "n", "e"]
    assert (jwk["use"], jwk["kty"], jwk["alg"], jwk["e"]) == ("sig", "RSA", "RS256", "AQAB")
    for pod in devcluster.pods:
        for token in [pod.token(), *(pod.token(aud) for aud in pod.extra_tokens)]:
            claims = _verify(token, jwks)
            assert claims["sub"] == pod.subject
            assert segment(token, 0) == {"alg": "RS256", "kid": jwk["kid"]}


def test_kid_is_sha256_of_the_published_keys_spki(devcluster: DevCluster) -> None:
    (jwk,) = _jwks(devcluster)["keys"]
    assert jwk["kid"] == _spki_kid(jwk)
    assert segment(devcluster.pod("be").token(), 0)["kid"] == jwk["kid"]


def test_projected_token_has_the_seed_tokens_claim_layout(devcluster: DevCluster) -> None:
    be = devcluster.pod("be")
    token = be.token()
    assert layout(segment(token, 0)) == layout(segment(SEED_TOKEN, 0))
    assert layout(segment(token, 1)) == layout(segment(SEED_TOKEN, 1))
    claims = segment(token, 1)
    private = claims["kubernetes.io"]
    assert claims["aud"] == [devcluster.api_audience]
    assert claims["iss"] == devcluster.issuer
    assert claims["iat"] == claims["nbf"]
    # The kubelet's 3607 s API-audience request is extended to a year, warning after 3607 s.
    assert claims["exp"] - claims["iat"] == ONE_YEAR
    assert private["warnafter"] - claims["iat"] == 3607
    assert private["pod"] == {"name": be.name, "uid": be.uid}
    assert private["serviceaccount"] == {"name": "be-sa", "uid": be.service_account_uid}
    assert private["node"]["name"] == "devcluster-node"


def test_custom_audience_token_is_never_extended(devcluster: DevCluster) -> None:
    claims = segment(devcluster.pod("be").token("be2"), 1)
    assert claims["aud"] == ["be2"]
    assert claims["exp"] - claims["iat"] == 3607
    assert "warnafter" not in claims["kubernetes.io"]


def test_tls_is_only_trusted_with_the_devcluster_ca(devcluster: DevCluster) -> None:
    with (
        httpx.Client(verify=ssl.create_default_context()) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(devcluster.url + "/healthz")
    with devcluster.client() as client:
        assert client.get("/healthz").status_code == 200


def test_token_request_returns_kube_shaped_bound_tokens(devcluster: DevCluster) -> None:
    be = devcluster.pod("be")
    path = "/api/v1/namespaces/default/serviceaccounts/be-sa/token"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": ["be2"],
            "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": be.name, "uid": be.uid},
        },
    }
    with devcluster.client() as client:
        assert client.post(path, json=body).json() == forbidden(
            'serviceaccounts "be-sa" is forbidden: User "system:anonymous" cannot create '
            'resource "serviceaccounts/token" in API group "" in the namespace "default"',
            name="be-sa",
            kind="serviceaccounts",
        )
        response = client.post(path, json=body, headers=_bearer(be.token()))
        too_short = client.post(
            path, json={"spec": {"expirationSeconds": 60}}, headers=_bearer(be.token())
        )
        unknown = client.post(
            "/api/v1/namespaces/default/serviceaccounts/nobody/token",
            json={},
            headers=_bearer(be.token()),
        )
        wrong_pod = client.post(
            "/api/v1/namespaces/default/serviceaccounts/be2-sa/token",
            json={"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": be.name}}},
            headers=_bearer(be.token()),
        )
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["kind"], result["apiVersion"]) == ("TokenRequest", "authentication.k8s.io/v1")
    assert result["metadata"]["name"] == "be-sa"
    assert result["metadata"]["namespace"] == "default"
    assert result["spec"]["audiences"] == ["be2"]
    assert result["spec"]["expirationSeconds"] == 600
    assert set(result["status"]) == {"token", "expirationTimestamp"}
    claims = _verify(result["status"]["token"], _jwks(devcluster))
    assert claims["aud"] == ["be2"]
    assert claims["exp"] - claims["iat"] == 600
    assert claims["kubernetes.io"]["pod"] == {"name": be.name, "uid": be.uid}
    assert result["status"]["expirationTimestamp"].endswith("Z")
    assert (too_short.status_code, too_short.json()["reason"]) == (422, "Invalid")
    assert "may not specify a duration less than 10 minutes" in too_short.json()["message"]
    assert (unknown.status_code, unknown.json()["message"]) == (
        404,
        'serviceaccounts "nobody" not found',
    )
    assert wrong_pod.status_code == 400
    assert "different serviceaccount name" in wrong_pod.json()["message"]


def test_token_review_answers_with_kube_shapes(devcluster: DevCluster) -> None:
    be, be2 = devcluster.pod("be"), devcluster.pod("be2")
    good = _review(devcluster, be.token("be2"), ["be2"])
    assert (good["kind"], good["apiVersion"]) == ("TokenReview", "authentication.k8s.io/v1")
    status = good["status"]
    assert status["authenticated"] is True
    assert status["audiences"] == ["be2"]
    user = status["user"]
    assert user["username"] == "system:serviceaccount:default:be-sa"
    assert user["uid"] == be.service_account_uid
    assert user["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]
    extra = user["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == [be.name]
    assert extra["authentication.kubernetes.io/pod-uid"] == [be.uid]
    jti = segment(be.token("be2"), 1)["jti"]
    assert extra["authentication.kubernetes.io/credential-id"] == [f"JTI={jti}"]

    default_audience = _review(devcluster, be.token())["status"]
    assert default_audience["authenticated"] is True
    assert default_audience["audiences"] == [devcluster.api_audience]

    wrong = _review(devcluster, be.token("be2"))["status"]
    assert "authenticated" not in wrong  # Go omitempty: false is not written
    assert wrong["user"] == {}
    assert wrong["error"] == (
        '[invalid bearer token, token audiences ["be2"] is invalid for the target audiences '
        '["https://kubernetes.default.svc.cluster.local"]]'
    )
    assert _review(devcluster, "garbage")["status"] == {"user": {}, "error": "invalid bearer token"}

    with devcluster.client() as client:
        anonymous = client.post(TOKEN_REVIEWS, json={"spec": {"token": be.token()}})
        empty = client.post(
            TOKEN_REVIEWS, json={"spec": {"token": ""}}, headers=_bearer(be2.token())
        )
    assert (anonymous.status_code, anonymous.json()) == (
        403,
        forbidden(
            'tokenreviews.authentication.k8s.io is forbidden: User "system:anonymous" cannot '
            'create resource "tokenreviews" in API group "authentication.k8s.io" at the '
            "cluster scope",
            group="authentication.k8s.io",
            kind="tokenreviews",
        ),
    )
    assert empty.status_code == 400
    assert empty.json()["message"] == "token is required for TokenReview in authentication"


def test_unknown_paths_and_bad_bodies_get_status_json_never_500(devcluster: DevCluster) -> None:
    token = devcluster.pod("be2").token()
    with devcluster.client() as client:
        answers = [
            client.get("/nope"),
            client.delete(JWKS),
            client.post(TOKEN_REVIEWS, content=b"[1", headers=_bearer(token)),
            client.post(TOKEN_REVIEWS, content=b"[]", headers=_bearer(token)),
            client.post(TOKEN_REVIEWS, content=b"x" * (2 * 1024 * 1024), headers=_bearer(token)),
            client.get(DISCOVERY, headers={"Authorization": "Bearer " + "a." * 5000}),
        ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["kind"] == "Status"


def test_admin_api_needs_the_admin_token(devcluster: DevCluster) -> None:
    response = httpx.get(f"{devcluster.admin_url}/admin/state")
    assert response.status_code == 401
    wrong = httpx.get(f"{devcluster.admin_url}/admin/state", headers=_bearer("wrong"))
    assert wrong.status_code == 401
    assert devcluster.state()["signing_kid"]


def test_admin_mint_issues_any_layout_kube_would(devcluster: DevCluster) -> None:
    be = devcluster.pod("be")
    pod_bound = devcluster.mint("be-sa", expiration_seconds=3607, pod=be.name)
    claims = _verify(pod_bound, _jwks(devcluster))
    assert claims["exp"] - claims["iat"] == ONE_YEAR  # the kubelet-like request is extended
    unbound = devcluster.mint("reporter", audiences=["be2"], expiration_seconds=900)
    claims = segment(unbound, 1)
    assert claims["sub"] == "system:serviceaccount:default:reporter"
    assert "pod" not in claims["kubernetes.io"] and "node" not in claims["kubernetes.io"]
    assert _review(devcluster, unbound, ["be2"])["status"]["authenticated"] is True
    expired = devcluster.mint("be-sa", issued_at=1_000_000_000, expiration_seconds=600)
    assert _review(devcluster, expired)["status"]["error"] == (
        "[invalid bearer token, service account token has expired]"
    )


# --- clusters of their own (they change state) ----------------------------------------------


def test_signing_key_rotation_keeps_old_tokens_until_retired(
    fresh_devcluster: DevCluster,
) -> None:
    cluster = fresh_devcluster
    be = cluster.pod("be")
    old_token = be.token()
    (old,) = (k["kid"] for k in _jwks(cluster)["keys"])
    rotated = cluster.admin("/admin/signing-keys/rotate", {"retire_previous": False})
    new = rotated["kid"]
    assert rotated["published"] == [old, new]
    jwks = _jwks(cluster)
    assert [k["kid"] for k in jwks["keys"]] == [old, new]
    assert all(k["kid"] == _spki_kid(k) for k in jwks["keys"])
    # Tokens keep their kid until the kubelet refreshes them; then the new key signs.
    assert segment(be.token(), 0)["kid"] == old
    cluster.admin("/admin/tokens/rotate")
    new_token = be.token()
    assert new_token != old_token
    assert segment(new_token, 0)["kid"] == new
    _verify(old_token, jwks)
    _verify(new_token, jwks)
    assert _review(cluster, old_token)["status"]["authenticated"] is True

    cluster.admin("/admin/signing-keys/retire", {"kid": old})
    assert [k["kid"] for k in _jwks(cluster)["keys"]] == [new]
    assert _review(cluster, old_token)["status"]["error"] == (
        "[invalid bearer token, invalid signature, no keys found]"
    )
    assert _review(cluster, new_token)["status"]["authenticated"] is True
    assert cluster.state()["key_rotations"] == 1


def test_pod_deletion_invalidates_its_tokens_in_token_review(
    fresh_devcluster: DevCluster,
) -> None:
    cluster = fresh_devcluster
    be = cluster.pod("be")
    token = be.token()
    assert _review(cluster, token)["status"]["authenticated"] is True
    cluster.admin(f"/admin/pods/{be.namespace}/{be.name}/remove")
    status = _review(cluster, token)["status"]
    assert "authenticated" not in status
    assert status["error"] == "[invalid bearer token, service account token has been invalidated]"
    # The signature is still good: a local JWKS check cannot notice the deletion.
    _verify(token, _jwks_with(cluster, cluster.pod("be2").token()))
    with cluster.client() as client:
        assert client.get(DISCOVERY, headers=_bearer(token)).status_code == 401


def _jwks_with(cluster: DevCluster, token: str) -> dict[str, Any]:
    with cluster.client() as client:
        data: dict[str, Any] = client.get(JWKS, headers=_bearer(token)).json()
    return data


def test_kubelet_rotates_tokens_atomically_at_80_percent_of_their_lifetime(
    tmp_path: Path,
) -> None:
    with start_devcluster(tmp_path / "cluster", token_ttl=3) as cluster:
        be = cluster.pod("be")
        volume = be.volume
        first_dir = os.readlink(volume / "..data")
        first_token = be.token()
        first_extra = be.token("be2")
        claims = segment(first_token, 1)
        # Not the kubelet's 3607 s, so not extended: the token really lives 3 s.
        assert claims["exp"] - claims["iat"] == 3
        assert "warnafter" not in claims["kubernetes.io"]

        def swapped() -> str | None:
            target = os.readlink(volume / "..data")
            return target if target != first_dir else None

        second_dir = poll(swapped, timeout=30, what="the kubelet to swap ..data")
        assert second_dir.startswith("..")
        assert not (volume / first_dir).exists()  # the old timestamped dir is removed
        assert os.readlink(volume / "token") == "..data/token"
        assert be.token() != first_token
        poll(lambda: be.token("be2") != first_extra, timeout=30, what="the be2 token refresh")
        jwks = _jwks(cluster)
        assert _verify(be.token(), jwks)["iat"] >= claims["iat"]
        assert cluster.state()["token_writes"] >= 4


@pytest.mark.parametrize(
    ("mode", "status", "check"),
    [
        ("outage", 503, lambda r: r.json()["reason"] == "ServiceUnavailable"),
        ("garbage", 200, lambda r: not r.text.lstrip().startswith("{")),
        ("oversized", 200, lambda r: len(r.content) > 2 * 1024 * 1024),
        ("malformed", 200, lambda r: not isinstance(r.json().get("keys"), list)),
        ("redirect", 302, lambda r: r.headers["location"].startswith("http://127.0.0.1:")),
        ("slow", 200, lambda r: isinstance(r.json().get("keys"), list)),
    ],
)
def test_key_faults_break_discovery_and_jwks_as_asked(
    fresh_devcluster: DevCluster, mode: str, status: int, check: Any
) -> None:
    cluster = fresh_devcluster
    token = cluster.pod("be").token()
    cluster.admin("/admin/faults", {"keys": mode, "delay_seconds": 0.2 if mode == "slow" else 0})
    with cluster.client() as client:
        jwks = client.get(JWKS, headers=_bearer(token))
        discovery = client.get(DISCOVERY, headers=_bearer(token))
    assert jwks.status_code == status and discovery.status_code == status
    assert check(jwks)
    if mode == "redirect":
        # A client that follows the redirect hands its token to another origin: counted.
        httpx.get(jwks.headers["location"], headers=_bearer(token))
        state = cluster.state()
        assert state["redirect_target_requests"] == 1
        assert state["redirect_target_authorization"] == 1
    cluster.admin("/admin/faults", {"keys": "ok"})
    with cluster.client() as client:
        assert client.get(JWKS, headers=_bearer(token)).status_code == 200
    assert cluster.state()["jwks_requests"] == 2


def test_token_review_outage_fault(fresh_devcluster: DevCluster) -> None:
    cluster = fresh_devcluster
    cluster.admin("/admin/faults", {"tokenreview": "outage"})
    with cluster.client() as client:
        response = client.post(
            TOKEN_REVIEWS,
            json={"spec": {"token": cluster.pod("be").token()}},
            headers=_bearer(cluster.pod("be2").token()),
        )
    assert response.status_code == 503
    assert cluster.state()["tokenreview_requests"] == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_cleanly_on_signals(tmp_path: Path, sig: int) -> None:
    with start_devcluster(tmp_path / "cluster") as cluster:
        assert cluster.stop(sig) == 0
        assert not (cluster.state_dir / "cluster.json").exists()
        assert "Traceback" not in cluster.logs()


def test_pods_are_configurable(tmp_path: Path) -> None:
    extra_args = ["--pod", "team/api:api-sa:aud1", "--pod", "web:web-sa"]
    rbac = tmp_path / "web-reviews.yaml"
    rbac.write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\n"
        "kind: ClusterRoleBinding\n"
        "metadata: {name: web-reviews}\n"
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, "
        "name: system:auth-delegator}\n"
        "subjects: [{kind: ServiceAccount, name: web-sa, namespace: default}]\n"
    )
    with start_devcluster(tmp_path / "cluster", extra_args=extra_args, rbac=[rbac]) as cluster:
        api, web = cluster.pod("api"), cluster.pod("web")
        assert (api.namespace, api.service_account, set(api.extra_tokens)) == (
            "team",
            "api-sa",
            {"aud1"},
        )
        assert (web.namespace, web.extra_tokens) == ("default", {})
        review = _review(cluster, api.token("aud1"), ["aud1"], caller=web.token())
        assert review["status"]["authenticated"] is True
        assert (api.volume.parent / "aud1-token" / "namespace").read_text() == "team"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pod", "Bad_Name:sa"], "not a valid Kubernetes name"),
        (["--token-ttl", "0"], "--token-ttl must be at least 1 second"),
    ],
)
def test_bad_arguments_end_with_one_clear_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    command = devcluster_command(tmp_path / "cluster", 3607, args)
    # A later --token-ttl wins over the harness's default one (argparse keeps the last).
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
