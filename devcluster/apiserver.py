"""The emulated kube-apiserver over HTTPS; `ksa-auth devcluster` serves it and the admin API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar, Response, get, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from devcluster import kubeconfig
from devcluster.access import authorize_request
from devcluster.admin import create_admin_app
from devcluster.api_discovery import discovery_routes
from devcluster.cluster import Cluster
from devcluster.decoding import TOKEN_REQUEST, TOKEN_REVIEW, Kind, decode_body, warning_header
from devcluster.discovery import key_routes
from devcluster.kubelet import DEFAULT_PODS, parse_pod_spec
from devcluster.manifests import load_rbac_objects
from devcluster.openapi import openapi_routes
from devcluster.protobuf import is_protobuf, negotiated_response, read_protobuf
from devcluster.rbac import non_resource, request_attributes, resource
from devcluster.status import (
    MAX_BODY_BYTES,
    AnyRequest,
    ApiError,
    internal_error,
    status_body,
    unavailable,
)
from devcluster.tokenreview import token_review

__all__ = ["create_app", "run", "serve"]

_HTTP_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    413: ("RequestEntityTooLarge", "the request body is too large"),
}


_CREATE_TOKEN_REVIEWS = resource("create", "tokenreviews", api_group="authentication.k8s.io")
_GET_HEALTHZ = non_resource("get", "/healthz")
_GET_READYZ = non_resource("get", "/readyz")


def create_app(cluster: Cluster | None = None) -> Litestar:
    """The emulated kube-apiserver: discovery, JWKS, TokenRequest, TokenReview.

    Without a cluster (an ASGI server calling the factory) one is made in
    $KSA_DEVCLUSTER_STATE_DIR, or a new temporary directory.
    """
    if cluster is None:
        state_dir = os.environ.get("KSA_DEVCLUSTER_STATE_DIR") or tempfile.mkdtemp(
            prefix="ksa-devcluster-"
        )
        cluster = Cluster(Path(state_dir))
    emulator = cluster

    # system:public-info-viewer lets anyone, anonymous included, read these.
    @get("/healthz", media_type="text/plain")
    async def healthz(request: AnyRequest) -> str:
        authorize_request(emulator, request.headers.get("authorization"), _GET_HEALTHZ)
        return "ok"

    @get("/readyz", media_type="text/plain")
    async def readyz(request: AnyRequest) -> str:
        authorize_request(emulator, request.headers.get("authorization"), _GET_READYZ)
        return "ok"

    async def start() -> None:
        emulator.kubelet.start()

    async def stop() -> None:
        await emulator.kubelet.stop()

    return Litestar(
        route_handlers=[
            *key_routes(emulator),
            *_token_routes(emulator),
            *discovery_routes(emulator),
            *openapi_routes(emulator),
            healthz,
            readyz,
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: functools.partial(_http_error, emulator),
            Exception: internal_error,
        },
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        logging_config=None,
    )


def _token_routes(cluster: Cluster) -> list[HTTPRouteHandler]:
    """TokenRequest and TokenReview, for callers RBAC lets `create` them."""

    @post("/api/v1/namespaces/{namespace:str}/serviceaccounts/{name:str}/token")
    async def token_request(
        request: AnyRequest, namespace: FromPath[str], name: FromPath[str]
    ) -> Response[bytes]:
        cluster.counters["tokenrequest_requests"] += 1
        attributes = resource(
            "create", "serviceaccounts", subresource="token", namespace=namespace, name=name
        )
        authorize_request(cluster, request.headers.get("authorization"), attributes)
        body, warnings = await _decode(request, TOKEN_REQUEST)
        answer = cluster.tokens.token_request(namespace, name, body)
        return negotiated_response(request, answer, 201, **_warning(warnings))

    @post("/apis/authentication.k8s.io/v1/tokenreviews")
    async def token_review_route(request: AnyRequest) -> Response[bytes]:
        cluster.counters["tokenreview_requests"] += 1
        mode = cluster.faults.tokenreview
        if mode != "ok" and cluster.faults.delay_seconds:
            await asyncio.sleep(cluster.faults.delay_seconds)
        if mode == "outage":
            return unavailable()
        authorize_request(cluster, request.headers.get("authorization"), _CREATE_TOKEN_REVIEWS)
        body, warnings = await _decode(request, TOKEN_REVIEW)
        review = token_review(cluster.authenticator, body)
        return negotiated_response(request, review, 201, **_warning(warnings))

    return [token_request, token_review_route]


async def _decode(request: AnyRequest, kind: Kind) -> tuple[Any, list[str]]:
    """The body as kube-apiserver decodes it: protobuf when sent so (client-go's typed
    clients), else JSON with fieldValidation from the query."""
    if is_protobuf(request):
        return await read_protobuf(request, kind.name, kind.group_version), []
    return decode_body(await request.body(), kind, request.query_params.get("fieldValidation"))


def _warning(warnings: list[str]) -> dict[str, str]:
    # Unknown and repeated fields, under fieldValidation=Warn (the default).
    return {"warning": warning_header(warnings)} if warnings else {}


def _http_error(cluster: Cluster, request: AnyRequest, exc: HTTPException) -> Response[bytes]:
    """No route, or not this method: kube-apiserver authorizes the request before it looks
    for a handler, so only a caller RBAC lets through learns that (NewGenericServerResponse:
    `details: {}`)."""
    code = exc.status_code
    if code in (404, 405):
        attributes = request_attributes(request.method, request.url.path)
        try:
            authorize_request(cluster, request.headers.get("authorization"), attributes)
        except ApiError as denied:
            return _api_error(request, denied)
    reason, message = _HTTP_REASONS.get(code, ("BadRequest", "bad request"))
    return negotiated_response(request, status_body(code, reason, message, {}), code)


def _api_error(request: AnyRequest, exc: ApiError) -> Response[bytes]:
    if exc.code == 403:
        # responsewriters.Forbidden sets it on every authorization refusal.
        headers = {"x-content-type-options": "nosniff"}
        return negotiated_response(request, exc.body(), 403, **headers)
    return negotiated_response(request, exc.body(), exc.code)


# --- serving -------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to us: two servers share one loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _servers(cluster: Cluster) -> tuple[_Server, _Server]:
    """The API server (HTTPS, with the kubelet's lifespan) and the admin server (HTTP)."""
    common: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 2,
        "server_header": False,
    }
    api = _Server(
        uvicorn.Config(
            create_app(cluster),
            ssl_certfile=str(cluster.tls.cert_file),
            ssl_keyfile=str(cluster.tls.key_file),
            lifespan="on",
            **common,
        )
    )
    admin = _Server(uvicorn.Config(create_admin_app(cluster), lifespan="off", **common))
    return api, admin


async def serve(
    cluster: Cluster, port: int = 0, admin_port: int = 0, *, announce: Callable[[str], None] = print
) -> int:
    """Serve the API (HTTPS) and admin (HTTP) listeners until SIGINT/SIGTERM."""
    api_socket, admin_socket = _bind(port), _bind(admin_port)
    cluster.url = f"https://127.0.0.1:{api_socket.getsockname()[1]}"
    cluster.admin_url = f"http://127.0.0.1:{admin_socket.getsockname()[1]}"
    servers = _servers(cluster)

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, (api_socket, admin_socket), strict=True)
    ]
    written: list[Path] = []  # cluster.json and the kubeconfig, removed when we stop
    try:
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        else:
            announce(f"devcluster serving {cluster.url} (admin {cluster.admin_url})")
            written.append(kubeconfig.write(cluster))
            cluster_json = cluster.write_cluster_json()
            written.append(cluster_json)
            announce(f"devcluster state in {cluster_json}")
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
    failed = [t for t in tasks if not t.cancelled() and t.exception() is not None]
    return 1 if failed or not all(s.started for s in servers) else 0


def run(args: argparse.Namespace) -> int:
    """`ksa-auth devcluster`: serve until Ctrl-C or SIGTERM; exit 0 on a clean stop."""
    try:
        pods = [parse_pod_spec(p) for p in getattr(args, "pod", None) or []] or DEFAULT_PODS
        rbac = load_rbac_objects(Path(p) for p in getattr(args, "rbac", None) or [])
        cluster = Cluster(Path(args.state_dir), token_ttl=args.token_ttl, pods=pods, rbac=rbac)
    except (OSError, ValueError) as exc:
        print(f"devcluster: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(cluster, args.port, args.admin_port, announce=_announce))
    except OSError as exc:
        print(f"devcluster: cannot listen: {exc}", file=sys.stderr)
        return 2


def _announce(line: str) -> None:
    print(line, flush=True)
