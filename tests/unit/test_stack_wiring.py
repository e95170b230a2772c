"""be and be2 are wired only from cluster.json; the printed commands never carry a secret."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import msgspec
import pytest

from devcluster.runner import usage_text
from devcluster.stack import ClusterInfo, Stack, be2_environment, be_environment, child_environment

ADMIN_SECRET = "admin-secret-0123456789"


def cluster_json(state: Path) -> bytes:
    def pod(name: str, service_account: str) -> dict[str, object]:
        volume = state / "pods" / "default" / name / "serviceaccount"
        return {
            "namespace": "default",
            "name": name,
            "uid": f"uid-{name}",
            "service_account": service_account,
            "node": "devcluster-node",
            "volume": str(volume),
            "token_file": str(volume / "token"),
            "ca_file": str(volume / "ca.crt"),
            "extra_tokens": {},
            "tls": None,
        }

    be2 = pod("be2-4k2x1", "be2-sa")
    secret = state / "pods" / "default" / "be2-4k2x1" / "be2-tls"
    be2["tls"] = {
        "cert_file": str(secret / "tls.crt"),
        "key_file": str(secret / "tls.key"),
        "ca_file": str(secret / "ca.crt"),
        "names": ["be2", "be2.default.svc", "127.0.0.1"],
    }
    return json.dumps(
        {
            "url": "https://127.0.0.1:6443",
            "ca_file": str(state / "ca.crt"),
            "issuer": "https://kubernetes.default.svc.cluster.local",
            "api_audience": "https://kubernetes.default.svc.cluster.local",
            "discovery_url": "https://127.0.0.1:6443/.well-known/openid-configuration",
            "jwks_url": "https://127.0.0.1:6443/openid/v1/jwks",
            "admin_url": "http://127.0.0.1:7000",
            "admin_token": ADMIN_SECRET,
            "kubeconfig": str(state / "kubeconfig"),
            "pid": 4242,
            # be2's pod first: "be2-4k2x1" must not be taken for be's pod.
            "pods": [be2, pod("be-7d9f8", "be-sa")],
        }
    ).encode()


@pytest.fixture
def cluster(tmp_path: Path) -> ClusterInfo:
    return msgspec.json.decode(cluster_json(tmp_path), type=ClusterInfo)


def test_be_gets_its_own_pods_token_and_be2s_url(cluster: ClusterInfo, tmp_path: Path) -> None:
    assert be_environment(cluster, "http://127.0.0.1:9002") == {
        "KSA_TOKEN_FILE": str(tmp_path / "pods/default/be-7d9f8/serviceaccount/token"),
        "KSA_BE2_URL": "http://127.0.0.1:9002",
    }
    # Over https, the CA of be2's Secret, as the hardened overlay mounts it.
    assert be_environment(cluster, "https://127.0.0.1:9002") == {
        "KSA_TOKEN_FILE": str(tmp_path / "pods/default/be-7d9f8/serviceaccount/token"),
        "KSA_BE2_URL": "https://127.0.0.1:9002",
        "KSA_BE2_CA_FILE": str(tmp_path / "pods/default/be2-4k2x1/be2-tls/ca.crt"),
    }


def test_be2_trusts_the_cluster_ca_and_allows_only_be(cluster: ClusterInfo, tmp_path: Path) -> None:
    volume = tmp_path / "pods/default/be2-4k2x1/serviceaccount"
    assert be2_environment(cluster) == {
        "KSA_TOKEN_FILE": str(volume / "token"),
        "KSA_CA_FILE": str(volume / "ca.crt"),
        "KSA_API_SERVER": "https://127.0.0.1:6443",
        "KSA_DISCOVERY_URL": "https://127.0.0.1:6443/.well-known/openid-configuration",
        "KSA_ISSUER": "https://kubernetes.default.svc.cluster.local",
        "KSA_AUDIENCES": "https://kubernetes.default.svc.cluster.local",
        "KSA_ALLOWED_SUBJECTS": "system:serviceaccount:default:be-sa",
        "KSA_TLS_CERT_FILE": str(tmp_path / "pods/default/be2-4k2x1/be2-tls/tls.crt"),
        "KSA_TLS_KEY_FILE": str(tmp_path / "pods/default/be2-4k2x1/be2-tls/tls.key"),
    }


def test_our_own_ksa_settings_do_not_leak_into_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSA_VERIFIER", "tokenreview")
    monkeypatch.setenv("KSA_JWKS_FILE", "/tmp/somewhere.json")
    monkeypatch.setenv("KSA_LOG_FORMAT", "text")
    env = child_environment({"KSA_TOKEN_FILE": "/x/token"})
    assert "KSA_VERIFIER" not in env and "KSA_JWKS_FILE" not in env
    assert env["KSA_LOG_FORMAT"] == "text"
    assert env["KSA_TOKEN_FILE"] == "/x/token"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_cluster_repr_hides_the_admin_token(cluster: ClusterInfo) -> None:
    assert ADMIN_SECRET not in repr(cluster)


def test_usage_fetches_tokens_by_substitution_and_pins_the_ca(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    stack = Stack(tmp_path, cluster, "http://127.0.0.1:9001", "https://127.0.0.1:9002", (), 1.0)
    text = usage_text(stack)
    be2_ca = str(tmp_path / "pods/default/be2-4k2x1/be2-tls/ca.crt")
    assert ADMIN_SECRET not in text
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    assert len(commands) == 8
    for command in commands:
        shlex.split(command)  # each line is one well-quoted shell command...
        checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, check=False)
        assert checked.returncode == 0, (command, checked.stderr)  # ...that bash accepts
        if "Authorization: Bearer" in command:
            assert '"Authorization: Bearer $(' in command
    validate = next(c for c in commands if c.endswith(":9002/validate-auth") and " -H " in c)
    assert "$(curl -s http://127.0.0.1:9001/get-jwt | " in validate
    to_be2 = [c for c in commands if "https://127.0.0.1:9002/" in c]
    assert len(to_be2) == 3
    assert all(c.startswith(("curl -s --cacert ", "curl -si --cacert ")) for c in to_be2)
    assert all(f"--cacert {be2_ca} " in c for c in to_be2)
    [newman] = [line for line in text.splitlines() if "newman" in line and " run " in line]
    assert newman.endswith(f"--ssl-extra-ca-certs {be2_ca}")
    jwks = next(c for c in commands if c.endswith("/openid/v1/jwks"))
    assert f"--cacert {cluster.ca_file}" in jwks
    assert "https://127.0.0.1:6443/openid/v1/jwks" in jwks


def test_the_newman_command_never_downloads_newman(
    cluster: ClusterInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devcluster.runner as runner

    stack = Stack(tmp_path, cluster, "http://127.0.0.1:9001", "http://127.0.0.1:9002", (), 1.0)
    # Without tools/newman installed yet, the pinned one is installed first, not fetched by npx.
    monkeypatch.setattr(runner, "LOCAL_NEWMAN", Path("tools/newman/not-installed-yet"))
    [line] = [
        line for line in usage_text(stack).splitlines() if " run " in line and "newman" in line
    ]
    assert "npx" not in line
    assert "newman && " in line and "make -C " in line
    # After `make -C <repo>` the installed newman is named by its path in the checkout.
    assert f"newman && {runner.REPO / runner.LOCAL_NEWMAN} run " in line
    checked = subprocess.run(["bash", "-n", "-c", line.strip()], capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_usage_exports_the_emulators_kubeconfig_for_kubectl(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    stack = Stack(tmp_path, cluster, "http://127.0.0.1:9001", "http://127.0.0.1:9002", (), 1.0)
    lines = [line.strip() for line in usage_text(stack).splitlines()]
    assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}" in lines
    kubectl = [line for line in lines if line.startswith(("kubectl ", "printf "))]
    assert "kubectl create token be-sa --audience be2 --duration 10m" in kubectl
    for command in kubectl:
        checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, check=False)
        assert checked.returncode == 0, (command, checked.stderr)
