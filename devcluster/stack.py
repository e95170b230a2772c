"""devcluster, be and be2 started as child processes, be and be2 wired only by cluster.json."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from adapters.kube_http import pinned_context
from devcluster.manifests import DEPLOY_OVERLAYS
from devcluster.processes import (
    Child,
    NotReady,
    free_port,
    shielded_from_signals,
    spawn,
    stop_all,
    wait_for,
    wait_http_ready,
)

__all__ = [
    "BE2_APP",
    "BE_APP",
    "ClusterInfo",
    "PodInfo",
    "Stack",
    "be2_environment",
    "be_environment",
    "child_environment",
    "devcluster_arguments",
    "start_stack",
]

READY_TIMEOUT_SECONDS = 30.0
HOST = "127.0.0.1"
BE_APP, BE2_APP = "be", "be2"
# Settings a user may pass through to the children; every other KSA_* variable of our own
# environment is dropped so the services are wired only by what the devcluster wrote.
PASSED_THROUGH = frozenset({"KSA_LOG_LEVEL", "KSA_LOG_FORMAT"})
# The stack is the seed's setup: namespace `default`, be on its API-audience token, be2 over
# JWKS. That is deploy/'s docker-desktop overlay, whose RBAC objects the devcluster enforces.
OVERLAY = DEPLOY_OVERLAYS / "docker-desktop"


class ServingTls(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A pod's serving certificate, as its mounted kubernetes.io/tls Secret holds it."""

    cert_file: str
    key_file: str
    ca_file: str


class PodInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One pod of cluster.json (the fields the stack uses)."""

    namespace: str
    name: str
    service_account: str
    token_file: str
    ca_file: str
    tls: ServingTls | None = None

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def is_app(self, app: str) -> bool:
        # Deployment pods are named <app>-<suffix> (be-7d9f8); be2's must not match "be".
        return self.name == app or self.name.rsplit("-", 1)[0] == app


class ClusterInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The devcluster's cluster.json: the only source of wiring for be and be2."""

    url: str
    ca_file: str
    issuer: str
    api_audience: str
    discovery_url: str
    jwks_url: str
    admin_url: str
    admin_token: str = msgspec.field(default="")
    kubeconfig: str = ""
    pid: int = 0
    pods: tuple[PodInfo, ...] = ()

    def pod(self, app: str) -> PodInfo:
        for pod in self.pods:
            if pod.is_app(app):
                return pod
        raise NotReady(f"cluster.json has no pod for {app!r}")

    def __repr__(self) -> str:  # the admin token is a secret
        return f"ClusterInfo(url={self.url!r}, pods={[p.name for p in self.pods]!r})"


def be_environment(cluster: ClusterInfo, be2_url: str) -> dict[str, str]:
    """be's settings: its pod's projected token, where be2 listens, and (https) be2's CA."""
    settings = {"KSA_TOKEN_FILE": cluster.pod(BE_APP).token_file, "KSA_BE2_URL": be2_url}
    be2_tls = cluster.pod(BE2_APP).tls
    if be2_url.startswith("https://") and be2_tls is not None:
        settings["KSA_BE2_CA_FILE"] = be2_tls.ca_file
    return settings


def be2_environment(cluster: ClusterInfo) -> dict[str, str]:
    """be2's settings: its own pod's token and CA, the API server, who may call, and the
    serving certificate the emulator issued (TLS) when there is one."""
    pod = cluster.pod(BE2_APP)
    serving = (
        {"KSA_TLS_CERT_FILE": pod.tls.cert_file, "KSA_TLS_KEY_FILE": pod.tls.key_file}
        if pod.tls is not None
        else {}
    )
    return {
        **serving,
        "KSA_TOKEN_FILE": pod.token_file,
        "KSA_CA_FILE": pod.ca_file,
        "KSA_API_SERVER": cluster.url,
        "KSA_DISCOVERY_URL": cluster.discovery_url,
        "KSA_ISSUER": cluster.issuer,
        "KSA_AUDIENCES": cluster.api_audience,
        "KSA_ALLOWED_SUBJECTS": cluster.pod(BE_APP).subject,
    }


def child_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """Our environment minus any KSA_* of ours (but log settings), plus `settings`."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KSA_") or key in PASSED_THROUGH
    }
    return {**base, "PYTHONUNBUFFERED": "1", **settings}


def cli_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", *arguments]


@dataclass(frozen=True, slots=True)
class Stack:
    """A running devcluster + be + be2."""

    state_dir: Path
    cluster: ClusterInfo
    be_url: str
    be2_url: str
    children: tuple[Child, ...]
    started_seconds: float

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def be2_ca_file(self) -> str | None:
        """The CA be2's certificate chains to, when be2 serves TLS."""
        tls = self.cluster.pod(BE2_APP).tls
        return tls.ca_file if tls is not None and self.be2_url.startswith("https://") else None

    def client(self, timeout: float = 10.0) -> httpx.Client:
        """A client for the stack's services: be2's CA trusted when it serves TLS, nothing else."""
        ca_file = self.be2_ca_file
        verify = pinned_context(ca_file) if ca_file is not None else True
        return httpx.Client(timeout=timeout, trust_env=False, verify=verify)

    def admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the devcluster's admin API; raises on a non-2xx answer."""
        response = httpx.post(
            f"{self.cluster.admin_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.cluster.admin_token}"},
            timeout=10.0,
            trust_env=False,
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def describe(self, phase: str) -> dict[str, Any]:
        """What stack.json records: phase, URLs, child pids and log files (no secrets)."""
        return {
            "phase": phase,
            "devcluster_url": self.cluster.url,
            "be_url": self.be_url,
            "be2_url": self.be2_url,
            "pids": {child.name: child.pid for child in self.children},
            "logs": {child.name: str(child.log_path) for child in self.children},
        }


def _read_cluster(path: Path, pid: int) -> ClusterInfo | None:
    try:
        cluster = msgspec.json.decode(path.read_bytes(), type=ClusterInfo)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    # A cluster.json left by an earlier run in the same state dir names another process.
    return cluster if cluster.pid == pid else None


@contextlib.contextmanager
def start_stack(
    state_dir: Path,
    token_ttl: int = 3607,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> Iterator[Stack]:
    """Start devcluster, then be2 and be (in parallel), wait until all are ready, yield.

    Every child is stopped (and reaped) when the block ends, however it ends.
    """
    started = time.perf_counter()
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in (state_dir / "cluster.json", state_dir / "stack.json"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    children: list[Child] = []
    try:
        with httpx.Client(trust_env=False) as client:
            cluster = _start_devcluster(state_dir, token_ttl, ready_timeout, children)
            be_url, be2_url = _start_services(
                cluster, state_dir / "logs", ready_timeout, children, client
            )
        yield Stack(
            state_dir=state_dir,
            cluster=cluster,
            be_url=be_url,
            be2_url=be2_url,
            children=tuple(children),
            started_seconds=time.perf_counter() - started,
        )
    finally:
        with shielded_from_signals():
            stop_all(children)


def devcluster_arguments(state_dir: Path, token_ttl: int) -> list[str]:
    """`ksa-auth devcluster` as the stack runs it: the overlay's RBAC enforced."""
    return [
        "devcluster",
        "--state-dir",
        str(state_dir),
        "--token-ttl",
        str(token_ttl),
        "--rbac",
        str(OVERLAY),
    ]


def _start_devcluster(
    state_dir: Path, token_ttl: int, ready_timeout: float, children: list[Child]
) -> ClusterInfo:
    """Spawn the devcluster (into `children`) and wait for the cluster.json it writes."""
    devcluster = spawn(
        "devcluster",
        cli_command(*devcluster_arguments(state_dir, token_ttl)),
        child_environment({}),
        state_dir / "logs" / "devcluster.log",
    )
    children.append(devcluster)
    found: list[ClusterInfo] = []

    def cluster_written() -> bool:
        cluster = _read_cluster(state_dir / "cluster.json", devcluster.pid)
        if cluster is not None:
            found.append(cluster)
        return cluster is not None

    wait_for(cluster_written, ready_timeout, "devcluster cluster.json", (devcluster,))
    return found[0]


def _start_services(
    cluster: ClusterInfo,
    logs: Path,
    ready_timeout: float,
    children: list[Child],
    client: httpx.Client,
) -> tuple[str, str]:
    """Spawn be2 and be (into `children`) on free ports, wait until both are ready; their URLs."""
    be_port, be2_port = free_port(HOST), free_port(HOST)
    be2_tls = cluster.pod(BE2_APP).tls
    be2_scheme = "https" if be2_tls is not None else "http"
    be_url, be2_url = f"http://{HOST}:{be_port}", f"{be2_scheme}://{HOST}:{be2_port}"
    # Readiness over be2's TLS proves it presents a certificate be will accept.
    checker = client
    if be2_tls is not None:
        checker = httpx.Client(trust_env=False, verify=pinned_context(be2_tls.ca_file))
    services: list[tuple[Child, str]] = []
    for app, port, url, settings in (
        (BE2_APP, be2_port, be2_url, be2_environment(cluster)),
        (BE_APP, be_port, be_url, be_environment(cluster, be2_url)),
    ):
        child = spawn(
            app,
            cli_command("serve", app, "--host", HOST, "--port", str(port)),
            child_environment(settings),
            logs / f"{app}.log",
        )
        children.append(child)
        services.append((child, url))
    try:
        for child, url in services:
            wait_http_ready(f"{url}/readyz", child, checker, ready_timeout)
    finally:
        if checker is not client:
            checker.close()
    return be_url, be2_url
