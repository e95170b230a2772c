"""Go's text and JSON as kube-apiserver reads them: base64, quoting, and Go's JSON decoders."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GO_SPACE",
    "INT64_MIN",
    "Abort",
    "Decoding",
    "JsonError",
    "Members",
    "Number",
    "aggregate",
    "check_any",
    "go_json",
    "go_quote",
    "go_quote_list",
    "go_unix",
    "is_string",
    "json_kind",
    "raw_url_decode",
    "std_decode",
    "unique_members",
]

# time.Unix counts seconds from year 1 internally, in an int64 that wraps (time.go unixToInternal).
_UNIX_TO_INTERNAL = 62_135_596_800
# math.MinInt64: where int64 arithmetic wraps, and int64(f) of a float out of range (amd64).
INT64_MIN = -(2**63)


class Abort(Exception):
    """go-jose's json gave up (a repeated member, a failed UnmarshalJSON) or a type did not fit."""


# --- Go's text: base64, whitespace and quoting -------------------------------------------------

# unicode.IsSpace: what go-jose's stripWhitespace drops and strings.TrimSpace trims.
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_RAW_URL_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
_GO_ESCAPES |= {"\v": r"\v", '"': r"\"", "\\": r"\\"}


def raw_url_decode(segment: str) -> bytes | None:
    """base64.RawURLEncoding.DecodeString: no padding, CR and LF skipped, loose trailing bits."""
    text = segment.replace("\r", "").replace("\n", "")
    if not _RAW_URL_ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        return None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def std_decode(text: str) -> bytes | None:
    """base64.StdEncoding.DecodeString (x5c entries): padded, CR and LF skipped."""
    data = text.replace("\r", "").replace("\n", "")
    if len(data) % 4 or not data.isascii():
        return None
    try:
        return binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except binascii.Error:
        return None


def go_quote(value: str) -> str:
    """fmt's %q of a string (strconv.Quote)."""
    out = []
    for char in value:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def go_quote_list(values: Iterable[str]) -> str:
    """fmt's %q on a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def aggregate(errors: Sequence[str]) -> str:
    """utilerrors.NewAggregate(errs).Error(): one as is, several deduplicated in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


def go_unix(seconds: int) -> int:
    """The Unix second Go compares for time.Unix(seconds, 0), after its internal int64 wraps."""
    internal = (seconds + _UNIX_TO_INTERNAL - INT64_MIN) % 2**64 + INT64_MIN
    return internal - _UNIX_TO_INTERNAL


# --- Go's JSON, as its scanner reads it ----------------------------------------------------------


class Members(list[tuple[str, Any]]):
    """A JSON object as Go's decoders meet it: its members in order, a repeated name kept."""


class Number(str):
    """A JSON number's text: Go converts it only when the destination type asks."""


class JsonError(ValueError):
    """Not JSON as Go's scanner reads it."""


_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS: tuple[tuple[str, Any], ...] = (("true", True), ("false", False), ("null", None))
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')


def go_json(raw: bytes, max_depth: int | None = None) -> Any:
    """Parse JSON as Go's scanner does, without recursion; JsonError when Go would refuse it."""
    # Invalid UTF-8 and lone surrogates read as U+FFFD (decode.go unquote), numbers stay text,
    # objects keep repeated members.
    text = raw.decode("utf-8", "surrogateescape")
    stack: list[Members | list[Any]] = []
    names: list[str] = []  # the pending member name of each open object
    value: Any
    pos = _skip(text, 0)
    while True:
        char = text[pos : pos + 1]
        if char in ("{", "["):
            stack.append(Members() if char == "{" else [])
            if max_depth is not None and len(stack) > max_depth:
                raise JsonError("exceeded max depth")
            pos = _skip(text, pos + 1)
            if not text.startswith("}" if char == "{" else "]", pos):
                if char == "{":
                    pos = _member_name(text, pos, names)
                continue
            value, pos = stack.pop(), pos + 1
        else:
            value, pos = _scalar(text, pos)
        # A value is complete: add it to its container; close each container that ends here.
        while stack:
            container = stack[-1]
            if isinstance(container, Members):
                container.append((names.pop(), value))
            else:
                container.append(value)
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
                if isinstance(container, Members):
                    pos = _member_name(text, pos, names)
                break
            if not text.startswith("}" if isinstance(container, Members) else "]", pos):
                raise JsonError("invalid character after a value")
            value, pos = stack.pop(), pos + 1
        else:
            if _skip(text, pos) != len(text):
                raise JsonError("invalid character after top-level value")
            return value


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _member_name(text: str, pos: int, names: list[str]) -> int:
    if not text.startswith('"', pos):
        raise JsonError("looking for beginning of object key string")
    name, pos = _string(text, pos)
    pos = _skip(text, pos)
    if not text.startswith(":", pos):
        raise JsonError("after object key")
    names.append(name)
    return _skip(text, pos + 1)


def _scalar(text: str, pos: int) -> tuple[Any, int]:
    if text.startswith('"', pos):
        return _string(text, pos)
    number = _NUMBER.match(text, pos)
    if number:
        return Number(number.group()), number.end()
    for word, value in _LITERALS:
        if text.startswith(word, pos):
            return value, pos + len(word)
    raise JsonError("looking for beginning of value")


def _string(text: str, pos: int) -> tuple[str, int]:
    literal = _STRING.match(text, pos)
    if literal is None:
        raise JsonError("invalid string literal")
    value: str = json.loads(literal.group())
    return _SURROGATE.sub("\ufffd", value), literal.end()


def is_string(value: Any) -> bool:
    """A JSON string (not a number's text)."""
    return isinstance(value, str) and not isinstance(value, Number)


def json_kind(value: Any) -> str:
    """The JSON kind UnmarshalTypeError names."""
    if isinstance(value, Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "object" if isinstance(value, Members) else "array"


def unique_members(value: Members) -> Iterator[tuple[str, Any]]:
    """An object's members in order, as go-jose's json fork decodes it into a type."""
    # The fork refuses a name it has already seen (json/decode.go object).
    seen: set[str] = set()
    for name, member in value:
        if name in seen:
            raise Abort(f"json: duplicate key '{name}' in object")
        seen.add(name)
        yield name, member


def check_any(value: Any) -> None:
    """go-jose's json into interface{}: Abort unless it would decode."""
    # No object names a member twice, every number is a float64 (decode.go objectInterface,
    # convertNumber).
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, Members):
            pending.extend(member for _, member in unique_members(item))
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, Number) and not math.isfinite(float(item)):
            raise Abort(f"json: cannot unmarshal number {item} into Go value of type float64")


@dataclass
class Decoding:
    """One json.Unmarshal into a Go type, which reports its first type mismatch at the end."""

    # Decoding goes on past a mismatch; the first is kept, then returned (decode.go saveError).
    error: str = ""

    def mismatch(self, value: Any, go_type: str) -> None:
        """Keep the first mismatch, in UnmarshalTypeError's words."""
        if not self.error:
            self.error = (
                f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}"
            )

    def string(self, value: Any) -> str:
        """A string field: its value, or "" and a mismatch."""
        if is_string(value):
            return str(value)
        if value is not None:  # null leaves a string as it was
            self.mismatch(value, "string")
        return ""

    def struct(self, value: Any, go_type: str) -> Iterator[tuple[str, Any]]:
        """A struct field: its members (null: none), or none and a mismatch."""
        if isinstance(value, Members):
            return unique_members(value)
        if value is not None:
            self.mismatch(value, go_type)
        return iter(())

    def done(self) -> None:
        """Unmarshal returns: Abort with the first mismatch, if any."""
        if self.error:
            raise Abort(self.error)
