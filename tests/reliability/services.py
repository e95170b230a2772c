"""Run be and be2 as real processes on free loopback ports, their output captured to files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from adapters.kube_http import pinned_context
from tests.devcluster_harness import DevCluster, DevPod

__all__ = [
    "Service",
    "be2_environment",
    "be_environment",
    "free_port",
    "start_service",
]

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
_SERVE = (sys.executable, "-m", "entrypoints.cli", "serve")


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_paths: tuple[Path, Path]
    env: dict[str, str] = field(repr=False)
    # What a client trusts: be2's CA when it serves TLS (KSA_TLS_CERT_FILE in its env).
    verify: ssl.SSLContext | bool = field(default=True, repr=False)

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("KSA_TLS_CERT_FILE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, verify=self.verify)


def be2_environment(cluster: DevCluster, **overrides: str) -> dict[str, str]:
    """be2's settings from cluster.json, as `ksa-auth up` sets them (devcluster/stack.py)."""
    pod = cluster.pod("be2")
    be = cluster.pod("be")
    env = {
        "KSA_TOKEN_FILE": str(pod.token_file),
        "KSA_CA_FILE": str(pod.ca_file),
        "KSA_API_SERVER": cluster.url,
        "KSA_ISSUER": cluster.issuer,
        "KSA_DISCOVERY_URL": cluster.discovery_url,
        "KSA_AUDIENCES": cluster.api_audience,
        "KSA_ALLOWED_SUBJECTS": be.subject,
        "KSA_LOG_LEVEL": "INFO",
        "KSA_LOG_FORMAT": "json",
    }
    env.update(overrides)
    return env


def be_environment(cluster: DevCluster, be2_url: str, **overrides: str) -> dict[str, str]:
    """be's settings, as `ksa-auth up` sets them: its pod's projected token, where be2 is."""
    pod: DevPod = cluster.pod("be")
    env = {
        "KSA_TOKEN_FILE": str(pod.token_file),
        "KSA_BE2_URL": be2_url,
        "KSA_LOG_LEVEL": "INFO",
        "KSA_LOG_FORMAT": "json",
    }
    env.update(overrides)
    return env


def _probe(url: str, verify: ssl.SSLContext | bool) -> int | None:
    try:
        return httpx.get(url, timeout=1.0, verify=verify).status_code
    except httpx.HTTPError:
        return None


@contextlib.contextmanager
def start_service(
    kind: str,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    wait_ready: bool = True,
    name: str | None = None,
    preexec_fn: Callable[[], None] | None = None,
    ca_file: Path | None = None,
    server: str | None = None,
) -> Iterator[Service]:
    """`ksa-auth serve <kind>` on a free port until the block ends; stopped and reaped after.

    Waits for /healthz (and /readyz when `wait_ready`) with a bound; fails with the log tail.
    With KSA_TLS_* in `env` it is reached over https, trusting `ca_file` only.
    """
    verify: ssl.SSLContext | bool = True if ca_file is None else pinned_context(ca_file)
    chosen = ("--server", server) if server else ()
    label = name or kind
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = log_dir / f"{label}.stdout", log_dir / f"{label}.stderr"
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("KSA_")} | {
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    process: subprocess.Popen[bytes] | None = None
    for _attempt in range(3):
        port = free_port()
        with stdout_path.open("ab") as stdout, stderr_path.open("ab") as stderr:
            process = subprocess.Popen(
                [*_SERVE, kind, "--host", "127.0.0.1", "--port", str(port), *chosen],
                env=full_env,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                preexec_fn=preexec_fn,
                # Its own group: a server's workers are killed with it if it must be killed.
                start_new_session=True,
            )
        service = Service(label, port, process, (stdout_path, stderr_path), dict(env), verify)
        try:
            _wait(service, "/healthz", {200})
            if wait_ready:
                _wait(service, "/readyz", {200})
            break
        except _PortTaken:
            _stop(process)
            continue
        except BaseException:
            _stop(process)
            raise
    else:
        raise RuntimeError(f"{label}: could not bind a free port in 3 attempts")
    try:
        yield service
    finally:
        _stop(process)


class _PortTaken(Exception):
    pass


def _wait(service: Service, path: str, statuses: set[int]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        code = service.process.poll()
        if code is not None:
            tail = service.logs()[-3000:]
            if "address already in use" in tail.lower():
                raise _PortTaken
            raise RuntimeError(f"{service.name} exited with {code}:\n{tail}")
        if _probe(service.url + path, service.verify) in statuses:
            return
        if time.monotonic() >= deadline:
            tail = service.logs()[-3000:]
            raise RuntimeError(f"{service.name}: {path} not ready in time\n{tail}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
