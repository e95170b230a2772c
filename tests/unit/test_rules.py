"""Property tests of the claim rules against kube-apiserver's behaviour."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.claims import decode_claims
from domain.errors import (
    AuthError,
    BadAudience,
    BadIssuer,
    BadSubject,
    Expired,
    IssuedInFuture,
    Malformed,
    NotYetValid,
)
from domain.identity import Identity
from domain.rules import Expectations, split_subject, validate_claims

from .strategies import AUDIENCE, ISSUER, NOW, bound_claims, json_values, namespaces

EXPECT = Expectations.of([ISSUER], [AUDIENCE])
LEEWAY = EXPECT.leeway_seconds


def validate(claims: dict[str, Any], now: float = NOW, expect: Expectations = EXPECT) -> Identity:
    return validate_claims(decode_claims(msgspec.json.encode(claims)), expect, now)


@given(bound_claims())
def test_every_valid_claim_set_yields_the_service_account_identity(claims: dict[str, Any]) -> None:
    identity = validate(claims)
    private = claims["kubernetes.io"]
    assert identity.subject == (
        f"system:serviceaccount:{private['namespace']}:{private['serviceaccount']['name']}"
    )
    assert identity.namespace == private["namespace"]
    assert identity.service_account == private["serviceaccount"]["name"]
    assert identity.expires_at == claims["exp"]


@given(bound_claims(), st.floats(min_value=0.001, max_value=1e7))
def test_exp_before_now_minus_leeway_is_expired(claims: dict[str, Any], past: float) -> None:
    now = claims["exp"] + LEEWAY + past
    claims["iat"] = claims["nbf"] = min(claims["iat"], int(now))
    with pytest.raises(Expired):
        validate(claims, now=now)


@given(bound_claims())
def test_exp_exactly_at_now_minus_leeway_is_still_valid(claims: dict[str, Any]) -> None:
    now = claims["exp"] + LEEWAY
    assert validate(claims, now=now).expires_at == claims["exp"]


# Times are whole seconds (go-jose NumericDate): a fraction past the leeway is not past it.
@given(bound_claims(), st.floats(min_value=1, max_value=1e7))
def test_nbf_after_now_plus_leeway_is_not_yet_valid(claims: dict[str, Any], ahead: float) -> None:
    claims["nbf"] = NOW + LEEWAY + ahead
    claims["exp"] = max(claims["exp"], claims["nbf"] + 600)
    with pytest.raises(NotYetValid):
        validate(claims)


@given(bound_claims(), st.floats(min_value=0, max_value=LEEWAY + 0.999))
def test_nbf_within_leeway_is_accepted(claims: dict[str, Any], ahead: float) -> None:
    claims["nbf"] = claims["iat"] = NOW + ahead
    validate(claims)


@given(bound_claims(), st.floats(min_value=1, max_value=1e7))
def test_iat_after_now_plus_leeway_is_issued_in_future(
    claims: dict[str, Any], ahead: float
) -> None:
    claims["iat"] = NOW + LEEWAY + ahead
    claims["exp"] = max(claims["exp"], claims["iat"] + 600)
    with pytest.raises(IssuedInFuture):
        validate(claims)


@given(bound_claims(), st.lists(st.text(max_size=30), max_size=4))
def test_no_audience_overlap_is_bad_audience(claims: dict[str, Any], auds: list[str]) -> None:
    claims["aud"] = [a for a in auds if a != AUDIENCE]
    with pytest.raises(BadAudience):
        validate(claims)


@given(bound_claims(), st.lists(st.text(max_size=30), max_size=4), st.randoms())
def test_any_audience_overlap_is_accepted(
    claims: dict[str, Any], others: list[str], rnd: Any
) -> None:
    auds = [*others, AUDIENCE]
    rnd.shuffle(auds)
    claims["aud"] = auds
    assert AUDIENCE in validate(claims).audiences


@given(bound_claims(), st.sampled_from([AUDIENCE, "be2", "x"]))
def test_string_aud_and_one_element_list_are_equivalent(claims: dict[str, Any], aud: str) -> None:
    expect = Expectations.of([ISSUER], ["be2", AUDIENCE])

    def outcome(value: object) -> object:
        claims["aud"] = value
        try:
            return validate(claims, expect=expect)
        except AuthError as exc:
            return exc.reason

    assert outcome(aud) == outcome([aud])


@given(bound_claims(), st.text(max_size=60).filter(lambda s: s != ISSUER))
def test_wrong_issuer_is_bad_issuer(claims: dict[str, Any], issuer: str) -> None:
    claims["iss"] = issuer
    with pytest.raises(BadIssuer):
        validate(claims)


@given(bound_claims(), namespaces)
def test_subject_disagreeing_with_kubernetes_claim_is_bad_subject(
    claims: dict[str, Any], other: str
) -> None:
    private = claims["kubernetes.io"]
    if other == private["namespace"]:
        other += "x"
    claims["sub"] = f"system:serviceaccount:{other}:{private['serviceaccount']['name']}"
    with pytest.raises(BadSubject):
        validate(claims)


@pytest.mark.parametrize(
    "sub",
    [
        "",
        "system:serviceaccount:default",
        "system:serviceaccount:default:default:extra",
        "system:serviceaccount:Default:default",
        "system:serviceaccount:-bad:default",
        "system:node:default:default",
        "system:serviceaccount:" + "a" * 64 + ":default",
    ],
)
def test_subjects_that_are_not_service_accounts_are_bad_subject(sub: str) -> None:
    claims = {
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "exp": NOW + 100,
        "iat": NOW,
        "sub": sub,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "default"}},
    }
    with pytest.raises(BadSubject):
        validate(claims)


@given(bound_claims())
def test_stale_exactly_when_past_warnafter(claims: dict[str, Any]) -> None:
    warnafter = claims["kubernetes.io"]["warnafter"]
    assert validate(claims, now=warnafter).stale is False
    assert validate(claims, now=warnafter + 1).stale is True


@given(json_values)
def test_arbitrary_json_raises_only_domain_errors(value: object) -> None:
    try:
        claims = decode_claims(msgspec.json.encode(value))
    except Malformed:
        return
    with contextlib.suppress(AuthError):
        validate_claims(claims, EXPECT, NOW)


@given(bound_claims(), st.sampled_from(["exp", "nbf", "iat"]), json_values)
def test_wrongly_typed_times_are_malformed_or_domain_errors(
    claims: dict[str, Any], field: str, value: object
) -> None:
    claims[field] = value
    with contextlib.suppress(AuthError):
        validate(claims)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"\xff\xfe", b'{"iss": 1}', b"1e400"])
def test_undecodable_payloads_are_malformed(raw: bytes) -> None:
    with pytest.raises(Malformed):
        decode_claims(raw)


def test_huge_numbers_are_malformed_not_crashes() -> None:
    with pytest.raises(Malformed):
        decode_claims(b'{"iss":"x","exp":1e400}')


def test_deeply_nested_json_is_malformed() -> None:
    with pytest.raises(Malformed):
        decode_claims(b'{"iss":"x","aud":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


@given(namespaces)
def test_split_subject_round_trips(namespace: str) -> None:
    assert split_subject(f"system:serviceaccount:{namespace}:sa") == (namespace, "sa")


def test_legacy_token_rejected_by_default_and_accepted_when_allowed() -> None:
    legacy = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:default:builder",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/secret.name": "builder-token-abcde",
        "kubernetes.io/serviceaccount/service-account.name": "builder",
        "kubernetes.io/serviceaccount/service-account.uid": "u-1",
    }
    lenient = Expectations.of([ISSUER, "kubernetes/serviceaccount"], [AUDIENCE], allow_legacy=True)
    with pytest.raises(BadIssuer):
        validate(legacy, expect=Expectations.of([ISSUER, "kubernetes/serviceaccount"], [AUDIENCE]))
    identity = validate(legacy, expect=lenient)
    assert (identity.namespace, identity.service_account, identity.service_account_uid) == (
        "default",
        "builder",
        "u-1",
    )
    assert identity.expires_at is None
