"""Who calls the emulated API server and whether they may: authentication, then RBAC."""

from __future__ import annotations

from devcluster.cluster import Cluster
from devcluster.rbac import ANONYMOUS, Attributes, UserInfo, forbidden
from devcluster.status import ApiError

__all__ = ["authorize_request", "caller"]


def caller(cluster: Cluster, authorization: str | None) -> UserInfo:
    """The user a request's credentials name; anonymous without any.

    kube-apiserver with anonymous auth on (the default): no bearer token (or an empty one)
    is `system:anonymous`; a bearer token no authenticator accepts is 401, never anonymous.
    """
    review = cluster.authenticator.authenticate_header(authorization)
    if review.authenticated:
        return UserInfo(review.username, review.groups)
    if review.error:
        cluster.counters["unauthorized_requests"] += 1
        raise ApiError(401, "Unauthorized", "Unauthorized")
    return ANONYMOUS


def authorize_request(
    cluster: Cluster, authorization: str | None, attributes: Attributes
) -> UserInfo:
    """The caller, once RBAC allows `attributes`; else kube's 401 or 403 Status."""
    user = caller(cluster, authorization)
    decision = cluster.authorizer.authorize(user, attributes)
    if not decision.allowed:
        cluster.counters["forbidden_requests"] += 1
        raise forbidden(user, attributes, decision.reason)
    return user
