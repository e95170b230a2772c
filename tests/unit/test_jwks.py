"""domain.jwks: which entries of a JWKS document are usable signing keys."""

from __future__ import annotations

import json

import pytest

from domain.jwks import parse_jwks


def _jwk(**fields: str) -> dict[str, str]:
    return {"kty": "RSA", "kid": "k1", "alg": "RS256", "n": "AQAB", "e": "AQAB"} | fields


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        (_jwk(), True),
        (_jwk(use="sig"), True),
        (_jwk(use="enc"), False),
        (_jwk(kid=""), False),
        ({k: v for k, v in _jwk().items() if k != "kid"}, False),
        (_jwk(kty="oct"), False),
        ({k: v for k, v in _jwk().items() if k != "n"}, False),
        ({"kty": "EC", "kid": "e", "crv": "P-256", "x": "AA", "y": "AA"}, True),
        ({"kty": "EC", "kid": "e", "crv": "secp256k1", "x": "AA", "y": "AA"}, False),
        ({"kty": "EC", "kid": "e", "crv": "P-256", "x": "AA"}, False),
        ({"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AA"}, False),
        ("not-an-object", False),
        ({"kty": "RSA", "kid": 7, "n": "AQAB", "e": "AQAB"}, False),
    ],
)
def test_only_signing_keys_are_kept_with_their_alg(key: object, kept: bool) -> None:
    document = json.dumps({"keys": [key, _jwk(kid="anchor")]}).encode()
    keys, skipped = parse_jwks(document)
    kids = [k.kid for k in keys]
    assert ("anchor" in kids) and (len(kids) == (2 if kept else 1))
    assert skipped == (0 if kept else 1)
    assert all(k.alg == "RS256" for k in keys if k.kty == "RSA")


@pytest.mark.parametrize(
    "document",
    [b"", b"[]", b'{"keys": "x"}', b'{"keys": []}', b'{"keys": [{"kty": "oct", "kid": "a"}]}',
     b"<html>", b'{"keys": [' * 1000],
)  # fmt: skip
def test_not_a_usable_jwks_is_a_value_error(document: bytes) -> None:
    with pytest.raises(ValueError, match="JWKS"):
        parse_jwks(document)


def test_a_duplicate_kid_keeps_the_first_key() -> None:
    keys, skipped = parse_jwks(
        json.dumps({"keys": [_jwk(n="Zmlyc3Q"), _jwk(n="c2Vjb25k")]}).encode()
    )
    assert [k.n for k in keys] == ["Zmlyc3Q"]
    assert skipped == 1
