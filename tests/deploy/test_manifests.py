"""Every overlay renders with kustomize, passes strict schemas, and meets the deployment policy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.manifests import (
    K8S,
    SCHEMA_VERSIONS,
    Document,
    find,
    one,
    overlay_names,
    render,
    schema_problems,
)
from tests.deploy.policy import (
    API_AUDIENCE,
    SCRAPER_LABEL,
    Check,
    all_problems,
    baseline_problems,
    cert_manager_certificate_problems,
    docker_desktop_problems,
    hardened_problems,
    jwks_problems,
    plain_http_problems,
    tls_problems,
    tokenreview_problems,
)
from tests.deploy.scaling import scaling_problems, worker_problems

# Each overlay and what it must satisfy. A new overlay fails test_every_overlay_is_checked
# until it is listed here with its checks.
CHECKS: dict[str, tuple[Check, ...]] = {
    "docker-desktop": (
        baseline_problems,
        worker_problems,
        docker_desktop_problems,
        jwks_problems,
        plain_http_problems,
    ),
    "hardened": (
        *(baseline_problems, worker_problems, hardened_problems, scaling_problems, jwks_problems),
        tls_problems,
    ),
    "hardened-cert-manager": (
        *(baseline_problems, worker_problems, hardened_problems, scaling_problems, jwks_problems),
        tls_problems,
        cert_manager_certificate_problems,
    ),
    "hardened-tokenreview": (
        *(baseline_problems, worker_problems, hardened_problems, scaling_problems),
        tokenreview_problems,
        tls_problems,
    ),
}
OVERLAY_NAMES = sorted(CHECKS)


def deployment(docs: list[Document], name: str) -> Document:
    found = one(docs, "Deployment", name)
    assert found is not None, f"Deployment/{name} missing"
    return found


def pod(docs: list[Document], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = deployment(docs, name)["spec"]["template"]["spec"]
    return spec


def env(docs: list[Document], name: str) -> dict[str, str]:
    (container,) = deployment(docs, name)["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container.get("env", [])}


def test_every_overlay_is_checked() -> None:
    assert overlay_names() == OVERLAY_NAMES


def test_schemas_are_a_current_kubernetes() -> None:
    newest = SCHEMA_VERSIONS[0]
    assert tuple(int(part) for part in newest.split(".")[:2]) >= (1, 33), newest


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_overlay_validates_strictly_against_kubernetes_schemas(
    rendered: dict[str, list[Document]], overlay: str
) -> None:
    docs = rendered[overlay]
    kinds = sorted({doc["kind"] for doc in docs})
    assert {"ServiceAccount", "Deployment", "Service"} <= set(kinds), kinds
    assert schema_problems(docs) == []


def test_base_validates_strictly_against_kubernetes_schemas() -> None:
    docs = render(K8S / "base")
    assert len(docs) == 6  # 2 ServiceAccounts, 2 Deployments, 2 Services
    assert schema_problems(docs) == []


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_overlay_meets_every_policy_point(
    rendered: dict[str, list[Document]], overlay: str
) -> None:
    assert all_problems(rendered[overlay], CHECKS[overlay]) == []


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_one_service_account_per_service(rendered: dict[str, list[Document]], overlay: str) -> None:
    docs = rendered[overlay]
    accounts = {doc["metadata"]["name"] for doc in find(docs, "ServiceAccount")}
    assert accounts == {"be-sa", "be2-sa"}
    assert pod(docs, "be")["serviceAccountName"] == "be-sa"
    assert pod(docs, "be2")["serviceAccountName"] == "be2-sa"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_probes_resources_and_security_context(
    rendered: dict[str, list[Document]], overlay: str
) -> None:
    for name in ("be", "be2"):
        (container,) = pod(rendered[overlay], name)["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] > 0
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_docker_desktop_is_the_seed_setup(rendered: dict[str, list[Document]]) -> None:
    docs = rendered["docker-desktop"]
    assert "automountServiceAccountToken" not in pod(docs, "be")
    assert "KSA_TOKEN_FILE" not in env(docs, "be")  # the default kube-api-access token
    assert env(docs, "be")["KSA_EXPOSE_TOKEN"] == "true"
    assert env(docs, "be2")["KSA_AUDIENCES"] == API_AUDIENCE
    assert env(docs, "be2")["KSA_ALLOWED_SUBJECTS"] == "system:serviceaccount:default:be-sa"
    for name in ("be", "be2"):
        (container,) = pod(docs, name)["containers"]
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["image"] == "ksa-auth:0.1.0"


@pytest.mark.parametrize("overlay", ["hardened", "hardened-cert-manager", "hardened-tokenreview"])
def test_hardened_be_presents_a_be2_audience_token_only(
    rendered: dict[str, list[Document]], overlay: str
) -> None:
    docs = rendered[overlay]
    be = pod(docs, "be")
    assert be["automountServiceAccountToken"] is False
    (volume,) = [v for v in be["volumes"] if "projected" in v]
    (source,) = volume["projected"]["sources"]
    assert source["serviceAccountToken"] == {
        "audience": "be2",
        "expirationSeconds": 3600,
        "path": "token",
    }
    (container,) = be["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert env(docs, "be")["KSA_TOKEN_FILE"] == f"{mount['mountPath']}/token"
    assert env(docs, "be")["KSA_EXPOSE_TOKEN"] == "false"


@pytest.mark.parametrize("overlay", ["hardened", "hardened-cert-manager", "hardened-tokenreview"])
def test_hardened_be2_accepts_be2_audience_and_be_only(
    rendered: dict[str, list[Document]], overlay: str
) -> None:
    docs = rendered[overlay]
    namespace = deployment(docs, "be")["metadata"]["namespace"]
    assert env(docs, "be2")["KSA_AUDIENCES"] == "be2"
    assert env(docs, "be2")["KSA_ALLOWED_SUBJECTS"] == f"system:serviceaccount:{namespace}:be-sa"
    # be2 keeps kube-api-access: the API server wants its token for JWKS and TokenReview.
    assert pod(docs, "be2").get("automountServiceAccountToken", True) is True


@pytest.mark.parametrize("overlay", ["hardened", "hardened-cert-manager", "hardened-tokenreview"])
def test_hardened_network_policy_admits_be_and_the_labelled_scraper_only(
    rendered: dict[str, list[Document]], overlay: str
) -> None:
    docs = rendered[overlay]
    (policy,) = find(docs, "NetworkPolicy")
    be2_labels = deployment(docs, "be2")["spec"]["template"]["metadata"]["labels"]
    be_labels = deployment(docs, "be")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"] == {"matchLabels": be2_labels}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    be_rule, scraper_rule = policy["spec"]["ingress"]
    assert be_rule["from"] == [{"podSelector": {"matchLabels": be_labels}}]
    scraper = {"matchLabels": {SCRAPER_LABEL: "true"}}
    assert scraper_rule["from"] == [{"namespaceSelector": scraper, "podSelector": scraper}]
    for rule in (be_rule, scraper_rule):
        assert rule["ports"] == [{"protocol": "TCP", "port": "https"}]


def test_tokenreview_variant_lets_be2_create_tokenreviews_and_nothing_else(
    rendered: dict[str, list[Document]],
) -> None:
    docs = rendered["hardened-tokenreview"]
    (role,) = find(docs, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "be2-sa", "namespace": "ksa-auth"}
    ]
    assert env(docs, "be2")["KSA_VERIFIER"] == "tokenreview"
    assert list(find(rendered["hardened"], "ClusterRoleBinding")) == []
    assert list(find(rendered["hardened"], "ClusterRole")) == []
    assert env(rendered["hardened"], "be2")["KSA_VERIFIER"] == "jwks"


def test_hardened_namespace_enforces_restricted_pod_security(
    rendered: dict[str, list[Document]],
) -> None:
    (namespace,) = find(rendered["hardened"], "Namespace")
    assert namespace["metadata"]["name"] == "ksa-auth"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
