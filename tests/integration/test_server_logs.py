"""`ksa-auth serve` logs only JSON lines in JSON mode, the server's own included, and names the
port it really serves, also when asked for port 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from adapters.fake_keyset import FakeKeySet

pytestmark = pytest.mark.e2e


def _serving_port(err: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in err.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"serving be2 on' in line:
                return int(json.loads(line)["port"])
        assert process.poll() is None, err.read_text()
        time.sleep(0.05)
    raise AssertionError(f"no 'serving' line within 30 s: {err.read_text()}")


def _until_healthy(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"port {port} did not answer /healthz within 30 s")


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_every_line_is_json_and_the_real_port_is_logged(tmp_path: Path, server: str) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(FakeKeySet().jwks()))
    err = tmp_path / "stderr"
    env = {**os.environ, "KSA_JWKS_FILE": str(jwks), "KSA_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "entrypoints.cli", "serve", "be2", "--port", "0"]
    with open(err, "wb") as stderr:
        process = subprocess.Popen(
            [*command, "--server", server], stdout=stderr, stderr=stderr, env=env
        )
    try:
        port = _serving_port(err, process)
        assert port != 0
        _until_healthy(port)
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = [line for line in err.read_text().splitlines() if line.strip()]
    assert len(lines) >= 2
    for line in lines:
        assert isinstance(json.loads(line), dict), line  # not a plain-text line among them
