"""Start an ASGI app under uvicorn or granian on loopback, stop it with SIGTERM, read its RSS."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SERVERS",
    "Running",
    "Shutdown",
    "free_port",
    "http_get",
    "rss_bytes",
    "server_command",
    "serving",
    "start",
]

SERVERS = ("uvicorn", "granian")
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (servers here cannot bind port 0 and say)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(server: str, factory: str, port: int) -> list[str]:
    """One worker, no server access log: as `ksa-auth serve` runs be2 (entrypoints/serve.py)."""
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "--factory", factory,
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
    if server == "granian":
        # The limits `ksa-auth serve` sets (entrypoints/server_limits.py), so every app compared
        # runs under the same HTTP/1-only server.
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--log-level", "warning",
            "--http", "1", "--backlog", "1024", "--backpressure", "8192",
            "--http1-header-read-timeout", "10000", "--http1-buffer-size", "81920",
            factory,
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}: one of {SERVERS}")


def http_get(
    port: int, path: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; the parent pid follows its closing paren.
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of the process and all its descendants (granian serves from a worker child)."""
    total = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@dataclass(frozen=True, slots=True)
class Shutdown:
    """How a SIGTERM went: the in-flight request's answer, the exit, the time it took."""

    returncode: int
    seconds: float
    in_flight_status: int | None
    log_tail: str

    @property
    def graceful(self) -> bool:
        # uvicorn re-raises the signal after its clean shutdown, so -SIGTERM is a normal end.
        exited = self.returncode in (0, -signal.SIGTERM)
        return exited and self.seconds < STOP_TIMEOUT_SECONDS and self.in_flight_status == 200


@dataclass
class Running:
    """A started server: its process, port and log file."""

    name: str
    server: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, in_flight: tuple[str, Mapping[str, str]] | None = None) -> Shutdown:
        """SIGTERM, optionally while a request (path, headers) is in flight; wait with a bound."""
        answer: dict[str, int] = {}
        thread = None
        if in_flight is not None and self.process.poll() is None:
            path, headers = in_flight

            def call() -> None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    answer["status"] = http_get(self.port, path, headers, timeout=10)[0]

            thread = threading.Thread(target=call, daemon=True)
            thread.start()
            # The request must have reached the app before the signal: wait until it is open.
            time.sleep(0.3)
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._kill()
        seconds = time.monotonic() - started
        if thread is not None:
            thread.join(timeout=STOP_TIMEOUT_SECONDS)
        result = Shutdown(
            returncode=self.process.returncode,
            seconds=seconds,
            in_flight_status=answer.get("status"),
            log_tail=self.log()[-2000:],
        )
        if self._log_dir is not None:
            self._log_dir.cleanup()
        return result

    def _kill(self) -> None:
        for pid in reversed(_descendants(self.process.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()


def start(
    name: str,
    command: Sequence[str],
    port: int,
    *,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    ready_status: int = 200,
    server: str = "",
) -> Running:
    """Run `command` (which serves on `port`) until GET `ready_path` answers `ready_status`."""
    log_dir = tempfile.TemporaryDirectory(prefix=f"ksa-bench-{name}-")
    log_path = Path(log_dir.name, "server.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            cwd=Path(__file__).resolve().parent.parent,
        )
    running = Running(name, server, port, process, log_path)
    running._log_dir = log_dir
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            text = running.log()[-3000:]
            log_dir.cleanup()
            raise RuntimeError(f"{name} exited with {process.returncode} before serving:\n{text}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(port, ready_path, timeout=2)[0] == ready_status:
                return running
        if time.monotonic() >= deadline:
            running.stop()
            raise RuntimeError(
                f"{name} did not serve {ready_path} within {START_TIMEOUT_SECONDS} s"
            )
        time.sleep(0.05)


@contextlib.contextmanager
def serving(
    name: str,
    command: Sequence[str],
    port: int,
    *,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    server: str = "",
) -> Iterator[Running]:
    """`start` as a context manager that always stops the server."""
    running = start(name, command, port, ready_path=ready_path, env=env, server=server)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()
