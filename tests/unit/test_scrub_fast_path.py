"""scrub's fast path (no literal, no regex pass) answers exactly what the three patterns would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.redaction import _AUTHORIZATION, _BEARER, _JWT, scrub
from tests.unit.test_seed_token import SEED_TOKEN


def _full(text: str) -> str:
    text = _JWT.sub("[redacted-jwt]", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _AUTHORIZATION.sub(r"\1[redacted]", text)


_PIECES = st.sampled_from(
    [
        SEED_TOKEN,
        "eyJ",
        "eyJhbGciOi.eyJzdWIi.c2ln",
        "Bearer ",
        "bEaReR",
        "%20",
        "+",
        "authorization",
        "author\u0131zat\u0131on: x",
        "AUTHORIZATION: ",
        "Authorization='",
        "abcdefghijklmnopqrstuvwxyz0123456789",
        " ",
        "/validate-auth",
        '"',
        "system:serviceaccount:default:be-sa",
    ]
)


@given(st.lists(_PIECES | st.text(max_size=20), max_size=8).map("".join))
def test_scrub_equals_the_three_patterns(text: str) -> None:
    assert scrub(text) == _full(text)


def test_plain_text_is_returned_as_is() -> None:
    text = "GET /validate-auth 200"
    assert scrub(text) is text
