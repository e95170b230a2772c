"""The emulator's RBAC authorizer: kube's bootstrap policy, rule matching, bindings and 403s."""

from __future__ import annotations

from typing import Any

import pytest

from devcluster.rbac import (
    ANONYMOUS,
    Authorizer,
    UserInfo,
    forbidden,
    non_resource,
    request_attributes,
    resource,
)


def service_account(namespace: str, name: str) -> UserInfo:
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


BE = service_account("default", "be-sa")
BE2 = service_account("ksa-auth", "be2-sa")
ADMIN = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))
REVIEW = resource("create", "tokenreviews", api_group="authentication.k8s.io")


def token_request(namespace: str, name: str) -> Any:
    return resource(
        "create", "serviceaccounts", subresource="token", namespace=namespace, name=name
    )


def cluster_role_binding(binding: str, role: str, **subject: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }


def test_bootstrap_policy_lets_service_accounts_read_discovery_and_nobody_else() -> None:
    authorizer = Authorizer()
    for path in ("/.well-known/openid-configuration", "/openid/v1/jwks"):
        assert authorizer.authorize(BE, non_resource("get", path)).allowed
        assert not authorizer.authorize(BE, non_resource("head", path)).allowed
        assert not authorizer.authorize(ANONYMOUS, non_resource("get", path)).allowed
        assert not authorizer.authorize(
            UserInfo("jane", ("system:authenticated",)), non_resource("get", path)
        ).allowed
    assert authorizer.authorize(ANONYMOUS, non_resource("get", "/healthz")).allowed
    assert not authorizer.authorize(BE, REVIEW).allowed
    assert not authorizer.authorize(BE, token_request("default", "be-sa")).allowed


def test_system_masters_may_do_anything() -> None:
    authorizer = Authorizer(bootstrap=False)
    assert authorizer.authorize(ADMIN, REVIEW).allowed
    assert authorizer.authorize(ADMIN, non_resource("delete", "/anything")).allowed
    assert authorizer.authorize(ADMIN, token_request("x", "y")).allowed


def test_auth_delegator_binding_grants_token_reviews_only() -> None:
    binding = cluster_role_binding(
        "be2", "system:auth-delegator", kind="ServiceAccount", name="be2-sa", namespace="ksa-auth"
    )
    authorizer = Authorizer([binding])
    assert authorizer.authorize(BE2, REVIEW).allowed
    assert not authorizer.authorize(BE, REVIEW).allowed
    assert not authorizer.authorize(BE2, token_request("ksa-auth", "be-sa")).allowed


def test_role_binding_with_resource_names_limits_token_requests() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "mint-be", "namespace": "default"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["serviceaccounts/token"],
                "resourceNames": ["be-sa"],
                "verbs": ["create"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "mint-be", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mint-be"},
        # No namespace: a RoleBinding's own.
        "subjects": [{"kind": "ServiceAccount", "name": "be-sa"}],
    }
    authorizer = Authorizer([role, binding])
    assert authorizer.authorize(BE, token_request("default", "be-sa")).allowed
    assert not authorizer.authorize(BE, token_request("default", "be2-sa")).allowed
    assert not authorizer.authorize(BE, token_request("other", "be-sa")).allowed
    assert not authorizer.authorize(
        service_account("default", "x"), token_request("default", "be-sa")
    ).allowed


def test_binding_to_a_missing_role_says_so_in_the_reason() -> None:
    binding = cluster_role_binding(
        "b", "ksa-auth-tokenreview", kind="ServiceAccount", name="be2-sa", namespace="ksa-auth"
    )
    decision = Authorizer([binding]).authorize(BE2, REVIEW)
    assert not decision.allowed
    assert decision.reason == (
        'RBAC: clusterrole.rbac.authorization.k8s.io "ksa-auth-tokenreview" not found'
    )


@pytest.mark.parametrize(
    ("user", "attributes", "message", "details"),
    [
        (
            BE2,
            REVIEW,
            'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:'
            'ksa-auth:be2-sa" cannot create resource "tokenreviews" in API group '
            '"authentication.k8s.io" at the cluster scope',
            {"group": "authentication.k8s.io", "kind": "tokenreviews"},
        ),
        (
            BE2,
            token_request("default", "be-sa"),
            'serviceaccounts "be-sa" is forbidden: User "system:serviceaccount:ksa-auth:be2-sa" '
            'cannot create resource "serviceaccounts/token" in API group "" in the namespace '
            '"default"',
            {"name": "be-sa", "kind": "serviceaccounts"},
        ),
        (
            ANONYMOUS,
            non_resource("get", "/openid/v1/jwks"),
            'forbidden: User "system:anonymous" cannot get path "/openid/v1/jwks"',
            {},
        ),
    ],
)
def test_forbidden_has_kubes_words(
    user: UserInfo, attributes: Any, message: str, details: dict[str, str]
) -> None:
    body = forbidden(user, attributes).body()
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("HEAD", "/openid/v1/jwks", non_resource("head", "/openid/v1/jwks")),
        ("GET", "/api", non_resource("get", "/api")),
        (
            "GET",
            "/apis/authentication.k8s.io/v1",
            non_resource("get", "/apis/authentication.k8s.io/v1"),
        ),
        (
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            resource("create", "tokenreviews", api_group="authentication.k8s.io"),
        ),
        (
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/be-sa/token",
            token_request("default", "be-sa"),
        ),
        ("GET", "/api/v1/namespaces/default/pods", resource("list", "pods", namespace="default")),
        ("DELETE", "/api/v1/nodes", resource("deletecollection", "nodes")),
    ],
)
def test_request_attributes_read_like_kubes_request_info(
    method: str, path: str, expected: Any
) -> None:
    found = request_attributes(method, path)
    assert (found.verb, found.is_resource_request, found.resource, found.subresource) == (
        expected.verb,
        expected.is_resource_request,
        expected.resource,
        expected.subresource,
    )
    assert (found.api_group, found.namespace, found.name) == (
        expected.api_group,
        expected.namespace,
        expected.name,
    )


def test_bad_rbac_objects_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match="rules must be a list of objects"):
        Authorizer(
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "x"},
                    "rules": "all",
                }
            ]
        )
    with pytest.raises(ValueError, match=r"apiVersion rbac\.authorization\.k8s\.io/v1"):
        Authorizer([{"apiVersion": "v1", "kind": "Role", "metadata": {"name": "x"}}])
