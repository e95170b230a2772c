"""Deliberate mistakes in the rendered manifests are reported: the deploy checks can fail."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.manifests import Document, find, one, schema_problems
from tests.deploy.test_manifests import CHECKS, OVERLAY_NAMES

# A mistake: edits the documents in place (what it returns is ignored).
Mutation = Callable[[list[Document]], object]


def problems_after(docs: list[Document], overlay: str, mutate: Mutation) -> list[str]:
    """Apply the mistake to the (private copy of the) manifests and run every check.

    Schemas are checked on the documents the mistake changed (the others pass, as
    test_manifests proves), which keeps the many cases here fast.
    """
    before = copy.deepcopy(docs)
    mutate(docs)
    changed = [doc for doc in docs if doc not in before]
    found = schema_problems(changed)
    for check in CHECKS[overlay]:
        found += check(docs)
    return found


def deployment(docs: list[Document], name: str) -> Document:
    found = one(docs, "Deployment", name)
    assert found is not None
    return found


def pod(docs: list[Document], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = deployment(docs, name)["spec"]["template"]["spec"]
    return spec


def container(docs: list[Document], name: str) -> dict[str, Any]:
    (spec,) = pod(docs, name)["containers"]
    result: dict[str, Any] = spec
    return result


def set_env(docs: list[Document], name: str, variable: str, value: str) -> None:
    env = container(docs, name).setdefault("env", [])
    env[:] = [item for item in env if item["name"] != variable]
    env.append({"name": variable, "value": value})


def drop_env(docs: list[Document], name: str, variable: str) -> None:
    spec = container(docs, name)
    spec["env"] = [item for item in spec.get("env", []) if item["name"] != variable]


def rename_key(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def projected_token(docs: list[Document]) -> dict[str, Any]:
    for volume in pod(docs, "be")["volumes"]:
        if "projected" in volume:
            token: dict[str, Any] = volume["projected"]["sources"][0]["serviceAccountToken"]
            return token
    raise AssertionError("no projected token")


def network_policy(docs: list[Document]) -> dict[str, Any]:
    (policy,) = find(docs, "NetworkPolicy")
    return policy


# --- the three mistakes of the issue's done-when, in every overlay ----------------------------


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_misspelt_field_fails(rendered: dict[str, list[Document]], overlay: str) -> None:
    def misspell(docs: list[Document]) -> None:
        rename_key(
            container(docs, "be2")["securityContext"],
            "readOnlyRootFilesystem",
            "readOnlyRootFilesytem",
        )

    problems = problems_after(rendered[overlay], overlay, misspell)
    assert any("'readOnlyRootFilesytem' was unexpected" in p for p in problems), problems


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_missing_service_account_name_fails(
    rendered: dict[str, list[Document]], overlay: str
) -> None:
    def forget(docs: list[Document]) -> None:
        del pod(docs, "be")["serviceAccountName"]

    problems = problems_after(rendered[overlay], overlay, forget)
    assert any("serviceAccountName is missing" in p for p in problems), problems


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_container_running_as_root_fails(rendered: dict[str, list[Document]], overlay: str) -> None:
    def as_root(docs: list[Document]) -> None:
        context = container(docs, "be")["securityContext"]
        context["runAsUser"] = 0
        context["runAsNonRoot"] = False

    problems = problems_after(rendered[overlay], overlay, as_root)
    assert any("runs as root (runAsUser 0)" in p for p in problems), problems
    assert any("runAsNonRoot is not true" in p for p in problems), problems


def test_strict_schemas_are_what_catch_a_misspelt_field(
    rendered: dict[str, list[Document]],
) -> None:
    docs = rendered["hardened"]
    rename_key(pod(docs, "be"), "serviceAccountName", "serviceAcountName")
    be = deployment(docs, "be")
    # The lax schema (like an API server told to ignore unknown fields) lets it through; the pod
    # would silently run as `default`. Strict schemas name the field.
    kubernetes_validate.validate(be, kubernetes_validate.latest_version(), strict=False)
    (problem, *_) = schema_problems([be])
    assert "'serviceAcountName' was unexpected" in problem


# --- every other point of the issue, each shown to be checked --------------------------------


def _set(path: list[str | int], value: Any, kind: str = "Deployment", name: str = "be") -> Mutation:
    def mutate(docs: list[Document]) -> None:
        target: Any = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list[str | int], kind: str = "Deployment", name: str = "be") -> Mutation:
    def mutate(docs: list[Document]) -> None:
        target: Any = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


API = "https://kubernetes.default.svc.cluster.local"
ROLE = "ksa-auth-tokenreview"
BINDING = "ksa-auth-be2-tokenreview"
TOKENREVIEW_BINDING: Document = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": BINDING},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
    "subjects": [{"kind": "ServiceAccount", "name": "be2-sa", "namespace": "ksa-auth"}],
}
CONTAINER: list[str | int] = ["spec", "template", "spec", "containers", 0]
POD: list[str | int] = ["spec", "template", "spec"]

CASES: list[tuple[str, str, Mutation, str]] = [
    # schema: unknown kind, wrong type, misspelt nested field
    ("docker-desktop", "unknown-kind", _set(["kind"], "Deploymnet"), "Couldn't find schema"),
    ("hardened", "replicas-string", _set(["spec", "replicas"], "two"), "'two' is not of type"),
    (
        "hardened",
        "misspelt-probe",
        lambda d: rename_key(container(d, "be"), "livenessProbe", "livenesProbe"),
        "'livenesProbe' was unexpected",
    ),
    # baseline
    (
        "hardened",
        "wrong-sa",
        _set([*POD, "serviceAccountName"], "default"),
        "serviceAccountName is 'default'",
    ),
    (
        "hardened",
        "sa-missing",
        lambda d: d.remove(next(find(d, "ServiceAccount", "be2-sa"))),
        "ServiceAccount be2-sa is not",
    ),
    (
        "docker-desktop",
        "readiness-path",
        _set([*CONTAINER, "readinessProbe", "httpGet", "path"], "/healthz"),
        "readinessProbe is not an httpGet on /readyz",
    ),
    (
        "docker-desktop",
        "liveness-missing",
        _delete([*CONTAINER, "livenessProbe"]),
        "livenessProbe is not an httpGet on /healthz",
    ),
    (
        "hardened",
        "probe-port",
        _set([*CONTAINER, "readinessProbe", "httpGet", "port"], 9090),
        "readinessProbe port 9090",
    ),
    (
        "hardened",
        "no-limits",
        _delete([*CONTAINER, "resources", "limits"]),
        "resources.limits.memory is not set",
    ),
    (
        "hardened",
        "no-cpu-request",
        _delete([*CONTAINER, "resources", "requests", "cpu"]),
        "resources.requests.cpu is not set",
    ),
    (
        "hardened",
        "writable-root",
        _set([*CONTAINER, "securityContext", "readOnlyRootFilesystem"], False),
        "readOnlyRootFilesystem is not true",
    ),
    (
        "hardened",
        "escalation",
        _delete([*CONTAINER, "securityContext", "allowPrivilegeEscalation"]),
        "allowPrivilegeEscalation is not false",
    ),
    (
        "hardened",
        "caps-kept",
        _set([*CONTAINER, "securityContext", "capabilities"], {"drop": ["NET_RAW"]}),
        "drop does not contain ALL",
    ),
    (
        "hardened",
        "caps-added",
        _set([*CONTAINER, "securityContext", "capabilities", "add"], ["NET_ADMIN"]),
        "capabilities.add",
    ),
    (
        "hardened",
        "privileged",
        _set([*CONTAINER, "securityContext", "privileged"], True),
        "privileged is true",
    ),
    (
        "hardened",
        "seccomp",
        _set([*CONTAINER, "securityContext", "seccompProfile", "type"], "Unconfined"),
        "seccompProfile.type is not RuntimeDefault",
    ),
    (
        "hardened",
        "no-uid",
        lambda d: [
            c.pop("runAsUser")
            for c in (pod(d, "be")["securityContext"], container(d, "be")["securityContext"])
        ],
        "runAsUser is not set",
    ),
    ("hardened", "host-network", _set([*POD, "hostNetwork"], True), "shares a host namespace"),
    ("hardened", "latest", _set([*CONTAINER, "image"], "ksa-auth:latest"), "uses the latest tag"),
    (
        "hardened",
        "untagged",
        _set([*CONTAINER, "image"], "registry.example:5000/ksa-auth"),
        "has no tag",
    ),
    (
        "hardened",
        "service-selector",
        _set(["spec", "selector"], {"app": "be"}, "Service", "be2"),
        "does not select",
    ),
    (
        "hardened",
        "service-port",
        _set(["spec", "ports", 0, "targetPort"], 8000, "Service", "be2"),
        "targetPort 8000",
    ),
    (
        "hardened",
        "nodeport",
        _set(["spec", "type"], "NodePort", "Service", "be2"),
        "expected ClusterIP",
    ),
    ("hardened", "args-loopback", _set([*CONTAINER, "args", 3], "127.0.0.1"), "args are"),
    (
        "hardened",
        "env-typo",
        lambda d: set_env(d, "be2", "KSA_AUDIENCE", "be2"),
        "env KSA_AUDIENCE is not a ksa-auth setting",
    ),
    (
        "hardened",
        "env-bad-value",
        lambda d: set_env(d, "be2", "KSA_VERIFIER", "jwt"),
        "would not start: KSA_VERIFIER",
    ),
    (
        "hardened",
        "be2-url",
        lambda d: set_env(d, "be", "KSA_BE2_URL", "http://be3"),
        "KSA_BE2_URL http://be3",
    ),
    # transport: TLS between be and be2 in the hardened overlays, plain HTTP in docker-desktop
    (
        "hardened",
        "be2-plain-http",
        lambda d: [drop_env(d, "be2", v) for v in ("KSA_TLS_CERT_FILE", "KSA_TLS_KEY_FILE")],
        "be2 would serve plain HTTP",
    ),
    (
        "hardened",
        "be-calls-http",
        lambda d: (
            drop_env(d, "be", "KSA_BE2_CA_FILE"),
            set_env(d, "be", "KSA_BE2_URL", "http://be2.ksa-auth.svc:443"),
        ),
        "is not https: the token goes in clear",
    ),
    (
        "hardened",
        "probe-http",
        _set([*CONTAINER, "readinessProbe", "httpGet", "scheme"], "HTTP", name="be2"),
        "readinessProbe is not scheme HTTPS",
    ),
    (
        "hardened",
        "key-mount-writable",
        _set([*CONTAINER, "volumeMounts", 0, "readOnly"], False, name="be2"),
        "not mounted readOnly",
    ),
    (
        "hardened",
        "service-port-80",
        _set(["spec", "ports", 0, "port"], 80, kind="Service", name="be2"),
        "Service/be2: ports",
    ),
    (
        "hardened-cert-manager",
        "be-sees-be2-key",
        _delete([*POD, "volumes", 0, "secret", "items"]),
        "mounted with more than ca.crt",
    ),
    (
        "hardened-cert-manager",
        "certificate-names",
        _set(["spec", "dnsNames"], ["be2"], kind="Certificate", name="be2"),
        "lack",
    ),
    (
        "hardened-cert-manager",
        "certificate-typo",
        lambda d: rename_key(
            next(x for x in d if x["kind"] == "Certificate" and x["metadata"]["name"] == "be2")[
                "spec"
            ],
            "dnsNames",
            "dnsName",
        ),
        "'dnsName' was unexpected",
    ),
    (
        "hardened-cert-manager",
        "certificate-issuer",
        _set(["spec", "issuerRef", "name"], "nope", kind="Certificate", name="be2"),
        "is no Issuer",
    ),
    (
        "hardened-cert-manager",
        "certificate-key-kept",
        _set(["spec", "privateKey", "rotationPolicy"], "Never", kind="Certificate", name="be2"),
        "rotationPolicy is not Always",
    ),
    (
        "docker-desktop",
        "tls-on",
        lambda d: set_env(d, "be2", "KSA_TLS_CERT_FILE", "/tls/tls.crt"),
        "this overlay serves plain HTTP",
    ),
    # docker-desktop
    (
        "docker-desktop",
        "pull-always",
        _set([*CONTAINER, "imagePullPolicy"], "Always"),
        "expected IfNotPresent",
    ),
    (
        "docker-desktop",
        "be2-audience",
        lambda d: set_env(d, "be2", "KSA_AUDIENCES", "be2"),
        "expected the API audience",
    ),
    (
        "docker-desktop",
        "no-get-jwt",
        lambda d: set_env(d, "be", "KSA_EXPOSE_TOKEN", "false"),
        "/get-jwt is off",
    ),
    (
        "docker-desktop",
        "no-default-token",
        _set([*POD, "automountServiceAccountToken"], False),
        "default API-audience token is not mounted",
    ),
    (
        "docker-desktop",
        "subject-namespace",
        lambda d: set_env(d, "be2", "KSA_ALLOWED_SUBJECTS", "system:serviceaccount:ksa-auth:be-sa"),
        "does not allow system:serviceaccount:default:be-sa",
    ),
    # hardened: be's token
    (
        "hardened",
        "audience",
        lambda d: projected_token(d).update(audience=API),
        "audience is 'https://kubernetes.default.svc.cluster.local'",
    ),
    (
        "hardened",
        "expiration",
        lambda d: projected_token(d).update(expirationSeconds=86400),
        "expirationSeconds is 86400",
    ),
    (
        "hardened-tokenreview",
        "token-file-default",
        lambda d: drop_env(d, "be", "KSA_TOKEN_FILE"),
        "no volume is mounted there",
    ),
    (
        "hardened",
        "token-file-elsewhere",
        lambda d: set_env(d, "be", "KSA_TOKEN_FILE", "/var/run/secrets/ksa-auth/be2-token/other"),
        "has no serviceAccountToken at other",
    ),
    (
        "hardened",
        "token-writable",
        _set([*CONTAINER, "volumeMounts", 0, "readOnly"], False),
        "not mounted readOnly",
    ),
    (
        "hardened",
        "be-automount",
        _delete([*POD, "automountServiceAccountToken"]),
        "automountServiceAccountToken is not false",
    ),
    (
        "hardened",
        "get-jwt-on",
        lambda d: drop_env(d, "be", "KSA_EXPOSE_TOKEN"),
        "KSA_EXPOSE_TOKEN is not false",
    ),
    # hardened: be2
    (
        "hardened",
        "be2-api-audience",
        lambda d: set_env(d, "be2", "KSA_AUDIENCES", f"be2,{API}"),
        "expected ('be2',) only",
    ),
    (
        "hardened-tokenreview",
        "be2-default-audience",
        lambda d: drop_env(d, "be2", "KSA_AUDIENCES"),
        "expected ('be2',) only",
    ),
    (
        "hardened",
        "subjects-wildcard",
        lambda d: set_env(d, "be2", "KSA_ALLOWED_SUBJECTS", "system:serviceaccount:ksa-auth:*"),
        "expected exactly system:serviceaccount:ksa-auth:be-sa",
    ),
    (
        "hardened",
        "subjects-other-ns",
        lambda d: set_env(d, "be2", "KSA_ALLOWED_SUBJECTS", "system:serviceaccount:default:be-sa"),
        "expected exactly",
    ),
    (
        "hardened",
        "be2-no-token",
        _set([*POD, "automountServiceAccountToken"], False, name="be2"),
        "be2 needs it",
    ),
    # hardened: NetworkPolicy
    ("hardened", "np-missing", lambda d: d.remove(network_policy(d)), "none isolates be2"),
    (
        "hardened",
        "np-open",
        lambda d: network_policy(d)["spec"]["ingress"][0].pop("from"),
        "without `from` admits every source",
    ),
    (
        "hardened",
        "np-any-pod",
        lambda d: network_policy(d)["spec"]["ingress"][0].update({"from": [{"podSelector": {}}]}),
        "admits pods other than be",
    ),
    (
        "hardened",
        "np-namespace",
        lambda d: network_policy(d)["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}}),
        "admits more than be's pods",
    ),
    (
        "hardened",
        "np-egress-only",
        lambda d: network_policy(d)["spec"].update(policyTypes=["Egress"]),
        "none isolates be2",
    ),
    (
        "hardened",
        "np-wrong-pods",
        lambda d: network_policy(d)["spec"].update(
            podSelector={"matchLabels": {"app.kubernetes.io/name": "be"}}
        ),
        "none isolates be2",
    ),
    (
        "hardened-tokenreview",
        "np-shuts-be-out",
        lambda d: network_policy(d)["spec"].update(ingress=[]),
        "no ingress rule lets be's pods reach be2",
    ),
    (
        "hardened",
        "np-wrong-port",
        lambda d: network_policy(d)["spec"]["ingress"][0].update(ports=[{"port": 9090}]),
        "no ingress rule lets be's pods reach be2",
    ),
    (
        "hardened",
        "np-no-scraper",
        lambda d: network_policy(d)["spec"]["ingress"].pop(1),
        "no ingress rule lets a metrics scraper",
    ),
    (
        "hardened",
        "np-scraper-any-namespace",
        lambda d: network_policy(d)["spec"]["ingress"][1]["from"][0].update(namespaceSelector={}),
        "admits more than be's pods and the labelled scraper",
    ),
    (
        "hardened-tokenreview",
        "np-scraper-any-pod",
        lambda d: network_policy(d)["spec"]["ingress"][1]["from"][0].pop("podSelector"),
        "admits more than be's pods and the labelled scraper",
    ),
    # verifier and RBAC
    (
        "hardened-tokenreview",
        "no-binding",
        lambda d: d.remove(next(find(d, "ClusterRoleBinding"))),
        "no ClusterRoleBinding gives be2-sa",
    ),
    (
        "hardened-tokenreview",
        "binding-wrong-ns",
        _set(["subjects", 0, "namespace"], "default", "ClusterRoleBinding", BINDING),
        "no ClusterRoleBinding gives be2-sa",
    ),
    (
        "hardened-tokenreview",
        "binding-wrong-role",
        _set(["roleRef", "name"], "view", "ClusterRoleBinding", BINDING),
        "ClusterRole view, which the manifests do not define",
    ),
    (
        "hardened-tokenreview",
        "auth-delegator",
        _set(["roleRef", "name"], "system:auth-delegator", "ClusterRoleBinding", BINDING),
        "it also grants create on subjectaccessreviews",
    ),
    (
        "hardened-tokenreview",
        "role-missing",
        lambda d: d.remove(next(find(d, "ClusterRole"))),
        "which the manifests do not define",
    ),
    (
        "hardened-tokenreview",
        "role-more-verbs",
        _set(["rules", 0, "verbs"], ["create", "get"], "ClusterRole", ROLE),
        "also grants get authentication.k8s.io/tokenreviews",
    ),
    (
        "hardened-tokenreview",
        "role-subjectaccessreviews",
        lambda d: next(find(d, "ClusterRole"))["rules"].append(
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["subjectaccessreviews"],
                "verbs": ["create"],
            }
        ),
        "also grants create authorization.k8s.io/subjectaccessreviews",
    ),
    (
        "hardened-tokenreview",
        "role-wildcard",
        _set(["rules", 0, "resources"], ["*"], "ClusterRole", ROLE),
        "grants a wildcard",
    ),
    (
        "hardened-tokenreview",
        "role-no-create",
        _set(["rules", 0, "verbs"], ["get"], "ClusterRole", ROLE),
        "no ClusterRoleBinding gives be2-sa in be2's namespace create on tokenreviews",
    ),
    (
        "hardened-tokenreview",
        "role-aggregated",
        _set(["aggregationRule"], {"clusterRoleSelectors": [{}]}, "ClusterRole", ROLE),
        "aggregates other roles",
    ),
    (
        "hardened",
        "jwks-with-binding",
        lambda d: d.append(copy.deepcopy(TOKENREVIEW_BINDING)),
        "but the JWKS verifier needs no RBAC",
    ),
    (
        "hardened-tokenreview",
        "verifier-jwks",
        lambda d: set_env(d, "be2", "KSA_VERIFIER", "jwks"),
        "expected tokenreview",
    ),
    (
        "hardened",
        "verifier-tokenreview",
        lambda d: set_env(d, "be2", "KSA_VERIFIER", "tokenreview"),
        "expected jwks",
    ),
    # workers, autoscaling, disruption budget, spread
    (
        "hardened",
        "replicas-beside-hpa",
        lambda d: deployment(d, "be2")["spec"].update(replicas=3),
        "sets replicas, which an apply would reset",
    ),
    (
        "hardened-tokenreview",
        "hpa-missing",
        lambda d: d.remove(one(d, "HorizontalPodAutoscaler", "be")),
        "0 HorizontalPodAutoscalers target it",
    ),
    (
        "hardened",
        "hpa-one-replica",
        lambda d: one(d, "HorizontalPodAutoscaler", "be2")["spec"].update(minReplicas=1),
        "minReplicas is below 2",
    ),
    (
        "hardened",
        "hpa-on-memory",
        lambda d: one(d, "HorizontalPodAutoscaler", "be2")["spec"]["metrics"][0]["resource"].update(
            name="memory"
        ),
        "does not scale on cpu",
    ),
    (
        "hardened",
        "pdb-missing",
        lambda d: d.remove(one(d, "PodDisruptionBudget", "be2")),
        "0 PodDisruptionBudgets select its pods",
    ),
    (
        "hardened",
        "pdb-min-available",
        lambda d: one(d, "PodDisruptionBudget", "be")["spec"].update(
            minAvailable=2, maxUnavailable=None
        ),
        "is not maxUnavailable: 1",
    ),
    (
        "hardened-tokenreview",
        "no-spread",
        lambda d: pod(d, "be2").pop("topologySpreadConstraints"),
        "no topologySpreadConstraint spreads its pods over nodes",
    ),
    (
        "hardened",
        "workers-without-metrics-dir",
        lambda d: drop_env(d, "be2", "PROMETHEUS_MULTIPROC_DIR"),
        "so /metrics would answer for one worker",
    ),
    (
        "hardened",
        "metrics-dir-not-a-volume",
        lambda d: set_env(d, "be2", "PROMETHEUS_MULTIPROC_DIR", "/var/metrics"),
        "is not a writable emptyDir mount",
    ),
    (
        "hardened",
        "cpu-limit-for-one-worker",
        lambda d: container(d, "be2")["resources"]["limits"].update(cpu="500m"),
        "does not match 2 worker(s): expected 1 to 2 cores",
    ),
    (
        "docker-desktop",
        "more-workers-than-memory",
        lambda d: set_env(d, "be2", "KSA_WORKERS", "4"),
        "is less than 4 worker(s) x 96Mi",
    ),
]


@pytest.mark.parametrize(
    ("overlay", "mutation", "expected"),
    [
        pytest.param(overlay, mutate, expected, id=f"{overlay}-{name}")
        for overlay, name, mutate, expected in CASES
    ],
)
def test_mistake_is_reported(
    rendered: dict[str, list[Document]], overlay: str, mutation: Mutation, expected: str
) -> None:
    problems = problems_after(rendered[overlay], overlay, mutation)
    assert any(expected in problem for problem in problems), problems
