"""kube-apiserver's RBAC authorizer over ClusterRoles, Roles and their bindings, with its 403s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devcluster.status import ApiError

__all__ = [
    "ANONYMOUS",
    "BOOTSTRAP_POLICY",
    "MASTERS",
    "Attributes",
    "Authorizer",
    "Decision",
    "Policy",
    "UserInfo",
    "forbidden",
    "non_resource",
    "request_attributes",
    "resource",
]

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
# The group that may do anything: kube-apiserver's privileged-group authorizer lets it through
# before RBAC asks, and the bootstrap binding `cluster-admin` grants it the same.
MASTERS = "system:masters"
RBAC_KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")


@dataclass(frozen=True)
class UserInfo:
    """Who is asking, as an authenticator says (k8s.io/apiserver user.Info)."""

    name: str
    groups: tuple[str, ...] = ()


# pkg/authentication/request/anonymous: a request without credentials, with anonymous auth on.
ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (authorizer.Attributes): a verb on a resource, or on a path."""

    verb: str
    path: str = ""
    resource: str = ""
    subresource: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    name: str = ""
    is_resource_request: bool = False


def resource(
    verb: str,
    resource_name: str,
    *,
    api_group: str = "",
    subresource: str = "",
    namespace: str = "",
    name: str = "",
    api_version: str = "v1",
) -> Attributes:
    """A resource request: `resource("create", "tokenreviews", api_group=...)`."""
    return Attributes(
        verb=verb,
        resource=resource_name,
        subresource=subresource,
        api_group=api_group,
        api_version=api_version,
        namespace=namespace,
        name=name,
        is_resource_request=True,
    )


def non_resource(verb: str, path: str) -> Attributes:
    """A non-resource request, e.g. `non_resource("get", "/openid/v1/jwks")`."""
    return Attributes(verb=verb, path=path)


_RESOURCE_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def request_attributes(method: str, path: str) -> Attributes:
    """What a request asks, read from its method and path as RequestInfoFactory does
    (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go; no watch, no list options)."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        # Non-resource: the verb is the lower-cased method (HEAD is `head`, POST `post`).
        return non_resource(method.lower(), path)
    prefix, rest = parts[0], parts[1:]
    if len(rest) < (3 if prefix == "apis" else 2):
        return non_resource(method.lower(), path)
    group = rest.pop(0) if prefix == "apis" else ""
    version = rest.pop(0)
    namespace = ""
    # /namespaces/{ns}/{resource}... is namespaced; /namespaces/{name} is the namespace itself.
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        namespace = rest[1]
    name = rest[1] if len(rest) > 1 else ""
    verb = _RESOURCE_VERBS.get(method.upper(), "")
    if not name and verb == "get":
        verb = "list"
    elif not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        verb=verb,
        path=path,
        resource=rest[0],
        subresource=rest[2] if len(rest) > 2 else "",
        api_group=group,
        api_version=version,
        namespace=namespace,
        name=name,
        is_resource_request=True,
    )


@dataclass(frozen=True)
class Rule:
    """One PolicyRule of a role."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def allows(self, attributes: Attributes) -> bool:
        """rbac.go RuleAllows with validation.go's matchers."""
        if not ("*" in self.verbs or attributes.verb in self.verbs):
            return False
        if not attributes.is_resource_request:
            return any(_url_matches(url, attributes.path) for url in self.non_resource_urls)
        combined = attributes.resource
        if attributes.subresource:
            combined = f"{attributes.resource}/{attributes.subresource}"
        return (
            ("*" in self.api_groups or attributes.api_group in self.api_groups)
            and any(_resource_matches(r, combined, attributes.subresource) for r in self.resources)
            and (not self.resource_names or attributes.name in self.resource_names)
        )


def _url_matches(rule_url: str, path: str) -> bool:
    if rule_url in ("*", path):
        return True
    return rule_url.endswith("*") and path.startswith(rule_url.rstrip("*"))


def _resource_matches(rule_resource: str, combined: str, subresource: str) -> bool:
    if rule_resource in ("*", combined):
        return True
    # `*/scale` matches the scale subresource of every resource.
    return (
        bool(subresource)
        and len(rule_resource) == len(subresource) + 2
        and rule_resource.startswith("*/")
        and rule_resource.endswith(subresource)
    )


@dataclass(frozen=True)
class Subject:
    kind: str
    name: str
    namespace: str = ""

    def applies_to(self, user: UserInfo, binding_namespace: str) -> bool:
        """rbac.go appliesToUser: a ServiceAccount subject without a namespace is in the
        binding's (none for a ClusterRoleBinding: it then matches nobody)."""
        if self.kind == "User":
            return user.name == self.name
        if self.kind == "Group":
            return self.name in user.groups
        if self.kind == "ServiceAccount":
            namespace = self.namespace or binding_namespace
            return bool(namespace) and user.name == f"system:serviceaccount:{namespace}:{self.name}"
        return False


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (namespace set) or a ClusterRoleBinding (namespace empty)."""

    name: str
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...]
    namespace: str = ""


@dataclass
class Policy:
    """RBAC objects by kind: what `kubectl apply` would have stored."""

    cluster_roles: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    roles: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    cluster_role_bindings: list[Binding] = field(default_factory=list)
    role_bindings: list[Binding] = field(default_factory=list)

    def add(self, document: Mapping[str, Any], source: str = "") -> None:
        """Store one RBAC object (a dict as parsed from YAML); other kinds are ignored."""
        kind = document.get("kind")
        if kind not in RBAC_KINDS:
            return
        where = f"{source}: " if source else ""
        if document.get("apiVersion") != RBAC_API_VERSION:
            raise ValueError(f"{where}{kind} must have apiVersion {RBAC_API_VERSION}")
        metadata = document.get("metadata") or {}
        name, namespace = str(metadata.get("name") or ""), str(metadata.get("namespace") or "")
        if not name:
            raise ValueError(f"{where}{kind} without metadata.name")
        if kind in ("Role", "RoleBinding"):
            # A namespaced object applied without a namespace lands in kubectl's default one.
            namespace = namespace or "default"
        try:
            if kind == "ClusterRole":
                self.cluster_roles[name] = _rules(document.get("rules"))
            elif kind == "Role":
                self.roles[(namespace, name)] = _rules(document.get("rules"))
            else:
                binding = _binding(document, name, namespace if kind == "RoleBinding" else "")
                listed = self.role_bindings if kind == "RoleBinding" else self.cluster_role_bindings
                listed[:] = [b for b in listed if (b.namespace, b.name) != (namespace, name)]
                listed.append(binding)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{where}{kind} {name!r}: {exc}") from None

    def remove_binding(self, kind: str, name: str, namespace: str = "") -> bool:
        """Delete a binding, as `kubectl delete` would; False when there is none."""
        listed = self.role_bindings if kind == "RoleBinding" else self.cluster_role_bindings
        kept = [b for b in listed if (b.namespace, b.name) != (namespace, name)]
        removed = len(kept) != len(listed)
        listed[:] = kept
        return removed


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(value)


def _rules(value: Any) -> tuple[Rule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ValueError("rules must be a list of objects")
    return tuple(
        Rule(
            verbs=_strings(r.get("verbs"), "verbs"),
            api_groups=_strings(r.get("apiGroups"), "apiGroups"),
            resources=_strings(r.get("resources"), "resources"),
            resource_names=_strings(r.get("resourceNames"), "resourceNames"),
            non_resource_urls=_strings(r.get("nonResourceURLs"), "nonResourceURLs"),
        )
        for r in value
    )


def _binding(document: Mapping[str, Any], name: str, namespace: str) -> Binding:
    ref = document.get("roleRef")
    if not isinstance(ref, dict) or not ref.get("name"):
        raise ValueError("roleRef with kind and name is required")
    subjects = document.get("subjects") or []
    if not isinstance(subjects, list) or not all(isinstance(s, dict) for s in subjects):
        raise ValueError("subjects must be a list of objects")
    return Binding(
        name=name,
        role_kind=str(ref.get("kind") or ""),
        role_name=str(ref["name"]),
        subjects=tuple(
            Subject(
                str(s.get("kind") or ""), str(s.get("name") or ""), str(s.get("namespace") or "")
            )
            for s in subjects
        ),
        namespace=namespace,
    )


def _cluster_role(name: str, *rules: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": list(rules),
    }


def _group_binding(name: str, role: str, *groups: str) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups
        ],
    }


_DISCOVERY_URLS = [
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/",
    "/openid/v1/jwks",
    "/openid/v1/jwks/",
]
_HEALTH_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

# The bootstrap roles and bindings that matter here, as
# plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go defines them. Roles without a
# binding (system:auth-delegator) exist to be bound by the cluster's own manifests.
BOOTSTRAP_POLICY: tuple[dict[str, Any], ...] = (
    _cluster_role(
        "cluster-admin",
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ),
    _group_binding("cluster-admin", "cluster-admin", MASTERS),
    _cluster_role("system:public-info-viewer", {"nonResourceURLs": _HEALTH_URLS, "verbs": ["get"]}),
    _group_binding(
        "system:public-info-viewer",
        "system:public-info-viewer",
        "system:authenticated",
        "system:unauthenticated",
    ),
    # API discovery (what kubectl reads before anything else), for every authenticated user.
    _cluster_role(
        "system:discovery",
        {
            "nonResourceURLs": [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/openapi",
                "/openapi/*",
                *_HEALTH_URLS,
            ],
            "verbs": ["get"],
        },
    ),
    _group_binding("system:discovery", "system:discovery", "system:authenticated"),
    _cluster_role(
        "system:service-account-issuer-discovery",
        {"nonResourceURLs": _DISCOVERY_URLS, "verbs": ["get"]},
    ),
    _group_binding(
        "system:service-account-issuer-discovery",
        "system:service-account-issuer-discovery",
        "system:serviceaccounts",
    ),
    _cluster_role(
        "system:auth-delegator",
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
    ),
)


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and RBAC's reason (the roles a binding names that do not exist)."""

    allowed: bool
    reason: str = ""


class Authorizer:
    """kube-apiserver's authorizer chain for this emulator: system:masters, then RBAC."""

    def __init__(
        self, objects: Iterable[Mapping[str, Any]] = (), *, bootstrap: bool = True
    ) -> None:
        self.policy = Policy()
        for document in (*(BOOTSTRAP_POLICY if bootstrap else ()), *objects):
            self.policy.add(document)

    def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
        """May `user` do `attributes`? (rbac.go RBACAuthorizer.Authorize.)"""
        if MASTERS in user.groups:
            return Decision(True)
        errors: list[str] = []
        for rules in self._rules_for(user, attributes.namespace, errors):
            if any(rule.allows(attributes) for rule in rules):
                return Decision(True)
        unique = list(dict.fromkeys(errors))
        if not unique:
            return Decision(False)
        joined = unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"
        return Decision(False, f"RBAC: {joined}")

    def _rules_for(
        self, user: UserInfo, namespace: str, errors: list[str]
    ) -> Iterable[Sequence[Rule]]:
        """rbac.go VisitRulesFor: cluster bindings, then the namespace's role bindings."""
        policy = self.policy
        for binding in policy.cluster_role_bindings:
            if any(s.applies_to(user, "") for s in binding.subjects):
                yield self._role_rules(binding, errors)
        if not namespace:
            return
        for binding in policy.role_bindings:
            if binding.namespace == namespace and any(
                s.applies_to(user, namespace) for s in binding.subjects
            ):
                yield self._role_rules(binding, errors)

    def _role_rules(self, binding: Binding, errors: list[str]) -> Sequence[Rule]:
        # GetRoleReferenceRules: a binding to a role that does not exist grants nothing, and
        # the 403 says so (the listers' NotFound words).
        if binding.role_kind == "ClusterRole":
            rules = self.policy.cluster_roles.get(binding.role_name)
            missing = f'clusterrole.rbac.authorization.k8s.io "{binding.role_name}" not found'
        elif binding.role_kind == "Role" and binding.namespace:
            rules = self.policy.roles.get((binding.namespace, binding.role_name))
            missing = f'role.rbac.authorization.k8s.io "{binding.role_name}" not found'
        else:
            rules, missing = None, f'unsupported role reference kind: "{binding.role_kind}"'
        if rules is None:
            errors.append(missing)
            return ()
        return rules

    def check(self, user: UserInfo, attributes: Attributes) -> None:
        """Raise kube's 403 Status when `user` may not do `attributes`."""
        decision = self.authorize(user, attributes)
        if not decision.allowed:
            raise forbidden(user, attributes, decision.reason)


def forbidden(user: UserInfo, attributes: Attributes, reason: str = "") -> ApiError:
    """The 403 kube-apiserver answers (endpoints/handlers/responsewriters Forbidden and
    apimachinery errors.NewForbidden): message, and details naming group, resource and name."""
    if attributes.is_resource_request:
        target = attributes.resource
        if attributes.subresource:
            target = f"{target}/{attributes.subresource}"
        scope = (
            f'in the namespace "{attributes.namespace}"'
            if attributes.namespace
            else "at the cluster scope"
        )
        why = (
            f'User "{user.name}" cannot {attributes.verb} resource "{target}" in API group '
            f'"{attributes.api_group}" {scope}'
        )
    else:
        why = f'User "{user.name}" cannot {attributes.verb} path "{attributes.path}"'
    if reason:
        why = f"{why}: {reason}"
    qualified = attributes.resource
    if attributes.api_group:
        qualified = f"{qualified}.{attributes.api_group}"
    if not qualified:
        message = f"forbidden: {why}"
    elif attributes.name:
        message = f'{qualified} "{attributes.name}" is forbidden: {why}'
    else:
        message = f"{qualified} is forbidden: {why}"
    # StatusDetails in Go's field order, empty members left out (omitempty).
    details = {
        key: value
        for key, value in (
            ("name", attributes.name),
            ("group", attributes.api_group),
            ("kind", attributes.resource),
        )
        if value
    }
    return ApiError(403, "Forbidden", message, details)
