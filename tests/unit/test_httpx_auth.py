"""The httpx auth: our token to the origins named, re-read per request, to nowhere else."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapters.fake_keyset import FakeKeySet
from adapters.httpx_auth import ServiceAccountTokenAuth
from adapters.memory_token_source import InMemoryTokenSource
from domain.errors import TokenUnavailable


def _client(auth: httpx.Auth, seen: list[str | None]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200)

    return httpx.Client(transport=httpx.MockTransport(answer), auth=auth)


def test_the_token_goes_to_the_named_origin_and_follows_rotation() -> None:
    source = InMemoryTokenSource("first")
    seen: list[str | None] = []
    with _client(ServiceAccountTokenAuth(source, origins=["http://be2"]), seen) as client:
        client.get("http://be2/validate-auth")
        source.token = "second"  # the kubelet rotated the file
        client.get("http://be2:80/validate-auth")  # the same origin, its port spelt out
    assert seen == ["Bearer first", "Bearer second"]


@pytest.mark.parametrize(
    "url",
    ["https://be2/validate-auth", "http://be2:8080/", "http://attacker.invalid/", "http://be3/"],
)
def test_no_token_to_any_other_origin(url: str) -> None:
    seen: list[str | None] = []
    auth = ServiceAccountTokenAuth(InMemoryTokenSource("secret"), origins=["http://be2"])
    with _client(auth, seen) as client:
        client.get(url)
    assert seen == [None]


def test_an_unreadable_token_fails_the_request_not_silently() -> None:
    auth = ServiceAccountTokenAuth(InMemoryTokenSource(None), origins=["http://be2"])
    with _client(auth, []) as client, pytest.raises(TokenUnavailable):
        client.get("http://be2/")


def test_from_file_reads_the_projected_token(tmp_path: Path) -> None:
    token = FakeKeySet().mint(namespace="default", service_account="be-sa")
    path = tmp_path / "token"
    path.write_text(token + "\n")
    seen: list[str | None] = []
    auth = ServiceAccountTokenAuth.from_file(str(path), origins=["http://be2"])
    with _client(auth, seen) as client:
        client.get("http://be2/")
    assert seen == [f"Bearer {token}"]


def test_at_least_one_origin_is_named() -> None:
    with pytest.raises(ValueError, match="origin"):
        ServiceAccountTokenAuth(InMemoryTokenSource("t"), origins=[])
