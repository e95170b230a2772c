"""OIDC discovery and the JWKS, readable with a service account token, and their key faults."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from devcluster.access import authorize_request
from devcluster.cluster import Cluster
from devcluster.rbac import non_resource
from devcluster.status import JSON, AnyRequest, json_response, unavailable

__all__ = ["CACHE_CONTROL", "JWKS_MEDIA_TYPE", "JWKS_URI", "discovery_document", "key_routes"]

# pkg/routes/openidmetadata.go: both endpoints override the global `private, no-cache`.
CACHE_CONTROL = "public, max-age=3600"
# Real clusters often advertise a jwks_uri that pods cannot reach.
JWKS_URI = "https://apiserver.invalid:6443/openid/v1/jwks"
# pkg/routes/openidmetadata.go mimeJWKS (RFC 7517 §8.5.1).
JWKS_MEDIA_TYPE = "application/jwk-set+json"
OVERSIZED_BYTES = 2 * 1024 * 1024


def discovery_document(cluster: Cluster) -> dict[str, Any]:
    """pkg/serviceaccount/openidmetadata.go openIDMetadata, in its field order."""
    return {
        "issuer": cluster.issuer,
        "jwks_uri": JWKS_URI,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": cluster.keyset.algorithms(),
    }


def key_routes(cluster: Cluster) -> list[HTTPRouteHandler]:
    """GET /.well-known/openid-configuration and GET /openid/v1/jwks."""

    async def keys_endpoint(request: AnyRequest, which: str) -> Response[bytes]:
        cluster.counters[f"{which}_requests"] += 1
        faults = cluster.faults
        if faults.keys != "ok" and which in faults.endpoints:
            if faults.delay_seconds:
                await asyncio.sleep(faults.delay_seconds)
            faulty = _faulty_answer(cluster, faults.keys, request.url.path)
            if faulty is not None:
                return faulty
        # Default RBAC lets only service accounts read these (system:service-account-issuer-
        # discovery is bound to system:serviceaccounts): anonymous callers get 403.
        attributes = non_resource("get", request.url.path)
        authorize_request(cluster, request.headers.get("authorization"), attributes)
        # pkg/routes/openidmetadata.go: application/json for discovery, jwk-set+json for keys.
        if which == "discovery":
            body = discovery_document(cluster)
            return json_response(body, 200, JSON, **{"cache-control": CACHE_CONTROL})
        body = cluster.keyset.jwks()
        return json_response(body, 200, JWKS_MEDIA_TYPE, **{"cache-control": CACHE_CONTROL})

    @get("/.well-known/openid-configuration")
    async def discovery(request: AnyRequest) -> Response[bytes]:
        return await keys_endpoint(request, "discovery")

    @get("/openid/v1/jwks")
    async def jwks(request: AnyRequest) -> Response[bytes]:
        return await keys_endpoint(request, "jwks")

    return [discovery, jwks]


def _faulty_answer(cluster: Cluster, mode: str, path: str) -> Response[bytes] | None:
    """What discovery and JWKS answer under a keys fault (None: answer normally)."""
    if mode == "outage":
        return unavailable()
    if mode == "garbage":
        return Response(
            content=b"<html><body>upstream connect error or disconnect/reset</body></html>",
            status_code=200,
            media_type=JSON,
        )
    if mode == "oversized":
        # Valid JSON and a valid JWKS, only far too big: only a size cap rejects it.
        body = cluster.keyset.jwks() | {"padding": "x" * OVERSIZED_BYTES}
        return json_response(body)
    if mode == "malformed":
        return json_response({"keys": "not-a-key-set", "jwks_uri": 42, "issuer": None})
    if mode == "redirect":
        # Another origin: a client that follows it hands its bearer token to a stranger,
        # which the admin listener counts (redirect_target_authorization).
        target = f"{cluster.admin_url}/redirect-target{path}"
        return Response(content=b"", status_code=302, headers={"location": target})
    return None  # "slow": answer normally, after the delay
