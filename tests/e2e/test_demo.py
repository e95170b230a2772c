"""`ksa-auth demo` and `ksa-auth up` as a user runs them: real processes, every step, no orphans."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devcluster.flow import SeedFlow
from devcluster.processes import wait_for
from tests.helpers import running

STEP_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (PASS|FAIL)  (.+)$")
TOTAL_STEPS = 1 + len(SeedFlow.STEPS)
RUN_TIMEOUT_SECONDS = 180

pytestmark = pytest.mark.e2e


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", *arguments]


def step_lines(output: str) -> list[re.Match[str]]:
    return [m for line in output.splitlines() if (m := STEP_LINE.match(line))]


def tokens_under(state_dir: Path) -> list[str]:
    return [path.read_text().strip() for path in state_dir.glob("pods/**/token") if path.is_file()]


def test_demo_passes_every_step_and_leaves_nothing_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = subprocess.run(
        cli("demo", "--state-dir", str(state)),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    lines = step_lines(result.stdout)
    assert [int(m[1]) for m in lines] == list(range(1, TOTAL_STEPS + 1)), result.stdout
    failed = [m[0] for m in lines if m[3] != "PASS"]
    assert not failed, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(
        rf"^{TOTAL_STEPS} of {TOTAL_STEPS} steps passed \(\d+\.\d s\)$", result.stdout, re.M
    )
    assert summary, result.stdout
    # Each step once, then the summary, every line within 80 columns.
    steps = result.stdout[result.stdout.index(lines[0][0]) : summary.end()].splitlines()
    assert all(len(line) <= 80 for line in steps), steps
    assert len(step_lines(result.stdout)) == TOTAL_STEPS
    # No token on the screen, nor in the children's logs.
    tokens = tokens_under(state)
    assert tokens
    logs = "".join(p.read_text(errors="replace") for p in (state / "logs").glob("*.log"))
    for token in tokens:
        assert token not in result.stdout
        assert token.split(".")[2] not in logs
    described = json.loads((state / "stack.json").read_text())
    # be calls be2 over TLS by default, with the certificate the devcluster issued.
    assert "be2 (TLS)" in steps[1], steps[:2]
    assert described["be2_url"].startswith("https://127.0.0.1:")
    assert "TLS handshake failed" not in logs
    pids = described["pids"]
    assert set(pids) == {"devcluster", "be", "be2"}
    assert not [name for name, pid in pids.items() if running(pid)]


def test_up_serves_then_sigint_stops_every_child(tmp_path: Path) -> None:
    output = tmp_path / "up.out"
    with output.open("wb") as sink:
        up = subprocess.Popen(
            cli("up"), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        stack_file: list[Path] = []

        def serving() -> bool:
            text = output.read_text(errors="replace")
            match = re.search(r"state and logs in (\S+)", text)
            if match is None or "Serving (Ctrl-C" not in text:
                return False
            path = Path(match[1]) / "stack.json"
            stack_file.append(path)
            return path.exists() and json.loads(path.read_text())["phase"] == "serving"

        wait_for(serving, RUN_TIMEOUT_SECONDS, "`ksa-auth up` serving")
        state_dir = stack_file[-1].parent
        pids: dict[str, int] = json.loads(stack_file[-1].read_text())["pids"]
        assert all(running(pid) for pid in pids.values())
        text = output.read_text()
        assert all(m[3] == "PASS" for m in step_lines(text)), text
        assert "curl -s --cacert " in text
        if shutil.which("curl"):
            # The printed command for be2 works as printed: TLS verified against the CA it names.
            [line] = [c for c in text.splitlines() if c.strip().startswith("curl -si --cacert")]
            shown = subprocess.run(
                ["bash", "-c", line.strip()],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert shown.returncode == 0, shown.stderr
            assert shown.stdout.split(None, 2)[1] == "401", shown.stdout
            assert "missing_token" in shown.stdout
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
    finally:
        if up.poll() is None:
            # A failed assertion above: still let `up` stop its children, then make sure.
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
    assert code == 0, output.read_text()
    assert not [name for name, pid in pids.items() if running(pid)]
    assert not state_dir.exists()  # the temporary state dir is removed at exit
