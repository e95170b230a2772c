"""`ksa-auth serve` and `ksa-auth verify`: one line and exit 2 on bad settings; verify offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.fake_keyset import FakeKeySet
from entrypoints.cli import main

ROOT = Path(__file__).resolve().parents[2]
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _environment(**settings: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("KSA_")}
    return {**base, **settings}


@pytest.mark.skipif(os.path.exists(f"{SA_DIR}/ca.crt"), reason="running inside a pod")
def test_be2_with_default_settings_outside_a_cluster_stops_with_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "be2", "--port", "0"],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ksa-auth serve be2: KSA_CA_FILE: the cluster CA certificate ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("service", "name", "value"),
    [
        ("be", "KSA_EXPOSE_TOKEN", "perhaps"),
        ("be2", "KSA_VERIFIER", "magic"),
        ("be2", "KSA_DISCOVERY_URL", "http://kubernetes.default.svc/x"),
    ],
)
def test_serve_with_a_bad_setting_exits_2_naming_it(service: str, name: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", service, "--port", "0"],
        cwd=ROOT,
        env=_environment(**{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"ksa-auth serve {service}: {name}: ")


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKeySet:
    # `verify` reads be2's settings from the environment: a saved JWKS makes it work offline.
    keyset = FakeKeySet()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keyset.jwks()))
    for key in [key for key in os.environ if key.startswith("KSA_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("KSA_JWKS_FILE", str(jwks))
    monkeypatch.setenv("KSA_AUDIENCES", "be2")
    return keyset


def test_verify_offline_prints_the_identity(
    offline: FakeKeySet, capsys: pytest.CaptureFixture[str]
) -> None:
    token = offline.mint(namespace="team-a", service_account="api", audiences=["be2"])
    assert main(["verify", token]) == 0
    identity = json.loads(capsys.readouterr().out)
    assert identity["authenticated"] is True
    assert identity["subject"] == "system:serviceaccount:team-a:api"
    assert identity["audiences"] == ["be2"]


def test_verify_offline_rejects_with_the_reason_code(
    offline: FakeKeySet, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong_audience = offline.mint(audiences=["someone-else"])
    assert main(["verify", wrong_audience]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("bad_audience: ")
    assert captured.err.count("\n") == 1
    assert wrong_audience not in captured.err
    unknown = offline.mint(audiences=["be2"], key=offline.generate_unpublished())
    assert main(["verify", unknown]) == 1
    assert capsys.readouterr().err.startswith("unknown_key: ")


def test_verify_reads_stdin(
    offline: FakeKeySet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    token = offline.mint(audiences=["be2"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"Bearer {token}\n"))
    assert main(["verify", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["subject"] == "system:serviceaccount:default:default"


def test_verify_with_bad_settings_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KSA_JWKS_FILE", "/nonexistent/jwks.json")
    assert main(["verify", "a.b.c"]) == 2
    assert capsys.readouterr().err.startswith("ksa-auth verify: KSA_JWKS_FILE: ")


def test_version_and_help_show_defaults_variables_and_exit_codes() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "--version"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert version.returncode == 0 and version.stdout.startswith("ksa-auth ")
    for command, shown in (
        (
            "serve",
            ("(default: 127.0.0.1)", "(default: 8000)", "(default: granian)", "KSA_LOG_FORMAT"),
        ),
        ("verify", ("KSA_JWKS_FILE", "KSA_AUDIENCES")),
        ("devcluster", ("(default: 3607)", "(default: 0)")),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", command, "--help"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        text = " ".join(result.stdout.split())
        assert result.returncode == 0
        for needle in (*shown, "Exit codes: 0 ok, 1 rejected"):
            assert needle in text, (command, needle)


def test_a_garbage_jwks_file_is_a_setting_error_like_a_missing_one(tmp_path: Path) -> None:
    garbage = tmp_path / "jwks.json"
    garbage.write_text("not json")
    for path in (garbage, tmp_path / "missing.json"):
        result = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "verify", "a.b.c"],
            capture_output=True, text=True, check=False, timeout=60,
            env={**os.environ, "KSA_JWKS_FILE": str(path)},
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "KSA_JWKS_FILE" in result.stderr


def test_decode_on_a_terminal_with_no_token_says_how_to_use_it() -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "decode"],
            stdin=follower, capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 2
    assert "pipe one in" in result.stderr and result.stderr.count("\n") == 1
