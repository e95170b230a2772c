"""be in-process: /get-jwt, /call-be2 against an in-process be2, readiness, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import TestClient

from adapters.fake_keyset import FakeKeySet
from adapters.memory_token_source import InMemoryTokenSource
from domain.policy import SubjectPolicy
from domain.ports import TokenSource
from entrypoints import be, be2
from entrypoints.container import Container, build_container
from entrypoints.settings import Settings

BE_SUBJECT = "system:serviceaccount:default:be-sa"


class BrokenTokenSource(TokenSource):
    """A token source with a bug (not a domain error)."""

    def current_token(self) -> str:
        raise RuntimeError("bug in the token source")


@pytest.fixture
def keyset() -> FakeKeySet:
    return FakeKeySet()


@pytest.fixture
def tokens(keyset: FakeKeySet) -> InMemoryTokenSource:
    return InMemoryTokenSource(keyset.mint(namespace="default", service_account="be-sa"))


def be2_app(keyset: FakeKeySet) -> Litestar:
    container = build_container(Settings(policy=SubjectPolicy.parse([BE_SUBJECT])))
    container.key_provider.override(providers.Object(keyset))
    return be2.create_app(container)


def be_container(
    token_source: TokenSource, be2_client: httpx.AsyncClient | None = None, **settings: Any
) -> Container:
    container = build_container(Settings(**settings))
    container.token_source.override(providers.Object(token_source))
    if be2_client is not None:
        container.be2_client.override(providers.Object(be2_client))
    return container


@pytest.fixture
def client(keyset: FakeKeySet, tokens: InMemoryTokenSource) -> Iterator[TestClient[Litestar]]:
    # be -> be2 through httpx's ASGI transport: the real be2 app, no socket.
    to_be2 = httpx.AsyncClient(transport=httpx.ASGITransport(app=be2_app(keyset)))
    with TestClient(be.create_app(be_container(tokens, to_be2))) as test_client:
        yield test_client


def test_get_jwt_returns_the_token_and_what_it_says(
    client: TestClient[Litestar], tokens: InMemoryTokenSource
) -> None:
    response = client.get("/get-jwt")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token"] == tokens.token
    assert body["subject"] == BE_SUBJECT
    assert body["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    assert isinstance(body["expires_at"], int)


def test_get_jwt_is_503_token_unavailable_without_a_token(keyset: FakeKeySet) -> None:
    with TestClient(be.create_app(be_container(InMemoryTokenSource(None)))) as test_client:
        response = test_client.get("/get-jwt")
        ready = test_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "token_unavailable"
    assert response.headers["retry-after"].isdigit()
    assert ready.status_code == 503
    assert ready.json()["reason"] == "token_unavailable"


def test_get_jwt_is_404_when_not_exposed(tokens: InMemoryTokenSource) -> None:
    app = be.create_app(be_container(tokens, expose_token=False))
    with TestClient(app) as test_client:
        response = test_client.get("/get-jwt")
        assert response.status_code == 404
        assert tokens.token not in response.text
        assert "/get-jwt" not in test_client.get("/schema/openapi.json").json()["paths"]


def test_call_be2_relays_be2s_answer_and_rereads_the_token(
    client: TestClient[Litestar], keyset: FakeKeySet, tokens: InMemoryTokenSource
) -> None:
    first = client.get("/call-be2")
    assert first.status_code == 200
    assert first.json()["be2_status"] == 200
    assert first.json()["be2"]["subject"] == BE_SUBJECT
    # The kubelet rotated the token: the next call sends the new one.
    tokens.token = keyset.mint(namespace="default", service_account="other")
    second = client.get("/call-be2")
    assert second.json()["be2"]["subject"] == "system:serviceaccount:default:other"


def test_call_be2_relays_401_and_403_bodies(
    client: TestClient[Litestar], keyset: FakeKeySet, tokens: InMemoryTokenSource
) -> None:
    tokens.token = keyset.mint(key=keyset.generate_unpublished())
    response = client.get("/call-be2")
    assert response.status_code == 200
    assert response.json()["be2_status"] == 401
    assert response.json()["be2"]["reason"] == "unknown_key"


def test_call_be2_without_a_token_is_503(client: TestClient[Litestar]) -> None:
    with TestClient(be.create_app(be_container(InMemoryTokenSource(None)))) as test_client:
        response = test_client.get("/call-be2")
    assert response.status_code == 503
    assert response.json()["error"] == "token_unavailable"


def test_call_be2_unreachable_is_502_not_500(tokens: InMemoryTokenSource) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    to_be2 = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    with TestClient(be.create_app(be_container(tokens, to_be2))) as test_client:
        response = test_client.get("/call-be2")
    assert response.status_code == 502
    assert response.json()["error"] == "be2_unreachable"
    assert tokens.token not in response.text


def test_call_be2_relays_non_json_and_refuses_huge_bodies(tokens: InMemoryTokenSource) -> None:
    answers = iter(
        [httpx.Response(500, text="<html>oops"), httpx.Response(200, content=b"x" * 10**6)]
    )
    to_be2 = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: next(answers)))
    with TestClient(be.create_app(be_container(tokens, to_be2))) as test_client:
        not_json = test_client.get("/call-be2").json()
        huge = test_client.get("/call-be2").json()
    assert not_json == {"be2_status": 500, "be2": {"error": "be2's answer is not JSON"}}
    assert huge["be2"] == {"error": "be2's answer is too large to relay"}


def test_the_token_only_goes_to_be2_and_redirects_are_not_followed(
    tokens: InMemoryTokenSource,
) -> None:
    seen: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "https://attacker.invalid/steal"})

    container = be_container(tokens, be2_url="http://be2.test:8080")
    container.be2_client.override(
        providers.Object(
            httpx.AsyncClient(transport=httpx.MockTransport(redirect), follow_redirects=False)
        )
    )
    with TestClient(be.create_app(container)) as test_client:
        response = test_client.get("/call-be2")
    assert [str(r.url) for r in seen] == ["http://be2.test:8080/validate-auth"]
    assert seen[0].headers["authorization"] == f"Bearer {tokens.token}"
    assert response.json()["be2_status"] == 302


def test_the_shared_client_is_closed_on_shutdown(tokens: InMemoryTokenSource) -> None:
    container = be_container(tokens)
    with TestClient(be.create_app(container)):
        client = container.be2_client()
        assert not client.is_closed
    assert client.is_closed


def test_a_token_source_bug_is_503_not_500() -> None:
    with TestClient(be.create_app(be_container(BrokenTokenSource()))) as test_client:
        response = test_client.get("/get-jwt")
    assert response.status_code == 503
    assert response.json()["reason"] == "internal_error"


def test_be_health_ready_metrics_and_schema(client: TestClient[Litestar]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.get("/get-jwt")
    client.get("/call-be2")
    text = client.get("/metrics").text
    assert 'ksa_token_reads_total{outcome="ok"} 2.0\n' in text
    assert 'ksa_be2_calls_total{status="200"} 1.0\n' in text
    schema = client.get("/schema/openapi.json").json()
    assert {"/get-jwt", "/call-be2", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
