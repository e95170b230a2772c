"""Server limits: the open-file limit raised to hold the connections; be2's own 431 and 414."""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys

import pytest
from litestar.testing import TestClient

from adapters.fake_keyset import FakeKeySet
from entrypoints.be2 import create_app
from entrypoints.server_limits import MAX_CONNECTIONS, MAX_HEADER_FIELDS, MAX_TARGET_BYTES
from tests.unit.test_be2_app import make_container

_PROBE = """
import json, logging, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
from entrypoints.server_limits import connection_limit
limit = connection_limit(int(sys.argv[3]))
print(json.dumps([limit, *resource.getrlimit(resource.RLIMIT_NOFILE)]))
"""


def _run(soft: int, hard: int, workers: int = 1) -> tuple[int, int, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(soft), str(hard), str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    *logs, last = done.stdout.strip().splitlines()
    limit, new_soft, new_hard = json.loads(last)
    return limit, new_soft, new_hard, "\n".join(logs)


def _hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


@pytest.mark.skipif(_hard_limit() < MAX_CONNECTIONS + 256, reason="hard open-file limit too low")
def test_the_soft_limit_is_raised_to_hold_every_connection() -> None:
    limit, soft, hard, logs = _run(1024, _hard_limit())
    assert limit == MAX_CONNECTIONS
    assert soft == MAX_CONNECTIONS + 256
    assert hard == _hard_limit()
    assert logs == ""


def test_a_low_hard_limit_serves_fewer_connections_and_says_so() -> None:
    limit, soft, _, logs = _run(1024, 4096, workers=2)
    assert soft == 4096
    assert limit == (4096 - 256) // 2
    assert "WARNING open-file limit 4096: serving 1920 connections per worker" in logs


def test_be2_refuses_too_many_fields_and_a_long_target_before_its_routes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fields = {f"x-field-{i}": "v" for i in range(MAX_HEADER_FIELDS)}
    with TestClient(create_app(make_container(FakeKeySet()))) as client:
        # The test client adds host, accept, accept-encoding, connection and user-agent.
        assert client.get("/healthz", headers=dict(list(fields.items())[:50])).status_code == 200
        over = client.get("/healthz", headers=fields)
        assert over.status_code == 431
        assert over.json()["detail"] == f"more than {MAX_HEADER_FIELDS} header fields"
        # A path, not a query: the test client's raw_path holds the query too, servers' not.
        target = "/" + "p" * (MAX_TARGET_BYTES - 1)
        assert client.get(target).status_code == 404
        caplog.clear()  # earlier lines may be captured too, whatever the level was then
        with caplog.at_level(logging.INFO, logger="ksa.access"):
            assert client.get(target + "p").status_code == 414
        # Refused, and still one access line with its status.
        lines = [r.getMessage() for r in caplog.records if r.name == "ksa.access"]
        assert lines == [f"GET {target[:512]} 414"]  # the logged path is cut at 512
