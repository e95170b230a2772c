"""be2 against kube-apiserver's own verdicts: it accepts no token kube rejects, and every token it
rejects that kube accepts falls in a row of the README's stricter-than-kube table.

tests/data/fidelity/kube-verdicts.jsonl holds 1,200 tokens and what kube-apiserver's
ServiceAccount authenticator (pkg/serviceaccount jwt.go + claims.go on go-jose v2.6.3) answered
for them at a fixed second, with the API audiences and with `be2` requested (see its README).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from adapters.jose_verifier import JoseVerifier
from adapters.memory_token_source import InMemoryTokenSource
from adapters.static_jwks_file import StaticJwksFile
from adapters.token_review import TokenReviewConfig, TokenReviewVerifier
from domain.errors import AuthError
from domain.ports import Verifier
from domain.rules import Expectations
from tests.fidelity_data import DATA, ISSUER, Verdict, kube_verdicts

pytestmark = pytest.mark.anyio

API_SERVER = "https://kubernetes.default.svc"
AUDIENCES = {"audiences_api": ISSUER, "audiences_be2": "be2"}

# The README's "Where be2 is stricter than kube-apiserver" table, as data: the mutations of the
# verdict file each row covers (by name prefix) and the reasons be2 gives for them.
STRICTER: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "sub missing, empty or not agreeing with kubernetes.io": (("sub",), frozenset({"bad_subject"})),
    "names no real object can have": (("names:ns", "names:sa"), frozenset({"bad_subject"})),
    "size, depth and encoding limits": (
        (
            "names:jti-1100-chars",
            "names:sa=1100-chars",
            "names:pod.name-1100-chars",
            "json:big extra claim",
            "json:deeply nested",
            "json:invalid UTF-8",
            "json:lone surrogate",
            "json:huge-number",
            "hdr:invalid UTF-8",
        ),
        frozenset({"malformed"}),
    ),
    "kid missing, null or empty": (("kid",), frozenset({"malformed"})),
    "exp missing or null": (
        ("exp:missing", "exp:null", "times:all-missing"),
        frozenset({"expired"}),
    ),
    "algorithms other than RS256, ES256, ES384, ES512": (
        ("alg",),
        frozenset({"unsupported_algorithm"}),
    ),
    "aud missing or empty": (("aud",), frozenset({"bad_audience"})),
    "non-canonical base64": (
        (
            "tamper:header non-canonical",
            "tamper:payload non-canonical",
            "sig:non-canonical",
        ),
        frozenset({"bad_signature"}),
    ),
    "crit, including crit [b64] with b64 true": (("hdr:crit", "hdr:b64"), frozenset({"malformed"})),
    "jwk, x5c, x5u, jku, nonce in the header": (
        ("hdr:jwk", "hdr:x5c", "hdr:x5u", "hdr:jku", "hdr:nonce"),
        frozenset({"malformed"}),
    ),
    "whitespace in or around segments": (("text:",), frozenset({"malformed"})),
    "huge nbf or iat": (
        ("nbf:huge", "iat:huge"),
        frozenset({"not_yet_valid", "issued_in_future"}),
    ),
}


VERDICTS = kube_verdicts()


def stricter_row(verdict: Verdict, reason: str) -> str | None:
    """The stricter-than-kube row that explains be2 rejecting what kube accepts, if any."""
    for row, (prefixes, reasons) in STRICTER.items():
        if reason in reasons and any(m.startswith(prefixes) for m in verdict.mutations):
            return row
    return None


def _review_transport(verdict: Verdict) -> httpx.MockTransport:
    # The API server answers exactly what kube answered for this token.
    def answer(request: httpx.Request) -> httpx.Response:
        if not verdict.ok:
            return httpx.Response(201, json={"status": {"error": verdict.error}})
        user = {"username": verdict.user, "uid": "u"}
        status = {"authenticated": True, "user": user, "audiences": [AUDIENCES[verdict.setting]]}
        return httpx.Response(201, json={"status": status})

    return httpx.MockTransport(answer)


async def _decide(make: Callable[[Verdict], Verifier], verdict: Verdict) -> tuple[bool, str]:
    try:
        identity = await make(verdict).verify(verdict.token)
    except AuthError as exc:
        return False, exc.reason
    return True, identity.subject


def _jwks(verdict: Verdict) -> Verifier:
    expectations = Expectations.of([ISSUER], [AUDIENCES[verdict.setting]])
    return JoseVerifier(StaticJwksFile(DATA / "jwks.json"), expectations, lambda: verdict.now)


def _tokenreview(verdict: Verdict) -> Verifier:
    client = httpx.AsyncClient(transport=_review_transport(verdict))
    config = TokenReviewConfig(
        api_server=API_SERVER, audiences=(AUDIENCES[verdict.setting],), issuers=(ISSUER,)
    )
    return TokenReviewVerifier(client, InMemoryTokenSource("own"), config, lambda: verdict.now)


@pytest.mark.parametrize("make", [_jwks, _tokenreview], ids=["jwks", "tokenreview"])
async def test_be2_accepts_nothing_kube_rejects(make: Callable[[Verdict], Verifier]) -> None:
    lenient: list[str] = []
    unexplained: list[str] = []
    stricter: dict[str, int] = dict.fromkeys(STRICTER, 0)
    for verdict in VERDICTS:
        accepted, answer = await _decide(make, verdict)
        if accepted and (not verdict.ok or answer != verdict.user):
            lenient.append(f"{verdict.setting} {verdict.mutations}: {answer}")
        elif not accepted and verdict.ok:
            row = stricter_row(verdict, answer)
            if row is None:
                unexplained.append(f"{verdict.setting} {verdict.mutations}: {answer}")
            else:
                stricter[row] += 1
    assert not lenient, f"{len(lenient)} accepted that kube rejects: {lenient[:5]}"
    assert not unexplained, f"{len(unexplained)} stricter than kube, no row: {unexplained[:5]}"
    assert sum(1 for v in VERDICTS if v.ok) > 100  # the file holds accepted tokens too
    assert any(stricter.values())


def test_every_stricter_row_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Where be2 is stricter than kube-apiserver, and why", 1)[1]
    for row in STRICTER:
        assert f"| {row} |" in table, row


def test_the_classifier_explains_nothing_for_a_reason_outside_the_row() -> None:
    verdict = Verdict("t", 0, ("sub=other",), "audiences_api", True, "x", "")
    assert stricter_row(verdict, "bad_subject") is not None
    assert stricter_row(verdict, "expired") is None


def _class_rows(*prefixes: str) -> list[Verdict]:
    return [v for v in VERDICTS if any(m.startswith(prefixes) for m in v.mutations)]


@pytest.mark.parametrize(
    ("prefixes", "expected"),
    [
        (("iss:dup-exact", "json:dup", "hdr:dup-alg", "hdr:dup-kid", "k8s:dup-key"), "malformed"),
        (("iss:dup-case", "iss:dup-fold"), "malformed"),
        (("hdr:jwk", "hdr:x5c", "hdr:nonce"), "malformed"),
        (("hdr:b64",), "malformed"),
        (("exp:huge",), "expired"),
        (("k8s:pod.name-empty", "k8s:secret-bound,secret.name-empty"), "malformed"),
    ],
    ids=["duplicates", "issuer-folding", "header-members", "b64", "huge-exp", "empty-names"],
)
async def test_each_class_kube_rejects_is_rejected(
    prefixes: tuple[str, ...], expected: str
) -> None:
    rows = [v for v in _class_rows(*prefixes) if not v.ok]
    assert rows, prefixes
    for verdict in rows:
        accepted, answer = await _decide(_jwks, verdict)
        assert not accepted, (verdict.mutations, answer)
