"""JoseVerifier edge cases over FakeKeySet: algorithms and keys, headers, sizes, and no crash."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fake_keyset import ISSUER, FakeKeySet
from adapters.jose_verifier import JoseVerifier
from domain.errors import AuthError
from domain.identity import Identity
from domain.ports import KeyProvider, PublicJwk
from domain.rules import Expectations

EXPECTATIONS = Expectations.of([ISSUER], [ISSUER])
_KEYS = FakeKeySet()


def run(coro: Coroutine[Any, Any, Identity]) -> Identity:
    return asyncio.run(coro)


def reason(verifier: JoseVerifier, token: str) -> str | None:
    try:
        run(verifier.verify(token))
    except AuthError as exc:
        return exc.reason
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RelabelledKeys(KeyProvider):
    """Serves another provider's keys with some fields replaced (a JWKS that lies)."""

    def __init__(self, inner: FakeKeySet, **changes: Any) -> None:
        self.inner = inner
        self.changes = changes

    async def get_key(self, kid: str) -> PublicJwk:
        jwk = await self.inner.get_key(kid)
        data = {
            name: getattr(jwk, name)
            for name in ("kty", "kid", "alg", "use", "n", "e", "crv", "x", "y")
        }
        return PublicJwk(**(data | self.changes))

    async def keys(self) -> tuple[PublicJwk, ...]:
        return tuple([await self.get_key(k) for k in self.inner.known_kids()])

    async def refresh(self) -> None:
        return None

    def known_kids(self) -> frozenset[str]:
        return self.inner.known_kids()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_kube_shaped_tokens_verify(algorithm: str) -> None:
    keyset = FakeKeySet(algorithm)  # type: ignore[arg-type]
    verifier = JoseVerifier(keyset, EXPECTATIONS)
    identity = run(verifier.verify(keyset.mint(namespace="ns", service_account="sa")))
    assert identity.subject == "system:serviceaccount:ns:sa"


def test_the_header_alg_must_fit_the_key() -> None:
    rsa_keys, ec_keys = FakeKeySet("RS256"), FakeKeySet("ES256")
    claims = rsa_keys.claims(namespace="ns", service_account="sa", service_account_uid="u")
    # An EC-signed token whose header names the RSA key's kid and ES256.
    token = ec_keys.sign(claims, header_overrides={"kid": rsa_keys.signing_kid})
    assert reason(JoseVerifier(rsa_keys, EXPECTATIONS), token) == "unsupported_algorithm"


def test_a_key_published_for_another_alg_is_not_used() -> None:
    keyset = FakeKeySet("ES256")
    lying = RelabelledKeys(keyset, alg="ES384")
    token = keyset.mint(namespace="ns", service_account="sa")
    assert reason(JoseVerifier(lying, EXPECTATIONS), token) == "unsupported_algorithm"


def test_a_curve_that_does_not_fit_the_alg_is_refused() -> None:
    keyset = FakeKeySet("ES256")
    lying = RelabelledKeys(keyset, alg=None, crv="P-384")
    token = keyset.mint(namespace="ns", service_account="sa")
    assert reason(JoseVerifier(lying, EXPECTATIONS), token) == "unsupported_algorithm"


def test_a_broken_published_key_is_unknown_key_not_a_crash() -> None:
    keyset = FakeKeySet()
    lying = RelabelledKeys(keyset, n="AQAB")
    token = keyset.mint(namespace="ns", service_account="sa")
    assert reason(JoseVerifier(lying, EXPECTATIONS), token) in ("unknown_key", "bad_signature")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"kid": None}, "malformed"),
        ({"kid": ""}, "malformed"),
        ({"crit": ["exp"]}, "malformed"),
        ({"alg": "RS512"}, "unsupported_algorithm"),
        ({"alg": "PS256"}, "unsupported_algorithm"),
        ({"alg": "HS256"}, "unsupported_algorithm"),
        ({"alg": "none"}, "unsupported_algorithm"),
        ({"alg": "None"}, "unsupported_algorithm"),
        ({"alg": 256}, "malformed"),
        ({"kid": "not-published"}, "unknown_key"),
    ],
)
def test_header_checks(overrides: dict[str, Any], expected: str) -> None:
    keyset = FakeKeySet()
    claims = keyset.claims(namespace="ns", service_account="sa", service_account_uid="u")
    token = keyset.sign(claims, header_overrides=overrides)
    assert reason(JoseVerifier(keyset, EXPECTATIONS), token) == expected


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "é.b.c",
        "a b.c.d",
        "e30.e30.",
        "!!.e30.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln" + "A" * (16 * 1024),
        "bm90LWpzb24.e30.c2ln",
        "W10.e30.c2ln",
        "A.e30.c2ln",
    ],
)
def test_malformed_tokens_are_malformed(token: str) -> None:
    assert reason(JoseVerifier(FakeKeySet(), EXPECTATIONS), token) == "malformed"


def test_an_empty_signature_is_a_bad_signature() -> None:
    keyset = FakeKeySet()
    header, payload, _ = keyset.mint(namespace="ns", service_account="sa").split(".")
    assert reason(JoseVerifier(keyset, EXPECTATIONS), f"{header}.{payload}.") == "bad_signature"


def test_an_ec_signature_of_the_wrong_length_is_a_bad_signature() -> None:
    keyset = FakeKeySet("ES256")
    header, payload, signature = keyset.mint(namespace="ns", service_account="sa").split(".")
    token = f"{header}.{payload}.{signature}AAAA"
    assert reason(JoseVerifier(keyset, EXPECTATIONS), token) == "bad_signature"


def test_the_issuer_is_checked_before_the_key_as_kube_apiserver_does() -> None:
    foreign = FakeKeySet(issuer="https://elsewhere.example")
    token = foreign.mint(namespace="ns", service_account="sa")
    assert reason(JoseVerifier(FakeKeySet(), EXPECTATIONS), token) == "bad_issuer"


def test_a_valid_signature_does_not_excuse_bad_claims() -> None:
    keyset = FakeKeySet()
    claims = keyset.claims(namespace="ns", service_account="sa", service_account_uid="u")
    claims["sub"] = "system:serviceaccount:other:sa"
    assert reason(JoseVerifier(keyset, EXPECTATIONS), keyset.sign(claims)) == "bad_subject"


def test_imported_keys_follow_a_changed_jwk_with_the_same_kid() -> None:
    keyset = FakeKeySet()
    token = keyset.mint(namespace="ns", service_account="sa")
    keys = RelabelledKeys(keyset)
    verifier = JoseVerifier(keys, EXPECTATIONS)
    assert reason(verifier, token) is None
    keys.changes = {"n": _b64(b"\xc3" * 256)}
    assert reason(verifier, token) == "bad_signature"


_segment = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_json_segment = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
).map(lambda value: _b64(json.dumps(value).encode()))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.tuples(_segment, _segment, _segment).map(".".join),
        st.tuples(_json_segment, _json_segment, _segment).map(".".join),
    )
)
def test_any_input_is_an_auth_error_never_a_crash(token: str) -> None:
    verifier = JoseVerifier(_KEYS, EXPECTATIONS)
    try:
        run(verifier.verify(token))
    except AuthError:
        return
    raise AssertionError("an arbitrary input was accepted")
