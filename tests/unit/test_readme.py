"""The README a newcomer reads first: prerequisites on top, recipes that match the code."""

from __future__ import annotations

import re
from pathlib import Path

from devcluster.flow import COLUMNS
from entrypoints.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_prerequisites_come_first_and_name_every_tool_the_commands_need() -> None:
    first = re.search(r"^## .*$", README, re.M)
    assert first is not None and first[0] == "## Prerequisites"
    prerequisites = _section("## Prerequisites")
    for needed in ("Python 3.11", "make", "npm", "kubectl", "chromium", "chromium-driver"):
        assert needed in prerequisites, needed
    assert README.index("## Prerequisites") < README.index("make run    #")


def test_the_seed_is_introduced_before_it_is_used() -> None:
    first = README.lower().index("seed")
    assert README[first - 5 : first + 11] == '"the seed" below', README[first - 40 : first + 40]


def test_every_ksa_variable_the_readme_names_is_a_setting() -> None:
    named = set(re.findall(r"\bKSA_[A-Z0-9_]+", README))
    assert named, "no KSA_ variable in the README"
    assert named <= set(VARIABLES), sorted(named - set(VARIABLES))


def test_the_shown_step_output_fits_the_columns_the_runner_promises() -> None:
    block = re.search(r"```\n(\[ 1/\d+\] .*?)```", README, re.S)
    assert block is not None, "no step output in the README"
    lines = block[1].splitlines()
    assert all(len(line) <= COLUMNS for line in lines), [x for x in lines if len(x) > COLUMNS]
    assert re.fullmatch(r"\d+ of \d+ steps passed \(\d+\.\d s\)", lines[-1]), lines[-1]


def test_the_recipes_a_first_hour_needs_are_there() -> None:
    # `ksa-auth verify` against the local stack, with the files `up --state-dir` writes.
    assert "ksa-auth up --state-dir .state" in README
    assert "| .venv/bin/ksa-auth verify -" in README
    # Docker Desktop: where to look, and the image a kind node cannot see.
    troubleshooting = _section("### Troubleshooting on Docker Desktop")
    for command in ("kubectl describe pod", "kubectl logs", "ErrImagePull", "desktop-worker"):
        assert command in troubleshooting, command
    # Managed clusters sign with their own issuer.
    assert "kubectl get --raw /.well-known/openid-configuration | jq -r .issuer" in README
