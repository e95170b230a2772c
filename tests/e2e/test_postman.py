"""The Postman collection of deploy/postman, run by newman against a stack of real processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.stack import Stack, start_stack

ROOT = Path(__file__).resolve().parents[2]
POSTMAN = ROOT / "deploy" / "postman"
COLLECTION = POSTMAN / "ksa-auth.postman_collection.json"
ENVIRONMENT = POSTMAN / "ksa-auth.postman_environment.json"
LOCAL_NEWMAN = ROOT / "tools" / "newman" / "node_modules" / ".bin" / "newman"
NEWMAN_TIMEOUT_SECONDS = 120

pytestmark = pytest.mark.e2e


def newman() -> str:
    """The newman that `make test` installs under tools/newman, else one on PATH.

    Missing newman fails the test under CI (the setup must install it) and skips it elsewhere.
    """
    if LOCAL_NEWMAN.exists():
        return str(LOCAL_NEWMAN)
    found = shutil.which("newman")
    if found:
        return found
    message = "newman is not installed: `make test` runs `npm ci --prefix tools/newman`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def collection_requests() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(COLLECTION.read_text())["item"]
    return items


def expected_assertions() -> int:
    """One assertion per `pm.test(` in the collection's scripts (none is conditional)."""
    return sum(
        len(re.findall(r"\bpm\.test\(", line))
        for item in collection_requests()
        for event in item.get("event", [])
        for line in event["script"]["exec"]
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def run_newman(stack: Stack, report: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    result = subprocess.run(
        [
            newman(),
            "run",
            str(COLLECTION),
            "--environment",
            str(ENVIRONMENT),
            "--env-var",
            f"be_url={stack.be_url}",
            "--env-var",
            f"be2_url={stack.be2_url}",
            # be2 serves TLS: newman verifies it against the devcluster's CA, as curl does.
            *(("--ssl-extra-ca-certs", stack.be2_ca_file) if stack.be2_ca_file else ()),
            *extra,
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--timeout-request",
            "10000",
            "--color",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=NEWMAN_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    assert report.exists(), f"newman wrote no report (exit {result.returncode}):\n{output[-4000:]}"
    stats: dict[str, Any] = json.loads(report.read_text())["run"]["stats"]
    return result.returncode, output, stats


def test_the_seed_flow_passes_under_newman(stack: Stack, tmp_path: Path) -> None:
    code, output, stats = run_newman(stack, tmp_path / "newman.json")
    assert code == 0, output[-4000:]
    assert expected_assertions() == 12
    assert stats["assertions"] == {"total": 12, "pending": 0, "failed": 0}, output[-4000:]
    assert stats["requests"]["total"] == len(collection_requests())
    assert stats["requests"]["failed"] == 0
    assert stats["testScripts"]["failed"] == 0


def test_newman_fails_when_the_identity_is_not_the_expected_one(
    stack: Stack, tmp_path: Path
) -> None:
    # An environment value outranks the collection variable, as in Postman itself.
    code, output, stats = run_newman(
        stack,
        tmp_path / "newman.json",
        "--env-var",
        "expected_subject=system:serviceaccount:default:someone-else",
    )
    assert code != 0
    # get-jwt's subject, validate-auth's subject, /protected's subject.
    assert stats["assertions"]["failed"] == 3, output[-4000:]
    assert stats["assertions"]["total"] == expected_assertions()
