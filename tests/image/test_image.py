"""The built image: locked-down runs, be2 on a JWKS file, and only the runtime closure inside."""

from __future__ import annotations

import errno
import hashlib
import json
import re
import uuid
from pathlib import Path

import dockerfile
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from packaging.utils import canonicalize_name

from adapters.fake_keyset import API_AUDIENCE, FakeKeySet
from domain.claims import ObjectRef
from tests.deploy.test_lock import LOCK, parse_lock
from tests.devcluster_harness import poll
from tests.image.containers import BASE, ROOT, podman, run_container, serve_container

pytestmark = pytest.mark.e2e

VENV = Path("opt/ksa-auth")
SITE_PACKAGES = VENV / "lib" / "python3.11" / "site-packages"
BE_SUBJECT = "system:serviceaccount:default:be-sa"
# What a process sees of itself inside the container, as JSON.
SELF_PROBE = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
try:
    open("/opt/ksa-auth/probe", "w")
    write = 0
except OSError as error:
    write = error.errno
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "write": write,
    **{name: status[name].strip() for name in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs")},
}))
"""


def test_image_config_runs_ksa_auth_as_10001(image: str) -> None:
    (config,) = json.loads(podman("image", "inspect", image).stdout)
    assert config["Config"]["User"] == "10001:10001"
    assert config["Config"]["Entrypoint"] == ["ksa-auth"]
    assert config["Config"]["Cmd"] == ["serve", "be", "--host", "0.0.0.0", "--port", "8080"]
    assert "8080/tcp" in config["Config"]["ExposedPorts"]


def test_runs_read_only_as_10001_without_capabilities(image: str) -> None:
    result = run_container("-c", SELF_PROBE, entrypoint="python")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["uid"], seen["gid"]) == (10001, 10001)
    assert seen["groups"] in ([], [10001])
    assert seen["CapEff"] == seen["CapPrm"] == seen["CapBnd"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1"
    assert seen["write"] == errno.EROFS


def test_help_works(image: str) -> None:
    result = run_container("--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "verify" in result.stdout


def test_devcluster_is_a_development_tool_not_in_the_image(image: str, image_root: Path) -> None:
    result = run_container("devcluster", "--state-dir", "/tmp/state")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("ksa-auth devcluster: the local cluster emulator is a development tool")
    assert not list((image_root / SITE_PACKAGES).glob("devcluster*"))


def test_serve_be2_on_a_mounted_jwks_file(image: str, tmp_path: Path) -> None:
    keys = FakeKeySet()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    jwks.chmod(0o644)
    env = {
        "KSA_JWKS_FILE": "/etc/ksa-auth/jwks.json",
        "KSA_ALLOWED_SUBJECTS": BE_SUBJECT,
        "KSA_LOG_FORMAT": "json",
    }
    token = keys.mint(
        namespace="default",
        service_account="be-sa",
        audiences=[API_AUDIENCE],
        pod=ObjectRef("be-x2b9q", str(uuid.uuid4())),
        node=ObjectRef("node-1", str(uuid.uuid4())),
    )
    head, _, signature = token.rpartition(".")
    middle = len(signature) // 2  # every bit of a middle character is signature, never padding
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = f"{head}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    with (
        serve_container("be2", env, [f"{jwks}:/etc/ksa-auth/jwks.json:ro"]) as be2,
        be2.client() as client,
    ):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        valid = client.get("/validate-auth", headers={"Authorization": f"Bearer {token}"})
        assert valid.status_code == 200, valid.text
        assert valid.json()["subject"] == BE_SUBJECT
        refused = client.get("/validate-auth", headers={"Authorization": f"Bearer {tampered}"})
        assert refused.status_code == 401, refused.text
        assert refused.json()["reason"] == "bad_signature"
        # The docs page's assets come from the image itself, not from a CDN.
        page = client.get("/schema/swagger")
        assert page.status_code == 200
        assert 'src="/schema/swagger-ui/swagger-ui-bundle.js"' in page.text
        bundle = client.get("/schema/swagger-ui/swagger-ui-bundle.js")
        assert bundle.status_code == 200
        assert bundle.content == (ROOT / "entrypoints/swagger_ui/swagger-ui-bundle.js").read_bytes()
        logs = be2.logs()
    assert token not in logs and signature not in logs


def test_two_workers_in_the_read_only_container_sum_their_metrics(
    image: str, tmp_path: Path
) -> None:
    # No PROMETHEUS_MULTIPROC_DIR: serve makes its directory in the container's /tmp tmpfs (the
    # root is read-only), and /metrics sums both workers from it.
    keys = FakeKeySet()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    jwks.chmod(0o644)
    env = {"KSA_JWKS_FILE": "/etc/ksa-auth/jwks.json", "KSA_WORKERS": "2"}
    token = keys.mint(namespace="default", service_account="be-sa", audiences=[API_AUDIENCE])
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    with serve_container("be2", env, [f"{jwks}:/etc/ksa-auth/jwks.json:ro"]) as be2:
        for _ in range(40):
            with be2.client() as client:  # a connection each: either worker takes it
                assert client.get("/validate-auth", headers=headers).status_code == 200
        poll(
            lambda: (
                'ksa_validations_total{result="ok"} 40.0'
                in httpx.get(f"{be2.url}/metrics", timeout=10).text
            ),
            timeout=15,
            what="/metrics summing 40 validations over both workers",
        )
        assert "2 workers" in be2.logs()


def test_venv_holds_the_locked_closure_and_ksa_auth_only(image_root: Path) -> None:
    installed = {
        canonicalize_name(path.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        for path in (image_root / SITE_PACKAGES).glob("*.dist-info")
    }
    pins, _ = parse_lock(LOCK.read_text(encoding="utf-8"))
    assert installed == set(pins) | {"ksa-auth"}
    for tool in ("pip", "setuptools", "wheel", "pytest", "hypothesis", "mypy", "ruff"):
        assert tool not in installed
        assert not (image_root / VENV / "bin" / tool).exists()
    assert not (image_root / SITE_PACKAGES / "_distutils_hack").exists()


def test_runtime_closure_passes_pip_check(image: str) -> None:
    # The venv has no pip: the base's pip inspects it from outside (`pip --python`).
    result = run_container(
        "-m", "pip", "--no-cache-dir", "--python", f"/{VENV}/bin/python", "check",
        entrypoint="/usr/bin/python3",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No broken requirements found" in result.stdout


def test_no_node(image_root: Path) -> None:
    # Swagger UI's assets are package data: nothing in the image runs JavaScript.
    found = [
        str(path.relative_to(image_root))
        for folder in ("usr/bin", "usr/local/bin", "opt/ksa-auth/bin")
        for name in ("node", "nodejs", "npm", "npx")
        if (path := image_root / folder / name).exists()
    ]
    assert not found


COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "cpp", "as", "ld", "make")


def test_no_compiler(image_root: Path) -> None:
    found = [
        str(path.relative_to(image_root))
        for folder in ("usr/bin", "usr/local/bin", "usr/sbin", "bin", "sbin")
        if (image_root / folder).is_dir()
        for path in (image_root / folder).iterdir()
        if path.name in COMPILERS or re.fullmatch(r".*-(gcc|g\+\+|cc)(-\d+)?", path.name)
    ]
    assert found == []


# A PEM block with a body (headers such as Proc-Type included), not the marker alone in code.
PRIVATE_KEY = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=\s:,-]{64,}?"
    rb"-----END [A-Z ]*PRIVATE KEY-----"
)


def _holds_a_private_key(path: Path) -> bool:
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 4_000_000:
        return False
    data = path.read_bytes()
    # Compiled libraries carry published self-test vectors (GnuTLS's FIPS self-tests embed PEM
    # keys in libgnutls), which are nobody's secret; a key file is never an ELF object.
    return not data.startswith(b"\x7fELF") and PRIVATE_KEY.search(data) is not None


def test_no_private_key(image_root: Path) -> None:
    found = [
        str(path.relative_to(image_root))
        for path in image_root.rglob("*")
        if path.relative_to(image_root).parts[:1] not in (("proc",), ("sys",), ("dev",))
        and _holds_a_private_key(path)
    ]
    assert found == []


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_mounts_left_nothing_in_the_image(image_root: Path, base_root: Path) -> None:
    # deploy/image.sh mounts the host's CA bundle and a pip.conf into the build's RUN steps only.
    bundle = Path("etc/ssl/certs/ca-certificates.crt")
    assert _digest(image_root / bundle) == _digest(base_root / bundle)
    assert (image_root / "root").stat().st_mode == (base_root / "root").stat().st_mode
    assert sorted(p.name for p in (image_root / "root").iterdir()) == sorted(
        p.name for p in (base_root / "root").iterdir()
    )
    for leftover in ("etc/pip.conf", "etc/xdg/pip", "root/.config"):
        assert not (image_root / leftover).exists(), leftover


def test_runtime_user_is_added_without_a_warning(image: str) -> None:
    # useradd/groupadd warn about a --system id above SYS_*_MAX; run the runtime stage's RUN lines
    # again in the base (a cached build would not show their output).
    commands = dockerfile.parse_file(str(ROOT / "deploy" / "Dockerfile"))
    runtime = commands[max(i for i, c in enumerate(commands) if c.cmd == "FROM") :]
    runs = [c.value[0] for c in runtime if c.cmd == "RUN"]
    assert runs and any("useradd" in run for run in runs)
    for run in runs:
        result = podman("run", "--rm", "--network", "host", BASE, "sh", "-c", run, check=False)
        assert (result.returncode, result.stderr) == (0, ""), result.stderr


def test_the_key_scan_finds_a_key_file_and_not_a_marker_in_code(tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "tls.key").write_bytes(pem)
    (tmp_path / "code.py").write_text('MARKER = "-----BEGIN PRIVATE KEY-----"\n')
    assert _holds_a_private_key(tmp_path / "tls.key")
    assert not _holds_a_private_key(tmp_path / "code.py")
