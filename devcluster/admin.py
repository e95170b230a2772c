"""The admin API for tests and demos: signing keys, pods, tokens and faults, over plain HTTP."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

from litestar import Litestar, Response, get, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from devcluster.cluster import (
    DEFAULT_GRACE_SECONDS,
    KEY_FAULTS,
    REVIEW_FAULTS,
    AdjustableClock,
    Cluster,
    Faults,
)
from devcluster.issuer import MAX_TOKEN_SECONDS, timestamp
from devcluster.kubelet import Pod
from devcluster.status import (
    MAX_BODY_BYTES,
    AnyRequest,
    ApiError,
    bad_request,
    internal_error,
    json_response,
    not_found,
    read_json,
)
from domain.jws import b64url_encode

__all__ = [
    "advance_clock",
    "create_admin_app",
    "mint",
    "retire_signing_key",
    "rotate_signing_key",
    "set_faults",
    "sign",
    "state",
]

# Admin-minted tokens may be backdated or postdated, within what timestamps can show.
LATEST_ISSUED_AT = 1 << 33
COUNTERS = (
    "discovery_requests",
    "jwks_requests",
    "tokenreview_requests",
    "tokenrequest_requests",
    "unauthorized_requests",
    "forbidden_requests",
    "redirect_target_requests",
    "redirect_target_authorization",
    "tokens_issued",
    "token_writes",
    "key_rotations",
    "pods_terminated",
    "pods_removed",
)

Operation = Callable[[Cluster, dict[str, Any]], dict[str, Any]]

# pkg/apis/core/validation: a namespace is a DNS-1123 label (63 at most), a service account name
# a DNS-1123 subdomain (253 at most): the API server never stores, so never mints for, others.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_UNPADDED_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _is_label(value: str) -> bool:
    return len(value) <= 63 and _LABEL.fullmatch(value) is not None


def _is_subdomain(value: str) -> bool:
    return 0 < len(value) <= 253 and all(_LABEL.fullmatch(part) for part in value.split("."))


def set_faults(cluster: Cluster, body: Mapping[str, Any]) -> dict[str, Any]:
    """Switch key and TokenReview faults; fields not given are kept."""
    _only(body, "keys", "delay_seconds", "tokenreview", "endpoints")
    keys = body.get("keys", cluster.faults.keys)
    review = body.get("tokenreview", cluster.faults.tokenreview)
    delay = body.get("delay_seconds", cluster.faults.delay_seconds)
    endpoints = body.get("endpoints", list(cluster.faults.endpoints))
    if keys not in KEY_FAULTS:
        raise bad_request(f"keys must be one of {', '.join(KEY_FAULTS)}")
    if review not in REVIEW_FAULTS:
        raise bad_request(f"tokenreview must be one of {', '.join(REVIEW_FAULTS)}")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60:
        raise bad_request("delay_seconds must be a number from 0 to 60")
    if not isinstance(endpoints, list) or not set(endpoints) <= {"discovery", "jwks"}:
        raise bad_request('endpoints must be a list of "discovery" and "jwks"')
    cluster.faults = Faults(str(keys), float(delay), str(review), tuple(endpoints))
    return cluster.faults.as_dict()


def mint(cluster: Cluster, body: Mapping[str, Any]) -> dict[str, Any]:
    """Any service account (created on demand), any audiences and TTL, backdated or not."""
    _only(
        body,
        "namespace",
        "service_account",
        "audiences",
        "expiration_seconds",
        "pod",
        "issued_at",
        "kid",
    )
    namespace = body.get("namespace", "default")
    name = body.get("service_account")
    audiences = body.get("audiences") or list(cluster.api_audiences)
    expiration = body.get("expiration_seconds", 3600)
    issued_at = body.get("issued_at")
    kid = body.get("kid")
    if not isinstance(namespace, str) or not isinstance(name, str) or not name:
        raise bad_request("namespace and service_account must be strings")
    if not _is_label(namespace) or not _is_subdomain(name):
        raise bad_request(
            "namespace must be a DNS-1123 label and service_account a DNS-1123 subdomain"
        )
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise bad_request("audiences must be a list of strings")
    if (
        isinstance(expiration, bool)
        or not isinstance(expiration, int)
        or not 1 <= expiration <= MAX_TOKEN_SECONDS
    ):
        raise bad_request("expiration_seconds must be an integer from 1 to 2^32")
    if issued_at is not None and not (
        isinstance(issued_at, int | float)
        and not isinstance(issued_at, bool)
        and 0 <= issued_at <= LATEST_ISSUED_AT
    ):
        raise bad_request("issued_at must be seconds since the epoch (0 to 2^33)")
    if kid is not None and kid not in cluster.keyset.published_kids:
        raise not_found("signingkeys", str(kid))
    pod = _bound_pod(cluster, namespace, name, body.get("pod"))
    cluster.registry.service_account(namespace, name, create=True)
    token, expires_at = cluster.tokens.issue(
        namespace,
        name,
        audiences=audiences,
        expiration_seconds=expiration,
        for_pod=pod,
        issued_at=issued_at,
        key=kid,
    )
    return {"token": token, "expiration_timestamp": timestamp(expires_at)}


def _bound_pod(cluster: Cluster, namespace: str, service_account: str, name: Any) -> Pod | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise bad_request("pod must be a pod name or null")
    pod = cluster.registry.find_pod(namespace, name)
    if pod.service_account != service_account:
        # TokenRequest's check (pkg/registry/core/serviceaccount/storage/token.go).
        raise bad_request(
            f'cannot bind token for serviceaccount "{service_account}" to pod running with '
            "different serviceaccount name."
        )
    return pod


def sign(cluster: Cluster, body: Mapping[str, Any]) -> dict[str, Any]:
    """Sign any header and payload bytes with the current signing key.

    For tests of what verifiers must refuse: tokens kube-apiserver would never mint, with a
    real signature. `header` and `payload` are unpadded base64url of the raw JSON bytes.
    """
    _only(body, "header", "payload")
    segments = [_raw_segment(body, member) for member in ("header", "payload")]
    signing_input = ".".join(segments)
    key = cluster.keyset.signing_key()
    signature = b64url_encode(key.sign(signing_input.encode("ascii")))
    return {"token": f"{signing_input}.{signature}", "kid": key.kid}


def _raw_segment(body: Mapping[str, Any], member: str) -> str:
    """The member's bytes as a canonical base64url segment (any bytes: JSON or not)."""
    value = body.get(member)
    message = f"{member} must be unpadded base64url of the raw bytes"
    if not isinstance(value, str) or not _UNPADDED_BASE64URL.fullmatch(value):
        raise bad_request(message)
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise bad_request(message) from None
    return b64url_encode(raw)


def rotate_signing_key(cluster: Cluster, body: Mapping[str, Any]) -> dict[str, Any]:
    """A new key signs from now on; the previous ones stay published unless retired."""
    _only(body, "retire_previous", "algorithm")
    retire = body.get("retire_previous", False)
    algorithm = body.get("algorithm")
    if not isinstance(retire, bool):
        raise bad_request("retire_previous must be a boolean")
    if algorithm not in (None, "RS256", "ES256"):
        raise bad_request("algorithm must be RS256 or ES256")
    kid = cluster.keyset.rotate(algorithm, retire_previous=retire)
    cluster.counters["key_rotations"] += 1
    return {"kid": kid, "published": list(cluster.keyset.published_kids)}


def retire_signing_key(cluster: Cluster, body: Mapping[str, Any]) -> dict[str, Any]:
    """Stop publishing a key (not the signer): tokens it signed no longer authenticate."""
    _only(body, "kid")
    kid = body.get("kid")
    if not isinstance(kid, str):
        raise bad_request("kid must be a string")
    if kid not in cluster.keyset.published_kids:
        raise not_found("signingkeys", kid)
    if kid == cluster.keyset.signing_kid:
        raise bad_request("the current signing key cannot be retired; rotate first")
    cluster.keyset.retire(kid)
    return {"retired": kid, "published": list(cluster.keyset.published_kids)}


def advance_clock(cluster: Cluster, body: Mapping[str, Any]) -> dict[str, Any]:
    """Move the cluster's clock forward: token times, deletion grace, kubelet refreshes."""
    _only(body, "seconds")
    seconds = body.get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_TOKEN_SECONDS
    ):
        raise bad_request("seconds must be a number from 0 to 2^32")
    if not isinstance(cluster.clock, AdjustableClock):
        raise bad_request("this cluster's clock cannot be moved")
    now = cluster.clock.advance(float(seconds))
    cluster.kubelet.wake()
    return {"now": timestamp(now), "offset_seconds": cluster.clock.offset}


def terminate_pod(cluster: Cluster, namespace: str, name: str, body: Mapping[str, Any]) -> Any:
    """A graceful delete: deletionTimestamp = now + grace; tokens hold 60 s past it."""
    _only(body, "grace_period_seconds")
    grace = body.get("grace_period_seconds", DEFAULT_GRACE_SECONDS)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= 86400:
        raise bad_request("grace_period_seconds must be an integer from 0 to 86400")
    pod = cluster.terminate_pod(namespace, name, grace)
    deleted = timestamp(pod.deletion_timestamp or 0)
    return {"terminated": f"{namespace}/{name}", "uid": pod.uid, "deletion_timestamp": deleted}


def state(cluster: Cluster) -> dict[str, Any]:
    """The counters, the faults, the keys and the pods."""
    return {
        **{name: cluster.counters[name] for name in COUNTERS},
        "faults": cluster.faults.as_dict(),
        "signing_kid": cluster.keyset.signing_kid,
        "published_kids": list(cluster.keyset.published_kids),
        "pods": [cluster.pod_json(p) for p in cluster.registry.pods.values()],
    }


def _only(body: Mapping[str, Any], *allowed: str) -> None:
    # Admin bodies are strict: a misspelt field must not silently do the default thing.
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


# POST routes whose JSON object body is the operation's whole input.
BODY_OPERATIONS: dict[str, Operation] = {
    "/admin/signing-keys/rotate": rotate_signing_key,
    "/admin/signing-keys/retire": retire_signing_key,
    "/admin/tokens/mint": mint,
    "/admin/sign": sign,
    "/admin/faults": set_faults,
    "/admin/clock/advance": advance_clock,
}


def create_admin_app(cluster: Cluster) -> Litestar:
    """The admin API (plain HTTP, loopback only, Bearer admin token)."""
    return Litestar(
        route_handlers=_routes(cluster),
        exception_handlers={
            ApiError: _admin_error,
            HTTPException: _http_error,
            Exception: internal_error,
        },
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        logging_config=None,
    )


def _routes(cluster: Cluster) -> list[HTTPRouteHandler]:
    """Every admin route; all but the redirect target want the admin token."""

    def check(request: AnyRequest) -> None:
        expected = f"Bearer {cluster.admin_token}".encode()
        given = (request.headers.get("authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            raise ApiError(
                401, "Unauthorized", "admin calls need Authorization: Bearer <admin_token>"
            )

    def body_route(path: str, operation: Operation) -> HTTPRouteHandler:
        async def handler(request: AnyRequest) -> dict[str, Any]:
            check(request)
            body = await read_json(request, empty_ok=True)
            if not isinstance(body, dict):
                raise bad_request("the body must be a JSON object")
            return operation(cluster, body)

        return post(path, status_code=200, name=path)(handler)

    @post("/admin/tokens/rotate", status_code=200)
    async def rotate_tokens(request: AnyRequest) -> dict[str, Any]:
        check(request)
        return {"rewritten": cluster.kubelet.refresh_tokens(force=True)}

    @post("/admin/certificates/renew", status_code=200)
    async def renew_certificates(request: AnyRequest) -> dict[str, Any]:
        check(request)
        return {"renewed": cluster.renew_serving_certificates()}

    @get("/admin/state")
    async def state_route(request: AnyRequest) -> dict[str, Any]:
        check(request)
        return state(cluster)

    @get("/redirect-target/{path:path}")
    async def redirect_target(request: AnyRequest, path: FromPath[str]) -> dict[str, Any]:
        cluster.counters["redirect_target_requests"] += 1
        if request.headers.get("authorization"):
            cluster.counters["redirect_target_authorization"] += 1
        return {"keys": []}

    return [
        *(body_route(path, operation) for path, operation in BODY_OPERATIONS.items()),
        *_pod_routes(cluster, check),
        rotate_tokens,
        renew_certificates,
        state_route,
        redirect_target,
    ]


def _pod_routes(cluster: Cluster, check: Callable[[AnyRequest], None]) -> list[HTTPRouteHandler]:
    """Pod deletion in kube's two steps: terminate (graceful), then remove."""

    @post("/admin/pods/{namespace:str}/{name:str}/terminate", status_code=200)
    async def terminate(
        request: AnyRequest, namespace: FromPath[str], name: FromPath[str]
    ) -> dict[str, Any]:
        check(request)
        body = await read_json(request, empty_ok=True)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        answer: dict[str, Any] = terminate_pod(cluster, namespace, name, body)
        return answer

    @post("/admin/pods/{namespace:str}/{name:str}/remove", status_code=200)
    async def remove(
        request: AnyRequest, namespace: FromPath[str], name: FromPath[str]
    ) -> dict[str, Any]:
        check(request)
        pod = cluster.remove_pod(namespace, name)
        return {"removed": f"{pod.namespace}/{pod.name}", "uid": pod.uid}

    return [terminate, remove]


def _admin_error(_: AnyRequest, exc: ApiError) -> Response[bytes]:
    return json_response({"error": exc.reason, "message": exc.message, "code": exc.code}, exc.code)


def _http_error(_: AnyRequest, exc: HTTPException) -> Response[bytes]:
    body = {"error": "http", "message": str(exc.detail), "code": exc.status_code}
    return json_response(body, exc.status_code)
