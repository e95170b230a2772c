"""The deployment policy as checks over rendered manifests; each returns the problems it finds."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from domain.policy import SubjectPolicy
from entrypoints.settings import VARIABLES, Settings, SettingsError, load_settings
from tests.deploy.manifests import Document, find, identify, one

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
SERVICE_ACCOUNTS = {"be": "be-sa", "be2": "be2-sa"}
CONTAINER_PORT = 8080
HARDENED_AUDIENCE = "be2"
HARDENED_TOKEN_SECONDS = 3600
# The label a metrics scraper's namespace and pods carry to reach be2 in the hardened overlay.
SCRAPER_LABEL = "ksa-auth/metrics-scraper"
# The only permission the TokenReview verifier needs. system:auth-delegator grants it and also
# create on subjectaccessreviews (bootstrappolicy/policy.go), which be2 never needs.
TOKENREVIEW_GRANT = ("authentication.k8s.io", "tokenreviews", "create")
AUTH_DELEGATOR = "system:auth-delegator"

Check = Callable[[list[Document]], list[str]]


# --- reading the manifests -------------------------------------------------------------------


def namespace_of(doc: Document) -> str:
    """metadata.namespace, or "" when the manifest leaves it to kubectl's context."""
    return str((doc.get("metadata") or {}).get("namespace") or "")


def pod_spec(deployment: Document) -> dict[str, Any]:
    return dict(deployment.get("spec", {}).get("template", {}).get("spec") or {})


def pod_labels(deployment: Document) -> dict[str, str]:
    metadata = deployment.get("spec", {}).get("template", {}).get("metadata") or {}
    return dict(metadata.get("labels") or {})


def container(deployment: Document, name: str) -> dict[str, Any] | None:
    return next(
        (c for c in pod_spec(deployment).get("containers") or [] if c["name"] == name), None
    )


def literal_env(container_spec: Mapping[str, Any]) -> dict[str, str]:
    """The container's `env` entries that have a literal value (valueFrom is not used here)."""
    return {
        str(item["name"]): str(item.get("value", ""))
        for item in container_spec.get("env") or []
        if "valueFrom" not in item
    }


def settings_of(container_spec: Mapping[str, Any]) -> Settings | str:
    """The settings the service would load from this environment, or why it would not start."""
    try:
        return load_settings(literal_env(container_spec))
    except SettingsError as error:
        return str(error)


def subject_of(deployment: Document) -> str:
    """The `sub` of tokens issued to this Deployment's pods."""
    account = pod_spec(deployment).get("serviceAccountName") or "default"
    return f"system:serviceaccount:{namespace_of(deployment) or 'default'}:{account}"


def automounts_api_token(docs: list[Document], deployment: Document) -> bool:
    """Whether the kubelet mounts kube-api-access: the pod's field wins over the account's."""
    spec = pod_spec(deployment)
    if "automountServiceAccountToken" in spec:
        return bool(spec["automountServiceAccountToken"])
    account = spec.get("serviceAccountName") or "default"
    for service_account in find(docs, "ServiceAccount", account):
        if namespace_of(service_account) == namespace_of(deployment):
            return bool(service_account.get("automountServiceAccountToken", True))
    return True


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; an empty selector selects everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values") or [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def port_names(container_spec: Mapping[str, Any]) -> dict[str | int, int]:
    """containerPort by name and by number, for resolving probe and Service targets."""
    ports: dict[str | int, int] = {}
    for port in container_spec.get("ports") or []:
        ports[int(port["containerPort"])] = int(port["containerPort"])
        if "name" in port:
            ports[str(port["name"])] = int(port["containerPort"])
    return ports


# --- checks for every overlay ----------------------------------------------------------------


def baseline_problems(docs: list[Document]) -> list[str]:
    """ServiceAccounts, Deployments, probes, resources, securityContext, Services, settings."""
    problems: list[str] = []
    for service, account in SERVICE_ACCOUNTS.items():
        deployment = one(docs, "Deployment", service)
        if deployment is None:
            problems.append(f"Deployment/{service} is missing")
            continue
        problems += _identity_problems(docs, deployment, account)
        spec = container(deployment, service)
        if spec is None:
            problems.append(f"{identify(deployment)}: no container named {service}")
            continue
        where = f"{identify(deployment)}: container {service}"
        problems += [f"{where}: {p}" for p in _container_problems(deployment, spec, service)]
        problems += _service_problems(docs, deployment, spec, service)
    problems += _be_reaches_be2_problems(docs)
    return problems


def _identity_problems(docs: list[Document], deployment: Document, account: str) -> list[str]:
    spec = pod_spec(deployment)
    where = identify(deployment)
    actual = spec.get("serviceAccountName")
    if actual is None:
        return [f"{where}: serviceAccountName is missing (the pod would run as `default`)"]
    if actual != account:
        return [f"{where}: serviceAccountName is {actual!r}, expected {account!r}"]
    same_namespace = [
        sa
        for sa in find(docs, "ServiceAccount", account)
        if namespace_of(sa) == namespace_of(deployment)
    ]
    if not same_namespace:
        return [f"{where}: ServiceAccount {account} is not in the manifests of its namespace"]
    problems = []
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{where}: shares a host namespace (hostNetwork/hostPID/hostIPC)")
    return problems


def _container_problems(deployment: Document, spec: Mapping[str, Any], service: str) -> list[str]:
    problems: list[str] = []
    args = [str(arg) for arg in spec.get("args") or []]
    expected = ["serve", service, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
    if args != expected:
        problems.append(f"args are {args}, expected {expected}")
    ports = port_names(spec)
    if CONTAINER_PORT not in ports:
        problems.append(f"containerPort {CONTAINER_PORT} (where the server listens) not declared")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = (spec.get(probe) or {}).get("httpGet") or {}
        port = get.get("port")
        if get.get("path") != path:
            problems.append(f"{probe} is not an httpGet on {path}")
        elif not isinstance(port, str | int) or ports.get(port) != CONTAINER_PORT:
            problems.append(f"{probe} port {port!r} is not the server's port")
    resources = spec.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(kind) or {}):
                problems.append(f"resources.{kind}.{resource} is not set")
    problems += _security_problems(pod_spec(deployment), spec)
    problems += _image_problems(str(spec.get("image") or ""))
    problems += _settings_problems(spec)
    return problems


def _security_problems(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    pod_context = pod.get("securityContext") or {}
    context = spec.get("securityContext") or {}

    def effective(field: str) -> Any:
        # A container's securityContext overrides the pod's for the fields both have.
        return context.get(field, pod_context.get(field))

    problems: list[str] = []
    if effective("runAsNonRoot") is not True:
        problems.append("securityContext.runAsNonRoot is not true")
    user = effective("runAsUser")
    if user is None:
        problems.append("runAsUser is not set (the kubelet cannot prove a name is non-root)")
    elif int(user) == 0:
        problems.append("runs as root (runAsUser 0)")
    if effective("runAsGroup") == 0:
        problems.append("runs with group root (runAsGroup 0)")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("securityContext.allowPrivilegeEscalation is not false")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append("securityContext.readOnlyRootFilesystem is not true")
    if context.get("privileged"):
        problems.append("securityContext.privileged is true")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append("securityContext.capabilities.drop does not contain ALL")
    if capabilities.get("add"):
        problems.append(f"securityContext.capabilities.add is {capabilities['add']}")
    if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("seccompProfile.type is not RuntimeDefault")
    return problems


def _image_problems(image: str) -> list[str]:
    if "@sha256:" in image:
        return []
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return [f"image {image!r} has no tag (it would be :latest)"]
    if tag == "latest":
        return [f"image {image!r} uses the latest tag"]
    return []


def _settings_problems(spec: Mapping[str, Any]) -> list[str]:
    env = literal_env(spec)
    # prometheus-client's own variable: where several workers' metrics are summed from.
    known = {*VARIABLES, "PROMETHEUS_MULTIPROC_DIR"}
    problems = [f"env {name} is not a ksa-auth setting" for name in env if name not in known]
    settings = settings_of(spec)
    if isinstance(settings, str):
        problems.append(f"the service would not start: {settings}")
    return problems


def _service_problems(
    docs: list[Document], deployment: Document, spec: Mapping[str, Any], service: str
) -> list[str]:
    candidates = [
        s for s in find(docs, "Service", service) if namespace_of(s) == namespace_of(deployment)
    ]
    if not candidates:
        return [f"Service/{service} is missing beside {identify(deployment)}"]
    svc = candidates[0]
    where = identify(svc)
    problems: list[str] = []
    if svc["spec"].get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"{where}: type is {svc['spec']['type']}, expected ClusterIP")
    selector = svc["spec"].get("selector") or {}
    if not selector or not selector_matches({"matchLabels": selector}, pod_labels(deployment)):
        problems.append(f"{where}: selector {selector} does not select {identify(deployment)}")
    ports = port_names(spec)
    for port in svc["spec"].get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if ports.get(target) != CONTAINER_PORT:
            problems.append(f"{where}: targetPort {target!r} is not the server's port")
    return problems


def _be_reaches_be2_problems(docs: list[Document]) -> list[str]:
    be, be2_service = one(docs, "Deployment", "be"), one(docs, "Service", "be2")
    spec = container(be, "be") if be is not None else None
    if spec is None or be2_service is None:
        return []  # reported by the checks above
    settings = settings_of(spec)
    if isinstance(settings, str):
        return []
    url = urlsplit(settings.be2_url)
    ports = [int(p["port"]) for p in be2_service["spec"].get("ports") or []]
    default = 443 if url.scheme == "https" else 80
    host = (url.hostname or "").split(".")[0]
    if host != "be2" or (url.port or default) not in ports:
        return [f"Deployment/be: KSA_BE2_URL {settings.be2_url} is not Service/be2 {ports}"]
    return []


# --- overlay-specific checks -----------------------------------------------------------------


def _workloads(docs: list[Document]) -> tuple[Document, Document, dict[str, Any], dict[str, Any]]:
    be, be2 = one(docs, "Deployment", "be"), one(docs, "Deployment", "be2")
    if be is None or be2 is None:
        raise LookupError("Deployment be or be2 is missing")
    be_spec, be2_spec = container(be, "be"), container(be2, "be2")
    if be_spec is None or be2_spec is None:
        raise LookupError("container be or be2 is missing")
    return be, be2, be_spec, be2_spec


class Workloads(NamedTuple):
    """be's and be2's Deployments and their containers."""

    be: Document
    be2: Document
    be_spec: dict[str, Any]
    be2_spec: dict[str, Any]


def _on_workloads(check: Callable[[list[Document], Workloads], list[str]]) -> Check:
    """A check of be's and be2's Deployments and containers; their absence is its one problem."""

    @functools.wraps(check)
    def run(docs: list[Document]) -> list[str]:
        try:
            found = Workloads(*_workloads(docs))
        except LookupError as error:
            return [str(error)]
        return check(docs, found)

    return run


def _settings_or_problem(spec: Mapping[str, Any], where: str) -> tuple[Settings | None, list[str]]:
    settings = settings_of(spec)
    if isinstance(settings, str):
        return None, [f"{where}: the service would not start: {settings}"]
    return settings, []


@_on_workloads
def docker_desktop_problems(docs: list[Document], workloads: Workloads) -> list[str]:
    """The seed's setup: default API-audience token, be2 accepts it, locally built image."""
    problems: list[str] = []
    for deployment, spec in (
        (workloads.be, workloads.be_spec),
        (workloads.be2, workloads.be2_spec),
    ):
        if namespace_of(deployment) != "default":
            problems.append(f"{identify(deployment)}: not in namespace default (the seed's)")
        if spec.get("imagePullPolicy") != "IfNotPresent":
            problems.append(
                f"{identify(deployment)}: imagePullPolicy is {spec.get('imagePullPolicy')!r}, "
                "expected IfNotPresent (the image is built locally, not pulled)"
            )
    be_settings, found = _settings_or_problem(workloads.be_spec, "Deployment/be")
    problems += found
    if not automounts_api_token(docs, workloads.be):
        problems.append("Deployment/be: the default API-audience token is not mounted")
    if be_settings is not None:
        if be_settings.token_file != Settings().token_file:
            problems.append(f"Deployment/be: KSA_TOKEN_FILE is {be_settings.token_file}")
        if not be_settings.expose_token:
            problems.append("Deployment/be: /get-jwt is off (the seed's flow needs it)")
    be2_settings, found = _settings_or_problem(workloads.be2_spec, "Deployment/be2")
    problems += found
    if be2_settings is not None:
        if be2_settings.audiences != (API_AUDIENCE,):
            problems.append(
                f"Deployment/be2: KSA_AUDIENCES is {be2_settings.audiences}, expected "
                f"the API audience {API_AUDIENCE} that default tokens carry"
            )
        if API_AUDIENCE not in be2_settings.issuers:
            problems.append(f"Deployment/be2: KSA_ISSUER {be2_settings.issuers} lacks the issuer")
        if not be2_settings.policy.allows(subject_of(workloads.be)):
            problems.append(
                f"Deployment/be2: KSA_ALLOWED_SUBJECTS does not allow {subject_of(workloads.be)}"
            )
    return problems


@_on_workloads
def hardened_problems(docs: list[Document], workloads: Workloads) -> list[str]:
    """be: audience-`be2` projected token only; be2: that audience and be's subject only."""
    problems: list[str] = []
    if pod_spec(workloads.be).get("automountServiceAccountToken") is not False:
        problems.append("Deployment/be: automountServiceAccountToken is not false")
    if not automounts_api_token(docs, workloads.be2):
        problems.append(
            "Deployment/be2: its API token is not mounted, but be2 needs it to read "
            "discovery/JWKS (default RBAC) or to call TokenReview"
        )
    be_settings, found = _settings_or_problem(workloads.be_spec, "Deployment/be")
    problems += found
    if be_settings is not None:
        problems += _projected_token_problems(
            workloads.be, workloads.be_spec, be_settings.token_file
        )
        if be_settings.expose_token:
            problems.append("Deployment/be: KSA_EXPOSE_TOKEN is not false")
    be2_settings, found = _settings_or_problem(workloads.be2_spec, "Deployment/be2")
    problems += found
    if be2_settings is not None:
        if be2_settings.audiences != (HARDENED_AUDIENCE,):
            problems.append(
                f"Deployment/be2: KSA_AUDIENCES is {be2_settings.audiences}, "
                f"expected ({HARDENED_AUDIENCE!r},) only"
            )
        expected = SubjectPolicy(frozenset({subject_of(workloads.be)}))
        if be2_settings.policy != expected:
            policy = be2_settings.policy
            problems.append(
                f"Deployment/be2: KSA_ALLOWED_SUBJECTS allows {sorted(policy.subjects)} and "
                f"namespaces {sorted(policy.namespaces)}, "
                f"expected exactly {subject_of(workloads.be)}"
            )
    problems += network_policy_problems(docs)
    return problems


def _projected_token_problems(be: Document, spec: Mapping[str, Any], token_file: str) -> list[str]:
    where = f"Deployment/be: KSA_TOKEN_FILE {token_file}"
    for mount in spec.get("volumeMounts") or []:
        prefix = str(mount["mountPath"]).rstrip("/") + "/"
        if not token_file.startswith(prefix):
            continue
        relative = token_file[len(prefix) :]
        volume: dict[str, Any] = next(
            (v for v in pod_spec(be).get("volumes") or [] if v["name"] == mount["name"]), {}
        )
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if token is None or token.get("path") != relative:
                continue
            problems = []
            if token.get("audience") != HARDENED_AUDIENCE:
                problems.append(f"{where}: audience is {token.get('audience')!r}, expected be2")
            if token.get("expirationSeconds") != HARDENED_TOKEN_SECONDS:
                problems.append(
                    f"{where}: expirationSeconds is {token.get('expirationSeconds')!r}, "
                    f"expected {HARDENED_TOKEN_SECONDS}"
                )
            if mount.get("readOnly") is not True:
                problems.append(f"{where}: the token volume is not mounted readOnly")
            return problems
        return [f"{where}: volume {mount['name']} has no serviceAccountToken at {relative}"]
    return [f"{where}: no volume is mounted there (a projected serviceAccountToken must be)"]


def is_scraper_peer(peer: Mapping[str, Any]) -> bool:
    """A peer that admits only pods labelled as the metrics scraper, in namespaces so labelled."""
    return all(
        ((peer.get(key) or {}).get("matchLabels") or {}).get(SCRAPER_LABEL) == "true"
        for key in ("namespaceSelector", "podSelector")
    )


def _peer_problems(
    where: str, peer: Mapping[str, Any], outsiders: list[dict[str, str]]
) -> list[str]:
    if "ipBlock" in peer or "namespaceSelector" in peer:
        return [f"{where}: peer {peer} admits more than be's pods and the labelled scraper"]
    selector = peer.get("podSelector") or {}
    if any(selector_matches(selector, other) for other in outsiders):
        return [f"{where}: peer podSelector {selector} admits pods other than be"]
    return []


def network_policy_problems(docs: list[Document]) -> list[str]:
    """be2 is isolated for ingress; the allowed peers are be's pods and the labelled scraper."""
    try:
        be, be2, _, _ = _workloads(docs)
    except LookupError as error:
        return [str(error)]
    be_labels, be2_labels = pod_labels(be), pod_labels(be2)
    # Pods that must not match a peer: be2 itself, a stranger in the same app, an unlabelled pod.
    outsiders = [
        be2_labels,
        {"app.kubernetes.io/name": "intruder", "app.kubernetes.io/part-of": "ksa-auth"},
        {},
    ]
    policies = [
        np
        for np in find(docs, "NetworkPolicy")
        if namespace_of(np) == namespace_of(be2)
        and selector_matches(np["spec"].get("podSelector") or {}, be2_labels)
        and "Ingress" in (np["spec"].get("policyTypes") or ["Ingress"])
    ]
    if not policies:
        return ["NetworkPolicy: none isolates be2's pods for Ingress (anyone can reach be2)"]
    problems: list[str] = []
    allowed: set[str] = set()
    server_ports = port_names(container(be2, "be2") or {})
    for policy in policies:
        where = identify(policy)
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports") or [{}]
            # A rule's ports name the pod's port (number or name); no ports means every port.
            if not any(server_ports.get(p.get("port", CONTAINER_PORT)) for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                problems.append(f"{where}: an ingress rule without `from` admits every source")
                allowed.add("be")
                continue
            for peer in peers:
                if is_scraper_peer(peer):
                    allowed.add("scraper")
                    continue
                problems += _peer_problems(where, peer, outsiders)
                if selector_matches(peer.get("podSelector") or {}, be_labels):
                    allowed.add("be")
    if "be" not in allowed:
        problems.append("NetworkPolicy: no ingress rule lets be's pods reach be2")
    if "scraper" not in allowed:
        problems.append(
            f"NetworkPolicy: no ingress rule lets a metrics scraper ({SCRAPER_LABEL}=true on its "
            "namespace and pods) reach be2's /metrics"
        )
    return problems


def _be2_verifier(docs: list[Document]) -> str | None:
    be2 = one(docs, "Deployment", "be2")
    spec = container(be2, "be2") if be2 is not None else None
    settings = settings_of(spec) if spec is not None else "missing"
    return None if isinstance(settings, str) else settings.verifier


def be2_bindings(docs: list[Document]) -> list[Document]:
    """ClusterRoleBindings whose subjects include be2-sa in be2's namespace."""
    be2 = one(docs, "Deployment", "be2")
    namespace = namespace_of(be2) if be2 is not None else ""
    return [
        binding
        for binding in find(docs, "ClusterRoleBinding")
        if any(
            subject.get("kind") == "ServiceAccount"
            and subject.get("name") == "be2-sa"
            and subject.get("namespace") == namespace
            for subject in binding.get("subjects") or []
        )
    ]


def role_grants(role: Document) -> tuple[set[tuple[str, str, str]], list[str]]:
    """(apiGroup, resource, verb) triples a ClusterRole grants, and what cannot be enumerated."""
    grants: set[tuple[str, str, str]] = set()
    problems = []
    if role.get("aggregationRule"):
        problems.append("aggregates other roles (its rules are whatever they grant)")
    for rule in role.get("rules") or []:
        if rule.get("nonResourceURLs"):
            problems.append(f"grants non-resource URLs {rule['nonResourceURLs']}")
        groups, resources, verbs = (rule.get(k) or [] for k in ("apiGroups", "resources", "verbs"))
        if "*" in (*groups, *resources, *verbs):
            problems.append(f"grants a wildcard: {rule}")
        grants |= {(g, r, v) for g in groups for r in resources for v in verbs}
    return grants, problems


def _binding_problems(docs: list[Document], binding: Document) -> tuple[bool, list[str]]:
    """Whether this binding lets be2 create tokenreviews, and what else it grants or hides."""
    where = identify(binding)
    ref = binding.get("roleRef") or {}
    if ref.get("kind") != "ClusterRole" or ref.get("apiGroup") != "rbac.authorization.k8s.io":
        return False, [f"{where}: roleRef {ref} is not a ClusterRole"]
    role = one(docs, "ClusterRole", str(ref.get("name")))
    if role is None:
        name = ref.get("name")
        also = " (it also grants create on subjectaccessreviews)" if name == AUTH_DELEGATOR else ""
        return False, [
            f"{where}: binds be2-sa to ClusterRole {name}, which the manifests do not define, "
            f"so what it grants is unchecked{also}"
        ]
    grants, unclear = role_grants(role)
    problems = [f"{identify(role)}: {problem}" for problem in unclear]
    problems += [
        f"{identify(role)}: also grants {verb} {group or 'core'}/{resource}"
        for group, resource, verb in sorted(grants - {TOKENREVIEW_GRANT})
    ]
    return TOKENREVIEW_GRANT in grants, problems


def jwks_problems(docs: list[Document]) -> list[str]:
    """be2 verifies with JWKS, which needs no RBAC beyond the default discovery binding."""
    problems = []
    if _be2_verifier(docs) != "jwks":
        problems.append(f"Deployment/be2: KSA_VERIFIER is {_be2_verifier(docs)!r}, expected jwks")
    for binding in be2_bindings(docs):
        problems.append(f"{identify(binding)} binds be2-sa, but the JWKS verifier needs no RBAC")
    return problems


def tokenreview_problems(docs: list[Document]) -> list[str]:
    """be2 verifies with TokenReview; be2-sa may create tokenreviews and do nothing else."""
    problems = []
    if _be2_verifier(docs) != "tokenreview":
        problems.append(
            f"Deployment/be2: KSA_VERIFIER is {_be2_verifier(docs)!r}, expected tokenreview"
        )
    allowed = False
    for binding in be2_bindings(docs):
        grants_tokenreview, found = _binding_problems(docs, binding)
        allowed = allowed or grants_tokenreview
        problems += found
    if not allowed:
        problems.append(
            "no ClusterRoleBinding gives be2-sa in be2's namespace create on tokenreviews "
            "(TokenReview would answer 403)"
        )
    return problems


def all_problems(docs: list[Document], checks: Iterable[Check]) -> list[str]:
    """Every problem the given checks find."""
    return [problem for check in checks for problem in check(docs)]


# --- transport: be -> be2 over TLS -----------------------------------------------------------


def _mounted_key(
    deployment: Document, spec: Mapping[str, Any], path: str
) -> tuple[dict[str, Any], str] | str:
    """The volume a file path is mounted from and the Secret/ConfigMap key behind it."""
    for mount in spec.get("volumeMounts") or []:
        prefix = str(mount["mountPath"]).rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        if mount.get("readOnly") is not True:
            return f"{path} is on volume {mount['name']}, not mounted readOnly"
        relative = path[len(prefix) :]
        volume: dict[str, Any] = next(
            (v for v in pod_spec(deployment).get("volumes") or [] if v["name"] == mount["name"]),
            {},
        )
        source = volume.get("secret") or volume.get("configMap") or {}
        items = source.get("items")
        if items is None:
            return volume, relative
        key = next((item["key"] for item in items if item.get("path") == relative), None)
        if key is None:
            return f"{path}: volume {mount['name']} projects no key to {relative}"
        return volume, key
    return f"{path} is on no mounted volume"


def _be2_serving_problems(be2: Document, spec: Mapping[str, Any], settings: Settings) -> list[str]:
    where = "Deployment/be2"
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return [f"{where}: KSA_TLS_CERT_FILE/KSA_TLS_KEY_FILE unset: be2 would serve plain HTTP"]
    problems: list[str] = []
    secrets = set()
    for variable, path, expected in (
        ("KSA_TLS_CERT_FILE", settings.tls_cert_file, "tls.crt"),
        ("KSA_TLS_KEY_FILE", settings.tls_key_file, "tls.key"),
    ):
        found = _mounted_key(be2, spec, path)
        if isinstance(found, str):
            problems.append(f"{where}: {variable} {found}")
            continue
        volume, key = found
        secret = (volume.get("secret") or {}).get("secretName")
        if secret is None or key != expected:
            problems.append(f"{where}: {variable} is not key {expected} of a Secret volume")
        secrets.add(secret)
    if len(secrets) > 1:
        problems.append(f"{where}: certificate and key come from different Secrets {secrets}")
    for probe in ("readinessProbe", "livenessProbe"):
        if ((spec.get(probe) or {}).get("httpGet") or {}).get("scheme") != "HTTPS":
            problems.append(f"{where}: {probe} is not scheme HTTPS (the port speaks only TLS)")
    return problems


def _be_verifies_problems(be: Document, spec: Mapping[str, Any], settings: Settings) -> list[str]:
    where = "Deployment/be"
    if urlsplit(settings.be2_url).scheme != "https":
        return [f"{where}: KSA_BE2_URL {settings.be2_url} is not https: the token goes in clear"]
    if settings.be2_ca_file is None:
        return [f"{where}: KSA_BE2_CA_FILE is not set"]
    found = _mounted_key(be, spec, settings.be2_ca_file)
    if isinstance(found, str):
        return [f"{where}: KSA_BE2_CA_FILE {found}"]
    volume, key = found
    secret = volume.get("secret")
    if key != "ca.crt":
        return [f"{where}: KSA_BE2_CA_FILE is key {key!r}, expected ca.crt"]
    if secret is not None and [item.get("key") for item in secret.get("items") or []] != ["ca.crt"]:
        return [f"{where}: Secret {secret.get('secretName')} is mounted with more than ca.crt"]
    return []


@_on_workloads
def tls_problems(docs: list[Document], workloads: Workloads) -> list[str]:
    """be2 serves TLS from a mounted Secret on an https port; be sends to https only, verifying
    against a mounted CA (never be2's key)."""
    be_settings, problems = _settings_or_problem(workloads.be_spec, "Deployment/be")
    be2_settings, found = _settings_or_problem(workloads.be2_spec, "Deployment/be2")
    problems += found
    if be2_settings is not None:
        problems += _be2_serving_problems(workloads.be2, workloads.be2_spec, be2_settings)
    if be_settings is not None:
        problems += _be_verifies_problems(workloads.be, workloads.be_spec, be_settings)
    service = one(docs, "Service", "be2")
    if service is not None:
        ports = [(p.get("name"), p.get("port")) for p in service["spec"].get("ports") or []]
        if ports != [("https", 443)]:
            problems.append(f"Service/be2: ports {ports}, expected [('https', 443)]")
    return problems


@_on_workloads
def plain_http_problems(docs: list[Document], workloads: Workloads) -> list[str]:
    """The seed's port-forward flow: be2 plain HTTP, be calls it over http."""
    problems: list[str] = []
    be2_env = literal_env(workloads.be2_spec)
    for variable in ("KSA_TLS_CERT_FILE", "KSA_TLS_KEY_FILE"):
        if variable in be2_env:
            problems.append(f"Deployment/be2: {variable} set; this overlay serves plain HTTP")
    url = literal_env(workloads.be_spec).get("KSA_BE2_URL", Settings().be2_url)
    if not url.startswith("http://"):
        problems.append(f"Deployment/be: KSA_BE2_URL {url} is not the plain-HTTP Service")
    return problems


@_on_workloads
def cert_manager_certificate_problems(docs: list[Document], workloads: Workloads) -> list[str]:
    """A cert-manager Certificate issues the Secret be2 serves, for the names be uses, renewed
    with a new key, by an issuer in the manifests; be's CA is that Secret's ca.crt only."""
    be2_settings = settings_of(workloads.be2_spec)
    if isinstance(be2_settings, str) or be2_settings.tls_cert_file is None:
        return []  # reported by tls_problems
    found = _mounted_key(workloads.be2, workloads.be2_spec, be2_settings.tls_cert_file)
    if isinstance(found, str):
        return []
    secret = (found[0].get("secret") or {}).get("secretName")
    namespace = namespace_of(workloads.be2)
    certificates = [
        c for c in find(docs, "Certificate") if (c.get("spec") or {}).get("secretName") == secret
    ]
    if len(certificates) != 1:
        return [f"no single Certificate issues Secret {secret} ({len(certificates)} found)"]
    spec = certificates[0]["spec"]
    where = identify(certificates[0])
    problems = []
    wanted = {"be2", f"be2.{namespace}.svc"}
    if not wanted <= set(spec.get("dnsNames") or []):
        problems.append(f"{where}: dnsNames {spec.get('dnsNames')} lack {sorted(wanted)}")
    if spec.get("isCA"):
        problems.append(f"{where}: isCA is true for a serving certificate")
    if (spec.get("privateKey") or {}).get("rotationPolicy") != "Always":
        problems.append(f"{where}: privateKey.rotationPolicy is not Always (the key never changes)")
    issuer = spec.get("issuerRef") or {}
    if issuer.get("kind", "Issuer") == "Issuer" and not [
        i for i in find(docs, "Issuer", issuer.get("name")) if namespace_of(i) == namespace
    ]:
        problems.append(f"{where}: issuerRef {issuer.get('name')} is no Issuer of {namespace}")
    be_settings = settings_of(workloads.be_spec)
    if not isinstance(be_settings, str) and be_settings.be2_ca_file is not None:
        ca = _mounted_key(workloads.be, workloads.be_spec, be_settings.be2_ca_file)
        if not isinstance(ca, str) and (ca[0].get("secret") or {}).get("secretName") != secret:
            problems.append(f"Deployment/be: KSA_BE2_CA_FILE is not ca.crt of Secret {secret}")
    return problems
