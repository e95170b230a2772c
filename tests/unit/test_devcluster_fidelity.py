"""The devcluster's TokenReview against kube-apiserver's own verdicts, token by token.

tests/data/fidelity/kube-verdicts.jsonl holds 1,200 tokens and what kube-apiserver's ServiceAccount
authenticator (pkg/serviceaccount jwt.go + claims.go on go-jose v2.6.3) answered for them at a
fixed second, with the API audiences and with `be2` requested. Here the emulator's Authenticator
runs every one of them with the file's published keys (public halves only, `PublicKeys.of_jwks`),
that issuer, that second as its clock, and the same audience setting.

The oracle's lookups found every object a token names, with the token's own UIDs, except where the
name or the namespace is empty (tests/data/fidelity/README.md). The emulator's registry cannot
hold that, so its lookups are replaced in this test by `OracleObjects`, which answers exactly so
from the token's claims.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devcluster.tokenreview import Authenticator, BoundObjects, PublicKeys
from tests.fidelity_data import DATA, ISSUER, Verdict, kube_verdicts

REQUESTED = {"audiences_api": None, "audiences_be2": ["be2"]}
KEYS = PublicKeys.of_jwks(json.loads((DATA / "jwks.json").read_text(encoding="utf-8")))

PRIMITIVE = "go-jose/go-jose: error in cryptographic primitive"


def _status_error(verdict: Verdict) -> str:
    """kube's answer as the emulator words a TokenReview status.error."""
    if verdict.ok:
        return ""
    if not verdict.handled:
        return "invalid bearer token"
    return f"[invalid bearer token, {verdict.error}]"


VERDICTS = kube_verdicts()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@contextlib.contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    # One extra claim in the file is nested 3,000 deep; json.loads recurses per level.
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def _lenient_json(segment: str) -> Any:
    """A token segment read leniently (last duplicate wins, bad UTF-8 kept); None if it is not."""
    try:
        text = _unb64(segment.strip()).decode("utf-8", "surrogateescape")
        with _recursion_limit(20_000):
            return json.loads(text)
    except (ValueError, IndexError):
        return None


class OracleObjects(BoundObjects):
    """The oracle's lookups: any named object exists, with the UID the token claims for it."""

    def __init__(self, token: str) -> None:
        parts = token.split(".")
        claims = _lenient_json(parts[1]) if len(parts) == 3 else None
        private = claims.get("kubernetes.io") if isinstance(claims, dict) else None
        self._private = private if isinstance(private, dict) else {}

    def _uid(self, member: str, *names: str) -> str | None:
        ref = self._private.get(member)
        uid = ref.get("uid", "") if isinstance(ref, dict) else ""
        return uid if all(names) and isinstance(uid, str) else None

    def service_account_uid(self, namespace: str, name: str) -> str | None:
        return self._uid("serviceaccount", namespace, name)

    def pod_uid(self, namespace: str, name: str) -> str | None:
        return self._uid("pod", namespace, name)

    def secret_uid(self, namespace: str, name: str) -> str | None:
        return self._uid("secret", namespace, name)

    def node_uid(self, name: str) -> str | None:
        return self._uid("node", name)


@dataclass(frozen=True)
class Answer:
    authenticated: bool
    username: str
    error: str


def _emulator(verdict: Verdict) -> Answer:
    authenticator = Authenticator(
        ISSUER, (ISSUER,), KEYS, OracleObjects(verdict.token), lambda: verdict.now
    )
    review = authenticator.authenticate(verdict.token, REQUESTED[verdict.setting])
    return Answer(review.authenticated, review.username, review.error)


@pytest.mark.parametrize("setting", list(REQUESTED))
def test_the_emulator_answers_every_token_as_kube_did(setting: str) -> None:
    verdicts = [v for v in VERDICTS if v.setting == setting]
    wrong: list[str] = []
    for verdict in verdicts:
        answer = _emulator(verdict)
        if answer.authenticated != verdict.ok or (verdict.ok and answer.username != verdict.user):
            wrong.append(f"{verdict.mutations}: kube {verdict.ok}, emulator {answer}")
        elif answer.error != _status_error(verdict):
            wrong.append(f"{verdict.mutations}: kube {_status_error(verdict)!r}, {answer}")
    assert not wrong, f"{len(wrong)} of {len(verdicts)} differ from kube: {wrong[:5]}"
    assert len(verdicts) == 1200
    assert sum(v.ok for v in verdicts) > 100  # the file holds accepted tokens too


# Each class that be2 once let through, as the verdict file names its rows. The emulator must
# answer them as kube did: rejected (mostly), with kube's error, or accepted where kube accepts
# (`ISS` before `iss`, a well-formed jwk or x5c, b64 false signed the RFC 7797 way).
CLASSES = {
    "duplicate-members": (
        "iss:dup-exact",
        "json:dup",
        "hdr:dup-alg",
        "hdr:dup-kid",
        "k8s:dup-key",
    ),
    "issuer-case-folding": ("iss:dup-case", "iss:dup-fold", "iss:key-uppercase-only"),
    "typed-header-members": ("hdr:jwk", "hdr:x5c", "hdr:nonce", "hdr:jku", "hdr:x5u"),
    "b64-false": ("hdr:b64",),
    "huge-numeric-dates": ("exp:huge", "nbf:huge", "iat:huge"),
    "fractional-numeric-dates": ("exp=float", "nbf=float", "iat=float"),
    "empty-bound-object-names": (
        "k8s:pod.name-empty",
        "k8s:secret-bound,secret.name-empty",
        "k8s:node-bound(no pod),node.name-empty",
        "k8s:pod-bound,node.name-empty",
    ),
}


@pytest.mark.parametrize("prefixes", list(CLASSES.values()), ids=list(CLASSES))
def test_each_class_gets_kubes_answer(prefixes: tuple[str, ...]) -> None:
    rows = [v for v in VERDICTS if any(m.startswith(prefixes) for m in v.mutations)]
    assert any(not v.ok for v in rows), prefixes
    for verdict in rows:
        answer = _emulator(verdict)
        assert (answer.authenticated, answer.username or None) == (verdict.ok, verdict.user), (
            verdict.mutations,
            verdict.setting,
            answer,
        )
        assert answer.error == _status_error(verdict), (
            verdict.mutations,
            answer.error,
            _status_error(verdict),
        )


def test_kube_words_for_the_classes_are_the_emulators() -> None:
    # One row of each kind of refusal, by kube's exact text.
    expected = {
        "json: duplicate key 'iss' in object",
        "json: duplicate key 'kubernetes.io' in object",
        "service account token has expired",
        "service account token has been invalidated",
        PRIMITIVE,
    }
    seen = {
        v.error
        for v in VERDICTS
        if v.error in expected and _emulator(v).error == f"[invalid bearer token, {v.error}]"
    }
    assert seen == expected
