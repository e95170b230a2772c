"""`ksa-auth devcluster`: the local cluster emulator served over HTTPS, plus its admin API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from entrypoints.cluster_emulator import (
    CACHE_CONTROL,
    DEFAULT_PODS,
    ApiError,
    Cluster,
    parse_pod_spec,
    status_body,
)

__all__ = ["create_admin_app", "create_app", "run"]

logger = logging.getLogger("ksa_auth.devcluster")

JSON = "application/json"
# pkg/routes/openidmetadata.go mimeJWKS (RFC 7517 §8.5.1).
JWKS_MEDIA_TYPE = "application/jwk-set+json"
# Request bodies here are a TokenRequest or a TokenReview (a token is ~1 KiB).
MAX_BODY_BYTES = 1024 * 1024
OVERSIZED_BYTES = 2 * 1024 * 1024
UNAUTHORIZED = status_body(401, "Unauthorized", "Unauthorized")

AnyRequest = Request[Any, Any, Any]


def _json(
    body: Any, status_code: int = 200, media_type: str = JSON, **headers: str
) -> Response[bytes]:
    return Response(
        content=json.dumps(body, separators=(",", ":")).encode(),
        status_code=status_code,
        media_type=media_type,
        headers=headers or None,
    )


def _status(error: ApiError) -> Response[bytes]:
    return _json(error.body(), error.code)


async def _read_json(request: AnyRequest, *, empty_ok: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip() and empty_ok:
        return {}
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ApiError(400, "BadRequest", "the body of the request is not valid JSON") from None


_HTTP_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    413: ("RequestEntityTooLarge", "the request body is too large"),
}


def _http_error(_: AnyRequest, exc: HTTPException) -> Response[bytes]:
    reason, message = _HTTP_REASONS.get(exc.status_code, ("BadRequest", "bad request"))
    return _json(status_body(exc.status_code, reason, message), exc.status_code)


def _api_error(_: AnyRequest, exc: ApiError) -> Response[bytes]:
    return _status(exc)


def _internal_error(_: AnyRequest, exc: Exception) -> Response[bytes]:
    # Never the exception text: it could carry request data.
    logger.error("devcluster handler failed: %s", type(exc).__name__)
    message = "an error on the server has prevented the request from succeeding"
    return _json(status_body(500, "InternalError", message), 500)


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

    async def keys_endpoint(request: AnyRequest, which: str) -> Response[bytes]:
        emulator.counters[f"{which}_requests"] += 1
        faults = emulator.faults
        if faults.keys != "ok" and which in faults.endpoints:
            if faults.delay_seconds:
                await asyncio.sleep(faults.delay_seconds)
            faulty = _faulty_answer(emulator, faults.keys, request.url.path)
            if faulty is not None:
                return faulty
        # Default RBAC lets only service accounts read these (system:service-account-issuer-
        # discovery is bound to system:serviceaccounts): a valid SA token for the API audience.
        if not emulator.authenticate_header(request.headers.get("authorization")).authenticated:
            emulator.counters["unauthorized_requests"] += 1
            return _json(UNAUTHORIZED, 401)
        # pkg/routes/openidmetadata.go: application/json for discovery, jwk-set+json for keys.
        if which == "discovery":
            return _json(emulator.discovery(), 200, JSON, **{"cache-control": CACHE_CONTROL})
        body = emulator.keyset.jwks()
        return _json(body, 200, JWKS_MEDIA_TYPE, **{"cache-control": CACHE_CONTROL})

    @get("/.well-known/openid-configuration")
    async def discovery(request: AnyRequest) -> Response[bytes]:
        return await keys_endpoint(request, "discovery")

    @get("/openid/v1/jwks")
    async def jwks(request: AnyRequest) -> Response[bytes]:
        return await keys_endpoint(request, "jwks")

    def require_caller(request: AnyRequest) -> None:
        if not emulator.authenticate_header(request.headers.get("authorization")).authenticated:
            emulator.counters["unauthorized_requests"] += 1
            raise ApiError(401, "Unauthorized", "Unauthorized")

    @post("/api/v1/namespaces/{namespace:str}/serviceaccounts/{name:str}/token")
    async def token_request(
        request: AnyRequest, namespace: FromPath[str], name: FromPath[str]
    ) -> Response[bytes]:
        emulator.counters["tokenrequest_requests"] += 1
        require_caller(request)
        body = await _read_json(request, empty_ok=True)
        return _json(emulator.token_request(namespace, name, body), 201)

    @post("/apis/authentication.k8s.io/v1/tokenreviews")
    async def token_review(request: AnyRequest) -> Response[bytes]:
        emulator.counters["tokenreview_requests"] += 1
        mode = emulator.faults.tokenreview
        if mode != "ok" and emulator.faults.delay_seconds:
            await asyncio.sleep(emulator.faults.delay_seconds)
        if mode == "outage":
            return _unavailable()
        # TokenReview needs an authenticated caller (and RBAC `create tokenreviews`, which
        # every service account has here).
        require_caller(request)
        return _json(emulator.token_review(await _read_json(request)), 201)

    @get("/healthz", media_type="text/plain")
    async def healthz() -> str:
        return "ok"

    @get("/readyz", media_type="text/plain")
    async def readyz() -> str:
        return "ok"

    async def start() -> None:
        emulator.start_kubelet()

    async def stop() -> None:
        await emulator.stop_kubelet()

    return Litestar(
        route_handlers=[discovery, jwks, token_request, token_review, healthz, readyz],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        logging_config=None,
    )


def _unavailable() -> Response[bytes]:
    message = "the server is currently unable to handle the request"
    return _json(status_body(503, "ServiceUnavailable", message), 503)


def _faulty_answer(cluster: Cluster, mode: str, path: str) -> Response[bytes] | None:
    """What discovery and JWKS answer under a keys fault (None: answer normally)."""
    if mode == "outage":
        return _unavailable()
    if mode == "garbage":
        return Response(
            content=b"<html><body>upstream connect error or disconnect/reset</body></html>",
            status_code=200,
            media_type=JSON,
        )
    if mode == "oversized":
        # Valid JSON and a valid JWKS, only far too big: only a size cap rejects it.
        body = cluster.keyset.jwks() | {"padding": "x" * OVERSIZED_BYTES}
        return _json(body)
    if mode == "malformed":
        return _json({"keys": "not-a-key-set", "jwks_uri": 42, "issuer": None})
    if mode == "redirect":
        # Another origin: a client that follows it hands its bearer token to a stranger,
        # which the admin listener counts (redirect_target_authorization).
        target = f"{cluster.admin_url}/redirect-target{path}"
        return Response(content=b"", status_code=302, headers={"location": target})
    return None  # "slow": answer normally, after the delay


def create_admin_app(cluster: Cluster) -> Litestar:
    """The admin API for tests and demos (plain HTTP, loopback only, Bearer admin token)."""

    def check(request: AnyRequest) -> None:
        expected = f"Bearer {cluster.admin_token}".encode()
        given = (request.headers.get("authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            raise ApiError(
                401, "Unauthorized", "admin calls need Authorization: Bearer <admin_token>"
            )

    async def body_of(request: AnyRequest) -> dict[str, Any]:
        check(request)
        body = await _read_json(request, empty_ok=True)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        return body

    @post("/admin/signing-keys/rotate", status_code=200)
    async def rotate_key(request: AnyRequest) -> dict[str, Any]:
        return cluster.rotate_signing_key(await body_of(request))

    @post("/admin/signing-keys/retire", status_code=200)
    async def retire_key(request: AnyRequest) -> dict[str, Any]:
        return cluster.retire_signing_key(await body_of(request))

    @post("/admin/pods/{namespace:str}/{name:str}/delete", status_code=200)
    async def delete_pod(
        request: AnyRequest, namespace: FromPath[str], name: FromPath[str]
    ) -> dict[str, Any]:
        check(request)
        pod = cluster.delete_pod(namespace, name)
        return {"deleted": f"{pod.namespace}/{pod.name}", "uid": pod.uid}

    @post("/admin/tokens/rotate", status_code=200)
    async def rotate_tokens(request: AnyRequest) -> dict[str, Any]:
        check(request)
        return {"rewritten": cluster.refresh_tokens(force=True)}

    @post("/admin/tokens/mint", status_code=200)
    async def mint(request: AnyRequest) -> dict[str, Any]:
        return cluster.mint(await body_of(request))

    @post("/admin/faults", status_code=200)
    async def faults(request: AnyRequest) -> dict[str, Any]:
        return cluster.set_faults(await body_of(request))

    @get("/admin/state")
    async def state(request: AnyRequest) -> dict[str, Any]:
        check(request)
        return cluster.state()

    @get("/redirect-target/{path:path}")
    async def redirect_target(request: AnyRequest, path: FromPath[str]) -> dict[str, Any]:
        cluster.counters["redirect_target_requests"] += 1
        if request.headers.get("authorization"):
            cluster.counters["redirect_target_authorization"] += 1
        return {"keys": []}

    def admin_error(_: AnyRequest, exc: ApiError) -> Response[bytes]:
        return _json({"error": exc.reason, "message": exc.message, "code": exc.code}, exc.code)

    def http_error(_: AnyRequest, exc: HTTPException) -> Response[bytes]:
        return _json(
            {"error": "http", "message": str(exc.detail), "code": exc.status_code}, exc.status_code
        )

    return Litestar(
        route_handlers=[
            rotate_key,
            retire_key,
            delete_pod,
            rotate_tokens,
            mint,
            faults,
            state,
            redirect_target,
        ],
        exception_handlers={
            ApiError: admin_error,
            HTTPException: http_error,
            Exception: _internal_error,
        },
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        logging_config=None,
    )


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


async def serve(
    cluster: Cluster, port: int = 0, admin_port: int = 0, *, announce: Callable[[str], None] = print
) -> int:
    """Serve the API (HTTPS) and admin (HTTP) listeners until SIGINT/SIGTERM."""
    api_socket, admin_socket = _bind(port), _bind(admin_port)
    cluster.url = f"https://127.0.0.1:{api_socket.getsockname()[1]}"
    cluster.admin_url = f"http://127.0.0.1:{admin_socket.getsockname()[1]}"
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
    servers = (api, admin)

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [
        asyncio.create_task(api.serve(sockets=[api_socket])),
        asyncio.create_task(admin.serve(sockets=[admin_socket])),
    ]
    cluster_json: Path | None = None
    try:
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        else:
            announce(f"devcluster serving {cluster.url} (admin {cluster.admin_url})")
            cluster_json = cluster.write_cluster_json()
            announce(f"devcluster state in {cluster_json}")
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if cluster_json is not None:
            with contextlib.suppress(OSError):
                cluster_json.unlink()
    failed = [t for t in tasks if not t.cancelled() and t.exception() is not None]
    return 1 if failed or not all(s.started for s in servers) else 0


def run(args: argparse.Namespace) -> int:
    """`ksa-auth devcluster`: serve until Ctrl-C or SIGTERM; exit 0 on a clean stop."""
    try:
        pods = [parse_pod_spec(p) for p in getattr(args, "pod", None) or []] or DEFAULT_PODS
        cluster = Cluster(Path(args.state_dir), token_ttl=args.token_ttl, pods=pods)
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
