"""bearer_token: what it takes from the Authorization header, and what it leaves to the
verifier (the token's shape: every verifier checks it with domain.jws.parse_compact)."""

from __future__ import annotations

import pytest

from domain.bearer import bearer_token
from domain.errors import AuthError


def _answer(header: bytes) -> str:
    try:
        return "token:" + bearer_token([(b"authorization", header)])
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
        # Not a JWS, but a credential: the verifier rejects it as malformed (test_be2_app).
        (b"Bearer a.b", "token:a.b"),
        (b"Bearer a~b+c/d=", "token:a~b+c/d="),
        (b"Bearer a.b.c\xff", "malformed"),
    ],
)
def test_bearer_token_answers(header: bytes, expected: str) -> None:
    assert _answer(header).startswith(expected)


def test_two_authorization_headers_are_malformed() -> None:
    headers = [(b"authorization", b"Bearer a.b.c"), (b"Authorization", b"Bearer a.b.c")]
    with pytest.raises(AuthError) as caught:
        bearer_token(headers)
    assert caught.value.reason == "malformed"
