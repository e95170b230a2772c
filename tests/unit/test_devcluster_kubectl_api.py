"""What kubectl needs of the emulator, in process: kubeconfig, /version, discovery, protobuf."""

from __future__ import annotations

import json
import re
import stat
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_validate.utils import schema_contents
from litestar.testing import TestClient

from devcluster import kubeconfig
from devcluster.api_discovery import accepts_json
from devcluster.apiserver import create_app
from devcluster.cluster import Cluster
from devcluster.openapi import (
    PROTOBUF_CONTENT_TYPE,
    PROTOBUF_MEDIA_TYPE,
    ROOTS,
    SCHEMA_VERSION,
    definitions,
    extract_definitions,
)
from devcluster.protobuf import (
    MAGIC,
    MEDIA_TYPE,
    ProtobufError,
    decode_object,
    encode_object,
    length_delimited,
    wants_protobuf,
)
from tests.kube_schemas import schema_errors

# client-go's typed clients (kubectl create token) and its discovery client, as they send them.
CLIENT_GO_ACCEPT = f"{MEDIA_TYPE}, application/json"
DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
TOKEN_REQUEST_PATH = "/api/v1/namespaces/default/serviceaccounts/be-sa/token"
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
DISCOVERY = {
    "/api": "apiversions-meta-v1",
    "/api/v1": "apiresourcelist-meta-v1",
    "/apis": "apigrouplist-meta-v1",
    "/apis/authentication.k8s.io": "apigroup-meta-v1",
    "/apis/authentication.k8s.io/v1": "apiresourcelist-meta-v1",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    made = Cluster(tmp_path_factory.mktemp("devcluster"))
    made.url = "https://127.0.0.1:6443"
    return made


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Any:
    with TestClient(create_app(cluster)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin(cluster: Cluster) -> dict[str, str]:
    return bearer(cluster.cluster_admin.token)


def sa_token(cluster: Cluster, name: str = "be-sa") -> str:
    return cluster.tokens.issue("default", name)[0]


# --- kubeconfig -------------------------------------------------------------------------------


def test_kubeconfig_is_the_admin_by_default_with_a_context_per_service_account(
    cluster: Cluster,
) -> None:
    path = kubeconfig.write(cluster)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    config = json.loads(text)
    assert cluster.admin_token not in text
    (entry,) = config["clusters"]
    assert entry["cluster"]["server"] == cluster.url
    assert entry["cluster"]["certificate-authority-data"]
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    users = {u["name"]: u["user"] for u in config["users"]}
    admin_user = contexts[config["current-context"]]["user"]
    assert admin_user == "kubernetes-admin"
    review = cluster.authenticator.authenticate(users[admin_user]["token"])
    assert (review.username, review.groups) == (
        "kubernetes-admin",
        ("system:masters", "system:authenticated"),
    )
    for name in ("be-sa", "be2-sa"):
        context = contexts[kubeconfig.service_account_context("default", name)]
        token_file = users[context["user"]]["tokenFile"]
        with open(token_file) as handle:
            who = cluster.authenticator.authenticate(handle.read())
        assert who.username == f"system:serviceaccount:default:{name}" == context["user"]


def test_the_admin_token_is_audience_agnostic_as_kubes_token_file(cluster: Cluster) -> None:
    token = cluster.cluster_admin.token
    assert cluster.authenticator.authenticate(token, cluster.api_audiences).authenticated
    assert not cluster.authenticator.authenticate(token, ["be2"]).authenticated
    assert not cluster.authenticator.authenticate(token[:-1]).authenticated


# --- /version and discovery -----------------------------------------------------------------


def test_version_is_readable_by_anyone_and_has_version_infos_shape(api: Any) -> None:
    response = api.get("/version")
    assert response.status_code == 200
    assert schema_errors(response.json(), "info-pkg-version") == []
    assert response.json()["major"] == "1"


@pytest.mark.parametrize(("path", "schema"), DISCOVERY.items())
def test_discovery_documents_have_kubes_shapes(
    api: Any, cluster: Cluster, path: str, schema: str
) -> None:
    response = api.get(path, headers=admin(cluster) | {"Accept": DISCOVERY_ACCEPT})
    assert response.status_code == 200
    # Plain JSON, not the aggregated form: client-go then falls back to these documents.
    assert response.headers["content-type"] == "application/json"
    assert schema_errors(response.json(), schema) == []


def test_discovery_lists_only_what_the_emulator_serves(api: Any, cluster: Cluster) -> None:
    headers = bearer(sa_token(cluster))
    groups = api.get("/apis", headers=headers).json()["groups"]
    assert [g["name"] for g in groups] == ["authentication.k8s.io"]
    core = api.get("/api/v1", headers=headers).json()["resources"]
    assert [(r["name"], r["kind"], r["verbs"]) for r in core] == [
        ("serviceaccounts/token", "TokenRequest", ["create"])
    ]
    authn = api.get("/apis/authentication.k8s.io/v1", headers=headers).json()["resources"]
    assert [(r["name"], r["kind"], r["verbs"]) for r in authn] == [
        ("tokenreviews", "TokenReview", ["create"])
    ]
    assert api.get("/apis/rbac.authorization.k8s.io/v1", headers=headers).status_code == 404


@pytest.mark.parametrize("path", list(DISCOVERY))
def test_discovery_needs_an_authenticated_user(api: Any, path: str) -> None:
    anonymous = api.get(path)
    assert anonymous.status_code == 403
    assert anonymous.json()["message"] == (
        f'forbidden: User "system:anonymous" cannot get path "{path}"'
    )
    assert schema_errors(anonymous.json(), "status-meta-v1") == []
    assert api.get(path, headers=bearer("not-a-token")).status_code == 401


def test_a_client_that_takes_only_aggregated_discovery_gets_406(api: Any, cluster: Cluster) -> None:
    only_aggregated = DISCOVERY_ACCEPT.rsplit(",", 1)[0]
    response = api.get("/apis", headers=admin(cluster) | {"Accept": only_aggregated})
    assert response.status_code == 406
    assert response.json()["reason"] == "NotAcceptable"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, True),
        ("*/*", True),
        ("application/json", True),
        (DISCOVERY_ACCEPT, True),
        ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", False),
        ("text/html", False),
    ],
)
def test_accepts_json(accept: str | None, expected: bool) -> None:
    assert accepts_json(accept) is expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (CLIENT_GO_ACCEPT, True),
        (MEDIA_TYPE, True),
        ("application/json, " + MEDIA_TYPE, False),
        (f"{MEDIA_TYPE};q=0.5, application/json", False),
        (f"{MEDIA_TYPE};q=0, */*", False),
        (None, False),
        ("*/*", False),
    ],
)
def test_wants_protobuf_follows_the_accept_order_and_quality(
    accept: str | None, expected: bool
) -> None:
    assert wants_protobuf(accept) is expected


# --- protobuf ---------------------------------------------------------------------------------


def protobuf_post(api: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return api.post(
        path,
        content=encode_object(body),
        headers=headers | {"Content-Type": MEDIA_TYPE, "Accept": CLIENT_GO_ACCEPT},
    )


def test_token_request_in_protobuf_is_answered_in_protobuf(api: Any, cluster: Cluster) -> None:
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {},
        "spec": {"audiences": ["be2"], "expirationSeconds": 600},
    }
    response = protobuf_post(api, TOKEN_REQUEST_PATH, request, admin(cluster))
    assert response.status_code == 201
    assert response.headers["content-type"] == MEDIA_TYPE
    assert response.content.startswith(MAGIC)
    answer = decode_object(response.content)
    assert answer["kind"] == "TokenRequest"
    assert schema_errors(answer, "tokenrequest-authentication-v1") == []
    token = answer["status"]["token"]
    review = cluster.authenticator.authenticate(token, ["be2"])
    assert review.username == "system:serviceaccount:default:be-sa"


def test_token_review_in_protobuf_is_answered_in_protobuf(api: Any, cluster: Cluster) -> None:
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": sa_token(cluster, "be2-sa")},
    }
    response = protobuf_post(api, TOKEN_REVIEW_PATH, review, admin(cluster))
    assert response.status_code == 201
    answer = decode_object(response.content)
    assert schema_errors(answer, "tokenreview-authentication-v1") == []
    status = answer["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:default:be2-sa"
    assert status["user"]["extra"]["authentication.kubernetes.io/credential-id"][0].startswith(
        "JTI="
    )
    # The same review in JSON says the same.
    as_json = api.post(TOKEN_REVIEW_PATH, json=review, headers=admin(cluster)).json()
    assert as_json["status"] == status


def test_errors_come_back_as_a_protobuf_status_when_protobuf_is_preferred(
    api: Any, cluster: Cluster
) -> None:
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    path = TOKEN_REQUEST_PATH.replace("be-sa", "nobody")
    response = protobuf_post(api, path, request, admin(cluster))
    assert response.status_code == 404
    status = decode_object(response.content)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
    assert status["message"] == 'serviceaccounts "nobody" not found'
    assert schema_errors(status, "status-meta-v1") == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"k8s",
        b"{}",
        MAGIC + b"\xff\xff\xff",
        MAGIC + b"\x0a\x05\x0a\x01",
        MAGIC + b"\x0a\x02\x0a\x00",
        MAGIC + b"\x0b",
        # A TokenReview whose metadata.creationTimestamp is 2**62 s: past any date.
        MAGIC
        + b"\n'\n\x18authentication.k8s.io/v1\x12\x0bTokenReview"
        + b"\x12\x13\n\x0cB\n\x08\x80\x80\x80\x80\x80\x80\x80\x80@\x12\x03\n\x01x",
    ],
)
def test_bad_protobuf_bodies_are_400(api: Any, cluster: Cluster, body: bytes) -> None:
    response = api.post(
        TOKEN_REVIEW_PATH, content=body, headers=admin(cluster) | {"Content-Type": MEDIA_TYPE}
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "BadRequest"


def _enveloped(kind: str, raw: bytes) -> bytes:
    api_version = "v1" if kind == "Status" else "authentication.k8s.io/v1"
    type_meta = length_delimited(1, api_version.encode()) + length_delimited(2, kind.encode())
    return MAGIC + length_delimited(1, type_meta) + length_delimited(2, raw)


@given(st.binary(max_size=200))
def test_decoding_any_bytes_gives_an_object_or_a_protobuf_error(data: bytes) -> None:
    try:
        decoded = decode_object(MAGIC + data)
    except ProtobufError:
        return
    assert decoded["kind"] in ("TokenRequest", "TokenReview", "Status")


@given(st.sampled_from(["TokenRequest", "TokenReview", "Status"]), st.binary(max_size=300))
def test_any_message_bytes_of_a_known_kind_decode_or_are_a_protobuf_error(
    kind: str, raw: bytes
) -> None:
    try:
        decoded = decode_object(_enveloped(kind, raw))
    except ProtobufError:
        return
    assert decoded["kind"] == kind
    json.dumps(decoded)  # the JSON form the handlers take


@given(
    audiences=st.lists(st.text(max_size=20), max_size=3),
    seconds=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    token=st.text(max_size=50),
)
def test_encoding_then_decoding_gives_the_object_back(
    audiences: list[str], seconds: int, token: str
) -> None:
    request = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": "be-sa", "namespace": "default"},
        "spec": {"audiences": audiences, "expirationSeconds": seconds},
        "status": {"token": token, "expirationTimestamp": "2026-01-02T03:04:05Z"},
    }
    decoded = decode_object(encode_object(request))
    if not audiences:
        request["spec"].pop("audiences")  # an empty repeated field is absent on the wire
    assert decoded == request


# --- OpenAPI --------------------------------------------------------------------------------


def test_openapi_v2_serves_kubes_definitions_of_the_bodies_it_takes(
    api: Any, cluster: Cluster
) -> None:
    document = api.get("/openapi/v2", headers=admin(cluster)).json()
    definitions = document["definitions"]
    review = definitions["io.k8s.api.authentication.v1.TokenReview"]
    assert review["x-kubernetes-group-version-kind"] == [
        {"group": "authentication.k8s.io", "kind": "TokenReview", "version": "v1"}
    ]
    assert review["properties"]["spec"]["$ref"] == (
        "#/definitions/io.k8s.api.authentication.v1.TokenReviewSpec"
    )
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in definitions
    # Every reference resolves within the document.
    references = set(re.findall(r'"#/definitions/([^"]+)"', json.dumps(definitions)))
    assert references <= set(definitions)
    # Taken from kube's published schemas (kubernetes-validate's copy), never written here:
    # each description is the published one.
    published = schema_contents(
        f"kubernetes-json-schema/v{SCHEMA_VERSION}-local/_definitions.json", SCHEMA_VERSION
    )["$defs"]
    for name, definition in definitions.items():
        assert definition.get("description") == published[name].get("description")


def test_openapi_v2_in_protobuf_when_kubectl_asks_and_never_for_anonymous(
    api: Any, cluster: Cluster
) -> None:
    response = api.get("/openapi/v2", headers=admin(cluster) | {"Accept": PROTOBUF_MEDIA_TYPE})
    assert response.status_code == 200
    # Go's mime parser refuses `@`: kube-openapi answers with a `.` instead.
    assert response.headers["content-type"] == PROTOBUF_CONTENT_TYPE
    assert response.content.startswith(b"\x0a\x032.0")  # Document.swagger = "2.0"
    assert b"io.k8s.api.authentication.v1.TokenRequest" in response.content
    assert api.get("/openapi/v2").status_code == 403


def test_the_packaged_openapi_definitions_are_kubernetes_validates_own() -> None:
    # `make run` reads the packaged extract; it must be kube's published definitions, unedited.
    assert definitions() == extract_definitions()
    assert set(ROOTS) <= set(definitions())
