"""be2 in-process: the middleware, the guard and the error mapping, with the container's key
provider (or verifier) overridden by fakes; never a 500, never a token in a log line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar import Litestar, get
from litestar.middleware import DefineMiddleware
from litestar.testing import TestClient

from adapters.fake_keyset import FakeKeySet
from adapters.prometheus_statistics import ValidationMetrics
from domain.errors import (
    AuthError,
    BadAudience,
    KeysUnavailable,
    ReviewUnavailable,
    UnknownKey,
)
from domain.identity import Identity
from domain.policy import SubjectPolicy
from domain.ports import KeyProvider, PublicJwk, Verifier
from entrypoints.be2 import _routes, create_app
from entrypoints.container import REVIEW_CACHE_TTL_SECONDS, Container, build_container
from entrypoints.middleware import (
    BearerAuthenticationMiddleware,
    exception_handlers,
    require_subjects,
)
from entrypoints.settings import Settings
from tests.helpers import write_foreign_ca

ALLOWED = "system:serviceaccount:default:be-sa"
ISSUER = "https://kubernetes.default.svc.cluster.local"


# --- hand-written fakes ---------------------------------------------------------------------


class DownKeyProvider(KeyProvider):
    """A key server that never answers (outage at start-up and after)."""

    def __init__(self) -> None:
        self.refreshes = 0

    async def get_key(self, kid: str) -> PublicJwk:
        raise KeysUnavailable("the cluster's JWKS could not be fetched: connection refused")

    async def keys(self) -> tuple[PublicJwk, ...]:
        raise KeysUnavailable("the cluster's JWKS could not be fetched: connection refused")

    async def refresh(self) -> None:
        self.refreshes += 1
        raise KeysUnavailable("the cluster's JWKS could not be fetched: connection refused")

    def known_kids(self) -> frozenset[str]:
        return frozenset()


class RaisingVerifier(Verifier):
    """Raises what it is given, for every token (a domain error, or a bug)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.tokens: list[str] = []

    async def verify(self, token: str) -> Identity:
        self.tokens.append(token)
        raise self.error


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def keyset() -> FakeKeySet:
    return FakeKeySet()


def make_container(
    key_provider: KeyProvider | None = None,
    verifier: Verifier | None = None,
    **settings: Any,
) -> Container:
    settings.setdefault("policy", SubjectPolicy.parse([ALLOWED]))
    settings.setdefault("audiences", ("be2", ISSUER))
    container = build_container(Settings(**settings))
    if key_provider is not None:
        container.key_provider.override(providers.Object(key_provider))
    if verifier is not None:
        container.verifier.override(providers.Object(verifier))
    return container


@pytest.fixture
def client(keyset: FakeKeySet) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(make_container(keyset))) as test_client:
        yield test_client


def be_token(keyset: FakeKeySet, **kwargs: Any) -> str:
    kwargs.setdefault("namespace", "default")
    kwargs.setdefault("service_account", "be-sa")
    return keyset.mint(**kwargs)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_rejected(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["reason"] == reason
    assert body["authenticated"] is (status == 403)
    assert isinstance(body["detail"], str) and body["detail"]


# --- the happy path -------------------------------------------------------------------------


def test_validate_auth_returns_the_identity(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    token = be_token(keyset, audiences=["be2"], expiration_seconds=600)
    response = client.get("/validate-auth", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["authenticated"] is True
    assert body["subject"] == ALLOWED
    assert (body["namespace"], body["service_account"]) == ("default", "be-sa")
    assert body["issuer"] == ISSUER
    assert body["audiences"] == ["be2"]
    assert isinstance(body["expires_at"], int)
    assert body["stale"] is False
    assert set(body) == {
        "authenticated", "subject", "namespace", "service_account", "service_account_uid",
        "pod", "pod_uid", "node", "issuer", "audiences", "expires_at", "stale",
    }  # fmt: skip


def test_each_caller_gets_its_own_answer_every_time(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    # The answers are encoded once per verified identity; interleaved callers must never get
    # each other's, and a repeated token the same bytes with a correct length.
    tokens = {name: be_token(keyset, service_account=name) for name in ("be-sa", "other", "x")}
    for _ in range(3):
        for name, token in tokens.items():
            response = client.get("/validate-auth", headers=bearer(token))
            assert response.status_code == 200
            assert response.json()["service_account"] == name
            assert response.headers["content-length"] == str(len(response.content))
            assert response.headers["content-type"] == "application/json"


def test_validate_auth_behind_no_middleware_is_503_not_an_identity() -> None:
    # Only reachable if someone mounts the handlers without the middleware: fail closed.
    app = Litestar(route_handlers=_routes(Settings()), exception_handlers=exception_handlers())
    with TestClient(app) as bare:
        assert_rejected(bare.get("/validate-auth"), 503, "token_unavailable")


def test_validate_auth_accepts_post(client: TestClient[Litestar], keyset: FakeKeySet) -> None:
    response = client.post("/validate-auth", headers=bearer(be_token(keyset)), content=b"{}")
    assert response.status_code == 200
    assert response.json()["subject"] == ALLOWED


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_scheme_is_case_insensitive(
    client: TestClient[Litestar], keyset: FakeKeySet, scheme: str
) -> None:
    response = client.get(
        "/validate-auth", headers={"Authorization": f"{scheme} {be_token(keyset)}"}
    )
    assert response.status_code == 200


def test_a_stale_token_is_accepted_marked_and_counted(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    # kube-apiserver's extended default token: exp a year out, warnafter = iat + 3607 (passed).
    from domain.claims import ObjectRef

    issued = keyset.clock() - 4000
    token = be_token(
        keyset,
        expiration_seconds=3607,
        pod=ObjectRef("be-1", "uid-1"),
        node=ObjectRef("node-1", "uid-2"),
        issued_at=issued,
    )
    response = client.get("/validate-auth", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["stale"] is True
    assert response.json()["pod"] == "be-1"
    assert "ksa_stale_tokens_total 1.0\n" in client.get("/metrics").text


# --- 401: the token -------------------------------------------------------------------------


def test_no_token_is_401_without_an_error_code(client: TestClient[Litestar]) -> None:
    response = client.get("/validate-auth")
    assert_rejected(response, 401, "missing_token")
    # RFC 6750 §3.1: no error attribute when the request carried no Bearer credentials.
    assert response.headers["www-authenticate"] == 'Bearer realm="be2"'


def test_another_scheme_is_treated_as_no_token(client: TestClient[Litestar]) -> None:
    response = client.get("/validate-auth", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_rejected(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == 'Bearer realm="be2"'


def test_a_tampered_token_is_401_bad_signature_with_the_challenge(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    head, payload, signature = be_token(keyset).split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    response = client.get("/validate-auth", headers=bearer(f"{head}.{payload}.{flipped}"))
    assert_rejected(response, 401, "bad_signature")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="be2", error="invalid_token", error_description="')
    assert re.fullmatch(r'Bearer realm="be2", error="invalid_token", error_description="[^"\\]*"',
                        challenge)  # fmt: skip
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("mint", "reason"),
    [
        ({"audiences": ["someone-else"]}, "bad_audience"),
        ({"issued_at": 1_000_000_000, "expiration_seconds": 600}, "expired"),
        ({"namespace": "default", "service_account": "be-sa", "jti": "x"}, None),
    ],
)
def test_claim_failures_carry_their_reason(
    client: TestClient[Litestar], keyset: FakeKeySet, mint: dict[str, Any], reason: str | None
) -> None:
    response = client.get("/validate-auth", headers=bearer(be_token(keyset, **mint)))
    if reason is None:
        assert response.status_code == 200
    else:
        assert_rejected(response, 401, reason)


def test_an_unpublished_key_is_unknown_key(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    token = be_token(keyset, key=keyset.generate_unpublished())
    assert_rejected(client.get("/validate-auth", headers=bearer(token)), 401, "unknown_key")


def test_the_seeds_token_is_signed_by_a_key_we_do_not_trust(
    client: TestClient[Litestar],
) -> None:
    from tests.unit.test_seed_token import SEED_TOKEN

    response = client.get("/validate-auth", headers=bearer(SEED_TOKEN))
    assert_rejected(response, 401, "unknown_key")


MALFORMED_HEADERS: list[tuple[str, list[tuple[str, bytes]]]] = [
    ("two segments", [("Authorization", b"Bearer eyJhbGciOiJSUzI1NiJ9.e30")]),
    ("two tokens", [("Authorization", b"Bearer a.b.c d.e.f")]),
    ("quoted", [("Authorization", b'Bearer "a.b.c"')]),
    ("tab after the scheme", [("Authorization", b"Bearer\ta.b.c")]),
    ("comma parameter", [("Authorization", b"Bearer a.b.c, realm=x")]),
    ("standard base64", [("Authorization", b"Bearer a+b.c/d.e")]),
    ("padding", [("Authorization", b"Bearer YQ==.Yg==.Yw==")]),
    ("non-UTF-8 bytes", [("Authorization", b"Bearer \xff\xfe.\x80.\xc3")]),
    ("latin-1 letters", [("Authorization", b"Bearer \xe9t\xe9.a.b")]),
    ("64 KiB", [("Authorization", b"Bearer eyJ" + b"A" * 65536)]),
    ("16 KiB + 1", [("Authorization", b"Bearer eyJ" + b"A" * (16 * 1024 - 2))]),
    ("two headers", [("Authorization", b"Bearer a.b.c"), ("Authorization", b"Bearer a.b.c")]),
    ("only dots", [("Authorization", b"Bearer ..")]),
    ("not JSON inside", [("Authorization", b"Bearer bm90.anNvbg.c2ln")]),
]


@pytest.mark.parametrize(
    "headers", [case[1] for case in MALFORMED_HEADERS], ids=[case[0] for case in MALFORMED_HEADERS]
)
def test_malformed_credentials_are_401_malformed(
    client: TestClient[Litestar], headers: list[tuple[str, bytes]]
) -> None:
    response = client.get("/validate-auth", headers=headers)
    assert_rejected(response, 401, "malformed")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_the_error_description_cannot_inject_into_the_header(keyset: FakeKeySet) -> None:
    # An issuer is attacker-chosen text that ends up in the detail; quotes, backslashes and
    # non-ASCII must not break out of the quoted-string (RFC 6750 §3).
    detail = 'issuer "evil\\" , error="none" é\r\nX-Injected: 1'
    app = create_app(make_container(keyset, verifier=RaisingVerifier(BadAudience(detail))))
    with TestClient(app) as test_client:
        response = test_client.get("/validate-auth", headers=bearer("a.b.c"))
    challenge = response.headers["www-authenticate"]
    description = challenge.split('error_description="', 1)[1]
    assert description.count('"') == 1 and description.endswith('"')
    assert "\\" not in description and "\r" not in challenge and "\n" not in challenge
    assert "x-injected" not in response.headers
    assert response.json()["detail"] == detail  # JSON carries it intact, escaped


# --- 403: the guard -------------------------------------------------------------------------


def test_protected_allows_the_listed_subject(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    response = client.get("/protected", headers=bearer(be_token(keyset)))
    assert response.status_code == 200
    assert response.json() == {"message": f"hello, {ALLOWED}", "subject": ALLOWED}


def test_protected_forbids_another_subject(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    token = be_token(keyset, service_account="be2-sa")
    response = client.get("/protected", headers=bearer(token))
    assert_rejected(response, 403, "forbidden")
    assert "system:serviceaccount:default:be2-sa" in response.json()["detail"]
    assert "www-authenticate" not in response.headers
    # validate-auth has no guard: the same caller is authenticated there.
    assert client.get("/validate-auth", headers=bearer(token)).status_code == 200


def test_protected_without_a_token_is_401(client: TestClient[Litestar]) -> None:
    assert_rejected(client.get("/protected"), 401, "missing_token")


def test_an_empty_policy_allows_nobody(keyset: FakeKeySet) -> None:
    with TestClient(create_app(make_container(keyset, policy=SubjectPolicy()))) as test_client:
        response = test_client.get("/protected", headers=bearer(be_token(keyset)))
    assert_rejected(response, 403, "forbidden")


def test_a_namespace_wildcard_allows_its_service_accounts(keyset: FakeKeySet) -> None:
    policy = SubjectPolicy.parse(["system:serviceaccount:team-a:*"])
    with TestClient(create_app(make_container(keyset, policy=policy))) as test_client:
        ok = test_client.get("/protected", headers=bearer(be_token(keyset, namespace="team-a")))
        no = test_client.get("/protected", headers=bearer(be_token(keyset, namespace="team-b")))
    assert ok.status_code == 200
    assert_rejected(no, 403, "forbidden")


def test_require_subjects_guards_any_route(keyset: FakeKeySet) -> None:
    from adapters.jose_verifier import JoseVerifier
    from domain.rules import Expectations

    @get(
        "/reports", guards=[require_subjects(SubjectPolicy.parse([ALLOWED]))], sync_to_thread=False
    )
    def reports() -> dict[str, str]:
        return {"reports": "yes"}

    @get("/open", sync_to_thread=False)
    def open_route() -> dict[str, str]:
        return {"open": "yes"}

    verifier = JoseVerifier(keyset, Expectations.of([ISSUER], [ISSUER]))
    metrics = ValidationMetrics()
    app = Litestar(
        [reports, open_route],
        middleware=[
            DefineMiddleware(BearerAuthenticationMiddleware, verifier=verifier, metrics=metrics)
        ],
        exception_handlers=exception_handlers(),
    )
    with TestClient(app) as test_client:
        assert test_client.get("/reports", headers=bearer(be_token(keyset))).status_code == 200
        other = be_token(keyset, service_account="other")
        assert_rejected(test_client.get("/reports", headers=bearer(other)), 403, "forbidden")
        assert test_client.get("/open", headers=bearer(other)).status_code == 200
        assert_rejected(test_client.get("/open"), 401, "missing_token")


# --- 503: keys or TokenReview unavailable ---------------------------------------------------


def test_key_server_down_at_start_still_starts_then_503_with_retry_after() -> None:
    down = DownKeyProvider()
    with TestClient(create_app(make_container(down))) as test_client:
        assert down.refreshes == 1  # the start-up prefetch was tried
        assert test_client.get("/healthz").status_code == 200
        ready = test_client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "keys_unavailable"
        response = test_client.get(
            "/validate-auth", headers=bearer("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln")
        )
        assert_rejected(response, 503, "keys_unavailable")
        assert response.headers["retry-after"].isdigit()
        assert "www-authenticate" not in response.headers


def test_ready_once_keys_are_loaded(client: TestClient[Litestar], keyset: FakeKeySet) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "verifier": "jwks", "keys": 1}


def test_review_unavailable_is_503(keyset: FakeKeySet) -> None:
    verifier = RaisingVerifier(ReviewUnavailable("TokenReview could not be asked: timeout"))
    with TestClient(create_app(make_container(keyset, verifier=verifier))) as test_client:
        response = test_client.get("/validate-auth", headers=bearer(be_token(keyset)))
    assert_rejected(response, 503, "review_unavailable")
    assert response.headers["retry-after"].isdigit()


def test_a_503_tells_the_caller_nothing_internal(
    keyset: FakeKeySet, caplog: pytest.LogCaptureFixture
) -> None:
    internal = (
        "TLS with https://10.96.0.1:443/openid/v1/jwks failed: certificate verify failed: "
        "unable to get local issuer certificate"
    )
    verifier = RaisingVerifier(KeysUnavailable(internal))
    with TestClient(create_app(make_container(keyset, verifier=verifier))) as test_client:
        response = test_client.get("/validate-auth", headers=bearer(be_token(keyset)))
    assert_rejected(response, 503, "keys_unavailable")
    body = response.text
    assert "10.96.0.1" not in body and "certificate" not in body and "https://" not in body
    # The specifics are in the log, for the operator.
    assert any("10.96.0.1" in record.getMessage() for record in caplog.records)


# --- never a 500 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [RuntimeError("bug"), ZeroDivisionError(), KeyError("kid"), RecursionError()]
)
def test_a_verifier_bug_is_a_401_not_a_500(
    keyset: FakeKeySet, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    token = be_token(keyset)
    verifier = RaisingVerifier(error)
    with TestClient(create_app(make_container(keyset, verifier=verifier))) as test_client:
        response = test_client.get("/validate-auth", headers=bearer(token))
    assert_rejected(response, 401, "malformed")
    assert verifier.tokens == [token]
    assert token not in caplog.text
    assert any(type(error).__name__ in record.getMessage() for record in caplog.records)


def test_a_handler_bug_is_a_503_not_a_500(keyset: FakeKeySet) -> None:
    class BrokenPolicy(SubjectPolicy, frozen=True):
        def allows(self, subject: str) -> bool:
            raise RuntimeError("policy store down")

    app = create_app(make_container(keyset, policy=BrokenPolicy()))
    with TestClient(app) as test_client:
        response = test_client.get("/protected", headers=bearer(be_token(keyset)))
    assert response.status_code == 503
    # The failure shape of every be2 answer, with the generic detail.
    assert response.json() == {
        "authenticated": False,
        "reason": "internal_error",
        "detail": "the service could not answer this request; try again later",
    }
    assert response.headers["retry-after"].isdigit()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("DELETE", "/validate-auth"), ("PUT", "/protected"), ("GET", "/x/healthz")],
)
def test_unknown_routes_and_methods_are_4xx(
    client: TestClient[Litestar], method: str, path: str
) -> None:
    response = client.request(method, path)
    assert 400 <= response.status_code < 500


# --- routes outside authentication ----------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/metrics", "/schema", "/schema/openapi.json", "/schema/swagger"],
)
def test_health_metrics_and_schema_need_no_token(client: TestClient[Litestar], path: str) -> None:
    response = client.get(path, headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 200, (path, response.text)


def test_openapi_has_a_bearer_scheme_used_by_the_protected_routes(
    client: TestClient[Litestar],
) -> None:
    schema = client.get("/schema/openapi.json").json()
    assert schema["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["BearerAuth"]["description"],
    }
    # Required everywhere but on health, readiness and metrics, which need no credentials.
    assert schema["security"] == [{"BearerAuth": []}]
    for path in ("/validate-auth", "/protected"):
        operation = schema["paths"][path]["get"]
        assert operation.get("security", schema["security"]) == [{"BearerAuth": []}]
        assert {"200", "401", "503"} <= set(operation["responses"])
    assert "403" in schema["paths"]["/protected"]["get"]["responses"]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert schema["paths"][path]["get"]["security"] == [{}]


# --- metrics and logs -----------------------------------------------------------------------


def test_metrics_count_results_latency_and_cache(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    token = be_token(keyset)
    for _ in range(3):
        assert client.get("/validate-auth", headers=bearer(token)).status_code == 200
    client.get("/validate-auth")
    client.get("/validate-auth", headers=bearer("a.b.c"))
    text = client.get("/metrics").text
    content_type = client.get("/metrics").headers["content-type"]
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert 'ksa_validations_total{result="ok"} 3.0\n' in text
    assert 'ksa_validations_total{result="missing_token"} 1.0\n' in text
    assert 'ksa_validations_total{result="malformed"} 1.0\n' in text
    assert "ksa_validation_duration_seconds_count 5.0\n" in text
    assert 'ksa_validation_duration_seconds_bucket{le="+Inf"} 5.0\n' in text
    assert "ksa_stale_tokens_total 0.0\n" in text
    assert "# TYPE ksa_jwks_fetches_total counter" in text
    hits = float(re.search(r"^ksa_verified_cache_hits_total (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    misses = float(re.search(r"^ksa_verified_cache_misses_total (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert (hits, misses) == (2, 2)  # "a.b.c" reached the verifier: a miss, never cached


def test_one_log_line_per_request_with_subject_and_outcome_never_the_token(
    client: TestClient[Litestar], keyset: FakeKeySet, caplog: pytest.LogCaptureFixture
) -> None:
    token = be_token(keyset)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    caplog.set_level(logging.INFO)
    client.get("/validate-auth", headers=bearer(token))
    client.get("/protected", headers=bearer(be_token(keyset, service_account="be2-sa")))
    client.get("/validate-auth?access_token=" + token, headers=bearer(tampered))
    client.get("/no-such-route")
    lines = [record for record in caplog.records if record.name == "ksa.access"]
    assert [(r.path, r.status, r.outcome, r.reason) for r in lines] == [  # type: ignore[attr-defined]
        ("/validate-auth", 200, "authenticated", None),
        ("/protected", 403, "forbidden", "forbidden"),
        ("/validate-auth", 401, "rejected", "bad_signature"),
        ("/no-such-route", 404, "error", None),
    ]
    assert lines[0].subject == ALLOWED  # type: ignore[attr-defined]
    assert lines[1].subject == "system:serviceaccount:default:be2-sa"  # type: ignore[attr-defined]
    assert all(r.latency_ms >= 0 and r.method == "GET" for r in lines)  # type: ignore[attr-defined]
    # The test client's own httpx log shows the URL it sent; everything else is the service's.
    served = [r for r in caplog.records if r.name != "httpx"]
    everything = " ".join(f"{r.getMessage()} {r.__dict__}" for r in served)
    for secret in (token, tampered, token.split(".")[2], tampered.split(".")[2]):
        assert secret not in everything


def test_container_is_overridden_not_configured(keyset: FakeKeySet) -> None:
    # No setting selects fakes: the fake came in through the provider override only.
    container = make_container(keyset)
    assert container.key_provider() is keyset
    assert not any("fake" in field.lower() for field in Settings.__struct_fields__)


def test_domain_errors_all_map_to_401_403_or_503() -> None:
    from domain.errors import REASONS
    from entrypoints.middleware import status_for

    statuses = {reason: status_for(cls("x")) for reason, cls in REASONS.items()}
    assert statuses.pop("forbidden") == 403
    unavailable = ("keys_unavailable", "review_unavailable", "token_unavailable", "internal_error")
    assert {statuses.pop(r) for r in unavailable} == {503}
    assert set(statuses.values()) == {401}
    assert issubclass(UnknownKey, AuthError)


def test_tokenreview_answers_are_kept_by_the_verified_cache(tmp_path: Path) -> None:
    from adapters.token_review import TokenReviewVerifier
    from adapters.verified_cache import CachingVerifier

    ca_file = str(write_foreign_ca(tmp_path / "ca.crt"))
    container = build_container(Settings(verifier="tokenreview", ca_file=ca_file))
    verifier = container.verifier()
    # The one token cache of the project, in front of TokenReview (a revocation shows within
    # its TTL); the bare TokenReviewVerifier asks on every call.
    assert isinstance(verifier, CachingVerifier)
    assert isinstance(verifier._inner, TokenReviewVerifier)
    assert verifier._ttl == REVIEW_CACHE_TTL_SECONDS
