"""be2's hot-path shortcuts answer exactly as the plain forms they replace (issue 7)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domain.errors import AuthError
from entrypoints.middleware import bearer_token, is_compact_jws

# The pattern bearer_token used before: three base64url segments, the last may be empty.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
ALPHABET = "ABCXYZabcxyz0189-_.+/= \t~"


@given(st.text(alphabet=ALPHABET, max_size=24))
@example("a.b.")
@example("a.b.c")
@example(".b.c")
@example("a..c")
@example("a.b.c.")
@example("abc")
@example("")
def test_is_compact_jws_is_the_regex(token: str) -> None:
    assert is_compact_jws(token) == (COMPACT_JWS.fullmatch(token) is not None)


def _answer(header: bytes) -> str:
    try:
        return "token:" + bearer_token({"headers": [(b"authorization", header)]})
    except AuthError as exc:
        return f"{exc.reason}:{exc.detail}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Bearer a.b.c", "token:a.b.c"),
        (b"bEaReR   a.b.", "token:a.b."),
        (b"Bearer\ta.b.c", "malformed"),
        (b"Bearerx a.b.c", "missing_token"),
        (b"Basic a.b.c", "missing_token"),
        (b"Bearer", "missing_token"),
        (b"Bearer ", "missing_token"),
        (b"Bearer a.b", "malformed"),
        (b"Bearer a.b.c\xff", "malformed"),
    ],
)
def test_bearer_token_answers(header: bytes, expected: str) -> None:
    assert _answer(header).startswith(expected)


def test_two_authorization_headers_are_malformed() -> None:
    scope = {"headers": [(b"authorization", b"Bearer a.b.c"), (b"Authorization", b"Bearer a.b.c")]}
    with pytest.raises(AuthError) as caught:
        bearer_token(scope)
    assert caught.value.reason == "malformed"
