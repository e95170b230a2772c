"""The devcluster's model of Go's JSON readers and NumericDate, as properties."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devcluster.gojose import _numeric_date, read_claims
from devcluster.gojson import Abort, JsonError, Members, Number, go_json, go_unix

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def _plain(value: Any) -> Any:
    """What json.loads would have made of it."""
    if isinstance(value, Members):
        return {name: _plain(member) for name, member in value}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Number):
        return json.loads(value)
    return value


@given(JSON_VALUES, st.booleans())
def test_json_without_repeated_members_reads_as_python_reads_it(value: Any, indent: bool) -> None:
    text = json.dumps(value, indent=2 if indent else None, ensure_ascii=False)
    assert _plain(go_json(text.encode())) == value


@given(st.dictionaries(st.sampled_from(["iss", "sub", "aud", "jti", "x"]), st.text(), min_size=1))
def test_a_claim_named_twice_is_refused_with_gos_words(claims: dict[str, str]) -> None:
    # String claims, each well typed: only the repetition is wrong.
    name = next(iter(claims))
    members = [*claims.items(), (name, claims[name])]
    payload = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in members) + "}"
    with pytest.raises(Abort, match=f"json: duplicate key '{name}' in object"):
        read_claims(payload.encode())


@pytest.mark.parametrize(
    "text",
    ["", "{", "[1,]", '{"a":1,}', "01", "1.", "NaN", "Infinity", '"\x01"', "\ufeff{}", "{}x"],
)
def test_what_gos_scanner_refuses_is_refused(text: str) -> None:
    with pytest.raises(JsonError):
        go_json(text.encode())


def test_encoding_json_nests_at_most_10000_deep() -> None:
    assert go_json(b"[" * 10_000 + b"]" * 10_000, 10_000) is not None
    with pytest.raises(JsonError, match="depth"):
        go_json(b"[" * 10_001 + b"]" * 10_001, 10_000)
    # go-jose's fork of encoding/json has no bound.
    assert go_json(b"[" * 20_000 + b"]" * 20_000) is not None


def test_invalid_utf8_and_lone_surrogates_read_as_the_replacement_character() -> None:
    assert go_json(b'"a\xffb\xe2\x98"') == "a\ufffdb\ufffd\ufffd"
    assert go_json(b'"\\ud800x"') == "\ufffdx"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_numeric_date_is_its_whole_seconds_or_the_far_past(seconds: float) -> None:
    date = _numeric_date(Number(json.dumps(seconds)))
    assert date == (math.trunc(seconds) if -(2**63) <= seconds < 2**63 else -(2**63))


@given(st.integers(-(2**40), 2**40))
def test_go_time_keeps_ordinary_seconds(seconds: int) -> None:
    assert go_unix(seconds) == seconds


@pytest.mark.parametrize("seconds", [2**63 - 1, 2**63 - 1 - 62_135_596_800 + 1, -(2**63)])
def test_go_time_wraps_past_what_it_holds_into_the_far_past(seconds: int) -> None:
    assert go_unix(seconds) < -(2**62)


def test_go_time_holds_its_last_second() -> None:
    last = 2**63 - 1 - 62_135_596_800
    assert go_unix(last) == last
