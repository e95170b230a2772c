"""Start `ksa-auth devcluster` as a real process for tests, and talk to it over its own CA."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

__all__ = [
    "DevCluster",
    "DevPod",
    "poll",
    "start_devcluster",
]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
# The grants the emulator's own tests need (be2-sa: TokenReview, be-sa: TokenRequest).
TEST_RBAC = ROOT / "tests" / "data" / "rbac" / "test-callers.yaml"
# The default pods are the seed's setup, deploy/'s docker-desktop overlay: its RBAC objects,
# plus the tests' grants.
DEFAULT_RBAC = (OVERLAYS / "docker-desktop", TEST_RBAC)
# The devcluster must serve within 3 s; a loaded CI machine gets a wider bound.
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


def poll(
    probe: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `probe` until it returns something truthy, for at most `timeout` seconds.

    Returns that value; raises AssertionError naming `what` when the bound is reached.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class DevPod:
    """One emulated pod and the paths of its projected volumes."""

    namespace: str
    name: str
    uid: str
    service_account: str
    service_account_uid: str
    node: str
    volume: Path
    token_file: Path
    ca_file: Path
    extra_tokens: dict[str, Path]
    # The Secret volume of its serving certificate (cert_file, key_file, ca_file), if it has one.
    tls: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevPod:
        return cls(
            namespace=data["namespace"],
            name=data["name"],
            uid=data["uid"],
            service_account=data["service_account"],
            service_account_uid=data.get("service_account_uid", ""),
            node=data["node"],
            volume=Path(data["volume"]),
            token_file=Path(data["token_file"]),
            ca_file=Path(data["ca_file"]),
            extra_tokens={aud: Path(p) for aud, p in data.get("extra_tokens", {}).items()},
            tls=data.get("tls"),
        )

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def token(self, audience: str | None = None) -> str:
        """The pod's current token: the API-audience one, or the extra one for `audience`.

        Re-reads the file every time, as a client of a kubelet volume must.
        """
        path = self.token_file if audience is None else self.extra_tokens[audience]
        return path.read_text().strip()


@dataclass
class DevCluster:
    """A running devcluster: the fields of its cluster.json plus helpers."""

    state_dir: Path
    url: str
    ca_file: Path
    issuer: str
    api_audience: str
    discovery_url: str
    jwks_url: str
    admin_url: str
    admin_token: str
    pid: int
    pods: tuple[DevPod, ...]
    raw: dict[str, Any]
    process: subprocess.Popen[bytes] = field(repr=False)

    def pod(self, app: str) -> DevPod:
        """The pod named `app` or `app-<suffix>` (e.g. `be` -> `be-7d9f8`)."""
        for pod in self.pods:
            if pod.name == app or pod.name.rsplit("-", 1)[0] == app:
                return pod
        raise KeyError(f"no pod for {app!r} among {[p.name for p in self.pods]}")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the devcluster's CA (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the API server, verifying TLS with the devcluster's CA."""
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), **kwargs)

    def admin(
        self, path: str, payload: dict[str, Any] | None = None, *, method: str = "POST"
    ) -> dict[str, Any]:
        """Call the admin API (`/admin/...`) and return its JSON; raises on a non-2xx answer."""
        response = httpx.request(
            method,
            f"{self.admin_url}{path}",
            json=(payload if payload is not None else {}) if method != "GET" else None,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10.0,
        )
        if response.status_code >= 300:
            status = response.status_code
            raise AssertionError(f"admin {method} {path} -> {status}: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        """GET /admin/state: request counters, keys, pods and faults."""
        return self.admin("/admin/state", method="GET")

    def mint(
        self,
        service_account: str = "be-sa",
        *,
        namespace: str = "default",
        audiences: Sequence[str] | None = None,
        expiration_seconds: int = 3600,
        pod: str | None = None,
        **extra: Any,
    ) -> str:
        """Mint a token through the admin API (any claims layout kube-apiserver would issue)."""
        body: dict[str, Any] = {
            "namespace": namespace,
            "service_account": service_account,
            "audiences": list(audiences) if audiences is not None else [self.api_audience],
            "expiration_seconds": expiration_seconds,
            "pod": pod,
            **extra,
        }
        token: str = self.admin("/admin/tokens/mint", body)["token"]
        return token

    def sign(self, header: bytes, payload: bytes) -> str:
        """These exact header and payload bytes, signed by the current signing key (POST
        /admin/sign): tokens the cluster would never mint, with a real signature."""
        body = {"header": _b64url(header), "payload": _b64url(payload)}
        token: str = self.admin("/admin/sign", body)["token"]
        return token

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the process with `sig` and return its exit code (killed if it will not stop)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def logs(self) -> str:
        """What the process printed so far (stdout then stderr)."""
        return "".join(
            (self.state_dir / name).read_text(errors="replace")
            for name in ("devcluster.stdout", "devcluster.stderr")
            if (self.state_dir / name).exists()
        )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _load(state_dir: Path, process: subprocess.Popen[bytes]) -> DevCluster | None:
    path = state_dir / "cluster.json"
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if data.get("pid") != process.pid:
        return None
    return DevCluster(
        state_dir=state_dir,
        url=data["url"],
        ca_file=Path(data["ca_file"]),
        issuer=data["issuer"],
        api_audience=data["api_audience"],
        discovery_url=data["discovery_url"],
        jwks_url=data["jwks_url"],
        admin_url=data["admin_url"],
        admin_token=data["admin_token"],
        pid=data["pid"],
        pods=tuple(DevPod.from_json(p) for p in data["pods"]),
        raw=data,
        process=process,
    )


def devcluster_command(
    state_dir: Path,
    token_ttl: int,
    extra_args: Sequence[str] = (),
    rbac: Sequence[Path] = DEFAULT_RBAC,
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "entrypoints.cli",
        "devcluster",
        "--state-dir",
        str(state_dir),
        "--port",
        "0",
        "--admin-port",
        "0",
        "--token-ttl",
        str(token_ttl),
        *(argument for path in rbac for argument in ("--rbac", str(path))),
        *extra_args,
    ]


@contextlib.contextmanager
def start_devcluster(
    state_dir: Path,
    token_ttl: int = 3607,
    *,
    extra_args: Sequence[str] = (),
    rbac: Sequence[Path] = DEFAULT_RBAC,
    timeout: float = START_TIMEOUT_SECONDS,
) -> Iterator[DevCluster]:
    """Run `ksa-auth devcluster` in `state_dir` until the block ends, then stop it and wait.

    `rbac`: the RBAC manifests it enforces (files or kustomizations), by default the tests'
    own grants; pass an overlay of deploy/k8s/overlays to run what it would apply.

    Yields once cluster.json (written after both listeners serve) names this process.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / "cluster.json").unlink()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (
        open(state_dir / "devcluster.stdout", "wb") as stdout,
        open(state_dir / "devcluster.stderr", "wb") as stderr,
    ):
        process = subprocess.Popen(
            devcluster_command(state_dir, token_ttl, extra_args, rbac),
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    cluster: DevCluster | None = None
    try:
        deadline = time.monotonic() + timeout
        while cluster is None:
            cluster = _load(state_dir, process)
            if cluster is not None:
                break
            if process.poll() is not None:
                err = (state_dir / "devcluster.stderr").read_text(errors="replace")
                raise RuntimeError(f"devcluster exited with {process.returncode}:\n{err[-4000:]}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"devcluster wrote no cluster.json within {timeout} s")
            time.sleep(0.05)
        yield cluster
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
