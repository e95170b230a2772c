"""`ksa-auth devcluster|up|demo` where the emulator's package is absent (as in the image)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGUMENTS = {"devcluster": ["--state-dir", "unused"], "up": [], "demo": []}


def run_cli(hidden: str, arguments: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter in which the module `hidden` cannot be imported."""
    program = (
        "import sys\n"
        f"sys.modules[{hidden!r}] = None\n"
        "from entrypoints.cli import main\n"
        f"sys.exit(main({arguments!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", sorted(ARGUMENTS))
def test_without_the_package_one_line_and_exit_2(command: str) -> None:
    result = run_cli("devcluster", [command, *ARGUMENTS[command]])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ksa-auth {command}: the local cluster emulator is a development tool")
    assert "make run" in line


def test_a_missing_module_inside_the_package_is_not_hidden() -> None:
    # A broken emulator (one of its own modules missing) must show its traceback, not pass
    # for an installation without the emulator.
    result = run_cli("devcluster.flow", ["demo"])
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ModuleNotFoundError" in result.stderr
    assert "not in this installation" not in result.stderr
