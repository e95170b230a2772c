"""`ksa-auth serve --workers` and PROMETHEUS_MULTIPROC_DIR: bad values stop start-up in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.services import free_port

ROOT = Path(__file__).resolve().parents[2]
JWKS_FILE = ROOT / "tests/data/fidelity/jwks.json"


def serve(arguments: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KSA_")}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment |= {"KSA_JWKS_FILE": str(JWKS_FILE), **env}
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "be2", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "env", "names"),
    [
        (["--workers", "0"], {}, "--workers: 0 must be between 1 and 64"),
        (["--workers", "65"], {}, "--workers: 65 must be between 1 and 64"),
        ([], {"KSA_WORKERS": "two"}, "KSA_WORKERS: 'two' is not a whole number"),
    ],
)
def test_a_bad_worker_count_is_one_line(
    arguments: list[str], env: dict[str, str], names: str
) -> None:
    result = serve([*arguments, "--port", str(free_port())], **env)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line == f"ksa-auth serve be2: {names}"


def test_a_metrics_directory_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    result = serve(
        ["--workers", "2", "--port", str(free_port())],
        PROMETHEUS_MULTIPROC_DIR=str(not_a_directory),
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line == (
        f"ksa-auth serve be2: PROMETHEUS_MULTIPROC_DIR: {not_a_directory} is not a directory"
    )
