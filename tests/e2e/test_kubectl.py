"""The real kubectl against `ksa-auth devcluster`, with the kubeconfig the emulator writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devcluster.kubeconfig import service_account_context
from devcluster.runner import kubectl_lines
from tests.devcluster_harness import DevCluster
from tests.helpers import segment
from tests.reliability.services import be2_environment, start_service

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# `make kubectl` (part of `make sysdeps`) puts one here when none is on PATH.
LOCAL_KUBECTL = REPO / "tools" / "kubectl" / "bin" / "kubectl"
KUBECTL_TIMEOUT_SECONDS = 60


def kubectl_binary() -> str:
    """kubectl from PATH, else the project's; missing fails under CI and skips elsewhere."""
    found = shutil.which("kubectl") or (str(LOCAL_KUBECTL) if LOCAL_KUBECTL.exists() else None)
    if found is not None:
        return found
    message = "kubectl is not installed: run `make kubectl`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Kubectl:
    """kubectl with the emulator's kubeconfig, its own HOME and discovery cache."""

    binary: str
    kubeconfig: Path
    home: Path

    def run(self, *arguments: str, context: str | None = None) -> subprocess.CompletedProcess[str]:
        options = ["--cache-dir", str(self.home / "cache")]
        if context is not None:
            options += ["--context", context]
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.kubeconfig),
        }
        return subprocess.run(
            [self.binary, *options, *arguments],
            capture_output=True,
            text=True,
            env=environment,
            timeout=KUBECTL_TIMEOUT_SECONDS,
            check=False,
        )

    def ok(self, *arguments: str, context: str | None = None) -> str:
        done = self.run(*arguments, context=context)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def kubectl(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    kubeconfig = Path(devcluster.raw["kubeconfig"])
    assert kubeconfig.exists()
    return Kubectl(kubectl_binary(), kubeconfig, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture
def be_token(kubectl: Kubectl) -> str:
    return kubectl.ok("create", "token", "be-sa").strip()


def token_review_file(directory: Path, token: str, audiences: list[str]) -> Path:
    path = directory / "tokenreview.yaml"
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences},
    }
    path.write_text(json.dumps(review))
    return path


def test_kubectl_version_shows_the_emulators_version(
    kubectl: Kubectl, devcluster: DevCluster
) -> None:
    shown = kubectl.ok("version")
    with devcluster.client() as client:
        server = client.get("/version").json()
    assert f"Server Version: {server['gitVersion']}" in shown
    assert json.loads(kubectl.ok("version", "-o", "json"))["serverVersion"] == server


def test_kubectl_api_resources_lists_what_the_emulator_serves(kubectl: Kubectl) -> None:
    lines = kubectl.ok("api-resources").splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert [line.split() for line in lines[1:]] == [
        ["tokenreviews", "authentication.k8s.io/v1", "false", "TokenReview"]
    ]


def test_kubectl_create_token_gives_a_token_be2_accepts_for_its_audience(
    kubectl: Kubectl, devcluster: DevCluster, tmp_path: Path
) -> None:
    # kubectl sends this TokenRequest in protobuf and reads the answer in protobuf.
    token = kubectl.ok("create", "token", "be-sa", "--audience", "be2", "--duration", "10m")
    token = token.strip()
    claims = segment(token, 1)
    assert claims["aud"] == ["be2"]
    assert claims["exp"] - claims["iat"] == 600
    environment = be2_environment(devcluster, KSA_AUDIENCES="be2")
    with start_service("be2", environment, tmp_path / "logs") as be2, be2.client() as client:
        answer = client.get("/validate-auth", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["subject"] == "system:serviceaccount:default:be-sa"
        assert answer.json()["audiences"] == ["be2"]
        # The API audience's token is not one be2 takes here.
        api_token = kubectl.ok("create", "token", "be-sa").strip()
        refused = client.get("/validate-auth", headers={"Authorization": f"Bearer {api_token}"})
        assert refused.json()["reason"] == "bad_audience"


def test_kubectl_create_f_of_a_token_review_returns_the_user(
    kubectl: Kubectl, be_token: str, tmp_path: Path
) -> None:
    review = token_review_file(tmp_path, be_token, [])
    username = kubectl.ok("create", "-f", str(review), "-o", "jsonpath={.status.user.username}")
    assert username == "system:serviceaccount:default:be-sa"
    answer = json.loads(kubectl.ok("create", "-f", str(review), "-o", "json"))
    assert answer["status"]["authenticated"] is True
    assert answer["status"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]


def test_kubectl_validates_a_token_review_against_the_served_openapi(
    kubectl: Kubectl, be_token: str, tmp_path: Path
) -> None:
    # Client-side validation, with kube's definitions from GET /openapi/v2 (protobuf).
    review = tmp_path / "misspelt.yaml"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    review.write_text(json.dumps(body | {"spec": {"tokn": be_token}}))
    done = kubectl.run("create", "-f", str(review))
    assert done.returncode == 1
    assert 'unknown field "tokn" in io.k8s.api.authentication.v1.TokenReviewSpec' in done.stderr
    assert be_token not in done.stderr
    explained = kubectl.ok("explain", "tokenreview.spec.audiences")
    assert "FIELD:    audiences <[]string>" in explained


def test_rbacs_403_is_kubectls_error_from_server_forbidden(
    kubectl: Kubectl, be_token: str, tmp_path: Path
) -> None:
    review = token_review_file(tmp_path, be_token, [])
    done = kubectl.run(
        "create",
        "-f",
        str(review),
        context=service_account_context("default", "be-sa"),
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error from server (Forbidden): "), done.stderr
    assert (
        'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:default:'
        'be-sa" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at '
        "the cluster scope"
    ) in done.stderr


def test_a_service_accounts_context_reads_discovery_and_keys(kubectl: Kubectl) -> None:
    context = service_account_context("default", "be2-sa")
    jwks = json.loads(kubectl.ok("get", "--raw", "/openid/v1/jwks", context=context))
    assert jwks["keys"]
    assert "tokenreviews" in kubectl.ok("api-resources", context=context)


def test_the_kubeconfig_never_holds_the_admin_api_token(
    kubectl: Kubectl, devcluster: DevCluster
) -> None:
    assert devcluster.admin_token not in kubectl.kubeconfig.read_text()
    # And that token is no credential of the API server.
    with httpx.Client(
        base_url=devcluster.url, verify=devcluster.ssl_context(), timeout=10.0
    ) as client:
        refused = client.get("/api", headers={"Authorization": f"Bearer {devcluster.admin_token}"})
    assert refused.status_code == 401


def test_the_kubectl_commands_make_run_prints_work_as_printed(
    kubectl: Kubectl, devcluster: DevCluster
) -> None:
    lines = [line.strip() for line in kubectl_lines(str(kubectl.kubeconfig))]
    assert f"export KUBECONFIG={kubectl.kubeconfig}" in lines
    commands = [line for line in lines if line.startswith(("kubectl ", "printf "))]
    environment = {
        "PATH": f"{Path(kubectl.binary).parent}:{os.environ.get('PATH', '')}",
        "HOME": str(kubectl.home),
        "KUBECONFIG": str(kubectl.kubeconfig),
    }
    outcomes = [
        subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            env=environment,
            timeout=KUBECTL_TIMEOUT_SECONDS,
            check=False,
        )
        for command in commands
    ]
    version, token, review, forbidden, jwks = outcomes
    assert version.returncode == 0 and "devcluster" in version.stdout, version.stderr
    assert segment(token.stdout.strip(), 1)["aud"] == ["be2"]
    assert "username: system:serviceaccount:default:be-sa" in review.stdout, review.stderr
    assert forbidden.returncode == 1
    assert forbidden.stderr.startswith("Error from server (Forbidden)"), forbidden.stderr
    assert json.loads(jwks.stdout)["keys"], jwks.stderr
