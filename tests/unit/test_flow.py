"""The demo's steps and report against a fake be/be2 pair: passes and failures are both reported."""

from __future__ import annotations

import base64
import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devcluster.flow import (
    FlowTargets,
    SeedFlow,
    StepFailed,
    StepResult,
    render_step,
    render_summary,
    run_steps,
    tamper_signature,
    unverified,
)
from devcluster.stack import ClusterInfo, PodInfo

ISSUER = "https://kubernetes.default.svc.cluster.local"
BE_SUBJECT = "system:serviceaccount:default:be-sa"
BE2_SUBJECT = "system:serviceaccount:default:be2-sa"


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class FakeCluster:
    """be and be2 as one httpx transport: tokens are 'signed' by being remembered.

    The switches make one behaviour wrong at a time, so each step can be seen to fail.
    """

    kid: str = "kid-one-aaaaaaaa"
    serial: itertools.count[int] = field(default_factory=itertools.count)
    issued: set[str] = field(default_factory=set)
    be_token: str = ""
    be2_token: str = ""
    accept_anything: bool = False
    forbid_nobody: bool = False
    rotate_tokens_ignored: bool = False
    admin_calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.be_token = self.mint(BE_SUBJECT, "be-7d9f8")
        self.be2_token = self.mint(BE2_SUBJECT, "be2-4k2x1")

    def mint(self, subject: str, pod: str) -> str:
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": [ISSUER],
            "exp": 4_000_000_000,
            "jti": f"jti-{next(self.serial)}",
            "kubernetes.io": {
                "namespace": "default",
                "serviceaccount": {"name": subject.rsplit(":", 1)[1]},
                "pod": {"name": pod},
            },
        }
        signature = base64.urlsafe_b64encode(bytes(range(64))).rstrip(b"=").decode()
        token = f"{_segment({'alg': 'RS256', 'kid': self.kid})}.{_segment(claims)}.{signature}"
        self.issued.add(token)
        return token

    def admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.admin_calls.append(path)
        if path == "/admin/signing-keys/rotate":
            self.kid = f"kid-{next(self.serial)}-bbbbbbbb"
            if body.get("retire_previous"):
                self.issued.clear()
            return {"kid": self.kid}
        if path == "/admin/tokens/rotate" and not self.rotate_tokens_ignored:
            self.be_token = self.mint(BE_SUBJECT, "be-7d9f8")
            self.be2_token = self.mint(BE2_SUBJECT, "be2-4k2x1")
        return {}

    def identity(self, token: str) -> dict[str, Any]:
        _, claims = unverified(token)
        assert claims.kubernetes is not None and claims.kubernetes.pod is not None
        return {
            "authenticated": True,
            "subject": claims.sub,
            "namespace": claims.kubernetes.namespace,
            "service_account": claims.kubernetes.serviceaccount.name,
            "pod": claims.kubernetes.pod.name,
            "node": "devcluster-node",
            "issuer": claims.iss,
            "audiences": [ISSUER],
            "expires_at": 4_000_000_000,
            "stale": False,
        }

    def authenticate(self, request: httpx.Request) -> dict[str, Any] | httpx.Response:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        if not header:
            return httpx.Response(401, json={"authenticated": False, "reason": "missing_token"})
        if token not in self.issued and not self.accept_anything:
            return httpx.Response(
                401,
                json={"authenticated": False, "reason": "bad_signature", "detail": "no"},
                headers={"WWW-Authenticate": 'Bearer realm="be2", error="invalid_token"'},
            )
        return self.identity(token)

    def handle(self, request: httpx.Request) -> httpx.Response:
        host, path = request.url.host, request.url.path
        if host == "be" and path == "/get-jwt":
            body = {"token": self.be_token, "subject": BE_SUBJECT, "expires_at": 4_000_000_000}
            return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})
        if host == "be" and path == "/call-be2":
            inner = self.handle(
                httpx.Request(
                    "GET",
                    "http://be2/validate-auth",
                    headers={"Authorization": f"Bearer {self.be_token}"},
                )
            )
            return httpx.Response(200, json={"be2_status": inner.status_code, "be2": inner.json()})
        if host == "be2" and path in ("/validate-auth", "/protected"):
            result = self.authenticate(request)
            if isinstance(result, httpx.Response):
                return result
            if path == "/protected":
                if result["subject"] != BE_SUBJECT and not self.forbid_nobody:
                    return httpx.Response(403, json={"reason": "forbidden"})
                return httpx.Response(200, json={"message": "ok", "subject": result["subject"]})
            return httpx.Response(200, json=result)
        return httpx.Response(404, json={"error": "not_found"})


def _targets(cluster: FakeCluster, other_token_file: Path) -> FlowTargets:
    """be and be2 as cluster.json describes them; only be2's token file is read."""
    info = ClusterInfo(
        url="https://127.0.0.1:6443",
        ca_file="/unused/ca.crt",
        issuer=ISSUER,
        api_audience=ISSUER,
        discovery_url="https://127.0.0.1:6443/.well-known/openid-configuration",
        jwks_url="https://127.0.0.1:6443/openid/v1/jwks",
        admin_url="http://127.0.0.1:7000",
        pods=(
            PodInfo("default", "be-7d9f8", "be-sa", "/unused/token", "/unused/ca.crt"),
            PodInfo("default", "be2-4k2x1", "be2-sa", str(other_token_file), "/unused/ca.crt"),
        ),
    )
    return FlowTargets("http://be", "http://be2", info, cluster.admin)


def _run(cluster: FakeCluster, tmp_path: Path) -> list[StepResult]:
    other = tmp_path / "be2-token"
    other.write_text(cluster.be2_token + "\n")
    targets = _targets(cluster, other)
    with httpx.Client(transport=httpx.MockTransport(cluster.handle)) as client:
        return run_steps(SeedFlow(targets, client).steps(), io.StringIO(), first_number=2)


def _verdicts(results: list[StepResult]) -> dict[str, bool]:
    return {r.title: r.passed for r in results}


def test_every_step_passes_against_a_correct_pair(tmp_path: Path) -> None:
    cluster = FakeCluster()
    results = _run(cluster, tmp_path)
    assert [r.number for r in results] == list(range(2, 2 + len(SeedFlow.STEPS)))
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert cluster.admin_calls == [
        "/admin/signing-keys/rotate",
        "/admin/tokens/rotate",
        "/admin/tokens/rotate",
    ]


def test_a_be2_accepting_tampered_tokens_fails_that_step_only(tmp_path: Path) -> None:
    verdicts = _verdicts(_run(FakeCluster(accept_anything=True), tmp_path))
    assert verdicts.pop("tampered token rejected") is False
    assert all(verdicts.values())


def test_a_guard_letting_be2_sa_in_fails_the_forbidden_step(tmp_path: Path) -> None:
    results = _run(FakeCluster(forbid_nobody=True), tmp_path)
    failed = [r for r in results if not r.passed]
    assert [r.title for r in failed] == ["/protected forbids be2-sa"]
    assert failed[0].figure == "200, expected 403"


def test_a_token_file_never_rewritten_fails_both_rotation_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devcluster.flow.SETTLE_SECONDS", 0.2)
    verdicts = _verdicts(_run(FakeCluster(rotate_tokens_ignored=True), tmp_path))
    assert verdicts.pop("signing-key rotation survived") is False
    assert verdicts.pop("token-file rotation picked up") is False
    assert all(verdicts.values())


def test_no_token_makes_dependent_steps_fail_with_a_reason_not_a_crash(tmp_path: Path) -> None:
    cluster = FakeCluster()
    cluster.be_token = ""
    results = _run(cluster, tmp_path)
    assert not results[0].passed and results[0].figure == "200 but no token in the body"
    assert results[1].figure == "no token: step 'GET be /get-jwt' did not pass"
    assert not any(r.passed for r in results if r.title != "/protected forbids be2-sa")


def test_no_line_or_figure_contains_a_token(tmp_path: Path) -> None:
    cluster = FakeCluster(accept_anything=True)
    out = io.StringIO()
    other = tmp_path / "be2-token"
    other.write_text(cluster.be2_token)
    targets = _targets(cluster, other)
    with httpx.Client(transport=httpx.MockTransport(cluster.handle)) as client:
        results = run_steps(SeedFlow(targets, client).steps(), out, first_number=2)
    text = out.getvalue() + render_summary(results, len(results), 1.0)
    for token in cluster.issued:
        for part in token.split("."):
            assert part not in text


def test_tamper_changes_only_the_signature_and_decodes_to_different_bytes() -> None:
    token = FakeCluster().be_token
    tampered = tamper_signature(token)
    assert tampered.split(".")[:2] == token.split(".")[:2]
    assert tampered != token
    original, changed = (
        base64.urlsafe_b64decode(t.split(".")[2] + "==") for t in (token, tampered)
    )
    assert len(original) == len(changed)
    assert sum(a != b for a, b in zip(original, changed, strict=True)) == 1


def test_run_steps_reports_an_unexpected_exception_as_a_failure() -> None:
    def boom() -> str:
        raise httpx.ConnectError("connection refused")

    def fine() -> str:
        return "ok"

    out = io.StringIO()
    results = run_steps([("boom", boom), ("fine", fine)], out, first_number=3, total=4)
    assert [(r.number, r.passed) for r in results] == [(3, False), (4, True)]
    assert results[0].figure == "ConnectError: connection refused"
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[3/4] FAIL  boom")
    assert lines[1].strip() == "ConnectError: connection refused"
    assert lines[2].startswith("[4/4] PASS  fine")


def test_step_failed_message_is_the_figure() -> None:
    def bad() -> str:
        raise StepFailed("401 (bad_audience), expected 200")

    (result,) = run_steps([("x", bad)], io.StringIO())
    assert result.figure == "401 (bad_audience), expected 200"


def test_a_step_is_its_status_line_then_its_figure_indented_below() -> None:
    block = render_step(StepResult(3, "title", True, "figure", 12.4), total=11).splitlines()
    assert block[0].startswith("[ 3/11] PASS  title ")
    assert block[0].endswith("  12 ms")
    assert block[1] == " " * len("[ 3/11] ") + "figure"


def test_every_line_of_a_step_fits_80_columns_and_keeps_every_word() -> None:
    figure = "401 (bad_audience), expected 200: " + " ".join(f"word{i}" for i in range(40))
    long_path = "/tmp/" + "x" * 120 + "/logs"
    for text in (figure, long_path):
        result = StepResult(10, "a title much longer than the column for it " * 2, False, text, 1e6)
        block = render_step(result, total=11).splitlines()
        assert all(len(line) <= 80 for line in block), block
        assert block[0].startswith("[10/11] FAIL  a title") and block[0].endswith("1000000 ms")
        shown = "".join(line.strip() for line in block[1:])
        assert shown.replace(" ", "") == text.replace(" ", "")


def test_summary_is_one_line_counting_failed_and_unrun_steps() -> None:
    results = [
        StepResult(1, "services started", True, "ready", 1500.0),
        StepResult(2, "GET be /get-jwt", False, "503 (token_unavailable), expected 200", 3.0),
    ]
    assert render_summary(results, 2, 1.54) == "1 of 2 steps passed, FAILED: 2 (1.5 s)"
    assert render_summary(results[:1], 1, 0.5) == "1 of 1 steps passed (0.5 s)"
    assert (
        render_summary(results[1:], 11, 3.0)
        == "0 of 11 steps passed, FAILED: 2, 10 not run (3.0 s)"
    )
