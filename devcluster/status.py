"""kube-apiserver's error answers (metav1.Status) and the JSON plumbing both apps share."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response

__all__ = [
    "JSON",
    "MAX_BODY_BYTES",
    "AnyRequest",
    "ApiError",
    "bad_request",
    "internal_error",
    "json_response",
    "not_found",
    "read_json",
    "status_body",
    "unavailable",
]

logger = logging.getLogger("ksa_auth.devcluster")

JSON = "application/json"
# Request bodies here are a TokenRequest or a TokenReview (a token is ~1 KiB).
MAX_BODY_BYTES = 1024 * 1024

AnyRequest = Request[Any, Any, Any]


class ApiError(Exception):
    """A kube-apiserver error answer: HTTP code, Status reason and message."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A metav1.Status failure, members in Go's field order."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = dict(details)
    body["code"] = code
    return body


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def json_response(
    body: Any, status_code: int = 200, media_type: str = JSON, **headers: str
) -> Response[bytes]:
    """`body` as compact JSON (as Go's encoding/json writes it)."""
    return Response(
        content=json.dumps(body, separators=(",", ":")).encode(),
        status_code=status_code,
        media_type=media_type,
        headers=headers or None,
    )


def unavailable() -> Response[bytes]:
    message = "the server is currently unable to handle the request"
    return json_response(status_body(503, "ServiceUnavailable", message), 503)


async def read_json(request: AnyRequest, *, empty_ok: bool = False) -> Any:
    """The request body as JSON (an empty body is `{}` if `empty_ok`); 400 otherwise."""
    raw = await request.body()
    if not raw.strip() and empty_ok:
        return {}
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise bad_request("the body of the request is not valid JSON") from None


def internal_error(_: AnyRequest, exc: Exception) -> Response[bytes]:
    # Never the exception text: it could carry request data.
    logger.error("devcluster handler failed: %s", type(exc).__name__)
    message = "an error on the server has prevented the request from succeeding"
    return json_response(status_body(500, "InternalError", message), 500)
