"""Kubernetes' protobuf wire format for TokenRequest, TokenReview and Status, and its envelope."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Response

from devcluster.status import AnyRequest, bad_request, json_response

__all__ = [
    "MAGIC",
    "MEDIA_TYPE",
    "ProtobufError",
    "decode_object",
    "encodable",
    "encode_object",
    "is_protobuf",
    "length_delimited",
    "negotiated_response",
    "read_protobuf",
    "varint_field",
    "wants_protobuf",
]

# runtime/serializer/protobuf: the media type, and the 4 bytes before every runtime.Unknown.
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_INT64 = (1 << 64) - 1


class ProtobufError(ValueError):
    """A body that is not a well-formed protobuf object of a kind handled here."""


@dataclass(frozen=True)
class Field:
    """One field of a message: its JSON name, its protobuf number, and how it is written.

    kinds: string, int (int32/int64 varint), bool, time (metav1.Time), message (with
    `message`), string-map (map<string,string>), extra (map<string, ExtraValue>).
    """

    name: str
    number: int
    kind: str = "string"
    message: tuple[Field, ...] = ()
    repeated: bool = False


# The field numbers of k8s.io/api/authentication/v1 and k8s.io/apimachinery's meta/v1 and
# runtime generated.proto files.
_TYPE_META = (Field("apiVersion", 1), Field("kind", 2))
_UNKNOWN = (Field("typeMeta", 1, "message", _TYPE_META), Field("raw", 2, "bytes"))
_OBJECT_META = (
    Field("name", 1),
    Field("generateName", 2),
    Field("namespace", 3),
    Field("uid", 5),
    Field("resourceVersion", 6),
    Field("creationTimestamp", 8, "time"),
    Field("labels", 11, "string-map"),
    Field("annotations", 12, "string-map"),
)
_BOUND_OBJECT_REFERENCE = (
    Field("kind", 1),
    Field("apiVersion", 2),
    Field("name", 3),
    Field("uid", 4),
)
_TOKEN_REQUEST = (
    Field("metadata", 1, "message", _OBJECT_META),
    Field(
        "spec",
        2,
        "message",
        (
            Field("audiences", 1, repeated=True),
            Field("boundObjectRef", 3, "message", _BOUND_OBJECT_REFERENCE),
            Field("expirationSeconds", 4, "int"),
        ),
    ),
    Field(
        "status",
        3,
        "message",
        (Field("token", 1), Field("expirationTimestamp", 2, "time")),
    ),
)
_USER_INFO = (
    Field("username", 1),
    Field("uid", 2),
    Field("groups", 3, repeated=True),
    Field("extra", 4, "extra"),
)
_TOKEN_REVIEW = (
    Field("metadata", 1, "message", _OBJECT_META),
    Field("spec", 2, "message", (Field("token", 1), Field("audiences", 2, repeated=True))),
    Field(
        "status",
        3,
        "message",
        (
            Field("authenticated", 1, "bool"),
            Field("user", 2, "message", _USER_INFO),
            Field("error", 3),
            Field("audiences", 4, repeated=True),
        ),
    ),
)
_STATUS_DETAILS = (
    Field("name", 1),
    Field("group", 2),
    Field("kind", 3),
    Field(
        "causes",
        4,
        "message",
        (Field("reason", 1), Field("message", 2), Field("field", 3)),
        repeated=True,
    ),
    Field("retryAfterSeconds", 5, "int"),
    Field("uid", 6),
)
_STATUS = (
    Field("metadata", 1, "message", (Field("selfLink", 1), Field("resourceVersion", 2))),
    Field("status", 2),
    Field("message", 3),
    Field("reason", 4),
    Field("details", 5, "message", _STATUS_DETAILS),
    Field("code", 6, "int"),
)
_MESSAGES: dict[tuple[str, str], tuple[Field, ...]] = {
    ("authentication.k8s.io/v1", "TokenRequest"): _TOKEN_REQUEST,
    ("authentication.k8s.io/v1", "TokenReview"): _TOKEN_REVIEW,
    ("v1", "Status"): _STATUS,
}


def encodable(body: Any) -> bool:
    """Whether `body` (an object as JSON) is of a kind this module writes."""
    return isinstance(body, Mapping) and (body.get("apiVersion"), body.get("kind")) in _MESSAGES


def encode_object(body: Mapping[str, Any]) -> bytes:
    """An object (as JSON) in kube's protobuf envelope: MAGIC + runtime.Unknown{typeMeta, raw}."""
    type_meta = {"apiVersion": body["apiVersion"], "kind": body["kind"]}
    raw = _encode(_MESSAGES[(type_meta["apiVersion"], type_meta["kind"])], body)
    return MAGIC + _encode(_UNKNOWN, {"typeMeta": type_meta, "raw": raw})


def decode_object(data: bytes) -> dict[str, Any]:
    """An enveloped object as its JSON form, with the apiVersion and kind of its envelope."""
    if not data.startswith(MAGIC):
        raise ProtobufError("the body does not start with the protobuf envelope's magic number")
    unknown = _decode(_UNKNOWN, data[len(MAGIC) :])
    type_meta = unknown.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    message = _MESSAGES.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"no protobuf decoding for {kind or 'an object'} {api_version}")
    return {"kind": kind, "apiVersion": api_version, **_decode(message, unknown.get("raw", b""))}


def is_protobuf(request: AnyRequest) -> bool:
    """Whether the request body is sent as protobuf (its Content-Type)."""
    content_type = request.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


async def read_protobuf(request: AnyRequest, kind: str, group_version: str) -> dict[str, Any]:
    """The protobuf body as its JSON form, once its envelope names `kind` in `group_version`.

    Protobuf has no field names to check: kube-apiserver's strict field validation does not
    apply to it, and unknown fields are dropped.
    """
    try:
        body = decode_object(await request.body())
    except ProtobufError as exc:
        raise bad_request(f"the body of the request is not valid protobuf: {exc}") from None
    if (body["kind"], body["apiVersion"]) != (kind, group_version):
        raise bad_request(f"the body of the request is not a {kind} object")
    return body


def wants_protobuf(accept: str | None) -> bool:
    """Whether the client's Accept ranks protobuf above JSON (client-go's typed clients send
    `application/vnd.kubernetes.protobuf, application/json`)."""
    best: tuple[float, int, bool] | None = None
    for index, clause in enumerate((accept or "").split(",")):
        media_type, *parameters = (part.strip() for part in clause.split(";"))
        media_type = media_type.lower()
        if media_type not in (MEDIA_TYPE, "application/json", "application/*", "*/*"):
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        candidate = (quality, -index, media_type == MEDIA_TYPE)
        if quality > 0 and (best is None or candidate[:2] > best[:2]):
            best = candidate
    return best is not None and best[2]


def negotiated_response(
    request: AnyRequest, body: Any, status_code: int, **headers: str
) -> Response[bytes]:
    """`body` in protobuf when the client prefers it and its kind has a protobuf form; else JSON."""
    if encodable(body) and wants_protobuf(request.headers.get("accept")):
        return Response(
            content=encode_object(body),
            status_code=status_code,
            media_type=MEDIA_TYPE,
            headers=headers or None,
        )
    return json_response(body, status_code, **headers)


# --- encoding -------------------------------------------------------------------------------


def _encode(message: tuple[Field, ...], body: Mapping[str, Any]) -> bytes:
    out = bytearray()
    for field in sorted(message, key=lambda f: f.number):
        value = body.get(field.name)
        if value is None:
            continue
        for item in value if field.repeated else [value]:
            out += _encode_field(field, item)
    return bytes(out)


def _encode_field(field: Field, value: Any) -> bytes:
    if field.kind == "int":
        return _key(field.number, _VARINT) + _varint(int(value) & _INT64)
    if field.kind == "bool":
        return _key(field.number, _VARINT) + _varint(1 if value else 0)
    if field.kind in ("string-map", "extra"):
        return b"".join(_map_entry(field, key, item) for key, item in sorted(value.items()))
    if field.kind == "message":
        payload = _encode(field.message, value)
    elif field.kind == "time":
        payload = _encode_time(value)
    elif field.kind == "bytes":
        payload = bytes(value)
    else:
        payload = str(value).encode()
    return _key(field.number, _BYTES) + _varint(len(payload)) + payload


def _map_entry(field: Field, key: str, value: Any) -> bytes:
    # A map field is a repeated message {key = 1; value = 2}; ExtraValue is {repeated items = 1}.
    entry = _encode_field(Field("key", 1), key)
    if field.kind == "extra":
        entry += _encode_field(
            Field("value", 2, "message", (Field("items", 1, repeated=True),)), {"items": value}
        )
    else:
        entry += _encode_field(Field("value", 2), value)
    return _key(field.number, _BYTES) + _varint(len(entry)) + entry


def _encode_time(value: str) -> bytes:
    # metav1.Time on the wire: {int64 seconds = 1; int32 nanos = 2}.
    parsed = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return _encode_field(Field("seconds", 1, "int"), int(parsed.timestamp()))


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` holding `payload` (a string, bytes or an embedded message)."""
    return _key(number, _BYTES) + _varint(len(payload)) + payload


def varint_field(number: int, value: int) -> bytes:
    """Field `number` holding an integer or a bool."""
    return _key(number, _VARINT) + _varint(value & _INT64)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --- decoding -------------------------------------------------------------------------------


def _decode(message: tuple[Field, ...], data: bytes) -> dict[str, Any]:
    """The JSON form of `message` in `data`; fields not listed are skipped, as proto2 does."""
    by_number = {field.number: field for field in message}
    body: dict[str, Any] = {}
    for number, wire_type, value in _wire_fields(data):
        field = by_number.get(number)
        if field is None:
            continue
        decoded = _decode_field(field, wire_type, value)
        if field.kind in ("string-map", "extra"):
            key, item = decoded
            body.setdefault(field.name, {})[key] = item
        elif field.repeated:
            body.setdefault(field.name, []).append(decoded)
        else:
            body[field.name] = decoded
    return body


def _decode_field(field: Field, wire_type: int, value: int | bytes) -> Any:
    expected = _VARINT if field.kind in ("int", "bool") else _BYTES
    if wire_type != expected:
        raise ProtobufError(f"field {field.name} has wire type {wire_type}")
    if isinstance(value, int):
        if field.kind == "bool":
            return value != 0
        return value - (1 << 64) if value >> 63 else value
    if field.kind == "message":
        return _decode(field.message, value)
    if field.kind == "time":
        seconds = _decode((Field("seconds", 1, "int"),), value).get("seconds", 0)
        try:
            moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise ProtobufError(f"field {field.name} is out of range") from None
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if field.kind in ("string-map", "extra"):
        items = (Field("items", 1, repeated=True),)
        inner = Field("value", 2, "message", items) if field.kind == "extra" else Field("value", 2)
        entry = _decode((Field("key", 1), inner), value)
        item = (
            entry.get("value", {}).get("items", [])
            if field.kind == "extra"
            else entry.get("value", "")
        )
        return entry.get("key", ""), item
    if field.kind == "bytes":
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError(f"field {field.name} is not UTF-8") from None


def _wire_fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Each (field number, wire type, value) in order; fixed-width values are skipped."""
    fields: list[tuple[int, int, int | bytes]] = []
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire_type == _VARINT:
            value, position = _read_varint(data, position)
            fields.append((number, wire_type, value))
        elif wire_type == _BYTES:
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise ProtobufError("a length-delimited field runs past the end of the body")
            fields.append((number, wire_type, data[position : position + length]))
            position += length
        elif wire_type in (_FIXED64, _FIXED32):
            position += 8 if wire_type == _FIXED64 else 4
            if position > len(data):
                raise ProtobufError("a fixed-width field runs past the end of the body")
        else:
            raise ProtobufError(f"unsupported wire type {wire_type}")
    return fields


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ProtobufError("a truncated or overlong varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & _INT64, position
        shift += 7
