"""Properties of reading a token as kube-apiserver reads it (go-jose v2 and Go's JSON)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import claims as claims_module
from domain.claims import (
    FOREIGN_HEADER_MEMBERS,
    Claims,
    decode_claims,
    decode_claims_strictly,
    decode_header,
)
from domain.errors import Expired, Malformed
from domain.jws import b64url_encode, parse_compact
from domain.rules import Expectations, numeric_date, validate_claims

from .strategies import AUDIENCE, ISSUER, NOW, bound_claims, json_values

EXPECT = Expectations.of([ISSUER], [AUDIENCE])
# JSON proper: json.dumps writes Infinity and NaN, which no JSON parser (nor go-jose) takes.
FINITE_JSON = json_values.filter(lambda value: "Infinity" not in json.dumps(value))
FINITE_JSON = FINITE_JSON.filter(lambda value: "NaN" not in json.dumps(value))
INT64_MIN = -(2**63)
# Seconds past which Go's time.Unix overflows (62135596800 s from year 1 to 1970).
LAST_SECOND = 2**63 - 1 - 62_135_596_800


def _with_duplicate(document: str, name: str) -> str:
    # Repeat `name` as the first member of the object that starts at the first brace.
    quoted = json.dumps(name)
    return document.replace("{", f"{{{quoted}: 0, {quoted}: 1, ", 1)


@given(bound_claims(), st.sampled_from(["top", "kubernetes.io", "serviceaccount"]), st.text())
def test_a_member_named_twice_in_any_object_is_malformed(
    claims: dict[str, Any], where: str, name: str
) -> None:
    document = json.dumps(claims)
    if where == "kubernetes.io":
        head, _, tail = document.partition('"kubernetes.io": ')
        document = head + '"kubernetes.io": ' + _with_duplicate(tail, name)
    elif where == "serviceaccount":
        head, _, tail = document.partition('"serviceaccount": ')
        document = head + '"serviceaccount": ' + _with_duplicate(tail, name)
    else:
        document = _with_duplicate(document, name)
    with pytest.raises(Malformed, match="duplicate member"):
        decode_claims(document.encode())


@given(FINITE_JSON, st.sampled_from(["alg", "kid", "typ", "x-extra"]))
def test_a_header_member_named_twice_is_malformed(value: Any, name: str) -> None:
    header = '{"alg": "RS256", "kid": "k", ' + f'"{name}": {json.dumps(value)}, "{name}": 1}}'
    with pytest.raises(Malformed, match="duplicate member"):
        decode_header(header.encode())


# What Go's encoding/json reads as `iss`: ASCII case and the long s (U+017F) folded.
FOLDS_TO_ISS = st.tuples(
    st.sampled_from("iI"), st.sampled_from("sS\u017f"), st.sampled_from("sS\u017f")
).map("".join)


@given(bound_claims(), FOLDS_TO_ISS.filter(lambda name: name != "iss"), st.text())
def test_a_later_issuer_member_that_disagrees_is_malformed(
    claims: dict[str, Any], name: str, other: str
) -> None:
    payload = json.dumps(claims)[:-1] + f', "{name}": {json.dumps(other)}}}'
    if other == ISSUER:
        assert decode_claims(payload.encode()).iss == ISSUER
    else:
        with pytest.raises(Malformed, match="two issuers"):
            decode_claims(payload.encode())


@given(bound_claims(), FOLDS_TO_ISS.filter(lambda name: name != "iss"), st.text())
def test_an_earlier_issuer_member_is_overridden_by_iss(
    claims: dict[str, Any], name: str, other: str
) -> None:
    # Go keeps the last member: `iss` after a case variant is the issuer kube reads.
    payload = f'{{"{name}": {json.dumps(other)}, ' + json.dumps(claims)[1:]
    assert decode_claims(payload.encode()).iss == ISSUER


@given(st.sampled_from(sorted(FOREIGN_HEADER_MEMBERS)), FINITE_JSON)
def test_members_kube_never_sends_are_refused_whatever_their_value(name: str, value: Any) -> None:
    header = {"alg": "RS256", "kid": "k", name: value}
    if value is None:  # Go reads a null member as absent
        assert decode_header(json.dumps(header).encode()).kid == "k"
        return
    with pytest.raises(Malformed, match=name):
        decode_header(json.dumps(header).encode())


def _token(header: dict[str, Any]) -> str:
    segments = (json.dumps(header).encode(), b'{"iss": "x"}', b"signature")
    return ".".join(map(b64url_encode, segments))


@given(FINITE_JSON)
def test_b64_is_refused_only_when_it_is_json_false(value: Any) -> None:
    token = _token({"alg": "RS256", "kid": "k", "b64": value})
    if value is False:
        with pytest.raises(Malformed, match="b64"):
            parse_compact(token)
    else:
        assert parse_compact(token).header.alg == "RS256"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numeric_dates_are_whole_seconds_or_the_far_past(value: float) -> None:
    seconds = numeric_date(value)
    if INT64_MIN <= value < 2**63 and math.trunc(value) <= LAST_SECOND:
        assert seconds == math.trunc(value)
    else:
        assert seconds == INT64_MIN


@given(bound_claims(), st.floats(min_value=float(LAST_SECOND + 2**11), max_value=1e300))
def test_an_exp_beyond_go_time_has_expired(claims: dict[str, Any], exp: float) -> None:
    claims["exp"] = exp
    with pytest.raises(Expired):
        validate_claims(decode_claims(msgspec.json.encode(claims)), EXPECT, NOW)


@given(bound_claims(), st.floats(min_value=0.0, max_value=0.999))
def test_a_fractional_exp_counts_in_whole_seconds(claims: dict[str, Any], fraction: float) -> None:
    # kube: expired when now - leeway > trunc(exp); the fraction buys no extra time.
    claims["exp"] = claims["exp"] + fraction
    claims["iat"] = claims["nbf"] = claims["iat"] - 10_000
    now = math.trunc(claims["exp"]) + EXPECT.leeway_seconds + 0.0005
    with pytest.raises(Expired):
        validate_claims(decode_claims(msgspec.json.encode(claims)), EXPECT, now)


@pytest.mark.parametrize("bound", ["pod", "secret", "node"])
def test_a_bound_object_with_an_empty_name_is_malformed(bound: str) -> None:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "system:serviceaccount:default:be-sa",
        "aud": [AUDIENCE],
        "exp": NOW + 600,
        "iat": NOW,
        "nbf": NOW,
        "kubernetes.io": {
            "namespace": "default",
            "serviceaccount": {"name": "be-sa", "uid": "u"},
            bound: {"name": "", "uid": "u"},
        },
    }
    with pytest.raises(Malformed, match="empty name"):
        validate_claims(decode_claims(json.dumps(claims).encode()), EXPECT, NOW)


def test_a_pod_bound_token_may_name_its_node_without_a_name() -> None:
    # Only the bound object is looked up; a pod-bound token's node is informative (kube accepts).
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "system:serviceaccount:default:be-sa",
        "aud": [AUDIENCE],
        "exp": NOW + 600,
        "iat": NOW,
        "kubernetes.io": {
            "namespace": "default",
            "serviceaccount": {"name": "be-sa", "uid": "u"},
            "pod": {"name": "be-1", "uid": "p"},
            "node": {"name": "", "uid": "n"},
        },
    }
    assert validate_claims(decode_claims(json.dumps(claims).encode()), EXPECT, NOW).pod == "be-1"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_signature_has_one_spelling(alg: str) -> None:
    from adapters.fake_keyset import FakeKeySet
    from domain.errors import BadSignature
    from domain.jws import b64url_decode

    token = FakeKeySet(alg).mint(namespace="default", service_account="be-sa")  # type: ignore[arg-type]
    head, payload, signature = token.split(".")
    assert parse_compact(token).signature == signature
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # Other last characters that decode to the same bytes differ only in the unused bits.
    spellings = [
        signature[:-1] + char
        for char in alphabet
        if char != signature[-1]
        and b64url_decode(signature[:-1] + char) == b64url_decode(signature)
    ]
    assert spellings  # RS256 (256 bytes) and ES256 (64 bytes) both leave unused bits
    for other in spellings:
        with pytest.raises(BadSignature, match="canonical"):
            parse_compact(f"{head}.{payload}.{other}")


def _strict_answer(payload: bytes) -> Claims | str:
    # The strict reader alone, without the shortcut for plain payloads.
    return _answer(payload, decode_claims_strictly)


def _answer(payload: bytes, decode: Callable[[bytes], Claims] = decode_claims) -> Claims | str:
    try:
        return decode(payload)
    except Malformed:
        return "malformed"


@given(
    bound_claims(),
    st.sampled_from([[], ["kubernetes.io"], ["kubernetes.io", "pod"]]),
    st.text(max_size=8),
    FINITE_JSON,
    st.booleans(),
)
def test_compact_claims_read_the_same_with_or_without_the_shortcut(
    claims: dict[str, Any], path: list[str], name: str, value: Any, twice: bool
) -> None:
    target = claims
    for step in path:
        target = target[step]
    target[name] = value
    payload = json.dumps(claims, separators=(",", ":")).encode()
    if twice:
        # Name the member again, compactly, first in its object.
        opening = "".join(f"{json.dumps(step)}:" for step in path[-1:]) + "{"
        payload = payload.replace(opening.encode(), f"{opening}{json.dumps(name)}:0,".encode(), 1)
        assert _answer(payload) == "malformed"
    assert _answer(payload) == _strict_answer(payload)


def test_a_token_as_kube_writes_it_takes_the_shortcut() -> None:
    payload = json.dumps(
        {"iss": ISSUER, "sub": "system:serviceaccount:ns:sa", "exp": 1}, separators=(",", ":")
    ).encode()
    assert claims_module._plain_claims(payload) == decode_claims(payload)
    assert claims_module._plain_claims(payload.replace(b",", b", ")) is None
