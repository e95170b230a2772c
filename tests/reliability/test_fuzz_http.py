"""Hypothesis over the Authorization header and token segments, against real be2 processes.

Every answer is 401 or 403, or the documented 503 (keys_unavailable with Retry-After); never
another 5xx, never a hang (the client gives up after 15 s, which fails the example).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import SharedStack, Tally
from tests.reliability.hostile import Mint
from tests.reliability.jws import b64url, b64url_decode, json_bytes
from tests.reliability.logscan import SecretLedger
from tests.reliability.rawhttp import Response, request_sync
from tests.unit.strategies import json_values

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


def _check(response: Response, allowed_200: bool) -> None:
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
    _check(response, allowed_200=False)


def _segment_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=B64URL, max_size=max_size)


@st.composite
def tokens(draw: st.DrawFn, valid: str, kids: tuple[str, ...]) -> str:
    """A token whose every segment is kept, replaced or mangled, independently."""
    head, payload, signature = valid.split(".")
    header_dict = json.loads(b64url_decode(head))
    claims = json.loads(b64url_decode(payload))
    header_choice = draw(st.integers(0, 4))
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
    payload_choice = draw(st.integers(0, 3))
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
    signature_choice = draw(st.integers(0, 3))
    if signature_choice == 1:
        raw = bytearray(b64url_decode(signature))
        raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
        signature = b64url(bytes(raw))
    elif signature_choice == 2:
        signature = draw(_segment_text(400))
    elif signature_choice == 3:
        signature = b64url(draw(st.binary(min_size=0, max_size=300)))
    parts = [head, payload, signature]
    shape = draw(st.integers(0, 5))
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
    _check(response, allowed_200=token == valid)
