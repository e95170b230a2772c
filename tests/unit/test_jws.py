"""Compact JWS parsing: the shape checks every verifier shares."""

from __future__ import annotations

import base64
import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.claims import JWT_MAX_BYTES
from domain.errors import Malformed, UnsupportedAlgorithm
from domain.jws import b64url_decode, parse_compact, require_signing_algorithm


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@given(st.text(max_size=300))
def test_any_text_parses_or_is_malformed(text: str) -> None:
    with contextlib.suppress(Malformed):
        parse_compact(text)


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=64))
def test_parts_round_trip(payload: bytes, signature: bytes) -> None:
    header = _segment(msgspec.json.encode({"alg": "RS256", "kid": "k"}))
    body = _segment(payload) or "e30"
    token = f"{header}.{body}.{_segment(signature)}"
    parts = parse_compact(token)
    assert (parts.header.alg, parts.header.kid) == ("RS256", "k")
    assert parts.signing_input == f"{header}.{body}"
    assert b64url_decode(parts.signature) == signature
    assert parts.payload == (payload if _segment(payload) else b"{}")


@pytest.mark.parametrize(
    "token",
    ["a.b", "a.b.c.d", "a+b.c.d", "a.b=.c", "x" * (JWT_MAX_BYTES + 1), "e30.e30.sig"],
)
def test_misshapen_tokens_are_malformed(token: str) -> None:
    with pytest.raises(Malformed):
        parse_compact(token)


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256", "", "rs256"])
def test_only_kube_apiserver_algorithms_are_accepted(alg: str) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        require_signing_algorithm(alg)


def test_accepted_algorithms_name_their_key_type() -> None:
    assert require_signing_algorithm("RS256") == ("RSA", None)
    assert require_signing_algorithm("ES384") == ("EC", "P-384")
