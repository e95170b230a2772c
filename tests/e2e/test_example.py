"""The example third-party service (examples/reports_service) against the local cluster.

It adopts ksa-auth with the Litestar plugin and the httpx auth only; here it verifies tokens
the devcluster mints, with the keys it fetches from the devcluster like any pod would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from reports_service.app import create_app

from tests.devcluster_harness import DevCluster

pytestmark = pytest.mark.e2e

AUDIENCE = "reports"


class _Upstream(BaseHTTPRequestHandler):
    """Another service: records the Authorization header each call brings."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    _Upstream.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def reports(
    devcluster: DevCluster, upstream: str, tmp_path: Path
) -> Iterator[TestClient[Litestar]]:
    pod = devcluster.pod("be2")  # the example runs with a pod's own token and CA
    upstream_token = tmp_path / "upstream-token"
    upstream_token.write_text(devcluster.mint("reports-sa", audiences=["upstream"]))
    environ = {
        "KSA_TOKEN_FILE": str(pod.token_file),
        "KSA_CA_FILE": str(pod.ca_file),
        "KSA_API_SERVER": devcluster.url,
        "KSA_DISCOVERY_URL": devcluster.discovery_url,
        "KSA_ISSUER": devcluster.issuer,
        "KSA_AUDIENCES": AUDIENCE,
        "REPORTS_READERS": "system:serviceaccount:default:be-sa",
        "REPORTS_UPSTREAM_URL": upstream,
        "REPORTS_UPSTREAM_TOKEN_FILE": str(upstream_token),
    }
    with TestClient(create_app(environ)) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_with_a_bearer_challenge(reports: TestClient[Litestar]) -> None:
    response = reports.get("/reports")
    assert response.status_code == 401
    assert response.json()["reason"] == "missing_token"
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_an_allowed_subject_gets_200(devcluster: DevCluster, reports: TestClient[Litestar]) -> None:
    token = devcluster.mint("be-sa", audiences=[AUDIENCE])
    response = reports.get("/reports", headers=_bearer(token))
    assert response.status_code == 200
    assert response.json() == {"reader": "system:serviceaccount:default:be-sa"}


def test_another_subject_gets_403(devcluster: DevCluster, reports: TestClient[Litestar]) -> None:
    token = devcluster.mint("other-sa", audiences=[AUDIENCE])
    response = reports.get("/reports", headers=_bearer(token))
    assert response.status_code == 403
    assert response.json()["reason"] == "forbidden"


def test_a_token_for_another_audience_is_401(
    devcluster: DevCluster, reports: TestClient[Litestar]
) -> None:
    token = devcluster.mint("be-sa", audiences=["be2"])
    response = reports.get("/reports", headers=_bearer(token))
    assert (response.status_code, response.json()["reason"]) == (401, "bad_audience")


def test_the_upstream_call_carries_the_projected_token(
    devcluster: DevCluster, reports: TestClient[Litestar], tmp_path: Path
) -> None:
    caller = devcluster.mint("other-sa", audiences=[AUDIENCE])
    response = reports.get("/upstream", headers=_bearer(caller))
    assert response.status_code == 200
    assert response.json()["upstream_status"] == 200
    sent = (tmp_path / "upstream-token").read_text()
    assert _Upstream.seen == [f"Bearer {sent}"]


def test_the_apps_own_errors_stay_its_own(reports: TestClient[Litestar]) -> None:
    # Not one of ksa-auth's: Litestar's own 404 and 405 answers, untouched by the plugin.
    assert reports.get("/healthz").status_code == 404
    assert reports.post("/reports").status_code == 405
