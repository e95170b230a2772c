"""The built image and its containers: deploy/image.sh for the build, podman for the runs."""

from __future__ import annotations

import contextlib
import secrets
import ssl
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapters.kube_http import pinned_context
from tests.reliability.services import free_port

__all__ = [
    "BASE",
    "IMAGE",
    "LOCKED_DOWN",
    "SCRIPT",
    "Container",
    "build_image",
    "podman",
    "run_container",
    "serve_container",
]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "image.sh"
_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"
]
IMAGE = f"localhost/ksa-auth:{_VERSION}"
BASE = "localhost/python:3.11-slim"
# As the manifests run it (readOnlyRootFilesystem, runAsUser/Group 10001, capabilities drop ALL,
# allowPrivilegeEscalation false), and no writable /tmp, /run or /var/tmp unless a test mounts one.
LOCKED_DOWN = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--user",
    "10001:10001",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "host",
)
# A cold build (base image from Debian's mirror, the lock from PyPI) took about 2.5 minutes here.
BUILD_TIMEOUT_SECONDS = 900
START_TIMEOUT_SECONDS = 60.0


def build_image() -> str:
    """Run `deploy/image.sh build` (cached layers make a rebuild take seconds); its output.

    Raises AssertionError with what it printed when the build fails, a tool is missing included.
    """
    result = subprocess.run(
        [str(SCRIPT), "build"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"deploy/image.sh build failed ({result.returncode}):\n{output}")
    return output


def podman(
    *args: str, timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """podman with the private storage and configuration of deploy/image.sh."""
    result = subprocess.run(
        [str(SCRIPT), "podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result


def run_container(*args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the image once, locked down, and return what it did (any exit code)."""
    options = [*LOCKED_DOWN, *(("--entrypoint", entrypoint) if entrypoint else ())]
    return podman("run", "--rm", *options, IMAGE, *args, check=False)


@dataclass(frozen=True)
class Container:
    """A detached container serving on 127.0.0.1:port (host network); over https, trusted
    through `ca_file` only, when it serves TLS."""

    name: str
    port: int
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        scheme = "http" if self.ca_file is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return True if self.ca_file is None else pinned_context(self.ca_file)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, verify=self.verify)


def _wait_ready(container: Container) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        state = podman("inspect", "--format", "{{.State.Status}}", container.name, check=False)
        if state.stdout.strip() not in ("running", "created", "configured"):
            raise AssertionError(f"{container.name} stopped:\n{container.logs()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{container.url}/readyz", timeout=1.0, verify=container.verify)
            if ready.status_code == 200:
                return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{container.name} not ready in time:\n{container.logs()[-3000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def serve_container(
    service: str,
    env: Mapping[str, str],
    mounts: Sequence[str] = (),
    *,
    port: int | None = None,
    ca_file: Path | None = None,
) -> Iterator[Container]:
    """`ksa-auth serve <service>` in a locked-down container until the block ends, then removed.

    `mounts` are podman `--volume` values; /tmp is a small tmpfs, as the manifests' emptyDir.
    Waits (bounded) until /readyz answers 200 (over https trusting `ca_file`, when given).
    """
    name = f"ksa-auth-test-{service}-{secrets.token_hex(4)}"
    container = Container(name, port or free_port(), ca_file)
    options = [*LOCKED_DOWN, "--tmpfs", "/tmp:size=16m", "--name", container.name]
    options += [f"--volume={mount}" for mount in mounts]
    options += [f"--env={name}={value}" for name, value in env.items()]
    arguments = ["serve", service, "--host", "127.0.0.1", "--port", str(container.port)]
    podman("run", "--detach", *options, IMAGE, *arguments)
    try:
        _wait_ready(container)
        yield container
    finally:
        podman("rm", "--force", "--time", "5", container.name, check=False)
