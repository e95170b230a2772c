"""`make bench` with tiny counts: the harness starts everything, prints its table, stops it all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Tiny counts, but real processes: devcluster, and hello, seed and be2 on both servers.
BENCH_TIMEOUT_SECONDS = 300

ROWS = (
    "floor: RSA-2048 verify",
    "JoseVerifier, first sight",
    "CachingVerifier hit",
    "PyJWT jwt.decode",
    "joserfc jwt.decode",
    "uvicorn: Litestar hello-world",
    "granian: Litestar hello-world",
    "uvicorn: be2 /validate-auth, reused token",
    "granian: be2 /validate-auth, reused token",
    "granian: seed, fresh token per request",
    "granian: be2, fresh token per request",
    "be2 JWKS fetches in steady state",
    "SIGTERM be2",
    "be2 RSS after",
    "verified-token cache size",
    "ASGI server: measured winner",
)


@pytest.mark.e2e
def test_bench_smoke_prints_one_table() -> None:
    pytest.importorskip("fastapi", reason="the seed baseline needs the bench extra")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_SECONDS,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    out = completed.stdout
    assert "(smoke: tiny counts" in out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[1].strip() == "figure"
    for row in ROWS:
        assert any(row in line for line in lines), f"no row {row!r} in:\n{out}"
    # Every row has a value; a judged row says PASS or FAIL (figures are meaningless here).
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[1], line
        assert cells[6] in ("", "PASS", "FAIL"), line
    assert "targets met:" in out
