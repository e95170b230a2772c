"""Request bodies decoded as kube-apiserver does: Go's JSON errors, kind, apiVersion, fields."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devcluster.gojson import go_quote
from devcluster.status import bad_request

__all__ = [
    "TOKEN_REQUEST",
    "TOKEN_REVIEW",
    "Kind",
    "decode_body",
    "go_syntax_error",
    "warning_header",
]

# k8s.io/apimachinery serializer/json meta.go Interpret: the envelope read first, into this.
_ENVELOPE = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)
_SCHEME = "pkg/api/legacyscheme/scheme.go:30"
# Kinds registered per group version, as far as a body sent here could name them: a known
# kind of another version is "the API version in the data does not match", any other kind
# "is not registered".
_REGISTERED = {
    "v1": {"Pod", "ServiceAccount", "Secret", "Node", "Namespace", "ConfigMap", "Service"},
    "authentication.k8s.io/v1": {"TokenReview", "TokenRequest", "SelfSubjectReview"},
    "authentication.k8s.io/v1beta1": {"TokenReview", "SelfSubjectReview"},
    "authorization.k8s.io/v1": {"SubjectAccessReview", "SelfSubjectAccessReview"},
}

# A Go type for the field checks: a scalar's Go name, a slice `[]T`, or a struct (Go name,
# fields). "any" takes every JSON value (fields whose contents nothing here reads).
GoType = str | tuple[str, Mapping[str, Any]]

_STRING_MAP = "map[string]string"
_OBJECT_META: GoType = (
    "ObjectMeta",
    {
        "name": "string",
        "generateName": "string",
        "namespace": "string",
        "selfLink": "string",
        "uid": "types.UID",
        "resourceVersion": "string",
        "generation": "int64",
        "creationTimestamp": "any",
        "deletionTimestamp": "any",
        "deletionGracePeriodSeconds": "int64",
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "ownerReferences": "any",
        "finalizers": "[]string",
        "managedFields": "any",
    },
)


@dataclass(frozen=True)
class Kind:
    """A kind a route accepts, with the Go types of its versioned struct."""

    name: str
    group_version: str
    fields: Mapping[str, GoType]


TOKEN_REVIEW = Kind(
    "TokenReview",
    "authentication.k8s.io/v1",
    {
        "spec": ("TokenReviewSpec", {"token": "string", "audiences": "[]string"}),
        "status": (
            "TokenReviewStatus",
            {
                "authenticated": "bool",
                "user": (
                    "UserInfo",
                    {
                        "username": "string",
                        "uid": "string",
                        "groups": "[]string",
                        "extra": "any",
                    },
                ),
                "audiences": "[]string",
                "error": "string",
            },
        ),
    },
)
TOKEN_REQUEST = Kind(
    "TokenRequest",
    "authentication.k8s.io/v1",
    {
        "spec": (
            "TokenRequestSpec",
            {
                "audiences": "[]string",
                "expirationSeconds": "int64",
                "boundObjectRef": (
                    "BoundObjectReference",
                    {
                        "kind": "string",
                        "apiVersion": "string",
                        "name": "string",
                        "uid": "types.UID",
                    },
                ),
            },
        ),
        "status": ("TokenRequestStatus", {"token": "string", "expirationTimestamp": "any"}),
    },
)


def decode_body(raw: bytes, kind: Kind, field_validation: str | None) -> tuple[Any, list[str]]:
    """The body as `kind`, and the warnings kube-apiserver would send (unknown or repeated
    fields, under the default fieldValidation=Warn); 400 with kube's words otherwise."""
    syntax = go_syntax_error(raw)
    if syntax is not None:
        raise _unrecognized(kind, f"json parse error: {syntax}", raw)
    # Go reads invalid UTF-8 in strings as U+FFFD; floats keep their literal for messages.
    text = raw.decode("utf-8", errors="replace")
    body = json.loads(text, object_pairs_hook=_Pairs, parse_float=_Float)
    if body is None:
        return {}, []
    if not isinstance(body, _Pairs):
        message = f"json: cannot unmarshal {_json_kind(body)} into Go value of type {_ENVELOPE}"
        raise _unrecognized(kind, f"json parse error: {message}", raw)
    envelope = dict(body)
    for member in ("apiVersion", "kind"):
        value = envelope.get(member)
        if value is not None and not isinstance(value, str):
            message = (
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f".{member} of type string"
            )
            raise _unrecognized(kind, f"json parse error: {message}", raw)
    _check_kind(kind, str(envelope.get("apiVersion") or ""), str(envelope.get("kind") or ""))
    problems: list[str] = []
    fields: Mapping[str, GoType] = {"apiVersion": "string", "kind": "string"}
    fields = {**fields, "metadata": _OBJECT_META, **kind.fields}
    decoded = _walk(body, (kind.name, fields), "", kind, problems)
    mode = {"Strict": "strict", "Ignore": "ignore"}.get(field_validation or "", "warn")
    if mode == "strict" and problems:
        cannot = f'{kind.name} in version "{_version(kind)}" cannot be handled as a {kind.name}'
        raise bad_request(f"{cannot}: strict decoding error: {', '.join(problems)}")
    return decoded, problems if mode == "warn" else []


def warning_header(messages: list[str]) -> str:
    """RFC 7234 Warning values as kube-apiserver writes them: `299 - "text"`, comma-joined."""
    return ", ".join(f"299 - {go_quote(message)}" for message in messages)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's members in order, repeats kept (Go sees them; json.loads would not)."""


class _Float(float):
    """A JSON number with a fraction or exponent, and its literal as written."""

    literal: str

    def __new__(cls, literal: str) -> _Float:
        number = super().__new__(cls, literal)
        number.literal = literal
        return number


def _version(kind: Kind) -> str:
    return kind.group_version.rpartition("/")[2]


def _unrecognized(kind: Kind, error: str, raw: bytes) -> Exception:
    # handlers/rest.go transformDecodeError without a kind, with summarizeData(body, 30).
    text = raw.decode("utf-8", errors="replace")
    summary = "<empty>" if not raw else text[:30] + " ..." if len(raw) > 30 else text
    return bad_request(
        f"the object provided is unrecognized (must be of type {kind.name}): "
        f"couldn't get version/kind; {error} ({summary})"
    )


def _check_kind(kind: Kind, api_version: str, name: str) -> None:
    """Missing parts default to the route's; another version's kind is refused (create.go
    AcceptsGroupVersion), an unregistered kind is the scheme's error."""
    group_version = api_version or kind.group_version
    name = name or kind.name
    version = group_version.rpartition("/")[2]
    if name not in _REGISTERED.get(group_version, set()):
        raise bad_request(
            f'{name} in version "{version}" cannot be handled as a {kind.name}: no kind '
            f'"{name}" is registered for version "{group_version}" in scheme "{_SCHEME}"'
        )
    if group_version != kind.group_version:
        raise bad_request(
            f"the API version in the data ({group_version}) does not match the expected API "
            f"version ({kind.group_version})"
        )
    if name != kind.name:
        # kube-apiserver would decode the other kind and fail on it later (or panic); here
        # it is the same 400 an unregistered kind gets.
        raise bad_request(
            f'{name} in version "{version}" cannot be handled as a {kind.name}: the body of '
            f"the request is not a {kind.name} object"
        )


def _walk(
    value: Any, go_type: GoType, path: str, kind: Kind, problems: list[str], parent: str = ""
) -> Any:
    """The value as Go's decoder reads it into `go_type`: members matched case-sensitively
    (sigs.k8s.io/json), unknown and repeated ones noted, a type that does not fit a 400."""
    if go_type == "any":
        return _plain(value)
    if isinstance(go_type, tuple):
        struct, fields = go_type
        if value is None:
            return None
        if not isinstance(value, _Pairs):
            _mismatch(value, f"v1.{struct}", path, kind, parent)
        out: dict[str, Any] = {}
        for name, member in value:
            where = f"{path}.{name}" if path else name
            if name not in fields:
                problems.append(f"unknown field {go_quote(where)}")
                continue
            decoded = _walk(member, fields[name], where, kind, problems, struct)
            if name in out:
                problems.append(f"duplicate field {go_quote(where)}")
                if isinstance(out[name], dict) and isinstance(decoded, dict):
                    # Go decodes a repeated struct member into the same struct: a merge.
                    decoded = {**out[name], **decoded}
            out[name] = decoded
        return out
    return _scalar(value, go_type, path, kind, parent)


def _scalar(value: Any, go_type: str, path: str, kind: Kind, parent: str) -> Any:
    if value is None:
        return None
    if go_type == "[]string":
        if not isinstance(value, list):
            _mismatch(value, go_type, path, kind, parent)
        for item in value:
            if not isinstance(item, str) and item is not None:
                _mismatch(item, "string", path, kind, parent)
        return [item or "" for item in value]
    if go_type == _STRING_MAP:
        if not isinstance(value, _Pairs):
            _mismatch(value, go_type, path, kind, parent)
        for _, item in value:
            if not isinstance(item, str) and item is not None:
                _mismatch(item, "string", path, kind, parent)
        return dict(value)
    fits = {
        "string": isinstance(value, str),
        "types.UID": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int64": isinstance(value, int)
        and not isinstance(value, bool)
        and -(2**63) <= value < 2**63,
    }[go_type]
    if not fits:
        _mismatch(value, go_type, path, kind, parent)
    return value


def _mismatch(value: Any, go_type: str, path: str, kind: Kind, struct: str) -> None:
    # json.UnmarshalTypeError inside transformDecodeError, with the kind known: a number
    # that does not fit an integer is named with its literal.
    what = _json_kind(value)
    if go_type == "int64" and isinstance(value, int | float) and not isinstance(value, bool):
        what = f"number {value.literal if isinstance(value, _Float) else value}"
    raise bad_request(
        f'{kind.name} in version "{_version(kind)}" cannot be handled as a {kind.name}: json: '
        f"cannot unmarshal {what} into Go struct field {struct or kind.name}.{path} of type "
        f"{go_type}"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, _Pairs):
        return {name: _plain(member) for name, member in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# --- encoding/json's scanner: the first syntax error, in its words -------------------------


class _SyntaxError(Exception):
    pass


def go_syntax_error(raw: bytes) -> str | None:
    """What Go's json.Unmarshal says about `raw`'s syntax (scanner.go), or None if valid."""
    try:
        end = _value(raw, _space(raw, 0))
        end = _space(raw, end)
        if end < len(raw):
            raise _SyntaxError(f"invalid character {_quote_char(raw[end])} after top-level value")
    except _SyntaxError as exc:
        return str(exc)
    return None


def _quote_char(byte: int) -> str:
    if byte == ord("'"):
        return "'\\''"
    if byte == ord('"'):
        return "'\"'"
    return "'" + go_quote(chr(byte))[1:-1] + "'"


def _space(raw: bytes, pos: int) -> int:
    while pos < len(raw) and raw[pos] in b" \t\r\n":
        pos += 1
    return pos


def _at(raw: bytes, pos: int) -> int:
    if pos >= len(raw):
        raise _SyntaxError("unexpected end of JSON input")
    return raw[pos]


def _value(raw: bytes, pos: int) -> int:
    char = _at(raw, pos)
    if char == ord("{"):
        return _container(raw, pos + 1, b"}", "object key:value pair")
    if char == ord("["):
        return _container(raw, pos + 1, b"]", "array element")
    if char == ord('"'):
        return _string(raw, pos + 1)
    if char == ord("-") or ord("0") <= char <= ord("9"):
        return _number(raw, pos)
    for literal in (b"true", b"false", b"null"):
        if char == literal[0]:
            for offset in range(1, len(literal)):
                got = _at(raw, pos + offset)
                if got != literal[offset]:
                    raise _SyntaxError(
                        f"invalid character {_quote_char(got)} in literal {literal.decode()} "
                        f"(expecting {_quote_char(literal[offset])})"
                    )
            return pos + len(literal)
    raise _SyntaxError(f"invalid character {_quote_char(char)} looking for beginning of value")


def _container(raw: bytes, pos: int, close: bytes, after: str) -> int:
    pos = _space(raw, pos)
    if _at(raw, pos) == close[0]:
        return pos + 1
    while True:
        if close == b"}":
            pos = _key(raw, pos)
        pos = _space(raw, _value(raw, _space(raw, pos)))
        char = _at(raw, pos)
        if char == close[0]:
            return pos + 1
        if char != ord(","):
            raise _SyntaxError(f"invalid character {_quote_char(char)} after {after}")
        pos = _space(raw, pos + 1)


def _key(raw: bytes, pos: int) -> int:
    char = _at(raw, pos)
    if char != ord('"'):
        raise _SyntaxError(
            f"invalid character {_quote_char(char)} looking for beginning of object key string"
        )
    pos = _space(raw, _string(raw, pos + 1))
    char = _at(raw, pos)
    if char != ord(":"):
        raise _SyntaxError(f"invalid character {_quote_char(char)} after object key")
    return pos + 1


def _string(raw: bytes, pos: int) -> int:
    while True:
        char = _at(raw, pos)
        if char == ord('"'):
            return pos + 1
        if char < 0x20:
            raise _SyntaxError(f"invalid character {_quote_char(char)} in string literal")
        if char == ord("\\"):
            escape = _at(raw, pos + 1)
            if escape not in b'"\\/bfnrtu':
                raise _SyntaxError(f"invalid character {_quote_char(escape)} in string escape code")
            if escape == ord("u"):
                for offset in range(2, 6):
                    digit = _at(raw, pos + offset)
                    if digit not in b"0123456789abcdefABCDEF":
                        raise _SyntaxError(
                            f"invalid character {_quote_char(digit)} in \\u hexadecimal "
                            "character escape"
                        )
                pos += 4
            pos += 2
            continue
        pos += 1


def _digits(raw: bytes, pos: int, where: str) -> int:
    char = _at(raw, pos)
    if not ord("0") <= char <= ord("9"):
        raise _SyntaxError(f"invalid character {_quote_char(char)} {where}")
    while pos < len(raw) and ord("0") <= raw[pos] <= ord("9"):
        pos += 1
    return pos


def _number(raw: bytes, pos: int) -> int:
    if raw[pos] == ord("-"):
        pos += 1
    if _at(raw, pos) == ord("0"):
        pos += 1
    else:
        pos = _digits(raw, pos, "in numeric literal")
    if pos < len(raw) and raw[pos] == ord("."):
        pos = _digits(raw, pos + 1, "after decimal point in numeric literal")
    if pos < len(raw) and raw[pos] in b"eE":
        pos += 1
        if pos < len(raw) and raw[pos] in b"+-":
            pos += 1
        pos = _digits(raw, pos, "in exponent of numeric literal")
    return pos
