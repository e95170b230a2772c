"""Child supervision with a real stand-in ASGI app: polled until ready, stopped with a bound."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devcluster.processes import (
    Child,
    ChildExited,
    NotReady,
    free_port,
    spawn,
    stop_all,
    wait_for,
    wait_http_ready,
)
from tests.helpers import running

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def stand_in(tmp_path: Path, name: str, mode: str = "") -> tuple[Child, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STAND_IN_MODE": mode,
        "STAND_IN_PID_FILE": str(tmp_path / f"{name}.grandchild"),
    }
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.integration.stand_in_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "on",
    ]
    return spawn(name, argv, env, tmp_path / "logs" / f"{name}.log"), f"http://127.0.0.1:{port}"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as http:
        yield http


def test_ready_by_polling_then_stopped_gracefully(tmp_path: Path, client: httpx.Client) -> None:
    child, url = stand_in(tmp_path, "app")
    try:
        wait_http_ready(f"{url}/readyz", child, client, timeout_seconds=30)
        assert client.get(f"{url}/readyz").status_code == 200
    finally:
        stop_all([child], grace_seconds=10)
    # uvicorn shuts down on SIGTERM, then re-raises it (so -15, or 0 on older releases).
    assert child.process.returncode in (0, -signal.SIGTERM)
    assert not running(child.pid)
    assert "Application shutdown complete" in child.log_path.read_text()


def test_a_child_ignoring_sigterm_is_killed_after_the_bound(
    tmp_path: Path, client: httpx.Client
) -> None:
    child, url = stand_in(tmp_path, "stubborn", mode="ignore-term")
    try:
        wait_http_ready(f"{url}/readyz", child, client, timeout_seconds=30)
    finally:
        stop_all([child], grace_seconds=0.5)
    assert child.process.returncode == -signal.SIGKILL
    assert not running(child.pid)


def test_a_grandchild_left_in_the_group_is_killed_too(tmp_path: Path, client: httpx.Client) -> None:
    child, url = stand_in(tmp_path, "parent", mode="grandchild")
    pid_file = tmp_path / "parent.grandchild"
    try:
        wait_http_ready(f"{url}/readyz", child, client, timeout_seconds=30)
        grandchild = int(pid_file.read_text())
        assert running(grandchild)
    finally:
        stop_all([child], grace_seconds=10)
    wait_for(lambda: not running(grandchild), 10, "grandchild gone")


def test_a_child_that_dies_fails_the_wait_at_once_with_its_log(
    tmp_path: Path, client: httpx.Client
) -> None:
    argv = [sys.executable, "-c", "import sys; print('bad setting: KSA_CA_FILE'); sys.exit(3)"]
    child = spawn("broken", argv, os.environ, tmp_path / "broken.log")
    try:
        with pytest.raises(ChildExited) as raised:
            wait_http_ready(f"http://127.0.0.1:{free_port()}/readyz", child, client, 30)
    finally:
        stop_all([child])
    assert "broken exited with code 3" in str(raised.value)
    assert "bad setting: KSA_CA_FILE" in str(raised.value)


def test_wait_for_gives_up_at_its_bound() -> None:
    with pytest.raises(NotReady, match=r"never: not ready after 0\.1 s"):
        wait_for(lambda: False, 0.1, "never")
