"""GET /openapi/v2: kube's schemas of TokenReview and TokenRequest, for kubectl's validation."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from devcluster.access import authorize_request
from devcluster.cluster import Cluster
from devcluster.protobuf import length_delimited, varint_field
from devcluster.rbac import non_resource
from devcluster.status import AnyRequest, ApiError, json_response

__all__ = [
    "DEFINITIONS_FILE",
    "PROTOBUF_CONTENT_TYPE",
    "PROTOBUF_MEDIA_TYPE",
    "ROOTS",
    "SCHEMA_VERSION",
    "definitions",
    "extract_definitions",
    "openapi_routes",
    "swagger_document",
    "swagger_protobuf",
]

# What kubectl asks for (k8s.io/client-go/discovery OpenAPISchema): gnostic's OpenAPIv2 message.
PROTOBUF_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
# kube-openapi's handler answers it with `.` for `@`, which Go's mime parser would refuse.
PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
# The schemas come from kubernetes-validate's copy of kube's OpenAPI definitions, for the
# minor the emulator reports in /version; only the kinds the emulator takes as bodies.
SCHEMA_VERSION = "1.32.0"
ROOTS = ("io.k8s.api.authentication.v1.TokenReview", "io.k8s.api.authentication.v1.TokenRequest")
_REF_PREFIX = "$defs/"


# The extract below, kept in the package so that `make run` does without kubernetes-validate
# (over 100 MB); a test checks it against kubernetes-validate's copy, `python -m
# devcluster.openapi` writes it again.
DEFINITIONS_FILE = Path(__file__).with_name("openapi_definitions.json")


@functools.cache
def definitions() -> dict[str, Any]:
    """The swagger `definitions` of ROOTS and every definition they reference."""
    loaded: dict[str, Any] = json.loads(DEFINITIONS_FILE.read_text(encoding="utf-8"))
    return loaded


def extract_definitions() -> dict[str, Any]:
    """ROOTS and what they reference, from kubernetes-validate's copy of kube's definitions."""
    from kubernetes_validate.utils import schema_contents  # type: ignore[import-untyped]

    published = schema_contents(
        f"kubernetes-json-schema/v{SCHEMA_VERSION}-local/_definitions.json", SCHEMA_VERSION
    )["$defs"]
    found: dict[str, Any] = {}
    pending = list(ROOTS)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = _swagger(published[name])
        pending.extend(_references(published[name]))
    return dict(sorted(found.items()))


def _references(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield value.split(_REF_PREFIX, 1)[1]
            else:
                yield from _references(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _references(item)


def _swagger(schema: Any) -> Any:
    """A JSON-schema definition as swagger 2.0 writes it: `#/definitions/` references, and a
    single type (kubernetes-validate adds "null" to each)."""
    if isinstance(schema, list):
        return [_swagger(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            converted[key] = "#/definitions/" + value.split(_REF_PREFIX, 1)[1]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            converted[key] = types[0] if len(types) == 1 else types
        elif key in ("properties", "patternProperties"):
            converted[key] = {name: _swagger(item) for name, item in value.items()}
        else:
            converted[key] = _swagger(value)
    return converted


def swagger_document() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{SCHEMA_VERSION}"},
        "paths": {},
        "definitions": definitions(),
    }


@functools.cache
def swagger_protobuf() -> bytes:
    """The document as gnostic's openapi_v2.Document (field numbers of OpenAPIv2.proto)."""
    info = length_delimited(1, b"Kubernetes") + length_delimited(2, f"v{SCHEMA_VERSION}".encode())
    named = b"".join(
        length_delimited(1, length_delimited(1, name.encode()) + length_delimited(2, _schema(s)))
        for name, s in definitions().items()
    )
    return (
        length_delimited(1, b"2.0")
        + length_delimited(2, info)
        + length_delimited(8, b"")
        + length_delimited(9, named)
    )


def _schema(schema: Mapping[str, Any]) -> bytes:
    """One openapi_v2.Schema: the members kube's definitions of these kinds use."""
    out = bytearray()
    for number, member in ((1, "$ref"), (2, "format"), (4, "description")):
        if isinstance(schema.get(member), str):
            out += length_delimited(number, schema[member].encode())
    for required in schema.get("required", []):
        out += length_delimited(19, required.encode())
    for value in schema.get("enum", []):
        out += length_delimited(20, _any(value))
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        out += length_delimited(21, length_delimited(1, _schema(additional)))
    elif isinstance(additional, bool):
        out += length_delimited(21, varint_field(2, int(additional)))
    types = schema.get("type", [])
    for_type = b"".join(
        length_delimited(1, t.encode()) for t in ([types] if isinstance(types, str) else types)
    )
    if for_type:
        out += length_delimited(22, for_type)
    if isinstance(schema.get("items"), Mapping):
        out += length_delimited(23, length_delimited(1, _schema(schema["items"])))
    for part in schema.get("allOf", []):
        out += length_delimited(24, _schema(part))
    properties = b"".join(
        length_delimited(1, length_delimited(1, name.encode()) + length_delimited(2, _schema(s)))
        for name, s in schema.get("properties", {}).items()
    )
    if properties:
        out += length_delimited(25, properties)
    for name, value in schema.items():
        if name.startswith("x-"):
            out += length_delimited(
                31, length_delimited(1, name.encode()) + length_delimited(2, _any(value))
            )
    return bytes(out)


def _any(value: Any) -> bytes:
    # openapi_v2.Any{yaml = 2}: JSON is YAML, which is how kube-openapi reads extensions.
    return length_delimited(2, json.dumps(value).encode())


def openapi_routes(cluster: Cluster) -> list[HTTPRouteHandler]:
    """GET /openapi/v2 in protobuf (what kubectl asks for) or JSON, for authenticated users."""

    @get("/openapi/v2")
    async def openapi_v2(request: AnyRequest) -> Response[bytes]:
        authorize_request(
            cluster, request.headers.get("authorization"), non_resource("get", "/openapi/v2")
        )
        try:
            document = swagger_protobuf()
        except ImportError:
            raise ApiError(
                404, "NotFound", "the server could not find the requested resource"
            ) from None
        if PROTOBUF_MEDIA_TYPE in (request.headers.get("accept") or ""):
            return Response(content=document, media_type=PROTOBUF_CONTENT_TYPE)
        return json_response(swagger_document())

    return [openapi_v2]


if __name__ == "__main__":
    DEFINITIONS_FILE.write_text(
        json.dumps(extract_definitions(), indent=1) + "\n", encoding="utf-8"
    )
