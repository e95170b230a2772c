"""Hypothesis over the Authorization header and token segments, against real be2 processes.

Every answer is 401 or 403, or the documented 503 (keys_unavailable with Retry-After); never
another 5xx, never a hang (the client gives up after 15 s, which fails the example).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.claims import decode_claims
from domain.errors import AuthError
from domain.rules import Expectations, validate_claims
from tests.reliability.conftest import SharedStack, Tally
from tests.reliability.hostile import Mint
from tests.reliability.jws import b64url, b64url_decode, compact, json_bytes
from tests.reliability.logscan import SecretLedger
from tests.reliability.rawhttp import Response, request_sync
from tests.unit.strategies import AUDIENCE, ISSUER, json_values

pytestmark = pytest.mark.e2e

# RFC 9110 §5.5 field-value bytes that HTTP/1.1 can carry to the app: VCHAR, obs-text, SP, HTAB
# (CR, LF, NUL and other controls end or break the request before the app sees it).
FIELD_BYTES = [*range(0x21, 0x7F), *range(0x80, 0x100)]
FIELD_BYTES_WITH_SPACE = [*FIELD_BYTES, 0x20, 0x09]
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_STATE: dict[str, Any] = {}


@pytest.fixture(scope="module")
def targets(shared_stack: SharedStack) -> dict[str, Any]:
    """Valid tokens and ports, fetched once (hypothesis reuses the fixture across examples)."""
    if not _STATE:
        cluster = shared_stack.cluster_context()
        local = shared_stack.file_context()
        _STATE.update(
            ports=(shared_stack.be2.port, shared_stack.be2_file.port),
            valid=(cluster.valid, local.valid),
            ec_valid=cluster.mint(Mint(ec=True)),
            kids=(cluster.trusted_kid, local.trusted_kid, shared_stack.ec_kid),
            claims=local.claims(),
            key=shared_stack.test_rsa,
            expectations=Expectations.of([local.issuer], [local.audience]),
        )
    return _STATE


def _field_value(alphabet: list[int], max_size: int) -> st.SearchStrategy[bytes]:
    return (
        st.lists(st.sampled_from(alphabet), max_size=max_size)
        .map(bytes)
        # Leading and trailing whitespace is not part of a field value (RFC 9110 §5.5).
        .map(lambda raw: raw.strip(b" \t"))
    )


authorization_values = st.one_of(
    _field_value(FIELD_BYTES_WITH_SPACE, 200),
    _field_value(FIELD_BYTES, 200).map(lambda raw: b"Bearer " + raw),
    st.tuples(
        st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"Basic", b"Bearer:", b"Token", b""]),
        st.sampled_from([b" ", b"  ", b"\t", b"", b" \t "]),
        _field_value(FIELD_BYTES_WITH_SPACE, 120),
    ).map(lambda parts: (b"".join(parts)).strip(b" \t")),
)


def _check(response: Response, allowed_200: bool, tally: Tally, label: str) -> None:
    tally.add(f"fuzz ({label}) answers {response.status} {response.reason or ''}".rstrip())
    if response.status == 200:
        assert allowed_200, f"accepted a fuzzed credential: {response.body[:200]!r}"
        return
    assert response.status in (401, 403, 503), (response.status, response.body[:300])
    data = response.json()
    if response.status == 503:
        assert data["reason"] == "keys_unavailable" and "retry-after" in response.headers
    else:
        assert data["reason"] in {
            "missing_token",
            "malformed",
            "unsupported_algorithm",
            "unknown_key",
            "bad_signature",
            "expired",
            "not_yet_valid",
            "issued_in_future",
            "bad_issuer",
            "bad_audience",
            "bad_subject",
            "forbidden",
        }, data


@FUZZ
@given(value=authorization_values, protected=st.booleans(), which=st.integers(0, 1))
def test_any_authorization_header_gets_401_403_or_503(
    value: bytes,
    protected: bool,
    which: int,
    targets: dict[str, Any],
    ledger: SecretLedger,
    tally: Tally,
) -> None:
    ledger.add_token(value.split(b" ", 1)[-1], "fuzz")
    path = "/protected" if protected else "/validate-auth"
    response = request_sync(
        targets["ports"][which], "GET", path, [(b"Authorization", value)], timeout=15.0
    )
    tally.add("fuzz inputs tried")
    tally.add("requests sent")
    _check(response, allowed_200=False, tally=tally, label="header")


def _segment_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=B64URL, max_size=max_size)


@st.composite
def tokens(draw: st.DrawFn, valid: str, kids: tuple[str, ...]) -> str:
    """A token whose every segment is kept, replaced or mangled, independently."""
    head, payload, signature = valid.split(".")
    header_dict = json.loads(b64url_decode(head))
    claims = json.loads(b64url_decode(payload))
    # Weighted towards well-formed parts, so most examples reach the key and signature checks.
    header_choice = draw(st.sampled_from([0, 0, 0, 1, 1, 1, 4, 4, 2, 3]))
    if header_choice == 1:
        fields: dict[str, Any] = {
            "alg": draw(
                st.sampled_from(["RS256", "ES256", "none", "HS256", "PS256", "", "rs256"])
                | st.text(max_size=8)
                | json_values
            ),
        }
        if draw(st.booleans()):
            fields["kid"] = draw(st.sampled_from(kids) | st.text(max_size=50) | json_values)
        fields.update(
            draw(
                st.dictionaries(
                    st.sampled_from(["jku", "x5u", "jwk", "crit", "typ", "cty", "b64", "zip"]),
                    json_values,
                    max_size=2,
                )
            )
        )
        head = b64url(json_bytes(fields))
    elif header_choice == 2:
        head = draw(_segment_text(60))
    elif header_choice == 3:
        head = b64url(draw(st.binary(max_size=60)))
    elif header_choice == 4:
        mutated = dict(header_dict)
        mutated[draw(st.sampled_from(["alg", "kid", "typ", "crit"]))] = draw(json_values)
        head = b64url(json_bytes(mutated))
    payload_choice = draw(st.sampled_from([0, 0, 0, 1, 1, 1, 1, 2, 3]))
    if payload_choice == 1:
        mutated_claims = dict(claims)
        for name in draw(
            st.lists(
                st.sampled_from(["exp", "nbf", "iat", "aud", "iss", "sub", "kubernetes.io", "jti"]),
                min_size=1,
                max_size=3,
            )
        ):
            mutated_claims[name] = draw(json_values)
        payload = b64url(json_bytes(mutated_claims))
    elif payload_choice == 2:
        payload = draw(_segment_text(120))
    elif payload_choice == 3:
        payload = b64url(draw(st.binary(max_size=200)))
    signature_choice = draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))
    if signature_choice == 1:
        raw = bytearray(b64url_decode(signature))
        raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
        signature = b64url(bytes(raw))
    elif signature_choice == 2:
        signature = draw(_segment_text(400))
    elif signature_choice == 3:
        signature = b64url(draw(st.binary(min_size=0, max_size=300)))
    parts = [head, payload, signature]
    shape = draw(st.sampled_from([0, 0, 0, 0, 0, 0, 0, 0, 1, 2]))
    if shape == 1:
        parts.append(draw(_segment_text(20)))
    elif shape == 2:
        parts.pop(draw(st.integers(0, 2)))
    return ".".join(parts)


@FUZZ
@given(data=st.data(), which=st.integers(0, 2))
def test_any_token_segments_get_401_403_or_503(
    data: st.DataObject, which: int, targets: dict[str, Any], ledger: SecretLedger, tally: Tally
) -> None:
    valid = (*targets["valid"], targets["ec_valid"])[which]
    port = targets["ports"][1 if which == 1 else 0]
    token = data.draw(tokens(valid, targets["kids"]))
    ledger.add_token(token, "fuzz")
    response = request_sync(
        port,
        "GET",
        "/validate-auth",
        [(b"Authorization", b"Bearer " + token.encode())],
        timeout=15.0,
    )
    tally.add("fuzz inputs tried")
    tally.add("requests sent")
    _check(response, allowed_200=token == valid, tally=tally, label="segments")


_NOW = time.time()
_times = st.one_of(
    json_values,
    st.integers(-7200, 7200).map(lambda offset: int(_NOW) + offset),
    st.floats(-7200, 7200).map(lambda offset: _NOW + offset),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
_SUBJECT = "system:serviceaccount:default:be-sa"
CLAIM_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "exp": _times,
    "nbf": _times,
    "iat": _times,
    "aud": st.one_of(
        json_values,
        st.sampled_from([AUDIENCE, [AUDIENCE], [], ["other"], ["other", AUDIENCE], [AUDIENCE, 1]]),
        st.lists(st.text(max_size=10), max_size=3),
    ),
    "iss": st.one_of(
        json_values, st.sampled_from([ISSUER, ISSUER + "/", "kubernetes/serviceaccount"])
    ),
    "sub": st.one_of(
        json_values,
        st.sampled_from(
            [
                _SUBJECT,
                "system:serviceaccount:default:other",
                "system:serviceaccount:default:",
                "system:serviceaccount::be-sa",
                _SUBJECT + ":x",
                _SUBJECT.upper(),
                "be-sa",
            ]
        ),
    ),
    "jti": json_values,
    "kubernetes.io": json_values,
    "extra": json_values,
}
NESTED_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "namespace": st.one_of(json_values, st.sampled_from(["default", "other", "", "Default"])),
    "serviceaccount": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"name": st.sampled_from(["be-sa", "other", ""])}, optional={"uid": json_values}
        ),
    ),
    "pod": st.one_of(json_values, st.fixed_dictionaries({"name": st.text(max_size=10)})),
    "node": json_values,
    "warnafter": _times,
}


@FUZZ
@given(data=st.data())
def test_any_claims_under_a_good_signature_get_the_rules_answer(
    data: st.DataObject, targets: dict[str, Any], ledger: SecretLedger, tally: Tally
) -> None:
    """Claims of any shape, signed by a key be2 trusts: the answer over HTTP is exactly what
    the domain rules say (200 and the identity, or 401 and the reason)."""
    claims = dict(targets["claims"])
    for name in data.draw(st.lists(st.sampled_from(sorted(CLAIM_VALUES)), max_size=3)):
        claims[name] = data.draw(CLAIM_VALUES[name], label=name)
    for name in data.draw(st.lists(st.sampled_from(sorted(CLAIM_VALUES)), max_size=2)):
        claims.pop(name, None)
    if isinstance(claims.get("kubernetes.io"), dict):
        private = dict(claims["kubernetes.io"])
        for name in data.draw(st.lists(st.sampled_from(sorted(NESTED_VALUES)), max_size=2)):
            private[name] = data.draw(NESTED_VALUES[name], label=f"kubernetes.io.{name}")
        claims["kubernetes.io"] = private
    payload = json_bytes(claims)
    key = targets["key"]
    token = compact({"alg": "RS256", "kid": key.kid}, payload, key)
    ledger.add_token(token, "fuzz")
    try:
        identity = validate_claims(decode_claims(payload), targets["expectations"], time.time())
        expected: tuple[int, str | None] = (200, None)
    except AuthError as error:
        identity, expected = None, (401, error.reason)
    response = request_sync(
        targets["ports"][1],
        "GET",
        "/validate-auth",
        [(b"Authorization", b"Bearer " + token.encode())],
        timeout=15.0,
    )
    tally.add("fuzz inputs tried")
    tally.add("requests sent")
    tally.add(f"fuzz (claims) answers {response.status} {response.reason or ''}".rstrip())
    assert (response.status, response.reason) == expected, response.body[:300]
    if identity is not None:
        assert response.json()["subject"] == identity.subject
