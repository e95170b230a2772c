"""The Makefile's set-up, run by make on a stand-in interpreter: version check, stamps, no reuse."""

# The stand-in answers what the Makefile asks a Python (its version, `-m venv`, `-m pip install`)
# and records each call, so the set-up's decisions are tested without PyPI or minutes of pip.

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STAND_IN = f"""#!{sys.executable}
import os, pathlib, sys
args = sys.argv[1:]
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
version = os.environ.get("STAND_IN_VERSION", "3.11.7")
if args[:1] == ["-c"] and "python_version" in args[1]:
    print(version)
    sys.exit(0)
if args[:1] == ["-c"] and "version_info" in args[1]:
    sys.exit(tuple(int(part) for part in version.split(".")[:2]) < (3, 11))
if args[:2] == ["-m", "venv"]:
    bin_dir = pathlib.Path(args[2]) / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(pathlib.Path(__file__).resolve())
    sys.exit(0)
if args[:2] == ["-m", "pip"]:
    sys.exit(int(os.environ.get("STAND_IN_PIP_EXIT", "0")))
sys.exit(f"stand-in python: unexpected {{args}}")
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.fail("make not found")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "requirements.lock").write_text("")
    python = tmp_path / "python-stand-in"
    python.write_text(STAND_IN)
    python.chmod(0o755)
    return tmp_path


def make(checkout: Path, target: str, **env: str) -> tuple[int, str, list[str]]:
    log = checkout / "calls.log"
    log.unlink(missing_ok=True)
    log.touch()
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"PYTHON={checkout / 'python-stand-in'}"],
        cwd=checkout,
        # As a user runs it, not as a make of `make test` (which would print `make[1]: ...`).
        env={**_outside_make(os.environ), "STAND_IN_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, log.read_text().splitlines()


def _outside_make(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}


def test_an_old_python_is_named_in_one_line_before_anything_is_built(checkout: Path) -> None:
    code, output, calls = make(checkout, "runtime", STAND_IN_VERSION="3.10.13")
    assert code != 0
    ours = [line for line in output.splitlines() if not line.startswith("make: ***")]
    assert ours == [
        f"ksa-auth needs Python 3.11 or newer; {checkout / 'python-stand-in'} is 3.10.13 "
        "(make PYTHON=python3.11 ...)"
    ]
    assert not (checkout / ".venv").exists()
    assert not any("venv" in call for call in calls)


def test_a_failed_install_leaves_no_stamp_and_the_next_make_starts_over(checkout: Path) -> None:
    code, output, _ = make(checkout, "runtime", STAND_IN_PIP_EXIT="1")
    assert code != 0
    assert "setup failed: the next make rebuilds .venv from scratch" in output
    assert (checkout / ".venv").exists()
    assert not (checkout / ".venv" / ".runtime").exists()

    code, output, calls = make(checkout, "runtime")
    assert code == 0, output
    assert "setup: removing .venv, left incomplete by an earlier set-up" in output
    assert "-m venv .venv" in calls
    assert (checkout / ".venv" / ".runtime").exists()


def test_run_installs_only_the_runtime_and_test_adds_the_tools_with_visible_phases(
    checkout: Path,
) -> None:
    code, output, calls = make(checkout, "runtime")
    assert code == 0, output
    installs = [call for call in calls if " install " in f" {call} " and "pip" in call]
    # The runtime of `make run` includes the emulator's own extra (it reads RBAC manifests).
    assert installs[-1].endswith("install -e .[devcluster] --requirement deploy/requirements.lock")
    assert not any("[test" in call for call in installs)
    assert [line for line in output.splitlines() if line.startswith("setup:")] == [
        "setup: creating .venv with " + str(checkout / "python-stand-in"),
        "setup: installing ksa-auth, its local cluster emulator and what running them needs",
        "setup: .venv ready to run",
    ]
    assert not any("--quiet" in call or " -q" in call for call in calls)

    code, output, calls = make(checkout, "venv")
    assert code == 0, output
    assert calls[-1].endswith(
        "install -e .[test,bench,devcluster] --requirement deploy/requirements.lock"
    )
    assert "setup: .venv ready to test" in output
    # A complete venv is not touched again.
    code, output, calls = make(checkout, "venv")
    assert (code, calls) == (0, [])
