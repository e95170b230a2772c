"""be and be2 as real processes on the devcluster: key outage at start, be -> be2, and logs
without tokens (be2 in TokenReview mode: test_tokenreview_rbac.py, with deploy/'s RBAC)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.devcluster_harness import DevCluster
from tests.reliability.services import be2_environment, be_environment, start_service

pytestmark = pytest.mark.e2e

READY_WITHIN_SECONDS = 60.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def poll_status(url: str, wanted: int, within: float = READY_WITHIN_SECONDS) -> int:
    """GET `url` until it answers `wanted` (bounded); returns the last status seen."""
    deadline = time.monotonic() + within
    status = 0
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url, timeout=2.0).status_code
        except httpx.HTTPError:
            status = 0
        if status == wanted:
            return status
        time.sleep(0.1)
    return status


def test_be2_starts_during_a_key_outage_and_recovers(
    fresh_devcluster: DevCluster, tmp_path: Path
) -> None:
    cluster = fresh_devcluster
    cluster.admin("/admin/faults", {"keys": "outage"})
    env = be2_environment(cluster)
    with start_service("be2", env, tmp_path / "logs", wait_ready=False) as be2:
        with be2.client() as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["reason"] == "keys_unavailable"
            token = cluster.pod("be").token()
            refused = client.get("/validate-auth", headers=bearer(token))
            assert refused.status_code == 503
            assert refused.json()["reason"] == "keys_unavailable"
            assert refused.headers["retry-after"].isdigit()
            cluster.admin("/admin/faults", {"keys": "ok"})
            # The background refresh retries (5 s at first, with backoff): bounded poll.
            assert poll_status(f"{be2.url}/readyz", 200) == 200
            accepted = client.get("/validate-auth", headers=bearer(cluster.pod("be").token()))
            assert accepted.status_code == 200
            assert accepted.json()["subject"] == cluster.pod("be").subject
        logs = be2.logs()
    assert token not in logs
    assert token.split(".")[2] not in logs
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(
        line.get("outcome") == "unavailable" and line.get("reason") == "keys_unavailable"
        for line in lines
    )


def test_be_calls_be2_with_its_rotating_token(fresh_devcluster: DevCluster, tmp_path: Path) -> None:
    cluster = fresh_devcluster
    logs = tmp_path / "logs"
    with start_service("be2", be2_environment(cluster), logs) as be2:
        with start_service("be", be_environment(cluster, be2.url), logs) as be:
            with be.client() as client:
                first = client.get("/call-be2").json()
                assert first["be2_status"] == 200, first
                assert first["be2"]["subject"] == cluster.pod("be").subject
                token_before = client.get("/get-jwt").json()["token"]
                cluster.admin("/admin/tokens/rotate")
                deadline = time.monotonic() + READY_WITHIN_SECONDS
                while client.get("/get-jwt").json()["token"] == token_before:
                    assert time.monotonic() < deadline, "be never picked up the rotated token"
                    time.sleep(0.2)
                assert client.get("/call-be2").json()["be2_status"] == 200
            be_logs = be.logs()
        be2_logs = be2.logs()
    assert token_before not in be_logs and token_before not in be2_logs
